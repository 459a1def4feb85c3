"""The receiving side: signature, freshness window, replay cache and revocation."""

from __future__ import annotations

import hashlib
import heapq
import time
from collections.abc import Callable, Sequence

from vehicles.errors import (
    FutureTimestamp,
    InvalidSignature,
    ReplayedMessage,
    RevokedPseudonym,
    StaleTimestamp,
    VerificationError,
)
from vehicles.ibc.batch import find_invalid
from vehicles.ibc.curve import RandomSource
from vehicles.ibc.message import SignedMessage
from vehicles.ibc.revocation import RevocationList, RevocationSource
from vehicles.ibc.signature import verify_signature


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Verifier:
    """Accepts each valid, fresh, unrevoked signed message exactly once.

    Args:
        pk_ta: the TA's public key (33 bytes).
        revocations: where revoked pseudonym ids are looked up.
        window_ms: a timestamp may be at most this far from ``clock_ms()``, either way.
        clock_ms: the clock (inject a fake one in tests).
    """

    def __init__(
        self,
        pk_ta: bytes,
        revocations: RevocationSource | None = None,
        window_ms: int = 30_000,
        clock_ms: Callable[[], int] = wall_clock_ms,
        rng: RandomSource | None = None,
    ) -> None:
        self.pk_ta = pk_ta
        self.revocations: RevocationSource = revocations if revocations is not None else RevocationList()
        self.window_ms = window_ms
        self._clock = clock_ms
        self._rng = rng
        # digest -> timestamp; a heap orders expiry. An entry can be dropped once its
        # timestamp is outside the window: the freshness check refuses it from then on.
        self._seen: dict[bytes, int] = {}
        self._expiry: list[tuple[int, bytes]] = []

    def verify(self, signed: SignedMessage, *, remember: bool = True) -> None:
        """Accept ``signed`` or raise why not.

        ``remember=False`` checks without marking ``signed`` as seen; call
        :meth:`remember` once the caller's own checks pass as well, so that a message
        refused for another reason (a chain that lags, say) is not then a replay.

        Raises:
            StaleTimestamp, FutureTimestamp, RevokedPseudonym, ReplayedMessage,
            InvalidSignature (all :class:`VerificationError`).
        """
        now = self._clock()
        digest = self._precheck(signed, now)
        if not verify_signature(signed, self.pk_ta):
            raise InvalidSignature("signature equation does not hold")
        if remember:
            self._remember(digest, signed.timestamp_ms, now)

    def remember(self, signed: SignedMessage) -> None:
        """Mark ``signed`` (already verified with ``remember=False``) as accepted.

        Raises:
            ReplayedMessage: it was accepted meanwhile.
        """
        digest = hashlib.sha256(signed.encode()).digest()
        if digest in self._seen:
            raise ReplayedMessage("this signed message was already accepted")
        self._remember(digest, signed.timestamp_ms, self._clock())

    def verify_many(self, items: Sequence[SignedMessage]) -> list[VerificationError | None]:
        """Verify a batch; one result per item: ``None`` (accepted) or the refusal.

        Signatures are checked together (:func:`find_invalid`), so a batch of valid
        messages costs about one multiplication per signature.
        """
        now = self._clock()
        results: list[VerificationError | None] = [None] * len(items)
        pending: list[int] = []
        digests: dict[int, bytes] = {}
        batch_digests: set[bytes] = set()
        for i, item in enumerate(items):
            try:
                digest = self._precheck(item, now)
                if digest in batch_digests:
                    raise ReplayedMessage("message repeated within the batch")
            except VerificationError as exc:
                results[i] = exc
                continue
            batch_digests.add(digest)
            digests[i] = digest
            pending.append(i)
        bad = {pending[j] for j in find_invalid([items[i] for i in pending], self.pk_ta, self._rng)}
        for i in pending:
            if i in bad:
                results[i] = InvalidSignature("signature equation does not hold")
            else:
                self._remember(digests[i], items[i].timestamp_ms, now)
        return results

    def _precheck(self, signed: SignedMessage, now: int) -> bytes:
        if signed.timestamp_ms < now - self.window_ms:
            raise StaleTimestamp(signed.timestamp_ms, now, self.window_ms)
        if signed.timestamp_ms > now + self.window_ms:
            raise FutureTimestamp(signed.timestamp_ms, now, self.window_ms)
        pseudonym_id = signed.pseudonym.pseudonym_id
        if self.revocations.is_revoked(pseudonym_id):
            raise RevokedPseudonym(pseudonym_id)
        digest = hashlib.sha256(signed.encode()).digest()
        if digest in self._seen:
            raise ReplayedMessage("this signed message was already accepted")
        return digest

    def _remember(self, digest: bytes, timestamp_ms: int, now: int) -> None:
        self._seen[digest] = timestamp_ms
        heapq.heappush(self._expiry, (timestamp_ms, digest))
        horizon = now - self.window_ms
        while self._expiry and self._expiry[0][0] < horizon:
            _, old = heapq.heappop(self._expiry)
            self._seen.pop(old, None)

    @property
    def replay_cache_size(self) -> int:
        return len(self._seen)

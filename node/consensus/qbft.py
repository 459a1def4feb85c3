"""The QBFT machine of one validator: pure state transitions, messages in, actions out.

It follows the upon-rules of the EEA QBFT specification (ConsenSys'
``qbft-formal-spec-and-verification``, ``dafny/spec/L1/node.dfy``):

* the proposer of round 0 proposes a new block; every validator PREPAREs the first
  valid proposal of its current round;
* a quorum of PREPAREs for the accepted proposal prepares it (the machine keeps the
  block and the quorum as its prepared certificate) and the validator COMMITs, with a
  commit seal over the block digest;
* a quorum of COMMITs for a block decides it (``Decide`` carries a quorum of seals);
* a round timer, ``base_timeout * 2**round``, moves the validator to the next round
  with a ROUND-CHANGE carrying its prepared certificate; f+1 round changes for higher
  rounds make it skip to the highest round they all reach;
* the proposer of round r > 0 with a quorum of round changes for r re-proposes the
  value of the highest prepared round among them (re-stamped for r), else a new block;
  a proposal for r > 0 is valid only with such a justification (``isProposalJustification``).

Safety does not depend on timers: they only move rounds. Two departures from the
specification, both conservative: a quorum of commits for a block accepted in an
earlier round of the height also decides it (the seals prove it final to anyone), and
a validly justified proposal for a higher round moves the validator to that round.
Agreement is, as in the specification (which compares blocks without round and seals),
on the block *content*: the round stamp of the decided block may differ between
validators that decided in different rounds.

The machine never raises for a peer's input: a refused message comes back as a
``Refused`` action naming the reason. It has no clock: the node turns ``SetTimer`` into
a timer and calls :meth:`QbftMachine.timer_expired`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from coincurve import PrivateKey

from node.consensus.blocks import BlockOps
from node.consensus.errors import (
    ConsensusError,
    DigestMismatch,
    Equivocation,
    FarFutureHeight,
    FarFutureRound,
    FutureBufferFull,
    InvalidBlock,
    InvalidCommitSeal,
    InvalidConfig,
    InvalidJustification,
    NotAValidator,
    StaleHeight,
    WrongProposer,
)
from node.consensus.finality import verify_finality
from node.consensus.messages import (
    Commit,
    Payload,
    Prepare,
    Proposal,
    RoundChange,
    Signed,
    SignedMessage,
    decode,
    encode,
    recover_signer,
    sign,
)
from node.consensus.quorum import max_faulty, proposer_of, quorum
from node.errors import NodeError
from node.hashing import address_of_public

_T = TypeVar("_T")
_P = TypeVar("_P", Proposal, Prepare, Commit, RoundChange)

# --- configuration and actions -----------------------------------------------------------


@dataclass(frozen=True)
class QbftConfig:
    """Settings of the machine, checked once when built.

    Attributes:
        base_timeout: seconds of round 0's timer; round r waits ``base_timeout * 2**r``.
        future_heights: messages for up to this many heights ahead are buffered.
        max_future_messages: the buffer's bound, over all senders.
        max_future_per_sender: the buffer's bound per sender.
        max_round_ahead: messages for rounds further ahead of the current one are refused.
    """

    base_timeout: float = 1.0
    future_heights: int = 8
    max_future_messages: int = 4096
    max_future_per_sender: int = 256
    max_round_ahead: int = 64

    def __post_init__(self) -> None:
        if not self.base_timeout > 0:
            raise InvalidConfig("base_timeout", self.base_timeout)
        for name in ("future_heights", "max_future_messages", "max_future_per_sender", "max_round_ahead"):
            if getattr(self, name) < 0:
                raise InvalidConfig(name, getattr(self, name))


@dataclass(frozen=True)
class Broadcast:
    """Send ``data`` (one of this validator's messages, already processed locally) to every validator."""

    data: bytes


@dataclass(frozen=True)
class SetTimer:
    """(Re)arm the round timer: call ``timer_expired(height, round)`` after ``seconds``."""

    height: int
    round: int
    seconds: float


@dataclass(frozen=True)
class BuildBlock:
    """Build a new block for ``(height, round)`` and hand it to ``block_built``."""

    height: int
    round: int


@dataclass(frozen=True)
class Decide:
    """``block`` is final at ``height``: ``seals`` are a quorum of commit seals, in validator order."""

    height: int
    round: int
    block: bytes
    seals: tuple[bytes, ...]


@dataclass(frozen=True)
class FutureMessage:
    """A well-formed message from validator ``sender`` for a later ``height``: the node may be behind."""

    height: int
    sender: str


@dataclass(frozen=True)
class Refused:
    """An input the machine refused, for the log."""

    reason: ConsensusError


Action = Broadcast | SetTimer | BuildBlock | Decide | FutureMessage | Refused


# --- the machine -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    round: int
    block: bytes
    digest: bytes
    certificate: tuple[Signed[Prepare], ...]


class QbftMachine:
    """QBFT for one validator, one height at a time.

    Args:
        key: the validator's 32-byte secp256k1 secret key.
        ops: the application's block operations.
        validators: the validator list of a height (it may change at block boundaries);
            its order fixes proposers and seal order.
        height: the height to run first.
        config: timer and bound settings.

    Raises:
        InvalidConfig: the key is not a valid secret key or a height has no validators.
    """

    _decided: bool
    _accepted: Signed[Proposal] | None
    _blocks: dict[bytes, bytes]
    _prepares: dict[int, dict[str, Signed[Prepare]]]
    _commits: dict[int, dict[str, Signed[Commit]]]
    _round_changes: dict[int, dict[str, Signed[RoundChange]]]
    _prepared: _Prepared | None
    _committed: set[int]
    _proposed: set[int]
    _pending_build: int | None

    def __init__(
        self,
        key: bytes,
        ops: BlockOps,
        validators: Callable[[int], Sequence[str]],
        height: int,
        config: QbftConfig | None = None,
    ) -> None:
        try:
            self._key = PrivateKey(key)
        except (ValueError, TypeError) as exc:
            raise InvalidConfig("key", "<secret>") from exc
        self.address = address_of_public(self._key.public_key)
        self._ops = ops
        self._validators_of = validators
        self.config = config or QbftConfig()
        self._future: dict[int, list[SignedMessage]] = {}
        self._future_senders: Counter[str] = Counter()
        self._enter_height(height)

    # --- read-only view -------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self._height

    @property
    def round(self) -> int:
        return self._round

    @property
    def decided(self) -> bool:
        return self._decided

    @property
    def validators(self) -> tuple[str, ...]:
        return self._validators

    @property
    def is_validator(self) -> bool:
        return self._is_validator

    def proposer(self, round: int) -> str:
        """The proposer of ``round`` at the current height."""
        return proposer_of(self._validators, self._height, round)

    # --- inputs -------------------------------------------------------------------------

    def start_height(self, height: int) -> list[Action]:
        """Leave the current height (normally after ``Decide``) and run ``height``.

        Buffered messages for ``height`` are replayed; for later heights still buffered
        a ``FutureMessage`` is repeated so the node can keep syncing.

        Raises:
            StaleHeight: ``height`` is not after the current height.
            InvalidConfig: ``validators(height)`` is empty or has duplicates.
        """
        if height <= self._height:
            raise StaleHeight(height, self._height)
        self._enter_height(height)
        out: list[Action] = []
        for old in [h for h in self._future if h <= height]:
            for message in self._future.pop(old):
                self._future_senders[message.sender] -= 1
                if old == height:
                    self._receive(message, out)
        for later in sorted(self._future):
            for sender in dict.fromkeys(m.sender for m in self._future[later]):
                out.append(FutureMessage(later, sender))
        return out

    def handle(self, message: bytes | SignedMessage) -> list[Action]:
        """Process one message from a peer (wire bytes, or already decoded with ``decode``).

        Never raises for bad input: undecodable or invalid messages come back as
        ``Refused``; messages for past heights and exact duplicates are ignored.
        """
        out: list[Action] = []
        if not isinstance(message, Signed):
            try:
                message = decode(message)
            except ConsensusError as exc:
                return [Refused(exc)]
        self._receive(message, out)
        return out

    def timer_expired(self, height: int, round: int) -> list[Action]:
        """The timer set by ``SetTimer(height, round, ...)`` fired; stale timers are ignored."""
        out: list[Action] = []
        if height != self._height or round != self._round or self._decided or not self._running:
            return out
        if not self._is_validator:
            return out
        self._enter_round(round + 1, out)
        self._send_round_change(out)
        self._step(out)
        return out

    def block_built(self, block: bytes) -> list[Action]:
        """The block the last ``BuildBlock`` asked for: propose it.

        A block for a round the machine has left is dropped silently; a block for the
        wrong height or round, or one the application's ``validate`` refuses, comes
        back as ``Refused(InvalidBlock)``.
        """
        out: list[Action] = []
        round_ = self._pending_build
        if round_ is None or round_ != self._round or self._accepted is not None or self._decided:
            return out
        try:
            if self._block_call(lambda: self._ops.height(block)) != self._height:
                raise InvalidBlock("built block is for another height")
            if self._block_call(lambda: self._ops.round(block)) != round_:
                raise InvalidBlock("built block is stamped with another round")
        except ConsensusError as exc:
            return [Refused(exc)]
        self._pending_build = None
        justification = self._round_change_justification(round_) if round_ > 0 else ()
        self._send(Proposal(self._height, round_, block, justification, ()), out)
        self._step(out)
        return out

    def new_block(self, block: bytes, seals: Sequence[bytes]) -> list[Action]:
        """A peer's final block for the current height (the spec's ``UponNewBlock``): decide it.

        The seals must prove it final (:func:`~node.consensus.finality.verify_finality`
        under this height's validators). A block for another height, or once decided,
        is ignored; one whose seals do not verify comes back as ``Refused``.
        """
        if self._decided:
            return []
        try:
            if self._block_call(lambda: self._ops.height(block)) != self._height:
                return []
            round_ = self._block_call(lambda: self._ops.round(block))
            verify_finality(block, seals, self._validators, self._ops)
        except ConsensusError as exc:
            return [Refused(exc)]
        self._decided = True
        return [Decide(self._height, round_, block, tuple(seals))]

    def work_available(self) -> list[Action]:
        """The application has transactions waiting: start the round timer, and build if proposer.

        Without it an idle height does nothing (no empty blocks, no round changes),
        until a proposal or f+1 round changes from others start it.
        """
        out: list[Action] = []
        if self._decided or not self._is_validator:
            return out
        self._start_running(out)
        if self._round == 0 and self.proposer(0) == self.address and 0 not in self._proposed and self._accepted is None:
            self._proposed.add(0)
            self._pending_build = 0
            out.append(BuildBlock(self._height, 0))
        return out

    # --- height and round state ---------------------------------------------------------

    def _enter_height(self, height: int) -> None:
        validators = tuple(self._validators_of(height))
        if not validators or len(set(validators)) != len(validators):
            raise InvalidConfig("validators", validators)
        self._height = height
        self._validators = validators
        self._index = {v: i for i, v in enumerate(validators)}
        self._quorum = quorum(len(validators))
        self._f = max_faulty(len(validators))
        self._is_validator = self.address in self._index
        self._round = 0
        self._running = False
        self._decided = False
        self._accepted = None
        self._accepted_digest = b""
        self._blocks = {}
        self._prepares = {}
        self._commits = {}
        self._round_changes = {}
        self._prepared = None
        self._committed = set()
        self._proposed = set()
        self._pending_build = None

    def _timer(self, out: list[Action]) -> None:
        out.append(SetTimer(self._height, self._round, self.config.base_timeout * 2.0**self._round))

    def _start_running(self, out: list[Action]) -> None:
        if not self._running and self._is_validator:
            self._running = True
            self._timer(out)

    def _enter_round(self, round_: int, out: list[Action]) -> None:
        self._round = round_
        self._accepted = None
        self._accepted_digest = b""
        self._pending_build = None
        for stale in [r for r in self._prepares if r < round_]:
            del self._prepares[stale]
        for stale in [r for r in self._round_changes if r < round_]:
            del self._round_changes[stale]
        if self._running:
            self._timer(out)
        else:
            self._start_running(out)

    # --- message intake -----------------------------------------------------------------

    def _receive(self, message: SignedMessage, out: list[Action]) -> None:
        height = message.payload.height
        if height < self._height:
            return
        if height > self._height:
            self._buffer(message, out)
            return
        if self._decided:
            return
        try:
            self._dispatch(message, out)
        except ConsensusError as exc:
            out.append(Refused(exc))
        self._step(out)

    def _buffer(self, message: SignedMessage, out: list[Action]) -> None:
        height, sender = message.payload.height, message.sender
        if height > self._height + self.config.future_heights:
            out.append(Refused(FarFutureHeight(height, self._height, sender)))
            return
        # the next set is not known yet: the current one is the best guess of who may fill the buffer
        if sender not in self._index:
            out.append(Refused(NotAValidator(sender, height)))
            return
        queue = self._future.setdefault(height, [])
        if message in queue:
            return
        total = sum(len(q) for q in self._future.values())
        if total >= self.config.max_future_messages or (
            self._future_senders[sender] >= self.config.max_future_per_sender
        ):
            out.append(Refused(FutureBufferFull(height, sender)))
            return
        queue.append(message)
        self._future_senders[sender] += 1
        out.append(FutureMessage(height, sender))

    def _dispatch(self, message: SignedMessage, out: list[Action]) -> None:
        """Validate a message of the current height and record it; raises the refusal."""
        if message.sender not in self._index:
            raise NotAValidator(message.sender, self._height)
        payload = message.payload
        if payload.round > self._round + self.config.max_round_ahead:
            raise FarFutureRound(payload.round, self._round, message.sender)
        if isinstance(payload, Proposal):
            self._on_proposal(cast(Signed[Proposal], message), out)
        elif isinstance(payload, Prepare):
            self._on_prepare(cast(Signed[Prepare], message))
        elif isinstance(payload, Commit):
            self._on_commit(cast(Signed[Commit], message))
        else:
            self._on_round_change(cast(Signed[RoundChange], message), out)

    def _on_proposal(self, message: Signed[Proposal], out: list[Action]) -> None:
        proposal = message.payload
        if proposal.round < self._round:
            return
        expected = self.proposer(proposal.round)
        if message.sender != expected:
            raise WrongProposer(message.sender, expected, proposal.height, proposal.round)
        if proposal.round == self._round and self._accepted is not None:
            if message != self._accepted:
                raise Equivocation(message.sender, "proposal", proposal.height, proposal.round)
            return
        digest = self._validate_proposal(proposal)
        if proposal.round > self._round:
            self._enter_round(proposal.round, out)
        self._start_running(out)
        self._accepted = message
        self._accepted_digest = digest
        self._blocks[digest] = proposal.block
        if self._is_validator:
            self._send(Prepare(self._height, proposal.round, digest), out)

    def _on_prepare(self, message: Signed[Prepare]) -> None:
        self._record(self._prepares, message, "prepare")

    def _on_commit(self, message: Signed[Commit]) -> None:
        commit = message.payload
        if recover_signer(commit.digest, commit.commit_seal) != message.sender:
            raise InvalidCommitSeal(message.sender)
        self._record(self._commits, message, "commit")

    def _on_round_change(self, message: Signed[RoundChange], out: list[Action]) -> None:
        change = message.payload
        if change.round < self._round:
            return
        self._check_round_change(message, change.round)
        if change.prepared_round is None:
            if change.prepared_block is not None or change.prepares:
                raise InvalidJustification("round change without a prepared round carries a block or prepares")
        else:
            if change.prepared_block is None:
                raise InvalidJustification("prepared round change without its block")
            digest = self._block_call(lambda: self._ops.digest(cast(bytes, change.prepared_block)))
            if digest != change.prepared_digest:
                raise DigestMismatch("prepared block does not match the prepared digest")
            self._check_certificate(change.prepares, change.prepared_round, digest)
        self._record(self._round_changes, message, "round change")

    def _record(self, store: dict[int, dict[str, Signed[_P]]], message: Signed[_P], kind: str) -> None:
        votes = store.setdefault(message.payload.round, {})
        seen = votes.get(message.sender)
        if seen is None:
            votes[message.sender] = message
        elif seen != message:
            raise Equivocation(message.sender, kind, message.payload.height, message.payload.round)

    # --- validity (the specification's predicates) --------------------------------------

    def _block_call(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except ConsensusError:
            raise
        except NodeError as exc:
            raise InvalidBlock(f"the application cannot read the block: {exc}") from exc

    def _validate_proposal(self, proposal: Proposal) -> bytes:
        """``isProposalJustification`` plus the digest and stamp checks; returns the block digest."""
        block, round_ = proposal.block, proposal.round
        if self._block_call(lambda: self._ops.height(block)) != self._height:
            raise InvalidBlock("proposed block is for another height")
        if self._block_call(lambda: self._ops.round(block)) != round_:
            raise InvalidBlock("proposed block is stamped with another round")
        digest = self._block_call(lambda: self._ops.digest(block))
        if round_ == 0:
            if proposal.round_change_justification or proposal.prepare_justification:
                raise InvalidJustification("a round-0 proposal carries no justification")
            self._check_new_block(block)
            return digest
        changes = proposal.round_change_justification
        senders = {m.sender for m in changes}
        if len(senders) != len(changes):
            raise InvalidJustification("two round changes from one sender")
        if len(senders) < self._quorum:
            raise InvalidJustification(f"{len(senders)} round changes, {self._quorum} needed")
        for change in changes:
            self._check_round_change(change, round_)
        prepared = [m.payload for m in changes if m.payload.prepared_round is not None]
        if not prepared:
            if proposal.prepare_justification:
                raise InvalidJustification("prepares justify no prepared round change")
            self._check_new_block(block)
            return digest
        highest = max(cast(int, p.prepared_round) for p in prepared)
        old_digest = self._block_call(lambda: self._ops.digest(self._ops.with_round(block, highest)))
        if not any(p.prepared_round == highest and p.prepared_digest == old_digest for p in prepared):
            raise InvalidJustification("the block is not the value of the highest prepared round")
        self._check_certificate(proposal.prepare_justification, highest, old_digest)
        return digest

    def _check_new_block(self, block: bytes) -> None:
        if not self._block_call(lambda: self._ops.validate(block)):
            raise InvalidBlock("the application refuses the block")

    def _check_round_change(self, message: Signed[RoundChange], round_: int) -> None:
        """``validRoundChange``: this height, round ``round_`` > 0, a validator, prepared round below it."""
        change = message.payload
        if message.sender not in self._index:
            raise InvalidJustification(f"round change from non-validator {message.sender}")
        if change.height != self._height or change.round != round_ or round_ == 0:
            raise InvalidJustification("round change for another height or round")
        if (change.prepared_round is None) != (change.prepared_digest is None):
            raise InvalidJustification("prepared round and digest come together")
        if change.prepared_round is not None and change.prepared_round >= round_:
            raise InvalidJustification("prepared round not below the round change's round")

    def _check_certificate(self, prepares: Sequence[Signed[Prepare]], round_: int, digest: bytes) -> None:
        """A quorum of distinct validators' PREPAREs for ``(height, round_, digest)``."""
        expected = Prepare(self._height, round_, digest)
        senders: set[str] = set()
        for prepare in prepares:
            if prepare.payload != expected:
                raise InvalidJustification("a prepare for another height, round or digest")
            if prepare.sender not in self._index:
                raise InvalidJustification(f"prepare from non-validator {prepare.sender}")
            if prepare.sender in senders:
                raise InvalidJustification("two prepares from one sender")
            senders.add(prepare.sender)
        if len(senders) < self._quorum:
            raise InvalidJustification(f"{len(senders)} prepares, {self._quorum} needed")

    # --- upon rules -------------------------------------------------------------------------

    def _step(self, out: list[Action]) -> None:
        """Apply the upon-rules until none fires (the specification's sub-steps)."""
        while not self._decided and (
            self._try_commit(out) or self._try_decide(out) or self._try_round_skip(out) or self._try_propose(out)
        ):
            pass

    def _try_commit(self, out: list[Action]) -> bool:
        accepted = self._accepted
        if accepted is None or self._round in self._committed:
            return False
        votes = [m for m in self._prepares.get(self._round, {}).values() if m.payload.digest == self._accepted_digest]
        if len(votes) < self._quorum:
            return False
        certificate = tuple(sorted(votes, key=lambda m: self._index[m.sender])[: self._quorum])
        digest = self._accepted_digest
        self._prepared = _Prepared(self._round, accepted.payload.block, digest, certificate)
        self._committed.add(self._round)
        if self._is_validator:
            seal = self._key.sign_recoverable(digest, hasher=None)
            self._send(Commit(self._height, self._round, digest, seal), out)
        return True

    def _try_decide(self, out: list[Action]) -> bool:
        for round_, votes in self._commits.items():
            by_digest: dict[bytes, list[Signed[Commit]]] = {}
            for vote in votes.values():
                by_digest.setdefault(vote.payload.digest, []).append(vote)
            for digest, commits in by_digest.items():
                if len(commits) >= self._quorum and digest in self._blocks:
                    ordered = sorted(commits, key=lambda m: self._index[m.sender])[: self._quorum]
                    seals = tuple(m.payload.commit_seal for m in ordered)
                    self._decided = True
                    out.append(Decide(self._height, round_, self._blocks[digest], seals))
                    return True
        return False

    def _try_round_skip(self, out: list[Action]) -> bool:
        """f+1 round changes for rounds above ours: move to the highest round f+1 of them reach."""
        if not self._is_validator:
            return False
        highest: dict[str, int] = {}
        for round_, changes in self._round_changes.items():
            if round_ > self._round:
                for sender in changes:
                    highest[sender] = max(highest.get(sender, 0), round_)
        if len(highest) < self._f + 1:
            return False
        target = sorted(highest.values(), reverse=True)[self._f]
        self._enter_round(target, out)
        self._send_round_change(out)
        return True

    def _try_propose(self, out: list[Action]) -> bool:
        """A quorum of round changes for our round r > 0 and we propose it: re-propose or build."""
        round_ = self._round
        if (
            round_ == 0
            or not self._is_validator
            or self._accepted is not None
            or round_ in self._proposed
            or self.proposer(round_) != self.address
            or len(self._round_changes.get(round_, {})) < self._quorum
        ):
            return False
        self._proposed.add(round_)
        changes = self._round_changes[round_].values()
        prepared = [m.payload for m in changes if m.payload.prepared_round is not None]
        if not prepared:
            self._pending_build = round_
            out.append(BuildBlock(self._height, round_))
            return True
        best = max(prepared, key=lambda p: cast(int, p.prepared_round))
        block = self._ops.with_round(cast(bytes, best.prepared_block), round_)
        proposal = Proposal(self._height, round_, block, self._round_change_justification(round_), best.prepares)
        self._send(proposal, out)
        return True

    # --- sending ------------------------------------------------------------------------

    def _round_change_justification(self, round_: int) -> tuple[Signed[RoundChange], ...]:
        changes = sorted(self._round_changes.get(round_, {}).values(), key=lambda m: self._index[m.sender])
        return tuple(Signed(m.payload.stripped(), m.signature, m.sender) for m in changes)

    def _send_round_change(self, out: list[Action]) -> None:
        prepared = self._prepared
        if prepared is None:
            change = RoundChange(self._height, self._round)
        else:
            change = RoundChange(
                self._height, self._round, prepared.round, prepared.digest, prepared.block, prepared.certificate
            )
        self._send(change, out)

    def _send(self, payload: Payload, out: list[Action]) -> None:
        """Sign and broadcast ``payload``, and record it as received (the spec adds it to messagesReceived)."""
        message = cast(SignedMessage, sign(payload, self._key))
        effects: list[Action] = []
        try:
            self._dispatch(message, effects)
        except ConsensusError as exc:
            # our own message is invalid (say, the application built a block it refuses): keep it to ourselves
            out.append(Refused(exc))
            return
        out.append(Broadcast(encode(message)))
        out.extend(effects)

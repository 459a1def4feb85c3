"""Errors of the consensus core: one root (``ConsensusError``), one class per refusal.

The machine never raises these for a peer's bad input: it returns them inside a
``Refused`` action so the node can log them. ``decode`` and ``verify_finality``
raise them. Data is carried as attributes, never only in the message text.
"""

from __future__ import annotations

from node.errors import NodeError


class ConsensusError(NodeError):
    """Root of every error raised or reported by :mod:`node.consensus`."""


class InvalidConfig(ConsensusError, ValueError):
    """A ``QbftConfig`` value out of range (``field`` names it)."""

    def __init__(self, field: str, value: object) -> None:
        super().__init__(f"invalid consensus setting {field}={value!r}")
        self.field = field
        self.value = value


class StaleHeight(ConsensusError, ValueError):
    """``start_height`` was asked to go back to, or stay at, a height already run."""

    def __init__(self, height: int, current: int) -> None:
        super().__init__(f"height {height} is not after the current height {current}")
        self.height = height
        self.current = current


# --- wire format ---------------------------------------------------------------------


class MalformedMessage(ConsensusError):
    """Bytes that do not decode to a well-formed consensus message (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OversizedMessage(MalformedMessage):
    """A message longer than ``limit`` bytes."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds {limit}")
        self.size = size
        self.limit = limit


class BadSignature(ConsensusError):
    """A signature (or commit seal) that is malformed or recovers no public key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- refusals of well-formed messages --------------------------------------------------


class NotAValidator(ConsensusError):
    """``sender`` is not in the validator set of ``height``."""

    def __init__(self, sender: str, height: int) -> None:
        super().__init__(f"{sender} is not a validator at height {height}")
        self.sender = sender
        self.height = height


class WrongProposer(ConsensusError):
    """A proposal for ``(height, round)`` signed by ``sender`` instead of ``expected``."""

    def __init__(self, sender: str, expected: str, height: int, round: int) -> None:
        super().__init__(f"proposal for {height}/{round} from {sender}, proposer is {expected}")
        self.sender = sender
        self.expected = expected
        self.height = height
        self.round = round


class FarFutureHeight(ConsensusError):
    """A message for ``height`` more than the configured window ahead of ``current``."""

    def __init__(self, height: int, current: int, sender: str) -> None:
        super().__init__(f"message for height {height} from {sender}; at height {current}")
        self.height = height
        self.current = current
        self.sender = sender


class FarFutureRound(ConsensusError):
    """A message for ``round`` more than the configured window ahead of ``current``."""

    def __init__(self, round: int, current: int, sender: str) -> None:
        super().__init__(f"message for round {round} from {sender}; at round {current}")
        self.round = round
        self.current = current
        self.sender = sender


class FutureBufferFull(ConsensusError):
    """A future-height message dropped: the buffer (per sender or in total) is full."""

    def __init__(self, height: int, sender: str) -> None:
        super().__init__(f"future buffer full; dropped height {height} message from {sender}")
        self.height = height
        self.sender = sender


class Equivocation(ConsensusError):
    """``sender`` sent two different messages of one ``kind`` for the same height and round."""

    def __init__(self, sender: str, kind: str, height: int, round: int) -> None:
        super().__init__(f"{sender} sent two different {kind} messages for {height}/{round}")
        self.sender = sender
        self.kind = kind
        self.height = height
        self.round = round


class InvalidBlock(ConsensusError):
    """A proposed or built block the application (or its height/round stamp) rejects."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DigestMismatch(ConsensusError):
    """A digest in a message that does not match the block it refers to."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidJustification(ConsensusError):
    """A proposal or round change whose justification fails the spec's rules (``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidCommitSeal(ConsensusError):
    """A commit whose seal is not ``sender``'s signature over the commit's digest."""

    def __init__(self, sender: str) -> None:
        super().__init__(f"commit seal of {sender} does not verify")
        self.sender = sender


# --- finality proofs ------------------------------------------------------------------


class FinalityError(ConsensusError):
    """A block's commit seals do not prove it final."""


class TooFewSeals(FinalityError):
    """Fewer than a quorum of valid seals: ``have`` of ``need``."""

    def __init__(self, have: int, need: int) -> None:
        super().__init__(f"{have} commit seals, {need} needed")
        self.have = have
        self.need = need


class DuplicateSeal(FinalityError):
    """Two seals by the same ``signer``."""

    def __init__(self, signer: str) -> None:
        super().__init__(f"two commit seals by {signer}")
        self.signer = signer


class SealNotFromValidator(FinalityError, NotAValidator):
    """A seal that recovers to ``sender``, not a validator: forged, or over another block."""

    def __init__(self, sender: str, height: int) -> None:
        NotAValidator.__init__(self, sender, height)

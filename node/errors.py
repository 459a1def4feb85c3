"""Errors of the node package: one root, a branch per subsystem.

Contract reverts are decoded from revert data into one exception class per Solidity
custom error (``NotAdmin``, ``PadOffsetMismatch``, ...), with the error's arguments
as attributes. Nothing here matches on message strings.
"""

from __future__ import annotations

from typing import Any, ClassVar


class NodeError(Exception):
    """Root of every error raised by :mod:`node`."""


class ChainError(NodeError):
    """A chain could not be started, reached or driven."""


class ChainUnavailable(ChainError, ConnectionError):
    """The chain endpoint does not answer (process died, port closed, wrong URL)."""


class TransactionError(NodeError):
    """A transaction could not be built, signed, sent or confirmed."""


class ReceiptTimeout(TransactionError, TimeoutError):
    """No receipt appeared within the allotted time."""

    def __init__(self, tx_hash: str, timeout_s: float) -> None:
        super().__init__(f"no receipt for {tx_hash} after {timeout_s:.1f} s")
        self.tx_hash = tx_hash
        self.timeout_s = timeout_s


class ContractRevert(TransactionError):
    """The EVM reverted. Subclasses name the Solidity custom error.

    Attributes:
        revert_data: the raw revert data (selector + ABI-encoded arguments).
        tx_hash: the hash of the mined, failed transaction, or ``None`` when the
            revert was caught before sending (gas estimation or a call).
    """

    error_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, revert_data: bytes = b"", tx_hash: str | None = None, **fields: Any) -> None:
        self.revert_data = revert_data
        self.tx_hash = tx_hash
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)
        shown = ", ".join(f"{k}={_show(v)}" for k, v in fields.items())
        super().__init__(f"{type(self).__name__}({shown})")


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else repr(value)


class UnknownRevert(ContractRevert):
    """Revert data that matches no error in the contract's ABI (or is empty)."""


class ReasonRevert(ContractRevert):
    """``revert("reason")`` / ``require(cond, "reason")``: Solidity's ``Error(string)``."""

    reason: str


class Panic(ContractRevert):
    """Solidity ``Panic(uint256)``: an assertion, overflow or bad enum value."""

    code: int


# --- KeyRegistry custom errors: names and fields mirror contracts/KeyRegistry.sol ---
# (tests/contracts/test_errors.py checks that this list and the ABI agree)


class NotAdmin(ContractRevert):
    caller: str


class NotAuthorized(ContractRevert):
    caller: str


class ZeroAddress(ContractRevert):
    pass


class AlreadyMember(ContractRevert):
    account: str
    role: int


class NotMember(ContractRevert):
    account: str


class AccountRevoked(ContractRevert):
    account: str


class IdentityExists(ContractRevert):
    pseudonymId: bytes


class UnknownIdentity(ContractRevert):
    pseudonymId: bytes


class IdentityAlreadyRevoked(ContractRevert):
    pseudonymId: bytes


class InvalidPeer(ContractRevert):
    peer: str


class InvalidKeyBits(ContractRevert):
    keyBits: int


class InvalidTtl(ContractRevert):
    ttl: int
    maxTtl: int


class SessionExists(ContractRevert):
    sessionId: bytes


class UnknownSession(ContractRevert):
    sessionId: bytes


class NotSessionPeer(ContractRevert):
    sessionId: bytes
    caller: str


class NotSessionParty(ContractRevert):
    sessionId: bytes
    caller: str


class SessionNotPending(ContractRevert):
    sessionId: bytes
    state: int


class SessionNotAgreed(ContractRevert):
    sessionId: bytes
    state: int


class PadOffsetMismatch(ContractRevert):
    sessionId: bytes
    expected: int
    given: int


class PadOverrun(ContractRevert):
    sessionId: bytes
    keyBits: int
    end: int


class EmptyRecord(ContractRevert):
    sessionId: bytes


class EmptyBatch(ContractRevert):
    pass


REGISTRY_ERRORS: dict[str, type[ContractRevert]] = {
    cls.__name__: cls for cls in ContractRevert.__subclasses__() if cls not in (UnknownRevert, ReasonRevert, Panic)
}

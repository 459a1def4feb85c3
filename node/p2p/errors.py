"""Errors of the transport: one root (:class:`P2PError`), each also the matching builtin."""

from __future__ import annotations

from node.errors import NodeError


class P2PError(NodeError):
    """Root of every error raised by :mod:`node.p2p`."""


class TransportClosed(P2PError, RuntimeError):
    """The transport was used before :meth:`start` or after :meth:`close`."""


class ListenFailed(P2PError, OSError):
    """The transport could not listen on its address (port taken, bad interface)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}")
        self.address = address
        self.reason = reason


class FrameTooLarge(P2PError, ValueError):
    """A frame or request is larger than the bound the transport accepts."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes exceeds the {limit}-byte bound")
        self.size = size
        self.limit = limit


class UnknownPeer(P2PError, LookupError):
    """The address names no peer this transport knows (or names ourselves)."""

    def __init__(self, peer: str) -> None:
        super().__init__(f"unknown peer {peer}")
        self.peer = peer


class PeerUnreachable(P2PError, ConnectionError):
    """A known peer has no working connection (down, restarting, partitioned)."""

    def __init__(self, peer: str, reason: str = "not connected") -> None:
        super().__init__(f"peer {peer} unreachable: {reason}")
        self.peer = peer
        self.reason = reason


class RequestTimeout(P2PError, TimeoutError):
    """No response arrived within the request's timeout."""

    def __init__(self, peer: str, timeout_s: float) -> None:
        super().__init__(f"no response from {peer} within {timeout_s:.1f} s")
        self.peer = peer
        self.timeout_s = timeout_s


class RequestRefused(P2PError):
    """The peer answered that it would not serve the request (see ``reason``)."""

    def __init__(self, peer: str, reason: str) -> None:
        super().__init__(f"peer {peer} refused the request: {reason}")
        self.peer = peer
        self.reason = reason


class BadPeerConfig(P2PError, ValueError):
    """A peer list (file or value) is malformed; ``where`` names the file or entry."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason

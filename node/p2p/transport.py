"""The transport seam: opaque frames and request/response between nodes named by address.

A node's address is its secp256k1 key's Ethereum address (lower-case ``0x`` + 40 hex,
:func:`node.hashing.address_of_public`). Implementations authenticate the sender of
every frame and request; the address handed to a handler is never taken from frame
content.

Threading contract (every implementation):

- :meth:`Transport.broadcast`, :meth:`Transport.send`, :meth:`Transport.request`,
  :meth:`Transport.connected` and :meth:`Transport.close` may be called from any
  thread, including from inside a handler. ``broadcast`` and ``send`` never block on
  the network: they queue the frame and return.
- Handlers run on ONE delivery thread owned by the transport, never on the network
  loop's thread; frames from one peer reach ``on_frame`` in the order that peer sent
  them. A slow handler does not stall the network: the delivery queue is bounded and a
  frame that finds it full is dropped, logged and counted under
  :attr:`DropReason.DELIVERY_QUEUE_FULL`.
- ``request`` blocks its caller until the response, so calling it from a handler holds
  up every other delivery meanwhile (and two nodes doing so to each other wait for
  their timeouts).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import StrEnum

FrameHandler = Callable[[str, bytes], None]
"""``(authenticated sender address, frame)``; runs on the delivery thread."""
RequestHandler = Callable[[str, bytes], bytes]
"""``(authenticated sender address, request) -> response``; runs on the delivery thread.
An exception it raises is logged and the requester gets :class:`~node.p2p.errors.RequestRefused`."""


class DropReason(StrEnum):
    """Why a frame was dropped; the keys of :meth:`Transport.drops`."""

    DELIVERY_QUEUE_FULL = "delivery_queue_full"  # handlers too slow
    SEND_QUEUE_FULL = "send_queue_full"  # a peer's link too slow
    PEER_DOWN = "peer_down"  # queued for a link that then failed
    UNKNOWN_PEER = "unknown_peer"  # sender not in the allowed set
    FRAME_TOO_LARGE = "frame_too_large"  # a peer announced a frame over our bound
    HANDLER_ERROR = "handler_error"  # a handler raised; the frame is lost to it
    INJECTED = "injected"  # memory transport: fault injection
    PARTITIONED = "partitioned"  # memory transport: a partition cut the link in flight


class Transport(ABC):
    """Delivers frames and requests between nodes identified by address.

    Attributes:
        address: our own address (lower-case ``0x`` + 40 hex for real nodes).
    """

    address: str

    @abstractmethod
    def start(self, on_frame: FrameHandler, on_request: RequestHandler) -> None:
        """Start delivering to the handlers and connecting to peers; returns once listening.

        Raises:
            TransportClosed: started twice, or after :meth:`close`.
            ListenFailed: the listening address could not be bound.
        """

    @abstractmethod
    def broadcast(self, frame: bytes) -> None:
        """Queue ``frame`` for every connected peer; peers not connected now miss it.

        A peer whose send queue is full misses it too (counted as ``send_queue_full``).

        Raises:
            FrameTooLarge: ``frame`` exceeds the transport's frame bound.
            TransportClosed: not started, or closed.
        """

    @abstractmethod
    def send(self, peer: str, frame: bytes) -> None:
        """Queue ``frame`` for ``peer``.

        Raises:
            FrameTooLarge: ``frame`` exceeds the transport's frame bound.
            UnknownPeer: ``peer`` is not a peer of this transport (or is ourselves).
            PeerUnreachable: ``peer`` is known but not connected now.
            TransportClosed: not started, or closed.
        """

    @abstractmethod
    def request(self, peer: str, data: bytes, timeout: float) -> bytes:
        """Send ``data`` to ``peer``'s request handler and wait for its response.

        Raises:
            FrameTooLarge: ``data`` exceeds the bound.
            UnknownPeer: ``peer`` is not a peer of this transport (or is ourselves).
            PeerUnreachable: ``peer`` is not connected, or the connection failed mid-way.
            RequestTimeout: no response within ``timeout`` seconds.
            RequestRefused: the peer's handler raised, or the peer does not serve us.
            TransportClosed: not started, or closed while waiting.
        """

    @abstractmethod
    def connected(self) -> list[str]:
        """The addresses of peers we can send to now (sorted; never our own)."""

    @abstractmethod
    def drops(self) -> dict[str, int]:
        """Frames dropped so far, by :class:`DropReason` value (reasons with none are absent)."""

    @abstractmethod
    def close(self) -> None:
        """Stop the network loop and the delivery thread and wait for them (idempotent).

        Frames still queued are discarded; pending requests fail with ``TransportClosed``.
        """

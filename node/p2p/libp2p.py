"""The validator network over py-libp2p 0.8.1: direct long-lived streams, no pubsub.

Identity. The host's libp2p key IS the validator's secp256k1 key, so the peer id (an
identity multihash of the public key) is bound to it and to its Ethereum address.
Only Noise is offered as the security transport: py-libp2p's defaults also offer TLS,
secio and *plaintext*, and plaintext would let a peer claim any key. Noise XX has the
remote sign its static key with its identity key, and the swarm checks the dialled
peer id against that key; the sender address given to a handler is computed from the
authenticated peer id of the connection a stream rides on (:func:`address_of_peer_id`),
never from frame content. A peer whose key is not secp256k1 has no address and is
treated as not allowed.

Wire. Each peer link is one long-lived outbound stream on ``/qkdchain/frames/1.0.0``
carrying frames as ``u32 big-endian length || frame``; the receiver refuses a length
over ``max_frame_bytes`` by resetting the stream (logged, counted as
``frame_too_large``; the sender's link reconnects). Frames queued together for a peer
go out in one write (one Noise message and one mplex message instead of one each:
py-libp2p's cost is per message, about 1 ms of CPU a delivery). Requests open a stream on
``/qkdchain/sync/1.0.0``: ``u32 length || request`` one way, ``u8 status || u32
length || response`` back (status 0 served, 1 refused). A new stream per request
costs a stream negotiation (P2P-NOTES: 143 round trips/s against 420-903 on one
stream) but keeps requests independent; block sync is not on the consensus path.

Muxer. Both muxers are offered; ``MUXER`` (mplex) is preferred, yamux is the fallback.
Measured with :func:`node.p2p.measure.measure` (4 hosts in one process, loopback, 1 KB
frames, 2 cores): saturated, mplex delivered 1,410 frames/s and yamux 650; at 50
broadcasts/s per host (600 deliveries/s) mplex had p50 9.6 ms / p99 15 ms while yamux
was at its limit (p50 295 ms); at 20/s per host both keep up (p50 9 ms mplex, 16 ms
yamux). mplex is deprecated in the libp2p specs, so the choice is a parameter.

Threads. One trio event loop runs in its own thread (``p2p-trio-...``); this module is
the only place where trio meets the node's threads. Calls from other threads reach it
through ``TrioToken.run_sync_soon`` (thread-safe, never blocks): frames go into a
bounded trio memory channel per peer (full -> dropped, counted ``send_queue_full``),
a request spawns a task that completes a ``concurrent.futures.Future`` the caller
waits on. The other way, the loop hands frames and requests to the delivery thread
(:mod:`node.p2p._delivery`) through its bounded ``queue.Queue``; a response comes back
through ``run_sync_soon`` setting a ``trio.Event``.

Reconnects. A link task per configured peer dials, opens the frames stream and writes
queued frames; a second task reads the (silent) stream so a reset or EOF is seen at
once rather than at the next write. On failure it waits with exponential backoff
(0.1 s doubling to 2 s) and, before each dial, removes the peer from the swarm's
failed-dial cache (``swarm.unblock_peer``), which would otherwise refuse to dial a
restarted peer for 60 s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import multiaddr
import trio
from coincurve import PublicKey as CoincurvePublicKey
from libp2p import create_mplex_muxer_option, create_yamux_muxer_option, new_host
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.crypto.secp256k1 import create_new_key_pair as secp256k1_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport

from node.hashing import address_of_public
from node.p2p._delivery import DELIVERY_QUEUE, Delivery, Drops
from node.p2p.errors import (
    BadPeerConfig,
    FrameTooLarge,
    ListenFailed,
    PeerUnreachable,
    RequestRefused,
    RequestTimeout,
    TransportClosed,
    UnknownPeer,
)
from node.p2p.transport import DropReason, FrameHandler, RequestHandler, Transport

log = logging.getLogger("qkdchain.p2p.libp2p")

FRAMES_PROTOCOL = TProtocol("/qkdchain/frames/1.0.0")
SYNC_PROTOCOL = TProtocol("/qkdchain/sync/1.0.0")
MAX_FRAME_BYTES = 16 * 1024 * 1024
"""Largest frame, request or response accepted (a block of 200 KB fits 80 times)."""
SEND_QUEUE_FRAMES = 4096
"""Frames queued per peer link before new ones are dropped."""
COALESCE_BYTES = 256 * 1024
"""Frames already queued for a peer are joined into one write up to about this size."""
READ_BYTES = 256 * 1024
"""Largest read off a peer's frames stream."""
MUXER: Literal["MPLEX", "YAMUX"] = "MPLEX"
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 2.0
DIAL_TIMEOUT_S = 10.0
SERVE_TIMEOUT_S = 60.0
"""How long a request waits for our handler before it is refused."""
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0

_STATUS_OK = 0
_STATUS_REFUSED = 1
_ADDRESS = re.compile(r"0x[0-9a-f]{40}")
_STREAM_ERRORS = (BaseLibp2pError, OSError, trio.BrokenResourceError, trio.ClosedResourceError, EOFError)


# -- identities --


def key_pair_for(key: bytes) -> KeyPair:
    """The libp2p key pair of a 32-byte secp256k1 secret. Raises ``BadPeerConfig`` if not a valid key."""
    try:
        return secp256k1_key_pair(key)
    except (ValueError, TypeError) as exc:
        raise BadPeerConfig("key", f"not a secp256k1 secret: {exc}") from exc


def peer_id_for_key(key: bytes) -> str:
    """The base58 libp2p peer id of a 32-byte secp256k1 secret (the identity multihash of its public key)."""
    return ID.from_pubkey(key_pair_for(key).public_key).to_base58()


def multiaddr_for(key: bytes, host: str, port: int) -> str:
    """``/ip4/<host>/tcp/<port>/p2p/<peer id>`` for the node with secret ``key`` listening there."""
    return f"/ip4/{host}/tcp/{port}/p2p/{peer_id_for_key(key)}"


def address_of_peer_id(peer_id: ID) -> str | None:
    """The Ethereum address of the secp256k1 key inlined in ``peer_id``; ``None`` for any other key."""
    try:
        public = peer_id.extract_public_key()
    except (BaseLibp2pError, ValueError):
        return None
    if public is None or public.get_type() != KeyType.Secp256k1:
        return None
    return address_of_public(CoincurvePublicKey(public.to_bytes()))


# -- static peers --


@dataclass(frozen=True)
class PeerConfig:
    """A static peer: its address and where to dial it (``.../p2p/<peer id>``).

    Build with :meth:`parse`, which checks that the peer id's key has this address.
    """

    address: str
    multiaddr: str

    @classmethod
    def parse(cls, entry: object, where: str = "peer") -> PeerConfig:
        """Validate one ``{"address": ..., "multiaddr": ...}`` entry.

        Raises:
            BadPeerConfig: not an object with both strings; the address is not lower-case
                ``0x`` + 40 hex; the multiaddr does not parse or does not end in ``/p2p/<id>``;
                or the peer id's key is not secp256k1 or has another address.
        """
        if not isinstance(entry, dict) or not isinstance(entry.get("address"), str):
            raise BadPeerConfig(where, 'expected {"address": "0x...", "multiaddr": "/ip4/.../p2p/..."}')
        address, addr = entry["address"], entry.get("multiaddr")
        if not _ADDRESS.fullmatch(address):
            raise BadPeerConfig(where, f"address {address!r} is not lower-case 0x + 40 hex digits")
        if not isinstance(addr, str):
            raise BadPeerConfig(where, "multiaddr missing or not a string")
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        except Exception as exc:  # multiaddr raises a zoo of types (ValueError, its own, binascii)
            raise BadPeerConfig(where, f"multiaddr {addr!r}: {exc}") from exc
        owner = address_of_peer_id(info.peer_id)
        if owner is None:
            raise BadPeerConfig(where, f"peer id {info.peer_id} does not inline a secp256k1 key")
        if owner != address:
            raise BadPeerConfig(where, f"peer id {info.peer_id} belongs to {owner}, not {address}")
        return cls(address, addr)

    @property
    def peer_info(self) -> PeerInfo:
        return info_from_p2p_addr(multiaddr.Multiaddr(self.multiaddr))


def parse_peers(document: object, where: str = "peers") -> list[PeerConfig]:
    """Validate ``{"peers": [...]}``. Raises ``BadPeerConfig`` (see :meth:`PeerConfig.parse`, and on duplicates)."""
    if not isinstance(document, dict) or not isinstance(document.get("peers"), list):
        raise BadPeerConfig(where, 'expected an object {"peers": [...]}')
    peers = [PeerConfig.parse(entry, f"{where}: peers[{i}]") for i, entry in enumerate(document["peers"])]
    seen: set[str] = set()
    for peer in peers:
        if peer.address in seen:
            raise BadPeerConfig(where, f"{peer.address} listed twice")
        seen.add(peer.address)
    return peers


def load_peers(path: str | Path) -> list[PeerConfig]:
    """Read a peers file ``{"peers": [{"address": "0x...", "multiaddr": ".../p2p/<id>"}]}``.

    Raises:
        BadPeerConfig: the file cannot be read, is not JSON, or an entry is invalid.
    """
    try:
        document: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadPeerConfig(str(path), f"cannot read: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadPeerConfig(str(path), f"not JSON: {exc}") from exc
    return parse_peers(document, str(path))


# -- the transport --


class _Link:
    """One configured peer: its queue and whether its frames stream is up (owned by the trio thread)."""

    def __init__(self, peer: PeerConfig, capacity: int) -> None:
        self.config = peer
        self.info = peer.peer_info
        self.send, self.receive = trio.open_memory_channel[bytes](capacity)
        self.up = False


class Libp2pTransport(Transport):
    """A :class:`~node.p2p.transport.Transport` on a py-libp2p host (see the module docstring).

    Args:
        key: our 32-byte secp256k1 secret; our address and peer id derive from it.
        host: interface to listen on (IPv4).
        port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
        peers: the static peers to keep links to (our own entry, if present, is skipped).
        allowed: which sender addresses are served; default: the configured peers.
        max_frame_bytes: bound on frames, requests and responses, both ways.
        send_queue: frames queued per peer link.
        delivery_queue: frames waiting for the handlers before new ones are dropped.
        muxer: preferred stream muxer (the other is offered as fallback).

    Raises:
        BadPeerConfig: ``key`` is not a secp256k1 secret or ``host`` is not an IPv4 address.
    """

    def __init__(
        self,
        key: bytes,
        host: str = "127.0.0.1",
        port: int = 0,
        peers: Sequence[PeerConfig] = (),
        *,
        allowed: Callable[[str], bool] | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        send_queue: int = SEND_QUEUE_FRAMES,
        delivery_queue: int = DELIVERY_QUEUE,
        muxer: Literal["MPLEX", "YAMUX"] = MUXER,
    ) -> None:
        self._key_pair = key_pair_for(key)
        self.peer_id = ID.from_pubkey(self._key_pair.public_key)
        address = address_of_peer_id(self.peer_id)
        assert address is not None  # a secp256k1 key always has one
        self.address = address
        try:
            self._listen = multiaddr.Multiaddr(f"/ip4/{host}/tcp/{port}")
        except Exception as exc:  # multiaddr's own error types
            raise BadPeerConfig("host", f"{host!r}:{port} is not an IPv4 listening address: {exc}") from exc
        self.host, self.port = host, port
        self._configs = {p.address: p for p in peers if p.address != self.address}
        self._allowed = allowed or (lambda sender: sender in self._configs)
        self.max_frame_bytes = max_frame_bytes
        self._send_queue = send_queue
        self._muxer = muxer
        self._drops = Drops(self.address)
        self._delivery = Delivery(self.address, self._drops, delivery_queue)
        self._links: dict[str, _Link] = {}
        self._up: set[str] = set()
        self._up_lock = threading.Lock()
        self._senders: dict[ID, str | None] = {}
        self._state = "new"  # new -> started -> closed
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._stop: trio.Event | None = None
        self._host: Any = None

    @property
    def multiaddr(self) -> str:
        """Where peers dial us: ``/ip4/<host>/tcp/<port>/p2p/<peer id>`` (the real port once started)."""
        return f"/ip4/{self.host}/tcp/{self.port}/p2p/{self.peer_id.to_base58()}"

    # -- the Transport interface (any thread) --

    def start(self, on_frame: FrameHandler, on_request: RequestHandler) -> None:
        """Start the trio thread and the delivery thread; returns once listening.

        Raises:
            TransportClosed: started twice or after close.
            ListenFailed: the host could not listen (port in use, ...) or did not start in 30 s.
        """
        with self._state_lock:
            if self._state != "new":
                raise TransportClosed(f"{self.address}: start() on a transport that is {self._state}")
            self._state = "started"
        if self.port:
            try:
                _probe(self.host, self.port)
            except OSError as exc:
                self.close()
                raise ListenFailed(str(self._listen), exc.strerror or repr(exc)) from exc
        self._delivery.start(on_frame, on_request)
        self._thread = threading.Thread(target=self._run, name=f"p2p-trio-{self.address[:10]}", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._failure is not None:
            reason = repr(self._failure) if self._failure is not None else "host did not start in time"
            self.close()
            raise ListenFailed(str(self._listen), reason)

    def broadcast(self, frame: bytes) -> None:
        self._check(frame)
        self._call(self._enqueue, None, frame)

    def send(self, peer: str, frame: bytes) -> None:
        self._check(frame)
        self._known(peer)
        if peer not in self.connected():
            raise PeerUnreachable(peer)
        self._call(self._enqueue, peer, frame)

    def request(self, peer: str, data: bytes, timeout: float) -> bytes:
        self._check(data)
        self._known(peer)
        if peer not in self.connected():
            raise PeerUnreachable(peer)
        result: Future[bytes] = Future()
        self._call(self._spawn_request, peer, data, timeout, result)
        try:
            return result.result(timeout + 5.0)  # the trio side enforces ``timeout``; this is a backstop
        except FutureTimeout:
            raise RequestTimeout(peer, timeout) from None

    def connected(self) -> list[str]:
        with self._up_lock:
            return sorted(self._up)

    def drops(self) -> dict[str, int]:
        return self._drops.snapshot()

    def close(self) -> None:
        with self._state_lock:
            if self._state == "closed":
                return
            self._state = "closed"
        token, stop, thread = self._token, self._stop, self._thread
        if token is not None and stop is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(stop.set)
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT_S)
            if thread.is_alive():
                log.error("%s: the libp2p loop did not stop within %.0f s", self.address, STOP_TIMEOUT_S)
        self._delivery.close()
        with self._up_lock:
            self._up.clear()

    # -- thread side helpers --

    def _check(self, frame: bytes) -> None:
        if self._state != "started" or self._token is None:
            raise TransportClosed(f"{self.address}: transport is {self._state}")
        if len(frame) > self.max_frame_bytes:
            raise FrameTooLarge(len(frame), self.max_frame_bytes)

    def _known(self, peer: str) -> None:
        if peer not in self._configs:
            raise UnknownPeer(peer)

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._token is not None
        try:
            self._token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            raise TransportClosed(f"{self.address}: the libp2p loop has stopped") from None

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to start() or logged; the thread must end either way
            self._failure = exc
            if self._ready.is_set():
                log.exception("%s: the libp2p loop failed", self.address)
        finally:
            self._ready.set()
            with self._up_lock:
                self._up.clear()

    # -- the trio thread --

    async def _main(self) -> None:
        muxers = create_mplex_muxer_option() if self._muxer == "MPLEX" else create_yamux_muxer_option()
        security = {NOISE_PROTOCOL_ID: NoiseTransport(self._key_pair, noise_privkey=x25519_key_pair().private_key)}
        host = new_host(key_pair=self._key_pair, muxer_opt=muxers, sec_opt=security, listen_addrs=[self._listen])
        host.set_stream_handler(FRAMES_PROTOCOL, self._serve_frames)
        host.set_stream_handler(SYNC_PROTOCOL, self._serve_request)
        self._stop = trio.Event()
        async with host.run([self._listen]):
            try:
                async with trio.open_nursery() as nursery:
                    self._host = host
                    self._nursery = nursery
                    self.port = _listening_port(host, self.port)
                    for address, config in self._configs.items():
                        link = _Link(config, self._send_queue)
                        self._links[address] = link
                        nursery.start_soon(self._keep_link, link)
                    self._token = trio.lowlevel.current_trio_token()
                    self._ready.set()
                    await self._stop.wait()
                    nursery.cancel_scope.cancel()
            finally:
                # Close connections explicitly: a cancelled loop would leave the sockets open
                # until garbage collection, and peers would not notice we left.
                with trio.CancelScope(shield=True), trio.move_on_after(STOP_TIMEOUT_S / 3):
                    await host.close()

    def _enqueue(self, peer: str | None, frame: bytes) -> None:
        links = self._links.values() if peer is None else [self._links[peer]]
        for link in links:
            if not link.up:
                continue
            try:
                link.send.send_nowait(frame)
            except trio.WouldBlock:
                self._drops.add(DropReason.SEND_QUEUE_FULL, link.config.address)

    def _set_up(self, link: _Link, up: bool) -> None:
        link.up = up
        with self._up_lock:
            (self._up.add if up else self._up.discard)(link.config.address)

    async def _keep_link(self, link: _Link) -> None:
        """Dial, stream queued frames, and on any failure wait and dial again, until cancelled."""
        backoff = BACKOFF_MIN_S
        network = self._host.get_network()
        while True:
            stream = None
            try:
                with trio.fail_after(DIAL_TIMEOUT_S):
                    network.unblock_peer(link.info.peer_id)  # a failed dial blocks the peer for 60 s
                    await self._host.connect(link.info)
                    stream = await self._host.new_stream(link.info.peer_id, [FRAMES_PROTOCOL])
            except (*_STREAM_ERRORS, trio.TooSlowError) as exc:
                log.debug("%s: dial %s failed: %r", self.address, link.config.address, exc)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_MIN_S
            log.info("%s: link to %s up", self.address, link.config.address)
            self._set_up(link, True)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, link, stream, nursery.cancel_scope)
                    nursery.start_soon(self._watch, stream, nursery.cancel_scope)
            finally:
                self._set_up(link, False)
                with trio.CancelScope(shield=True), trio.move_on_after(1.0), contextlib.suppress(*_STREAM_ERRORS):
                    await stream.reset()
            log.info("%s: link to %s down", self.address, link.config.address)
            await trio.sleep(BACKOFF_MIN_S)

    async def _pump(self, link: _Link, stream: Any, scope: trio.CancelScope) -> None:
        """Write queued frames, those already waiting together in one write.

        Each write costs a Noise encryption, an mplex message and a read on the other
        side whatever its size, and a validator's frames come in bursts (a proposal and
        its proposer's PREPARE, a COMMIT and a HEAD), so a burst goes as one write.
        """
        try:
            async for frame in link.receive:
                parts = [len(frame).to_bytes(4, "big"), frame]
                size = len(frame)
                while size < COALESCE_BYTES:
                    try:
                        frame = link.receive.receive_nowait()
                    except trio.WouldBlock:
                        break
                    parts += [len(frame).to_bytes(4, "big"), frame]
                    size += len(frame)
                await stream.write(b"".join(parts))
        except _STREAM_ERRORS as exc:
            log.debug("%s: write to %s failed: %r", self.address, link.config.address, exc)
            self._drops.add(DropReason.PEER_DOWN, link.config.address)
        scope.cancel()

    async def _watch(self, stream: Any, scope: trio.CancelScope) -> None:
        """Return (ending the link) when the connection under ``stream`` closes.

        Reading the silent stream would notice sooner, but an mplex stream's read holds
        a lock that blocks writes; both muxers' connections have ``event_closed``.
        """
        await stream.muxed_conn.event_closed.wait()
        scope.cancel()

    def _sender(self, stream: Any) -> str | None:
        peer_id: ID = stream.muxed_conn.peer_id
        if peer_id not in self._senders:
            self._senders[peer_id] = address_of_peer_id(peer_id)
        return self._senders[peer_id]

    async def _serve_frames(self, stream: Any) -> None:
        """Read frames off a peer's stream into the delivery queue until it ends.

        The stream is read in chunks of up to ``READ_BYTES`` and split here: a write
        of the sender's may hold many frames (see :meth:`_pump`), and an mplex read
        copies what it leaves buffered, so reading frame by frame would copy a burst
        once per frame.
        """
        sender = self._sender(stream)
        served = sender is not None and self._allowed(sender)
        buffer = bytearray()
        try:
            while True:
                start = 0  # frames are cut from here on; the buffer is shifted once per read
                while len(buffer) - start >= 4:
                    size = int.from_bytes(buffer[start : start + 4], "big")
                    if size > self.max_frame_bytes:
                        self._drops.add(DropReason.FRAME_TOO_LARGE, sender or str(stream.muxed_conn.peer_id))
                        log.warning("%s: %s announced a %d-byte frame; stream reset", self.address, sender, size)
                        await stream.reset()
                        return
                    end = start + 4 + size
                    if len(buffer) < end:
                        break
                    frame = bytes(buffer[start + 4 : end])
                    start = end
                    if served:
                        assert sender is not None
                        self._delivery.frame(sender, frame)
                    else:
                        self._drops.add(DropReason.UNKNOWN_PEER, sender or str(stream.muxed_conn.peer_id))
                del buffer[:start]
                try:
                    chunk = await stream.read(READ_BYTES)
                except EOFError:  # libp2p's StreamEOF is an EOFError
                    chunk = b""
                if not chunk:
                    if buffer:
                        log.debug("%s: frames stream from %s ended inside a frame", self.address, sender)
                    return
                buffer += chunk
        except _STREAM_ERRORS as exc:
            log.debug("%s: frames stream from %s ended: %r", self.address, sender, exc)

    async def _serve_request(self, stream: Any) -> None:
        """Answer one request: read it, run the handler on the delivery thread, write the response."""
        sender = self._sender(stream)
        try:
            header = await _read_exact(stream, 4)
            if header is None:
                return
            size = int.from_bytes(header, "big")
            if size > self.max_frame_bytes:
                self._drops.add(DropReason.FRAME_TOO_LARGE, sender or "-")
                await stream.reset()
                return
            data = await _read_exact(stream, size)
            if data is None:
                return
            response: bytes | None = None
            if sender is not None and self._allowed(sender):
                response = await self._handle(sender, data)
            else:
                self._drops.add(DropReason.UNKNOWN_PEER, sender or str(stream.muxed_conn.peer_id))
            if response is not None and len(response) > self.max_frame_bytes:
                log.error("%s: response of %d bytes to %s over the bound", self.address, len(response), sender)
                response = None
            if response is None:
                await stream.write(bytes([_STATUS_REFUSED]) + (0).to_bytes(4, "big"))
            else:
                await stream.write(bytes([_STATUS_OK]) + len(response).to_bytes(4, "big") + response)
            await stream.close()
        except _STREAM_ERRORS as exc:
            log.debug("%s: request stream from %s failed: %r", self.address, sender, exc)

    async def _handle(self, sender: str, data: bytes) -> bytes | None:
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[bytes | None] = []

        def reply(response: bytes | None) -> None:  # on the delivery thread
            def finish() -> None:
                box.append(response)
                done.set()

            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(finish)

        self._delivery.request(sender, data, reply)
        with trio.move_on_after(SERVE_TIMEOUT_S):
            await done.wait()
        return box[0] if box else None

    def _spawn_request(self, peer: str, data: bytes, timeout: float, result: Future[bytes]) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._request, peer, data, timeout, result)

    async def _request(self, peer: str, data: bytes, timeout: float, result: Future[bytes]) -> None:
        link = self._links[peer]
        error: BaseException = TransportClosed(f"{self.address}: closed while requesting from {peer}")
        try:
            with trio.move_on_after(timeout) as scope:
                stream = await self._host.new_stream(link.info.peer_id, [SYNC_PROTOCOL])
                try:
                    await stream.write(len(data).to_bytes(4, "big") + data)
                    head = await _read_exact(stream, 5)
                    if head is None:
                        raise PeerUnreachable(peer, "stream ended before the response")
                    size = int.from_bytes(head[1:], "big")
                    if head[0] != _STATUS_OK:
                        raise RequestRefused(peer, "not served")
                    if size > self.max_frame_bytes:
                        raise RequestRefused(peer, f"response of {size} bytes over the bound")
                    body = await _read_exact(stream, size)
                    if body is None:
                        raise PeerUnreachable(peer, "stream ended inside the response")
                    result.set_result(body)
                    return
                finally:
                    with trio.CancelScope(shield=True), trio.move_on_after(1.0), contextlib.suppress(*_STREAM_ERRORS):
                        await stream.close()
            if scope.cancelled_caught:
                error = RequestTimeout(peer, timeout)
        except (PeerUnreachable, RequestRefused) as exc:
            error = exc
        except _STREAM_ERRORS as exc:
            error = PeerUnreachable(peer, repr(exc))
        finally:
            if not result.done():
                result.set_exception(error)


def _probe(host: str, port: int) -> None:
    """Raise ``OSError`` if something listens on ``host:port``.

    py-libp2p listens with SO_REUSEPORT (for hole punching), so a second node on a taken
    port would start quietly and the kernel would share incoming connections between the
    two. A plain bind (SO_REUSEADDR, so a restarted node's TIME_WAIT sockets do not get in
    the way) fails while a listener holds the port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _listening_port(host: Any, fallback: int) -> int:
    for addr in host.get_addrs():
        port = addr.value_for_protocol("tcp")
        if port:
            return int(port)
    return fallback


async def _read_exact(stream: Any, size: int) -> bytes | None:
    """Exactly ``size`` bytes, or ``None`` at a clean end of stream before the first byte.

    Raises ``EOFError`` when the stream ends part-way, and the stream's own errors.
    """
    parts: list[bytes] = []
    left = size
    while left:
        try:
            chunk = await stream.read(left)
        except EOFError:  # libp2p's StreamEOF is an EOFError
            chunk = b""
        if not chunk:
            if left == size:
                return None
            raise EOFError(f"stream ended after {size - left} of {size} bytes")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)

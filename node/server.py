"""The node's JSON-RPC server: HTTP and WebSocket on one port, built to face hostile clients.

aiohttp serves it, on an asyncio loop in a thread of its own. Why aiohttp: it is already
installed with web3.py (no new dependency), it is maintained and fuzzed, it speaks HTTP/1.1
and WebSocket in one library on one port (as anvil and geth's ``--ws`` clients expect),
and its low-level :class:`aiohttp.web.Server` lets us own the listening socket and the
protocol factory, which is where a connection limit belongs. An ASGI stack would add
uvicorn and a framework for the same result.

What a client cannot do (see :class:`Limits`):

- hold a connection without sending a request: the idle timeout closes it (slowloris),
  and when all connection slots are taken the oldest idle connection is closed to make
  room; only when every slot is mid-request is a newcomer refused (HTTP 503);
- send a body that is too large, or too slowly: 413 at once, 408 after the body timeout;
- nest JSON deeply, batch too much, or queue work without bound: -32700 / -32600 / a 503
  with -32005 once :attr:`Limits.max_in_flight` requests are executing;
- smuggle a request: aiohttp's parser refuses a request carrying both ``Content-Length``
  and ``Transfer-Encoding``.

Requests run on a small thread pool (the methods are blocking code); reads run on the
node's read engine, never under the lock the proposer executes with. WebSocket
connections carry ``eth_subscribe`` (``newHeads``, ``logs``, ``newPendingTransactions``);
a subscriber that does not keep up is disconnected (close code 1008) rather than
buffered without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import WSMsgType, web
from aiohttp.web_protocol import RequestHandler

from node.block import Block
from node.core import Node
from node.filters import LOGS, NEW_HEADS, PENDING, Events, LogQuery, Sink
from node.rpc import MAX_BODY, RpcError, RpcHandler, error_object, log_json
from node.store import StoredLog

log = logging.getLogger("qkdchain.rpc")


@dataclass(frozen=True)
class Limits:
    """What one server lets its clients take."""

    max_body: int = MAX_BODY  # bytes of one HTTP body or WebSocket message
    max_connections: int = 4_096  # open connections, HTTP and WebSocket together
    max_websockets: int = 512
    idle_timeout_s: float = 10.0  # a connection sending no complete request header is closed
    body_timeout_s: float = 10.0  # a request body must arrive within this
    max_in_flight: int = 256  # requests executing or waiting for a worker
    workers: int = 8  # threads executing requests
    max_subscriptions: int = 64  # per WebSocket connection
    max_pushes_queued: int = 10_000  # notifications a subscriber may fall behind by


class ServerBusy(Exception):
    """Every connection slot is taken by a connection mid-request."""


def _refusal(status: int, code: int, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps(error_object(None, RpcError(code, message))).encode(),
                        content_type="application/json")  # fmt: skip


class _Refuse(asyncio.Protocol):
    """The protocol for a connection beyond the limit: one 503, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        body = json.dumps(error_object(None, RpcError(-32005, "too many connections; retry later"))).encode()
        head = (
            f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\nRetry-After: 1\r\n\r\n"
        )
        assert isinstance(transport, asyncio.Transport)
        transport.write(head.encode() + body)
        transport.close()


class RpcServer:
    """JSON-RPC for ``node`` over HTTP (POST /) and WebSocket (GET / with an upgrade).

    Args:
        node: the node to serve.
        host, port: where to listen (port 0 picks a free one; see :attr:`url`).
        dev: answer the ``evm_*`` dev methods.
        cors_origins: browser origins allowed to call (``"*"``: any); none by default.
        limits: what clients may take.

    Raises:
        OSError: the port is taken (raised here, before anything starts).
    """

    def __init__(
        self,
        node: Node,
        host: str = "127.0.0.1",
        port: int = 8545,
        dev: bool = False,
        cors_origins: tuple[str, ...] = (),
        limits: Limits | None = None,
    ) -> None:
        self.node = node
        self.limits = limits or Limits()
        self.events = Events()
        self.handler = RpcHandler(node, self.events, dev=dev)
        self.cors_origins = frozenset(cors_origins)
        _raise_file_limit(self.limits.max_connections + 256)
        self._socket = socket.create_server((host, port), backlog=1024)
        bound = self._socket.getsockname()[1]
        self.url = f"http://{host}:{bound}"
        self.ws_url = f"ws://{host}:{bound}"
        self._pool = ThreadPoolExecutor(self.limits.workers, thread_name_prefix="rpc")
        self._in_flight = 0
        self._busy: set[RequestHandler] = set()  # connections inside a request (not evictable)
        self._websockets = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rpc-server", daemon=True)
        self._server: asyncio.Server | None = None
        self._web: web.Server | None = None
        self._heads: tuple[bytes, str] = (b"", "")  # the last newHeads payload, shared by subscribers
        node.subscribe(self.events.on_block)
        node.on_admitted(self.events.on_admitted)

    # -- lifecycle --

    def start(self) -> RpcServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._listen())
        self._ready.set()
        self._loop.run_forever()

    async def _listen(self) -> None:
        self._web = web.Server(self._serve, keepalive_timeout=self.limits.idle_timeout_s,
                               handler_cancellation=True, access_log=None)  # fmt: skip
        self._server = await self._loop.create_server(self._connection, sock=self._socket, backlog=1024)

    def _connection(self) -> asyncio.Protocol:
        """A new connection: served, or, with every slot taken, room made or a 503."""
        assert self._web is not None
        connections = self._web.connections
        if len(connections) >= self.limits.max_connections:
            idle = next((c for c in connections if c not in self._busy), None)
            if idle is None:
                return _Refuse()
            idle.force_close()  # the oldest connection that is not mid-request makes room
            if idle.transport is not None:
                idle.transport.close()
        return self._web()

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.node.unsubscribe(self.events.on_block)
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=15)
        self._socket.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._web is not None:
            await self._web.shutdown(2.0)

    def __enter__(self) -> RpcServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def connections(self) -> int:
        return len(self._web.connections) if self._web is not None else 0

    # -- requests --

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        protocol = request.protocol
        self._busy.add(protocol)
        try:
            return await self._route(request)
        finally:
            self._busy.discard(protocol)

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path != "/":
            return _refusal(404, -32600, "not found: JSON-RPC is served at /")
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS":
            return self._preflight(origin)
        if origin is not None and not self._origin_allowed(origin):
            return _refusal(403, -32600, f"origin {origin[:100]} is not allowed (--cors-origins)")
        if request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        if request.method != "POST":
            return _refusal(405, -32600, "use POST for JSON-RPC, or GET with a WebSocket upgrade")
        if request.content_length is not None and request.content_length > self.limits.max_body:
            return _refusal(413, -32600, f"request larger than {self.limits.max_body} bytes")
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                body = await _read_bounded(request, self.limits.max_body)
        except TimeoutError:
            return _refusal(408, -32600, f"request body not received within {self.limits.body_timeout_s} s")
        except _TooLarge:
            return _refusal(413, -32600, f"request larger than {self.limits.max_body} bytes")
        try:
            answer = await self._execute(body, None)
        except ServerBusy:
            return _refusal(503, -32005, "server busy: too many requests in flight; retry later")
        response = web.Response(body=answer or b"", content_type="application/json")
        if origin is not None:
            self._cors_headers(response, origin)
        return response

    async def _execute(self, body: bytes, session: _Session | None) -> bytes | None:
        if self._in_flight >= self.limits.max_in_flight:
            raise ServerBusy
        self._in_flight += 1
        try:
            return await self._loop.run_in_executor(self._pool, self.handler.handle, body, session)
        finally:
            self._in_flight -= 1

    # -- CORS --

    def _origin_allowed(self, origin: str) -> bool:
        return "*" in self.cors_origins or origin in self.cors_origins

    def _cors_headers(self, response: web.StreamResponse, origin: str) -> None:
        response.headers["Access-Control-Allow-Origin"] = "*" if "*" in self.cors_origins else origin
        response.headers["Vary"] = "Origin"

    def _preflight(self, origin: str | None) -> web.Response:
        if origin is None or not self._origin_allowed(origin):
            return _refusal(403, -32600, "CORS preflight from an origin that is not allowed (--cors-origins)")
        response = web.Response(status=204)
        self._cors_headers(response, origin)
        response.headers["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
        return response

    # -- WebSocket --

    async def _websocket(self, request: web.BaseRequest) -> web.StreamResponse:
        if self._websockets >= self.limits.max_websockets:
            return _refusal(503, -32005, f"too many WebSocket connections ({self.limits.max_websockets})")
        ws = web.WebSocketResponse(max_msg_size=self.limits.max_body, heartbeat=30.0)
        await ws.prepare(request)
        self._busy.discard(request.protocol)  # a WebSocket is long-lived: evictable like an idle connection
        self._websockets += 1
        session = _Session(self, ws)
        sender = asyncio.ensure_future(session.push_loop())
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    body = message.data.encode()
                elif message.type == WSMsgType.BINARY:
                    body = message.data
                else:
                    break
                try:
                    answer = await self._execute(body, session)
                except ServerBusy:
                    answer = json.dumps(error_object(None, RpcError(-32005, "server busy; retry later"))).encode()
                if answer is not None:
                    await ws.send_str(answer.decode())
        finally:
            self._websockets -= 1
            session.close()
            sender.cancel()
        return ws

    def heads_payload(self, block: Block) -> str:
        """The ``newHeads`` result of ``block`` as JSON text, made once for every subscriber."""
        cached_hash, text = self._heads
        if cached_hash != block.hash:
            text = json.dumps(self.handler.header_json(block), separators=(",", ":"))
            self._heads = (block.hash, text)
        return text


class _TooLarge(Exception):
    pass


async def _read_bounded(request: web.BaseRequest, limit: int) -> bytes:
    """The body, chunked or not, refused past ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65_536):
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        parts.append(chunk)
    return b"".join(parts)


class _Push(Sink):
    """One subscription: events become notification texts on its connection's queue."""

    def __init__(self, session: _Session, subscription_id: str, kind: str, query: LogQuery | None) -> None:
        self.session, self.id, self.kind, self.query = session, subscription_id, kind, query

    def _send(self, result_json: str) -> None:
        head = '{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"'
        self.session.push(f'{head}{self.id}","result":{result_json}}}}}')

    def block(self, block: Block, logs: list[StoredLog]) -> None:
        if self.kind == NEW_HEADS:
            self._send(self.session.server.heads_payload(block))
        elif self.kind == LOGS and self.query is not None:
            for found in logs:
                if self.query.matches(found.log):
                    self._send(json.dumps(log_json(found), separators=(",", ":")))

    def pending(self, tx_hash: bytes) -> None:
        if self.kind == PENDING:
            self._send(f'"0x{tx_hash.hex()}"')


class _Session:
    """A WebSocket connection's subscriptions and its bounded outgoing queue."""

    def __init__(self, server: RpcServer, ws: web.WebSocketResponse) -> None:
        self.server, self.ws = server, ws
        self._queue: asyncio.Queue[str] = asyncio.Queue(server.limits.max_pushes_queued)
        self._subscriptions: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._too_slow = False
        self._closing: asyncio.Future[bool] | None = None

    def subscribe(self, kind: str, query: LogQuery | None) -> str:
        with self._lock:
            if len(self._subscriptions) >= self.server.limits.max_subscriptions:
                raise RpcError(-32005, f"at most {self.server.limits.max_subscriptions} subscriptions per connection")
            sink = _Push(self, "", kind, query)
            sink.id = self.server.events.attach(sink)
            self._subscriptions.add(sink.id)
            return sink.id

    def unsubscribe(self, subscription_id: str) -> bool:
        with self._lock:
            if subscription_id not in self._subscriptions:
                return False
            self._subscriptions.discard(subscription_id)
        return self.server.events.detach(subscription_id)

    def push(self, text: str) -> None:
        """Queue a notification (any thread); a subscriber too far behind is disconnected."""
        if self._closed:
            return
        self.server._loop.call_soon_threadsafe(self._enqueue, text)

    def _enqueue(self, text: str) -> None:
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            if not self._too_slow:
                self._too_slow = True
                log.warning("a subscriber fell %d notifications behind; disconnecting it", self._queue.qsize())
                self._closing = asyncio.ensure_future(self.ws.close(code=1008, message=b"subscriber too slow"))

    async def push_loop(self) -> None:
        while True:
            text = await self._queue.get()
            await self.ws.send_str(text)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            ids, self._subscriptions = list(self._subscriptions), set()
        for subscription_id in ids:
            self.server.events.detach(subscription_id)


def _raise_file_limit(wanted: int) -> None:
    """Let the process hold ``wanted`` sockets if the hard limit allows (many clients)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))

# ruff: noqa: N802  (the handler methods are named after the JSON-RPC methods)
"""Ethereum JSON-RPC 2.0 for the node: the methods, independent of the transport.

:class:`RpcHandler` turns a request body into a response body and never raises:
malformed JSON is -32700 (JSON nested deeper than :data:`MAX_DEPTH` included: it is
refused before parsing, so no recursion limit is ever approached), a malformed request
-32600, an unknown method -32601, bad params -32602, a revert in
``eth_call``/``eth_estimateGas`` code 3 with the revert data (as geth), and admission
refusals carry their own code (``rpc_code``) with the refusal's class name in
``data``. Notifications (requests without an ``id``) are never answered, errors
included. Quantities are strict as the execution-apis spec writes them
(``^0x(0|[1-9a-f][0-9a-f]*)$``): no leading zeros, signs, spaces, underscores or
non-ASCII digits. :mod:`node.server` serves the handler over HTTP and WebSocket.

State methods (balances, nonces, code, storage, ``eth_call``, ``eth_estimateGas``) read
any kept block: ``latest``, ``pending``, ``safe``, ``finalized``, ``earliest``, a number,
a hash or an EIP-1898 object; a block past the head is -32000 "header not found", one
older than ``--history-blocks`` keeps is -32000 with ``StateNotKept``. ``evm_*`` dev
methods answer only when the handler was made with ``dev=True`` (``qkdchain node --dev``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import rlp
from eth_abi.abi import decode
from eth_utils.crypto import keccak

from node.admission import intrinsic_gas
from node.block import Block, encode_block, logs_bloom
from node.client.revert import ERROR_STRING_SELECTOR
from node.core import CLIENT_VERSION, AccountOverride, Node, NodeStopped, StateNotKept, TimeOffsetOutOfRange
from node.engine.base import AccessListEntry, Account, ExecutionReceipt, Transaction
from node.engine.revm import EMPTY_CODE_HASH, RevmEngine
from node.filters import LOGS, NEW_HEADS, PENDING, Events, Filter, FilterError, LogQuery
from node.store import StoredLog, StoredTransaction
from node.tracing import TraceTooLarge, call_frames, eip3155, struct_logs
from node.txcodec import TransactionRejected, decode_transaction

log = logging.getLogger("qkdchain.rpc")
T = TypeVar("T")
PRECOMPILES = frozenset(f"0x{i:040x}" for i in range(1, 11))  # Cancun: 0x01..0x0a


@dataclass(frozen=True)
class Call:
    """The fields of an ``eth_call``-style call object."""

    sender: str
    to: str | None
    data: bytes
    value: int
    gas: int
    access_list: tuple[AccessListEntry, ...]


MAX_BODY = 5 * 1024 * 1024  # as geth
MAX_BATCH = 1000
MAX_DEPTH = 32  # JSON nesting; the deepest valid request (a batched eth_call with state overrides) needs 6
MAX_BLOCK = 2**63 - 1  # block numbers past this name no block (SQLite integers are 64-bit signed)
_QUANTITY = re.compile(r"0x(?:0|[1-9a-fA-F][0-9a-fA-F]{0,63})", re.ASCII)
_SLOT = re.compile(r"0x[0-9a-fA-F]{1,64}", re.ASCII)  # a storage key: a quantity or 32 padded bytes
# a string runs to its closing quote, or to the end of the body if it never closes: possessive, so
# no quote is ever scanned from twice (a body of unterminated strings stays linear, not quadratic);
# unrolled (plain runs, then escapes each followed by a plain run), 3.3x faster than one
# alternation per character: 3 ms for a batch of 500 raw transactions instead of 10.6
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_OPEN_CLOSE = bytes.maketrans(b"[]{}", b"()()")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
EMPTY_UNCLES = keccak(rlp.encode([]))
PRIORITY_FEE = 10**9


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _invalid(message: str) -> RpcError:
    return RpcError(-32602, f"invalid params: {message}")


# -- parameter parsing --


def _hex_bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise _invalid(f"{what} must be a 0x-prefixed hex string")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as exc:
        raise _invalid(f"{what} is not valid hex") from exc


def _quantity(value: Any, what: str) -> int:
    if not isinstance(value, str) or _QUANTITY.fullmatch(value) is None:
        raise _invalid(f"{what} must be a hex quantity (0x, no leading zeros, at most 256 bits)")
    return int(value, 16)


def _count(value: Any, what: str) -> int:
    """A quantity, or a non-negative JSON integer where geth and anvil take one."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**256:
        return value
    return _quantity(value, what)


def _address(value: Any, what: str = "address") -> str:
    raw = _hex_bytes(value, what)
    if len(raw) != 20:
        raise _invalid(f"{what} must be 20 bytes")
    return "0x" + raw.hex()


def _hash(value: Any, what: str = "hash") -> bytes:
    raw = _hex_bytes(value, what)
    if len(raw) != 32:
        raise _invalid(f"{what} must be 32 bytes")
    return raw


def _q(value: int) -> str:
    return hex(value)


def _h(value: bytes) -> str:
    return "0x" + value.hex()


def _params(params: Any, low: int, high: int) -> list[Any]:
    if params is None:
        params = []
    if not isinstance(params, list):
        raise _invalid("params must be an array")
    if not low <= len(params) <= high:
        raise _invalid(f"expected {low}..{high} params, got {len(params)}")
    return params + [None] * (high - len(params))


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text nests arrays and objects deeper than ``limit``, found without
    recursion: strings are cut out, brackets kept, and innermost pairs removed level by
    level (C-speed passes, at most ``limit`` of them)."""
    brackets = _STRING.sub(b"", body).translate(_OPEN_CLOSE, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        shorter = brackets.replace(b"()", b"")
        if len(shorter) == len(brackets):
            return False  # unbalanced: the parser will say so
        brackets = shorter
    return bool(brackets)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(body: bytes) -> Any:
    """The request in ``body``.

    Raises:
        RpcError: -32700 for anything that is not strict JSON (NaN and Infinity included)
            or nests deeper than :data:`MAX_DEPTH`.
    """
    if too_deep(body):
        raise RpcError(-32700, f"parse error: JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RpcError(-32700, "parse error") from exc


_SESSION_METHODS = frozenset({"eth_subscribe", "eth_unsubscribe"})


class Session(Protocol):
    """A connection that can carry subscriptions (a WebSocket)."""

    def subscribe(self, kind: str, query: LogQuery | None) -> str: ...

    def unsubscribe(self, subscription_id: str) -> bool: ...


class RpcHandler:
    """The JSON-RPC methods of one node.

    Args:
        node: the node to answer for.
        events: where filters live (made here if not given; the server shares one with
            its WebSocket subscriptions).
        dev: answer the ``evm_*`` dev methods (moving time, sealing on demand).
    """

    def __init__(self, node: Node, events: Events | None = None, dev: bool = False) -> None:
        self.node = node
        self.dev = dev
        if events is None:
            events = Events()
            node.subscribe(events.on_block)
            node.on_admitted(events.on_admitted)
        self.events = events
        self.methods: dict[str, Callable[..., Any]] = {
            name[len("rpc_") :]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")
        }

    # -- framing --

    def handle(self, body: bytes, session: Session | None = None) -> bytes | None:
        """Answer one body (a request or a batch); ``None`` when only notifications came.

        ``session``: the WebSocket connection the body came on (for ``eth_subscribe``).
        """
        try:
            request = parse_body(body)
        except RpcError as exc:
            return _dump(error_object(None, exc))
        if isinstance(request, list):
            if not request:
                return _dump(error_object(None, RpcError(-32600, "invalid request: empty batch")))
            if len(request) > MAX_BATCH:
                return _dump(error_object(None, RpcError(-32600, f"invalid request: batch larger than {MAX_BATCH}")))
            admitted = self._admit_together(request)
            answers = [a for a in (self._one(r, admitted.get(id(r)), session) for r in request) if a is not None]
            return _dump(answers) if answers else None
        answer = self._one(request, None, session)
        return _dump(answer) if answer is not None else None

    def _admit_together(self, batch: list[Any]) -> dict[int, bytes | TransactionRejected]:
        """Submit a batch's raw transactions in one go, so their signatures are recovered on all cores."""
        found: list[tuple[int, bytes]] = []
        for request in batch:
            if _well_formed(request) and request.get("method") == "eth_sendRawTransaction":
                params = request.get("params")
                if isinstance(params, list) and len(params) == 1:
                    try:
                        found.append((id(request), _hex_bytes(params[0], "transaction")))
                    except RpcError:
                        continue  # answered one by one, with the error
        if len(found) < 2:
            return {}
        results = self.node.submit_many([raw for _, raw in found])
        return {key: result for (key, _), result in zip(found, results, strict=True)}

    def _one(
        self, request: Any, admitted: bytes | TransactionRejected | None = None, session: Session | None = None
    ) -> dict[str, Any] | None:
        if not isinstance(request, dict):
            return error_object(None, RpcError(-32600, "invalid request: not an object"))
        request_id = request.get("id")
        if not (request_id is None or isinstance(request_id, str | int)) or isinstance(request_id, bool):
            return error_object(None, RpcError(-32600, "invalid request: the id must be a string, an integer or null"))
        if request.get("jsonrpc") != "2.0" or not isinstance(request.get("method"), str):
            return error_object(request_id, RpcError(-32600, "invalid request"))
        name = request["method"]
        method = self.methods.get(name)
        notification = "id" not in request
        try:
            if method is None:
                raise RpcError(-32601, f"the method {name[:64]} does not exist/is not available")
            if admitted is not None:  # already submitted with the rest of its batch
                if isinstance(admitted, TransactionRejected):  # not raised: one refusal may answer many
                    return None if notification else error_object(request_id, _rejection(admitted))
                result = _h(admitted)
            elif name in _SESSION_METHODS:
                result = method(request.get("params"), session)
            else:
                result = method(request.get("params"))
        except RpcError as exc:
            return None if notification else error_object(request_id, exc)
        except TransactionRejected as exc:
            return None if notification else error_object(request_id, _rejection(exc))
        except NodeStopped as exc:
            return None if notification else error_object(request_id, RpcError(-32000, str(exc)))
        except Exception as exc:  # a bug must not take the server down
            log.exception("internal error in %s", name)
            error = RpcError(-32603, f"internal error: {type(exc).__name__}")
            return None if notification else error_object(request_id, error)
        return None if notification else {"jsonrpc": "2.0", "id": request_id, "result": result}

    # -- block selection --

    def _block_ref(self, tag: Any) -> int | None:
        """The block number ``tag`` names: a tag, a quantity, a block hash or an EIP-1898
        object (``None``: no such block)."""
        if tag is None or tag in ("latest", "pending", "safe", "finalized"):
            return self.node.head.number
        if tag == "earliest":
            return 0
        if isinstance(tag, dict):
            if set(tag) == {"blockNumber"}:
                return self._block_ref(tag["blockNumber"])
            if set(tag) - {"requireCanonical"} == {"blockHash"} and isinstance(
                tag.get("requireCanonical", False), bool
            ):
                return self._block_ref(_h(_hash(tag["blockHash"], "blockHash")))
            raise _invalid("a block object holds either blockNumber or blockHash (with requireCanonical)")
        if isinstance(tag, str) and len(tag) == 66:  # a block hash, as geth reads it
            block = self.node.store.block_by_hash(_hash(tag, "block hash"))
            return block.number if block is not None else None
        number = _quantity(tag, "block")
        return number if number <= MAX_BLOCK else None

    def _block_number(self, tag: Any) -> int:
        """A block number for a range (logs, fee history): past the head means the head."""
        number = self._block_ref(tag)
        if number is None:
            raise RpcError(-32000, "header not found")
        return number

    def _state_block(self, tag: Any) -> int | None:
        """The block whose state a read asks for: ``None`` for the head, else an older number.

        Raises:
            RpcError: -32000 for a block that does not exist (yet) or whose state is not kept.
        """
        number = self._block_ref(tag)
        head = self.node.head.number
        if number is None or number > head:
            raise RpcError(-32000, "header not found")
        if tag is None or tag in ("latest", "pending", "safe", "finalized"):
            return None  # whatever the head is when the read runs
        try:
            self.node.check_kept(number)
        except StateNotKept as exc:
            raise RpcError(-32000, str(exc), {"error": "StateNotKept", "first": _q(exc.first)}) from exc
        return number

    def _read_at(
        self, at: int | None, fn: Callable[[RevmEngine], T], overrides: dict[str, AccountOverride] | None = None
    ) -> T:
        try:
            return self.node.read_at(at, fn, overrides)
        except StateNotKept as exc:  # pruned between the check and the read
            raise RpcError(-32000, str(exc), {"error": "StateNotKept", "first": _q(exc.first)}) from exc

    # -- simple methods --

    def rpc_web3_clientVersion(self, params: Any) -> str:
        return CLIENT_VERSION

    def rpc_eth_chainId(self, params: Any) -> str:
        return _q(self.node.chain_id)

    def rpc_net_version(self, params: Any) -> str:
        return str(self.node.chain_id)

    def rpc_net_listening(self, params: Any) -> bool:
        return True

    def rpc_net_peerCount(self, params: Any) -> str:
        """Peers with a live link now (0 for a node on its own)."""
        peers = self.node.peers_hook
        return _q(len(peers()) if peers is not None else 0)

    def rpc_eth_syncing(self, params: Any) -> bool:
        return False

    def rpc_eth_accounts(self, params: Any) -> list[str]:
        return []

    def rpc_eth_blockNumber(self, params: Any) -> str:
        return _q(self.node.head.number)

    def rpc_eth_gasPrice(self, params: Any) -> str:
        return _q(self.node.genesis.base_fee + PRIORITY_FEE)

    def rpc_eth_maxPriorityFeePerGas(self, params: Any) -> str:
        return _q(PRIORITY_FEE)

    def rpc_eth_feeHistory(self, params: Any) -> dict[str, Any]:
        count_param, newest, percentiles = _params(params, 2, 3)
        count = min(_count(count_param, "blockCount"), 1024)  # a JSON number is accepted here, as geth does
        last = min(self._block_number(newest), self.node.head.number)
        first = max(0, last - count + 1)
        blocks = [self.node.store.block_by_number(n) for n in range(first, last + 1)]
        base = self.node.genesis.base_fee
        result: dict[str, Any] = {
            "oldestBlock": _q(first),
            "baseFeePerGas": [_q(base)] * (len(blocks) + 1),
            "gasUsedRatio": [b.header.gas_used / b.header.gas_limit if b else 0.0 for b in blocks],
        }
        if percentiles is not None:
            if not isinstance(percentiles, list) or not _percentiles_ok(percentiles):
                raise _invalid("rewardPercentiles: at most 100 numbers from 0 to 100, increasing")
            result["reward"] = [[_q(PRIORITY_FEE)] * len(percentiles) for _ in blocks]
        return result

    # -- state --

    def _account(self, params: Any) -> tuple[str, Account]:
        """``[address, block]``: the address and its account at that block."""
        address, tag = _params(params, 1, 2)
        who, at = _address(address), self._state_block(tag)
        if at is None:
            return who, self.node.read(lambda e: e.account(who))
        return who, self.node.store.account_at(who, at)

    def rpc_eth_getBalance(self, params: Any) -> str:
        return _q(self._account(params)[1].balance)

    def rpc_eth_getTransactionCount(self, params: Any) -> str:
        address, tag = _params(params, 1, 2)
        if tag == "pending":
            return _q(self.node.pending_nonce(_address(address)))
        return _q(self._account(params)[1].nonce)

    def rpc_eth_getCode(self, params: Any) -> str:
        _, account = self._account(params)
        if account.code_hash == EMPTY_CODE_HASH:
            return "0x"
        return _h(self.node.store.code(account.code_hash))

    def rpc_eth_getStorageAt(self, params: Any) -> str:
        address, slot, tag = _params(params, 2, 3)
        at = self._state_block(tag)
        who, index = _address(address), _slot(slot)
        if index >= 2**256:
            raise _invalid("slot out of range")
        if at is None:
            value = self.node.read(lambda e: e.storage(who, index))
        else:
            value = self.node.store.storage_at(who, index, at)
        return _h(value.to_bytes(32, "big"))

    def _call(self, call: Any) -> Call:
        """A call object's fields (``gas`` capped at the block gas limit, which is also the default)."""
        if not isinstance(call, dict):
            raise _invalid("the call must be an object")
        sender = _address(call["from"], "from") if call.get("from") else "0x" + "00" * 20
        to = _address(call["to"], "to") if call.get("to") else None
        data_field = call.get("input", call.get("data"))
        data = _hex_bytes(data_field, "data") if data_field is not None else b""
        value = _quantity(call["value"], "value") if call.get("value") is not None else 0
        cap = self.node.genesis.block_gas_limit
        gas = min(_quantity(call["gas"], "gas"), cap) if call.get("gas") is not None else cap
        return Call(sender, to, data, value, gas, _access_list(call.get("accessList")))

    def _simulate(
        self, call: Any, at: int | None, gas: int | None = None, overrides: dict[str, AccountOverride] | None = None
    ) -> ExecutionReceipt:
        c = self._call(call)
        limit = gas or c.gas
        return self._read_at(at, lambda e: e.simulate(c.sender, c.to, c.data, c.value, limit, c.access_list), overrides)

    def rpc_eth_createAccessList(self, params: Any) -> dict[str, Any]:
        """geth's method: run the call, list what it touched, run again with that list, until it
        settles; the sender, the recipient (or created contract), the coinbase and the precompiles
        are left out (already warm)."""
        call, tag = _params(params, 1, 2)
        c, at = self._call(call), self._state_block(tag)
        listed = c.access_list
        for _ in range(8):
            result, touched = self._read_at(at, _access_reader(c, listed))
            warm = {c.sender, c.to, result.contract_address, self.node.head.header.proposer, *PRECOMPILES}
            found = tuple(
                AccessListEntry(address, tuple(sorted(touched[address])))
                for address in sorted(touched)
                if address not in warm or touched[address]
            )
            if found == listed:
                break
            listed = found
        answer: dict[str, Any] = {"accessList": _access_list_json(listed), "gasUsed": _q(result.gas_used)}
        if not result.status:
            answer["error"] = "execution reverted"
        return answer

    def rpc_eth_call(self, params: Any) -> str:
        call, tag, overrides, block_overrides = _params(params, 1, 4)
        _no_overrides(block_overrides)
        result = self._simulate(call, self._state_block(tag), overrides=_state_overrides(overrides))
        if not result.status:
            raise _reverted(result.output)
        return _h(result.output)

    def rpc_eth_estimateGas(self, params: Any) -> str:
        call, tag, state = _params(params, 1, 3)
        at, overrides = self._state_block(tag), _state_overrides(state)
        first = self._simulate(call, at, self.node.genesis.block_gas_limit, overrides)
        if not first.status:
            raise _reverted(first.output)
        # gas_used can be below what the call needs to run (refunds, the 63/64 rule): search up
        low, high = first.gas_used, self.node.genesis.block_gas_limit
        if self._simulate(call, at, low, overrides).status:
            return _q(low)
        while high - low > 1_000:
            middle = (low + high) // 2
            if self._simulate(call, at, middle, overrides).status:
                high = middle
            else:
                low = middle
        return _q(high)

    # -- tracing --

    def _debug_only(self, name: str) -> None:
        if not self.dev:
            raise RpcError(
                -32601,
                f"{name} replays execution step by step, which is costly, so it answers only on a node started with"
                " --dev (as geth needs the debug API enabled)",
                {"error": "DebugMethodDisabled"},
            )

    def rpc_debug_traceTransaction(self, params: Any) -> dict[str, Any]:
        self._debug_only("debug_traceTransaction")
        tx_hash, options = _params(params, 1, 2)
        tracer = _tracer(options)
        stored = self.node.store.transaction(_hash(tx_hash))
        if stored is None:
            raise RpcError(-32000, "transaction not found")
        block = self.node.store.block_by_number(stored.block_number)
        assert block is not None
        raws = self.node.store.raws_of(stored.block_number)[: stored.index + 1]
        txs = [decode_transaction(raw, self.node.chain_id) for raw in raws]

        def replay(engine: RevmEngine) -> tuple[ExecutionReceipt, list[dict[str, Any]]]:
            """The block's transactions before this one, then this one traced, on the parent state."""
            engine.begin_block(block.number, block.header.timestamp, coinbase=block.header.proposer)
            try:
                for earlier in txs[:-1]:
                    engine.execute(earlier)
                with eip3155(engine.evm) as steps:
                    traced = engine.execute(txs[-1])
            finally:
                engine.end_block()
            return traced, steps

        result, steps = self._traced(block.number - 1, replay)
        tx = txs[-1]
        return self._shaped(tracer, steps, result, tx.sender, tx.to, tx.value, tx.gas, tx.data)

    def rpc_debug_traceCall(self, params: Any) -> dict[str, Any]:
        self._debug_only("debug_traceCall")
        call, tag, options = _params(params, 1, 3)
        tracer = _tracer(options)
        c, at = self._call(call), self._state_block(tag)
        sender, to, data, value, gas = c.sender, c.to, c.data, c.value, c.gas

        def run(engine: RevmEngine) -> tuple[ExecutionReceipt, list[dict[str, Any]]]:
            with eip3155(engine.evm) as steps:
                result = engine.simulate(sender, to, data, value, gas, c.access_list)
            return result, steps

        result, steps = self._traced(at, run)
        return self._shaped(tracer, steps, result, sender, to, value, gas, data)

    def _traced(
        self, at: int | None, fn: Callable[[RevmEngine], tuple[ExecutionReceipt, list[dict[str, Any]]]]
    ) -> tuple[ExecutionReceipt, list[dict[str, Any]]]:
        try:
            return self._read_at(at, fn)
        except TraceTooLarge as exc:
            raise RpcError(-32000, f"trace too large: {exc}") from exc

    def _shaped(self, tracer: str | None, steps: list[dict[str, Any]], result: ExecutionReceipt, sender: str,
                to: str | None, value: int, gas: int, data: bytes) -> dict[str, Any]:  # fmt: skip
        if tracer == "callTracer":
            intrinsic = intrinsic_gas(Transaction(sender=sender, nonce=0, to=to, data=data, gas=gas, value=value))
            return call_frames(steps, result, sender, to, value, gas - intrinsic, data)
        try:
            return struct_logs(steps, result)
        except TraceTooLarge as exc:
            raise RpcError(-32000, f"trace too large: {exc}") from exc

    def rpc_debug_traceBlockByNumber(self, params: Any) -> list[dict[str, Any]]:
        self._debug_only("debug_traceBlockByNumber")
        tag, options = _params(params, 1, 2)
        return self._trace_block(self._block_by_tag(tag), _tracer(options))

    def rpc_debug_traceBlockByHash(self, params: Any) -> list[dict[str, Any]]:
        self._debug_only("debug_traceBlockByHash")
        block_hash, options = _params(params, 1, 2)
        return self._trace_block(self._block_by_hash(block_hash), _tracer(options))

    def _trace_block(self, block: Block | None, tracer: str | None) -> list[dict[str, Any]]:
        if block is None:
            raise RpcError(-32000, "block not found")
        if block.number == 0:
            return []
        txs = [decode_transaction(raw, self.node.chain_id) for raw in self.node.store.raws_of(block.number)]

        def replay(engine: RevmEngine) -> list[tuple[ExecutionReceipt, list[dict[str, Any]]]]:
            engine.begin_block(block.number, block.header.timestamp, coinbase=block.header.proposer)
            traced = []
            try:
                for tx in txs:
                    with eip3155(engine.evm) as steps:
                        result = engine.execute(tx)
                    traced.append((result, steps))
            finally:
                engine.end_block()
            return traced

        try:
            traces = self._read_at(block.number - 1, replay)
        except TraceTooLarge as exc:
            raise RpcError(-32000, f"trace too large: {exc}") from exc
        return [
            {
                "txHash": _h(tx.tx_hash),
                "result": self._shaped(tracer, steps, result, tx.sender, tx.to, tx.value, tx.gas, tx.data),
            }
            for tx, (result, steps) in zip(txs, traces, strict=True)
        ]

    # -- raw encodings --

    def rpc_debug_getRawTransaction(self, params: Any) -> str | None:
        (tx_hash,) = _params(params, 1, 1)
        stored = self.node.store.transaction(_hash(tx_hash))
        return _h(stored.raw) if stored else None

    def rpc_debug_getRawHeader(self, params: Any) -> str | None:
        """This chain's header, RLP-encoded (its own fields: round, validators; see ``node.block``)."""
        (tag,) = _params(params, 1, 1)
        block = self._block_by_tag(tag)
        return _h(rlp.encode(block.header.fields())) if block else None

    def rpc_debug_getRawBlock(self, params: Any) -> str | None:
        """The block as peers exchange it (header, proposer signature, commit seals, raw transactions)."""
        (tag,) = _params(params, 1, 1)
        block = self._block_by_tag(tag)
        return _h(encode_block(block, self.node.store.raws_of(block.number))) if block else None

    def rpc_debug_getRawReceipts(self, params: Any) -> list[str] | None:
        """EIP-2718 receipts: ``type || rlp([status, cumulativeGasUsed, logsBloom, logs])``."""
        (tag,) = _params(params, 1, 1)
        block = self._block_by_tag(tag)
        if block is None:
            return None
        encoded = []
        for stored in self.node.store.receipts_of(block.number):
            entries = [entry for _, entry in stored.logs]
            body = rlp.encode([
                stored.status, stored.cumulative_gas, logs_bloom(entries),
                [[bytes.fromhex(e.address[2:]), list(e.topics), e.data] for e in entries],
            ])  # fmt: skip
            encoded.append(_h(body if stored.raw[0] >= 0xC0 else stored.raw[:1] + body))
        return encoded

    # -- more state --

    def rpc_eth_getStorageValues(self, params: Any) -> dict[str, list[str]]:
        requests, tag = _params(params, 1, 2)
        if (
            not isinstance(requests, dict)
            or sum(len(v) if isinstance(v, list) else 1 for v in requests.values()) > 1024
        ):
            raise _invalid("requests map addresses to at most 1024 slots in all")
        at = self._state_block(tag)
        found: dict[str, list[str]] = {}
        for address, slots in requests.items():
            if not isinstance(slots, list):
                raise _invalid("each address maps to an array of slots")
            who = _address(address)
            keys = [_slot(slot) for slot in slots]
            if at is None:
                values = self.node.read(_storage_reader(who, keys))
            else:
                values = [self.node.store.storage_at(who, k, at) for k in keys]
            found[address] = [_h(v.to_bytes(32, "big")) for v in values]
        return found

    def rpc_eth_coinbase(self, params: Any) -> str:
        _params(params, 0, 0)
        return self.node.proposer  # the address this node seals and votes with

    def rpc_eth_baseFee(self, params: Any) -> str:
        _params(params, 0, 0)
        return _q(self.node.genesis.base_fee)  # fixed by the genesis

    def rpc_eth_blobBaseFee(self, params: Any) -> str:
        _params(params, 0, 0)
        return "0x1"  # no blob transactions here: excess blob gas stays 0, whose fee is EIP-4844's minimum

    def rpc_eth_getProof(self, params: Any) -> None:
        raise RpcError(
            -32601,
            "eth_getProof is not available: this chain's stateRoot commits to each block's write set, not to a"
            " Merkle-Patricia trie of the whole state, so there is no account or storage proof to give",
        )

    # -- transactions --

    def rpc_eth_sendRawTransaction(self, params: Any) -> str:
        (raw,) = _params(params, 1, 1)
        return _h(self.node.submit(_hex_bytes(raw, "transaction")))

    def rpc_eth_getTransactionByHash(self, params: Any) -> dict[str, Any] | None:
        (tx_hash,) = _params(params, 1, 1)
        wanted = _hash(tx_hash)
        stored = self.node.store.transaction(wanted)
        if stored is not None:
            return _transaction_json(stored.raw, stored.sender, stored)
        pending = self.node.pending(wanted)
        if pending is not None:  # waiting in the mempool: no block yet, as anvil and geth show it
            return _transaction_json(pending.raw, pending.tx.sender, None)
        self._raise_if_dropped(wanted)
        return None

    def rpc_eth_getTransactionReceipt(self, params: Any) -> dict[str, Any] | None:
        (tx_hash,) = _params(params, 1, 1)
        wanted = _hash(tx_hash)
        stored = self.node.store.transaction(wanted)
        if stored is None:
            self._raise_if_dropped(wanted)
            return None
        return _receipt_json(stored)

    def _raise_if_dropped(self, tx_hash: bytes) -> None:
        """A transaction admitted here and dropped before inclusion is an error that says why,
        not a ``null`` a client would poll for ever."""
        reason = self.node.dropped(tx_hash)
        if reason is not None:
            raise RpcError(
                -32000,
                f"transaction 0x{tx_hash.hex()} was dropped before inclusion: {reason}",
                {"error": "TransactionDropped", "reason": type(reason).__name__},
            )

    def rpc_eth_getBlockByNumber(self, params: Any) -> dict[str, Any] | None:
        tag, full = _params(params, 1, 2)
        if isinstance(tag, dict) or (isinstance(tag, str) and len(tag) == 66):
            raise _invalid("eth_getBlockByNumber takes a number or tag; use eth_getBlockByHash")
        number = self._block_ref(tag)
        block = self.node.store.block_by_number(number) if number is not None else None
        return self._block_json(block, _flag(full)) if block else None

    def rpc_eth_getBlockByHash(self, params: Any) -> dict[str, Any] | None:
        block_hash, full = _params(params, 1, 2)
        block = self.node.store.block_by_hash(_hash(block_hash, "block hash"))
        return self._block_json(block, _flag(full)) if block else None

    def _block_by_tag(self, tag: Any) -> Block | None:
        """The block a number or tag names (a hash or EIP-1898 object too)."""
        number = self._block_ref(tag)
        return self.node.store.block_by_number(number) if number is not None else None

    def _block_by_hash(self, value: Any) -> Block | None:
        return self.node.store.block_by_hash(_hash(value, "block hash"))

    def rpc_eth_getBlockTransactionCountByNumber(self, params: Any) -> str | None:
        (tag,) = _params(params, 1, 1)
        block = self._block_by_tag(tag)
        return _q(len(block.tx_hashes)) if block else None

    def rpc_eth_getBlockTransactionCountByHash(self, params: Any) -> str | None:
        (block_hash,) = _params(params, 1, 1)
        block = self._block_by_hash(block_hash)
        return _q(len(block.tx_hashes)) if block else None

    def _transaction_at(self, block: Block | None, index: Any) -> dict[str, Any] | None:
        position = _quantity(index, "index")
        if block is None or position >= len(block.tx_hashes):
            return None
        stored = self.node.store.transaction(block.tx_hashes[position])
        return _transaction_json(stored.raw, stored.sender, stored) if stored else None

    def rpc_eth_getTransactionByBlockNumberAndIndex(self, params: Any) -> dict[str, Any] | None:
        tag, index = _params(params, 2, 2)
        return self._transaction_at(self._block_by_tag(tag), index)

    def rpc_eth_getTransactionByBlockHashAndIndex(self, params: Any) -> dict[str, Any] | None:
        block_hash, index = _params(params, 2, 2)
        return self._transaction_at(self._block_by_hash(block_hash), index)

    def rpc_eth_getBlockReceipts(self, params: Any) -> list[dict[str, Any]] | None:
        (tag,) = _params(params, 1, 1)
        block = self._block_by_tag(tag)
        return [_receipt_json(s) for s in self.node.store.receipts_of(block.number)] if block else None

    def rpc_eth_getUncleCountByBlockNumber(self, params: Any) -> str | None:
        (tag,) = _params(params, 1, 1)
        return "0x0" if self._block_by_tag(tag) else None  # BFT blocks have no uncles

    def rpc_eth_getUncleCountByBlockHash(self, params: Any) -> str | None:
        (block_hash,) = _params(params, 1, 1)
        return "0x0" if self._block_by_hash(block_hash) else None

    def rpc_eth_getUncleByBlockNumberAndIndex(self, params: Any) -> None:
        _params(params, 2, 2)

    def rpc_eth_getUncleByBlockHashAndIndex(self, params: Any) -> None:
        _params(params, 2, 2)

    def _block_json(self, block: Block, full: bool) -> dict[str, Any]:
        h = block.header
        transactions: list[Any] = [_h(t) for t in block.tx_hashes]
        if full:
            transactions = [_transaction_json(s.raw, s.sender, s) for s in self.node.store.receipts_of(h.number)]
        return {
            "number": _q(h.number),
            "hash": _h(block.hash),
            "parentHash": _h(h.parent_hash),
            "nonce": "0x0000000000000000",
            "mixHash": _h(bytes(32)),
            "sha3Uncles": _h(EMPTY_UNCLES),
            "logsBloom": _h(logs_bloom([x.log for x in self.node.store.logs(h.number, h.number, None)])),
            "transactionsRoot": _h(h.tx_root),
            "stateRoot": _h(h.state_root),
            "receiptsRoot": _h(h.receipts_root),
            "miner": h.proposer,
            "difficulty": "0x0",
            "totalDifficulty": "0x0",
            "extraData": "0x",
            "proposerSignature": _h(block.signature),
            "round": _q(h.round),
            "validators": list(h.validators),
            "commitSeals": [_h(x) for x in block.seals],
            "size": _q(len(rlp.encode(h.fields())) + 65 * (1 + len(block.seals))),
            "gasLimit": _q(h.gas_limit),
            "gasUsed": _q(h.gas_used),
            "timestamp": _q(h.timestamp),
            "baseFeePerGas": _q(h.base_fee),
            "transactions": transactions,
            "uncles": [],
        }

    def _log_range(self, query: dict[str, Any]) -> tuple[int, int]:
        if query.get("blockHash") is not None:
            if query.get("fromBlock") is not None or query.get("toBlock") is not None:
                raise _invalid("blockHash cannot be combined with fromBlock or toBlock")
            block = self.node.store.block_by_hash(_hash(query["blockHash"], "blockHash"))
            if block is None:
                raise RpcError(-32000, "unknown block")
            return block.number, block.number
        head = self.node.head.number
        first, last = self._block_ref(query.get("fromBlock")), self._block_ref(query.get("toBlock"))
        return (head + 1 if first is None else first), (head if last is None else last)

    def _logs(self, first: int, last: int, wanted: LogQuery) -> list[dict[str, Any]]:
        last = min(last, self.node.head.number)
        if last < first:
            return []
        if last - first > 100_000:
            raise RpcError(-32005, "query exceeds 100000 blocks; narrow the range")
        addresses = sorted(wanted.addresses) if wanted.addresses is not None else None
        found = self.node.store.logs(first, last, addresses)
        return [log_json(x) for x in found if wanted.matches(x.log)]

    def rpc_eth_getLogs(self, params: Any) -> list[dict[str, Any]]:
        (query,) = _params(params, 1, 1)
        if not isinstance(query, dict):
            raise _invalid("the filter must be an object")
        first, last = self._log_range(query)
        return self._logs(first, last, _log_query(query))

    # -- filters (polled over HTTP) --

    def rpc_eth_newFilter(self, params: Any) -> str:
        (query,) = _params(params, 1, 1)
        if not isinstance(query, dict):
            raise _invalid("the filter must be an object")
        first, last = self._log_range(query)
        moving = (None, "latest", "pending", "safe", "finalized")  # resolved when asked, as geth does
        from_head, to_head = query.get("fromBlock") in moving, query.get("toBlock") in moving
        if query.get("blockHash") is not None:
            from_head = to_head = False
        made = Filter(LOGS, _log_query(query), None if from_head else first, None if to_head else last)
        return self._install(made)

    def rpc_eth_newBlockFilter(self, params: Any) -> str:
        _params(params, 0, 0)
        return self._install(Filter(NEW_HEADS))

    def rpc_eth_newPendingTransactionFilter(self, params: Any) -> str:
        _params(params, 0, 1)
        return self._install(Filter(PENDING))

    def _install(self, made: Filter) -> str:
        try:
            return self.events.install(made)
        except FilterError as exc:
            raise RpcError(-32005, str(exc)) from exc

    def rpc_eth_getFilterChanges(self, params: Any) -> list[Any]:
        (filter_id,) = _params(params, 1, 1)
        try:
            found, items = self.events.take(_filter_id(filter_id))
        except FilterError as exc:
            raise RpcError(-32000, str(exc)) from exc
        if found.kind == LOGS:
            return [log_json(x) for x in items]
        return [_h(x) for x in items]

    def rpc_eth_getFilterLogs(self, params: Any) -> list[dict[str, Any]]:
        (filter_id,) = _params(params, 1, 1)
        try:
            found = self.events.get(_filter_id(filter_id))
        except FilterError as exc:
            raise RpcError(-32000, str(exc)) from exc
        if found.kind != LOGS or found.query is None:
            raise _invalid("not a log filter")
        head = self.node.head.number
        first = head if found.first_block is None else found.first_block
        last = head if found.last_block is None else found.last_block
        return self._logs(first, last, found.query)

    def rpc_eth_uninstallFilter(self, params: Any) -> bool:
        (filter_id,) = _params(params, 1, 1)
        return self.events.uninstall(_filter_id(filter_id))

    # -- subscriptions (a WebSocket connection only) --

    def rpc_eth_subscribe(self, params: Any, session: Session | None) -> str:
        if session is None:
            raise RpcError(-32601, "notifications not supported: eth_subscribe needs a WebSocket connection")
        kind, query = _params(params, 1, 2)
        if kind == LOGS:
            if query is not None and not isinstance(query, dict):
                raise _invalid("the logs filter must be an object")
            if query and {"fromBlock", "toBlock", "blockHash"} & set(query):
                raise _invalid("a logs subscription takes address and topics only")
            return session.subscribe(LOGS, _log_query(query or {}))
        if kind in (NEW_HEADS, PENDING):
            if query is not None and not (kind == PENDING and isinstance(query, bool)):
                raise _invalid(f"{kind} takes no options")
            return session.subscribe(kind, None)
        raise _invalid(f"unknown subscription {str(kind)[:64]!r}; supported: {NEW_HEADS}, {LOGS}, {PENDING}")

    def rpc_eth_unsubscribe(self, params: Any, session: Session | None) -> bool:
        if session is None:
            raise RpcError(-32601, "notifications not supported: eth_unsubscribe needs a WebSocket connection")
        (subscription_id,) = _params(params, 1, 1)
        return session.unsubscribe(_filter_id(subscription_id))

    def header_json(self, block: Block) -> dict[str, Any]:
        """A block as ``newHeads`` notifications carry it (no transaction list)."""
        header = self._block_json(block, False)
        del header["transactions"], header["uncles"]
        return header

    # -- dev methods (as anvil, Hardhat and eth-tester offer them), with --dev only --

    def _dev_only(self, name: str) -> None:
        if not self.dev:
            raise RpcError(
                -32601,
                f"{name} is a dev method: it moves time or seals on demand, so it answers only on a node"
                " started with --dev",
                {"error": "DevMethodDisabled"},
            )

    def rpc_evm_increaseTime(self, params: Any) -> str:
        self._dev_only("evm_increaseTime")
        (seconds,) = _params(params, 1, 1)
        try:
            return _q(self.node.increase_time(_count(seconds, "seconds")))  # a JSON number too, as anvil
        except TimeOffsetOutOfRange as exc:
            raise RpcError(-32602, f"invalid params: {exc}", {"error": type(exc).__name__}) from exc

    def rpc_evm_mine(self, params: Any) -> str:
        self._dev_only("evm_mine")
        _params(params, 0, 1)
        self.node.mine()
        return "0x0"


def _percentiles_ok(values: list[Any]) -> bool:
    """At most 100 numbers from 0 to 100, increasing (as geth checks them)."""
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x <= 100 for x in values)
    return len(values) <= 100 and numbers and all(a <= b for a, b in itertools.pairwise(values))


def _well_formed(request: Any) -> bool:
    """What :meth:`RpcHandler._one` checks before it runs a request."""
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or not isinstance(request.get("method"), str):
        return False
    request_id = request.get("id")
    return (request_id is None or isinstance(request_id, str | int)) and not isinstance(request_id, bool)


def _tracer(options: Any) -> str | None:
    """The tracer asked for: geth's default struct logger (``None``) or ``callTracer``."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise _invalid("trace options must be an object")
    tracer = options.get("tracer")
    if tracer not in (None, "callTracer"):
        raise _invalid(f"tracer {str(tracer)[:40]!r} is not supported (the default struct logger and callTracer are)")
    return str(tracer) if tracer else None


def _storage_reader(who: str, keys: list[int]) -> Callable[[RevmEngine], list[int]]:
    return lambda engine: [engine.storage(who, k) for k in keys]


def _slot(value: Any) -> int:
    if not isinstance(value, str) or _SLOT.fullmatch(value) is None:
        raise _invalid("a storage slot is 0x and 1 to 64 hex digits")
    return int(value, 16)


def _flag(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    raise _invalid("the full-transactions flag must be a boolean")


def _no_overrides(overrides: Any) -> None:
    if overrides is not None and overrides != {}:
        raise _invalid("block overrides are not supported by this node")


MAX_OVERRIDDEN_SLOTS = 10_000
MAX_OVERRIDE_CODE = 24_576


def _state_overrides(value: Any) -> dict[str, AccountOverride] | None:
    """geth's state override object: per address ``balance``, ``nonce``, ``code``, and ``state``
    (the whole storage) or ``stateDiff`` (some slots)."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 1_000:
        raise _invalid("the state override is an object of at most 1000 addresses")
    found: dict[str, AccountOverride] = {}
    slots = 0
    for address, fields in value.items():
        if not isinstance(fields, dict) or set(fields) - {"balance", "nonce", "code", "state", "stateDiff"}:
            unknown = sorted(set(fields) - {"balance", "nonce", "code", "state", "stateDiff"}) if isinstance(
                fields, dict) else fields  # fmt: skip
            raise _invalid(f"state override of {str(address)[:42]}: unsupported fields {unknown}")
        if "state" in fields and "stateDiff" in fields:
            raise _invalid(f"state override of {str(address)[:42]}: state and stateDiff together")
        storage: dict[str, dict[int, int] | None] = {}
        for name in ("state", "stateDiff"):
            given = fields.get(name)
            if given is None:
                continue
            if not isinstance(given, dict):
                raise _invalid(f"{name} must be an object of slot: value")
            slots += len(given)
            if slots > MAX_OVERRIDDEN_SLOTS:
                raise _invalid(f"at most {MAX_OVERRIDDEN_SLOTS} overridden slots")
            storage[name] = {int.from_bytes(_hash(k, "slot"), "big"): int.from_bytes(_hash(v, "slot value"), "big")
                             for k, v in given.items()}  # fmt: skip
        nonce = fields.get("nonce")
        if nonce is not None and _quantity(nonce, "nonce") >= 2**64:
            raise _invalid("nonce must be below 2**64")
        if fields.get("code") is not None and len(_hex_bytes(fields["code"], "code")) > MAX_OVERRIDE_CODE:
            raise _invalid(f"override code is at most {MAX_OVERRIDE_CODE} bytes (EIP-170)")
        found[_address(address)] = AccountOverride(
            balance=_quantity(fields["balance"], "balance") if fields.get("balance") is not None else None,
            nonce=_quantity(nonce, "nonce") if nonce is not None else None,
            code=_hex_bytes(fields["code"], "code") if fields.get("code") is not None else None,
            state=storage.get("state"),
            state_diff=storage.get("stateDiff"),
        )
    return found


def _filter_id(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-f]{1,64}", value, re.ASCII):
        raise _invalid("a filter or subscription id is a hex string")
    return value


def _log_query(query: dict[str, Any]) -> LogQuery:
    """The address and topics part of a log filter."""
    address = query.get("address")
    addresses: frozenset[str] | None = None
    if address is not None:
        listed = address if isinstance(address, list) else [address]
        if len(listed) > 1_000:
            raise _invalid("at most 1000 addresses")
        addresses = frozenset(_address(a) for a in listed) or None
    topics = query.get("topics") or []
    if not isinstance(topics, list) or len(topics) > 4:
        raise _invalid("topics must be an array of at most 4 positions")
    wanted: list[frozenset[bytes] | None] = []
    for position in topics:
        if position is None:
            wanted.append(None)
        elif isinstance(position, list):
            if len(position) > 1_000:
                raise _invalid("at most 1000 topics per position")
            wanted.append(frozenset(_hash(t, "topic") for t in position) or None)
        else:
            wanted.append(frozenset({_hash(position, "topic")}))
    return LogQuery(addresses, tuple(wanted))


def _reverted(output: bytes) -> RpcError:
    message = "execution reverted"
    if output[:4] == ERROR_STRING_SELECTOR:
        with contextlib.suppress(Exception):  # a malformed reason string keeps the bare message
            message += ": " + str(decode(["string"], output[4:])[0])
    return RpcError(3, message, _h(output))


def _transaction_json(raw: bytes, sender: str, stored: StoredTransaction | None) -> dict[str, Any]:
    """A transaction object; ``stored`` says where it landed (``None``: still pending)."""
    common: dict[str, Any] = {
        "hash": _h(keccak(raw)),
        "blockHash": _h(stored.block_hash) if stored else None,
        "blockNumber": _q(stored.block_number) if stored else None,
        "blockTimestamp": _q(stored.block_timestamp) if stored else None,
        "transactionIndex": _q(stored.index) if stored else None,
        "from": sender,
    }
    if raw[0] in (1, 2):  # EIP-2930 and EIP-1559: the same fields but for the fees
        fields = rlp.decode(raw[1:])
        chain_id, nonce = fields[:2]
        if raw[0] == 1:
            fees = {"gasPrice": _q(_int(fields[2]))}
        else:
            tip, max_fee = _int(fields[2]), _int(fields[3])
            price = stored.effective_gas_price if stored else max_fee
            fees = {"maxPriorityFeePerGas": _q(tip), "maxFeePerGas": _q(max_fee), "gasPrice": _q(price)}
        gas, to, value, data, access, y, r, s = fields[-8:]
        return common | {
            "type": _q(raw[0]),
            "chainId": _q(_int(chain_id)),
            "nonce": _q(_int(nonce)),
            **fees,
            "gas": _q(_int(gas)),
            "to": _h(to) if to else None,
            "value": _q(_int(value)),
            "input": _h(data),
            "accessList": _raw_access_list_json(access),
            "v": _q(_int(y)),
            "yParity": _q(_int(y)),
            "r": _q(_int(r)),
            "s": _q(_int(s)),
        }
    nonce, price, gas, to, value, data, v, r, s = rlp.decode(raw)
    return common | {
        "type": "0x0",
        "nonce": _q(_int(nonce)),
        "gasPrice": _q(_int(price)),
        "gas": _q(_int(gas)),
        "to": _h(to) if to else None,
        "value": _q(_int(value)),
        "input": _h(data),
        "v": _q(_int(v)),
        "r": _q(_int(r)),
        "s": _q(_int(s)),
        "chainId": _q((_int(v) - 35) // 2),
    }


def _access_reader(
    c: Call, listed: tuple[AccessListEntry, ...]
) -> Callable[[RevmEngine], tuple[ExecutionReceipt, dict[str, set[int]]]]:
    return lambda engine: engine.accessed(c.sender, c.to, c.data, c.value, c.gas, listed)


def _raw_access_list_json(access: list[Any]) -> list[dict[str, Any]]:
    return [{"address": _h(address), "storageKeys": [_h(k) for k in keys]} for address, keys in access]


def _access_list_json(entries: tuple[AccessListEntry, ...]) -> list[dict[str, Any]]:
    return [{"address": e.address, "storageKeys": [_h(k.to_bytes(32, "big")) for k in e.storage_keys]} for e in entries]


def _access_list(value: Any) -> tuple[AccessListEntry, ...]:
    """A call's ``accessList`` (bounded as transactions' are)."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > 2048:
        raise _invalid("accessList is an array of at most 2048 entries")
    entries = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"address", "storageKeys"}:
            raise _invalid("an access list entry is {address, storageKeys}")
        keys = item.get("storageKeys") or []
        if not isinstance(keys, list) or len(keys) > 2048:
            raise _invalid("storageKeys is an array of at most 2048 keys")
        entries.append(AccessListEntry(_address(item.get("address")), tuple(_slot(k) for k in keys)))
    return tuple(entries)


def _int(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _receipt_json(stored: StoredTransaction) -> dict[str, Any]:
    logs = [
        log_json(
            StoredLog(
                stored.block_number, stored.block_hash, i, stored.tx_hash, stored.index, entry, stored.block_timestamp
            )
        )
        for i, entry in stored.logs
    ]
    return {
        "transactionHash": _h(stored.tx_hash),
        "transactionIndex": _q(stored.index),
        "blockHash": _h(stored.block_hash),
        "blockNumber": _q(stored.block_number),
        "from": stored.sender,
        "to": stored.to,
        "cumulativeGasUsed": _q(stored.cumulative_gas),
        "gasUsed": _q(stored.gas_used),
        "effectiveGasPrice": _q(stored.effective_gas_price),
        "contractAddress": stored.contract_address,
        "logs": logs,
        "logsBloom": _h(logs_bloom([entry for _, entry in stored.logs])),
        "status": _q(stored.status),
        "type": _q(stored.raw[0]) if stored.raw[0] < 0x7F else "0x0",
    }


def log_json(found: StoredLog) -> dict[str, Any]:
    return {
        "address": found.log.address,
        "topics": [_h(t) for t in found.log.topics],
        "data": _h(found.log.data),
        "blockNumber": _q(found.block_number),
        "blockHash": _h(found.block_hash),
        "blockTimestamp": _q(found.block_timestamp),
        "transactionHash": _h(found.tx_hash),
        "transactionIndex": _q(found.tx_index),
        "logIndex": _q(found.log_index),
        "removed": False,
    }


def _rejection(exc: TransactionRejected) -> RpcError:
    return RpcError(exc.rpc_code, str(exc), {"error": type(exc).__name__, **exc.rpc_data})


def error_object(request_id: Any, exc: RpcError) -> dict[str, Any]:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.data is not None:
        error["data"] = exc.data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _dump(answer: Any) -> bytes:
    return json.dumps(answer, separators=(",", ":")).encode()

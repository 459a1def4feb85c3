# ruff: noqa: N802  (the handler methods are named after the JSON-RPC methods)
"""Ethereum JSON-RPC 2.0 for the node, over HTTP (batches included).

:class:`RpcHandler` turns a request body into a response body and never raises:
malformed JSON is -32700, a malformed request -32600, an unknown method -32601, bad
params -32602, a revert in ``eth_call``/``eth_estimateGas`` code 3 with the revert
data (as geth), and admission refusals carry their own code (``rpc_code``) with the
refusal's class name in ``data``. :class:`RpcServer` serves it on a threaded HTTP
server.

Only the head state is kept (no archive): state methods accept ``latest``,
``pending``, ``safe``, ``finalized`` or the head's number, and refuse older blocks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import rlp
from eth_abi.abi import decode
from eth_utils.crypto import keccak

from node.block import Block, logs_bloom
from node.client.revert import ERROR_STRING_SELECTOR
from node.core import CLIENT_VERSION, Node, NodeStopped
from node.engine.base import ExecutionReceipt
from node.store import StoredLog, StoredTransaction
from node.txcodec import TransactionRejected

log = logging.getLogger("qkdchain.rpc")

MAX_BODY = 8 * 1024 * 1024
MAX_BATCH = 1000
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
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if not isinstance(value, str) or not value.startswith("0x") or len(value) > 66:
        raise _invalid(f"{what} must be a hex quantity")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise _invalid(f"{what} must be a hex quantity") from exc


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


class RpcHandler:
    """The JSON-RPC methods of one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.methods: dict[str, Callable[[Any], Any]] = {
            name[len("rpc_") :]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")
        }

    # -- framing --

    def handle(self, body: bytes) -> bytes | None:
        """Answer one HTTP body (a request or a batch); ``None`` for notifications only."""
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _dump(_error(None, RpcError(-32700, "parse error")))
        if isinstance(request, list):
            if not request:
                return _dump(_error(None, RpcError(-32600, "invalid request: empty batch")))
            if len(request) > MAX_BATCH:
                return _dump(_error(None, RpcError(-32600, f"invalid request: batch larger than {MAX_BATCH}")))
            admitted = self._admit_together(request)
            answers = [a for a in (self._one(r, admitted.get(id(r))) for r in request) if a is not None]
            return _dump(answers) if answers else None
        answer = self._one(request)
        return _dump(answer) if answer is not None else None

    def _admit_together(self, batch: list[Any]) -> dict[int, bytes | TransactionRejected]:
        """Submit a batch's raw transactions in one go, so their signatures are recovered on all cores."""
        found: list[tuple[int, bytes]] = []
        for request in batch:
            if isinstance(request, dict) and request.get("method") == "eth_sendRawTransaction":
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

    def _one(self, request: Any, admitted: bytes | TransactionRejected | None = None) -> dict[str, Any] | None:
        if (
            not isinstance(request, dict)
            or request.get("jsonrpc") != "2.0"
            or not isinstance(request.get("method"), str)
        ):
            return _error(request.get("id") if isinstance(request, dict) else None, RpcError(-32600, "invalid request"))
        request_id = request.get("id")
        if not (request_id is None or isinstance(request_id, str | int | float)) or isinstance(request_id, bool):
            return _error(None, RpcError(-32600, "invalid request: bad id"))
        method = self.methods.get(request["method"])
        try:
            if method is None:
                raise RpcError(-32601, f"the method {request['method']} does not exist/is not available")
            if admitted is not None:  # already submitted with the rest of its batch
                if isinstance(admitted, TransactionRejected):
                    raise admitted
                result = _h(admitted)
            else:
                result = method(request.get("params"))
        except RpcError as exc:
            return _error(request_id, exc)
        except TransactionRejected as exc:
            return _error(request_id, RpcError(exc.rpc_code, str(exc), {"error": type(exc).__name__}))
        except NodeStopped as exc:
            return _error(request_id, RpcError(-32000, str(exc)))
        except Exception as exc:  # a bug must not take the server down
            log.exception("internal error in %s", request["method"])
            return _error(request_id, RpcError(-32603, f"internal error: {type(exc).__name__}"))
        if "id" not in request:
            return None  # a notification
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    # -- block selection --

    def _head_only(self, tag: Any) -> None:
        if tag is None or tag in ("latest", "pending", "safe", "finalized"):
            return
        if tag == "earliest" or (isinstance(tag, str) and tag.startswith("0x")):
            number = 0 if tag == "earliest" else _quantity(tag, "block")
            if number == self.node.head.number:
                return
            raise RpcError(-32000, f"historical state is not available (block {number}); this node keeps the head")
        if isinstance(tag, dict):
            raise RpcError(-32000, "block selection by object is not supported")
        raise _invalid("block must be a tag or a hex number")

    def _block_number(self, tag: Any) -> int:
        head = self.node.head.number
        if tag is None or tag in ("latest", "pending", "safe", "finalized"):
            return head
        if tag == "earliest":
            return 0
        return _quantity(tag, "block")

    # -- simple methods --

    def rpc_web3_clientVersion(self, params: Any) -> str:
        return CLIENT_VERSION

    def rpc_eth_chainId(self, params: Any) -> str:
        return _q(self.node.chain_id)

    def rpc_net_version(self, params: Any) -> str:
        return str(self.node.chain_id)

    def rpc_net_listening(self, params: Any) -> bool:
        return True

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
        count = min(_quantity(count_param, "blockCount"), 1024)
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
            if not isinstance(percentiles, list):
                raise _invalid("rewardPercentiles must be an array")
            result["reward"] = [[_q(PRIORITY_FEE)] * len(percentiles) for _ in blocks]
        return result

    # -- state --

    def _head_address(self, params: Any) -> str:
        """``[address, block]`` params of a state read at the head."""
        address, tag = _params(params, 1, 2)
        self._head_only(tag)
        return _address(address)

    def rpc_eth_getBalance(self, params: Any) -> str:
        who = self._head_address(params)
        return _q(self.node.read(lambda e: e.balance(who)))

    def rpc_eth_getTransactionCount(self, params: Any) -> str:
        address, tag = _params(params, 1, 2)
        who = _address(address)
        if tag == "pending":
            return _q(self.node.pending_nonce(who))
        self._head_only(tag)
        return _q(self.node.read(lambda e: e.nonce(who)))

    def rpc_eth_getCode(self, params: Any) -> str:
        who = self._head_address(params)
        return _h(self.node.read(lambda e: e.code(who)))

    def rpc_eth_getStorageAt(self, params: Any) -> str:
        address, slot, tag = _params(params, 2, 3)
        self._head_only(tag)
        who, index = _address(address), _quantity(slot, "slot")
        if index >= 2**256:
            raise _invalid("slot out of range")
        value = self.node.read(lambda e: e.storage(who, index))
        return _h(value.to_bytes(32, "big"))

    def _simulate(self, call: Any, gas: int | None = None) -> ExecutionReceipt:
        if not isinstance(call, dict):
            raise _invalid("the call must be an object")
        sender = _address(call["from"], "from") if call.get("from") else "0x" + "00" * 20
        to = _address(call["to"], "to") if call.get("to") else None
        data_field = call.get("input", call.get("data"))
        data = _hex_bytes(data_field, "data") if data_field is not None else b""
        value = _quantity(call.get("value", 0), "value")
        cap = self.node.genesis.block_gas_limit
        limit = min(_quantity(call["gas"], "gas"), cap) if call.get("gas") is not None and gas is None else (gas or cap)
        return self.node.read(lambda e: e.simulate(sender, to, data, value, limit))

    def rpc_eth_call(self, params: Any) -> str:
        call, tag, _overrides = _params(params, 1, 3)
        self._head_only(tag)
        result = self._simulate(call)
        if not result.status:
            raise _reverted(result.output)
        return _h(result.output)

    def rpc_eth_estimateGas(self, params: Any) -> str:
        call, tag, _overrides = _params(params, 1, 3)
        self._head_only(tag)
        first = self._simulate(call, self.node.genesis.block_gas_limit)
        if not first.status:
            raise _reverted(first.output)
        # gas_used can be below what the call needs to run (refunds, the 63/64 rule): search up
        low, high = first.gas_used, self.node.genesis.block_gas_limit
        if self._simulate(call, low).status:
            return _q(low)
        while high - low > 1_000:
            middle = (low + high) // 2
            if self._simulate(call, middle).status:
                high = middle
            else:
                low = middle
        return _q(high)

    # -- transactions --

    def rpc_eth_sendRawTransaction(self, params: Any) -> str:
        (raw,) = _params(params, 1, 1)
        return _h(self.node.submit(_hex_bytes(raw, "transaction")))

    def rpc_eth_getTransactionByHash(self, params: Any) -> dict[str, Any] | None:
        (tx_hash,) = _params(params, 1, 1)
        stored = self.node.store.transaction(_hash(tx_hash))
        return _transaction_json(stored) if stored else None

    def rpc_eth_getTransactionReceipt(self, params: Any) -> dict[str, Any] | None:
        (tx_hash,) = _params(params, 1, 1)
        stored = self.node.store.transaction(_hash(tx_hash))
        return _receipt_json(stored) if stored else None

    def rpc_eth_getBlockByNumber(self, params: Any) -> dict[str, Any] | None:
        tag, full = _params(params, 1, 2)
        block = self.node.store.block_by_number(self._block_number(tag))
        return self._block_json(block, bool(full)) if block else None

    def rpc_eth_getBlockByHash(self, params: Any) -> dict[str, Any] | None:
        block_hash, full = _params(params, 1, 2)
        block = self.node.store.block_by_hash(_hash(block_hash, "block hash"))
        return self._block_json(block, bool(full)) if block else None

    def _block_json(self, block: Block, full: bool) -> dict[str, Any]:
        h = block.header
        transactions: list[Any] = [_h(t) for t in block.tx_hashes]
        if full:
            transactions = [_transaction_json(s) for s in self.node.store.receipts_of(h.number)]
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

    def rpc_eth_getLogs(self, params: Any) -> list[dict[str, Any]]:
        (query,) = _params(params, 1, 1)
        if not isinstance(query, dict):
            raise _invalid("the filter must be an object")
        if query.get("blockHash") is not None:
            block = self.node.store.block_by_hash(_hash(query["blockHash"], "blockHash"))
            if block is None:
                raise RpcError(-32000, "unknown block")
            first = last = block.number
        else:
            first = self._block_number(query.get("fromBlock"))
            last = self._block_number(query.get("toBlock"))
        if last - first > 100_000:
            raise RpcError(-32005, "query exceeds 100000 blocks; narrow the range")
        address = query.get("address")
        addresses: list[str] | None = None
        if address is not None:
            addresses = [_address(a) for a in (address if isinstance(address, list) else [address])]
        topics = query.get("topics") or []
        if not isinstance(topics, list) or len(topics) > 4:
            raise _invalid("topics must be an array of at most 4 positions")
        wanted: list[set[bytes] | None] = []
        for position in topics:
            if position is None:
                wanted.append(None)
            elif isinstance(position, list):
                wanted.append({_hash(t, "topic") for t in position} if position else None)
            else:
                wanted.append({_hash(position, "topic")})
        found = self.node.store.logs(first, last, addresses)
        return [_log_json(x) for x in found if _topics_match(x.log.topics, wanted)]

    # -- dev methods (as anvil, Hardhat and eth-tester offer them) --

    def rpc_evm_increaseTime(self, params: Any) -> str:
        (seconds,) = _params(params, 1, 1)
        try:
            return _q(self.node.increase_time(_quantity(seconds, "seconds")))
        except ValueError as exc:
            raise _invalid(str(exc)) from exc

    def rpc_evm_mine(self, params: Any) -> str:
        self.node.mine()
        return "0x0"


def _topics_match(topics: tuple[bytes, ...], wanted: list[set[bytes] | None]) -> bool:
    if len(wanted) > len(topics):
        return all(w is None for w in wanted[len(topics) :]) and _topics_match(topics, wanted[: len(topics)])
    return all(w is None or topics[i] in w for i, w in enumerate(wanted))


def _reverted(output: bytes) -> RpcError:
    message = "execution reverted"
    if output[:4] == ERROR_STRING_SELECTOR:
        with contextlib.suppress(Exception):  # a malformed reason string keeps the bare message
            message += ": " + str(decode(["string"], output[4:])[0])
    return RpcError(3, message, _h(output))


def _transaction_json(stored: StoredTransaction) -> dict[str, Any]:
    raw = stored.raw
    common = {
        "hash": _h(stored.tx_hash),
        "blockHash": _h(stored.block_hash),
        "blockNumber": _q(stored.block_number),
        "transactionIndex": _q(stored.index),
        "from": stored.sender,
    }
    if raw[0] == 2:
        chain_id, nonce, tip, max_fee, gas, to, value, data, _access, y, r, s = rlp.decode(raw[1:])
        return common | {
            "type": "0x2",
            "chainId": _q(_int(chain_id)),
            "nonce": _q(_int(nonce)),
            "maxPriorityFeePerGas": _q(_int(tip)),
            "maxFeePerGas": _q(_int(max_fee)),
            "gasPrice": _q(stored.effective_gas_price),
            "gas": _q(_int(gas)),
            "to": _h(to) if to else None,
            "value": _q(_int(value)),
            "input": _h(data),
            "accessList": [],
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


def _int(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _receipt_json(stored: StoredTransaction) -> dict[str, Any]:
    logs = [
        _log_json(StoredLog(stored.block_number, stored.block_hash, i, stored.tx_hash, stored.index, entry))
        for i, entry in stored.logs
    ]
    revert = {"revertReason": _h(stored.output)} if stored.status == 0 else {}  # as Besu reports it
    return revert | {
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
        "type": "0x2" if stored.raw[0] == 2 else "0x0",
    }


def _log_json(found: StoredLog) -> dict[str, Any]:
    return {
        "address": found.log.address,
        "topics": [_h(t) for t in found.log.topics],
        "data": _h(found.log.data),
        "blockNumber": _q(found.block_number),
        "blockHash": _h(found.block_hash),
        "transactionHash": _h(found.tx_hash),
        "transactionIndex": _q(found.tx_index),
        "logIndex": _q(found.log_index),
        "removed": False,
    }


def _error(request_id: Any, exc: RpcError) -> dict[str, Any]:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.data is not None:
        error["data"] = exc.data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _dump(answer: Any) -> bytes:
    return json.dumps(answer, separators=(",", ":")).encode()


class RpcServer:
    """The handler on a threaded HTTP server (POST /, ``application/json``).

    Args:
        node: the node to serve.
        host, port: where to listen (port 0 picks a free one; see :attr:`url`).
    """

    def __init__(self, node: Node, host: str = "127.0.0.1", port: int = 8545) -> None:
        handler = RpcHandler(node)

        class _Http(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def do_POST(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= MAX_BODY:
                    self._reply(413, _dump(_error(None, RpcError(-32600, f"request larger than {MAX_BODY} bytes"))))
                    self.close_connection = True
                    return
                answer = handler.handle(self.rfile.read(length))
                self._reply(200, answer or b"")

            def do_GET(self) -> None:
                self._reply(405, _dump(_error(None, RpcError(-32600, "use POST"))))

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(format, *args)

        self.handler = handler
        self.httpd = ThreadingHTTPServer((host, port), _Http)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="rpc", daemon=True)

    def start(self) -> RpcServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> RpcServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

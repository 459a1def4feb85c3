"""A web3 provider over an in-process eth-tester (py-evm backend) that speaks like a real node.

web3's own ``EthereumTesterProvider`` turns a revert into a Python exception whose
message is the ``repr`` of the revert bytes; real nodes (geth, anvil, Besu) answer a
JSON-RPC error ``{"code": 3, "message": "execution reverted", "data": "0x..."}``.
This provider answers the same way, so that one client decodes custom errors on
every chain. It also adds the ``evm_increaseTime``/``evm_mine``/``evm_snapshot``/
``evm_revert`` dev methods that anvil and Hardhat offer, so tests drive time the
same way on every chain.
"""

from __future__ import annotations

import ast
from typing import Any, cast

from eth_abi.abi import encode
from eth_tester import EthereumTester
from eth_tester.exceptions import TransactionFailed
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint, RPCResponse

from node.client.revert import ERROR_STRING_SELECTOR


def _revert_bytes(exc: TransactionFailed) -> bytes:
    """Recover raw revert data from the shapes eth-tester wraps it in."""
    arg: Any = exc.args[0] if exc.args else b""
    if isinstance(arg, Exception):
        arg = arg.args[0] if arg.args else b""
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        # py-evm's backend stringifies the EVMRevert: str(EVMRevert(b"..")) == "b'..'".
        if arg.startswith(("b'", 'b"')):
            try:
                value = ast.literal_eval(arg)
            except (ValueError, SyntaxError):
                value = None
            if isinstance(value, bytes):
                return value
        # An Error(string) reason the backend already decoded.
        return ERROR_STRING_SELECTOR + encode(["string"], [arg])
    return b""


class EthTesterProvider(EthereumTesterProvider):
    """eth-tester behind node-like JSON-RPC errors and dev methods."""

    def __init__(self, tester: EthereumTester) -> None:
        super().__init__(tester)
        self._tester = tester

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        request_id = self._current_request_id
        self._current_request_id += 1
        dev = self._dev_method(method, params)
        if dev is not None:
            return cast(RPCResponse, {"jsonrpc": "2.0", "id": request_id, "result": dev})
        namespace, _, endpoint = method.partition("_")
        assert self.api_endpoints is not None
        try:
            delegator = self.api_endpoints[namespace][endpoint]
        except KeyError:
            return self._error(request_id, -32601, f"the method {method} does not exist/is not available")
        try:
            result = delegator(self._tester, params)
        except TransactionFailed as exc:
            data = _revert_bytes(exc)
            return self._error(request_id, 3, "execution reverted", "0x" + data.hex())
        except NotImplementedError:
            return self._error(request_id, -32601, f"the method {method} is not implemented")
        return cast(RPCResponse, {"jsonrpc": "2.0", "id": request_id, "result": result})

    def _dev_method(self, method: str, params: Any) -> Any:
        if method == "evm_increaseTime":
            seconds = int(params[0], 16) if isinstance(params[0], str) else int(params[0])
            latest = self._tester.get_block_by_number("latest")["timestamp"]
            self._tester.time_travel(latest + seconds)
            return hex(seconds)
        if method == "evm_mine":
            self._tester.mine_blocks(1)
            return "0x0"
        if method == "evm_snapshot":
            return hex(self._tester.take_snapshot())
        if method == "evm_revert":
            snapshot = int(params[0], 16) if isinstance(params[0], str) else int(params[0])
            self._tester.revert_to_snapshot(snapshot)
            return True
        return None

    @staticmethod
    def _error(request_id: int, code: int, message: str, data: str | None = None) -> RPCResponse:
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        return cast(RPCResponse, {"jsonrpc": "2.0", "id": request_id, "error": error})

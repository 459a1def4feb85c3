"""Decode EVM revert data into the matching :class:`node.errors.ContractRevert`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from node.errors import REGISTRY_ERRORS, ContractRevert, Panic, ReasonRevert, UnknownRevert

ERROR_STRING_SELECTOR = keccak(text="Error(string)")[:4]
PANIC_SELECTOR = keccak(text="Panic(uint256)")[:4]


def _abi_type(entry: Mapping[str, Any]) -> str:
    if entry["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in entry["components"])
        return f"({inner}){entry['type'][5:]}"
    return str(entry["type"])


class RevertDecoder:
    """Maps 4-byte selectors of an ABI's custom errors to exception classes."""

    def __init__(self, abi: Iterable[Mapping[str, Any]], classes: Mapping[str, type[ContractRevert]] = REGISTRY_ERRORS):
        self._errors: dict[bytes, tuple[type[ContractRevert], list[str], list[str]]] = {}
        for entry in abi:
            if entry.get("type") != "error":
                continue
            types = [_abi_type(i) for i in entry["inputs"]]
            selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
            cls = classes.get(entry["name"], UnknownRevert)
            self._errors[selector] = (cls, [i["name"] for i in entry["inputs"]], types)

    def decode(self, data: bytes, tx_hash: str | None = None) -> ContractRevert:
        """Return the exception for ``data`` (never raises; unknown data -> UnknownRevert)."""
        selector, body = data[:4], data[4:]
        try:
            if selector == ERROR_STRING_SELECTOR:
                return ReasonRevert(data, tx_hash, reason=decode(["string"], body)[0])
            if selector == PANIC_SELECTOR:
                return Panic(data, tx_hash, code=decode(["uint256"], body)[0])
            if selector in self._errors:
                cls, names, types = self._errors[selector]
                values = decode(types, body)
                return cls(data, tx_hash, **{n: _normalize(v, t) for n, v, t in zip(names, values, types, strict=True)})
        except DecodingError:
            pass
        return UnknownRevert(data, tx_hash)


def _normalize(value: Any, abi_type: str) -> Any:
    if abi_type == "address":
        return to_checksum_address(value)
    return value


def revert_data_from(value: Any) -> bytes:
    """Revert data as bytes from what a web3 error carries (hex str, bytes or dict)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            return b""
    if isinstance(value, Mapping):  # some nodes nest it: {"data": "0x..."}
        return revert_data_from(value.get("data"))
    return b""

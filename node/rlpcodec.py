"""Strict RLP, fast enough for admission and for signing benchmark streams.

The ``rlp`` package decodes a transaction in about 20 µs of pure Python (sedes machinery,
a recursive payload consumer) and encodes one in about as long, as much as a quarter of
recovering its signature. Transactions are small lists of byte strings and integers (with
one nested list, the access list), so this codec walks the buffer with index arithmetic
only. :func:`decode` is exactly as strict as ``rlp.decode(data, strict=True)``: canonical
lengths only (a single byte below 0x80 is its own encoding; a payload under 56 bytes uses
the short form; long-form lengths have no leading zero and are at least 56), and the item
must span the whole input. Nesting is bounded (:data:`MAX_DEPTH`), so no input can recurse
deeply. :func:`encode` gives the bytes ``rlp.encode`` gives for byte strings, non-negative
integers (big-endian, no leading zero; 0 is the empty string) and lists of them.
"""

from __future__ import annotations

MAX_DEPTH = 16

RlpItem = bytes | list["RlpItem"]
Encodable = bytes | int | list["Encodable"]


class RlpError(ValueError):
    """Not one canonical RLP item spanning the whole input."""


def decode(data: bytes) -> RlpItem:
    """The item ``data`` encodes.

    Raises:
        RlpError: the encoding is truncated, has trailing bytes, is not canonical, or nests
            deeper than :data:`MAX_DEPTH`.
    """
    item, end = _item(data, 0, len(data), 0)
    if end != len(data):
        raise RlpError(f"{len(data) - end} trailing bytes after the item")
    return item


def _header(data: bytes, at: int, limit: int) -> tuple[bool, int, int]:
    """(is a list, payload start, payload end) of the item at ``at``, within ``data[:limit]``."""
    if at >= limit:
        raise RlpError("truncated: an item is missing")
    prefix = data[at]
    if prefix < 0x80:
        return False, at, at + 1
    if prefix < 0xB8 or 0xC0 <= prefix < 0xF8:
        is_list = prefix >= 0xC0
        start, size = at + 1, prefix - (0xC0 if is_list else 0x80)
        if not is_list and size == 1 and start < limit and data[start] < 0x80:
            raise RlpError("a single byte below 0x80 must be its own encoding")
    else:
        is_list = prefix >= 0xF8
        width = prefix - (0xF7 if is_list else 0xB7)
        start = at + 1 + width
        if start > limit:
            raise RlpError("truncated length")
        if data[at + 1] == 0:
            raise RlpError("a length with a leading zero")
        size = int.from_bytes(data[at + 1 : start], "big")
        if size < 56:
            raise RlpError("a length under 56 in the long form")
    end = start + size
    if end > limit:
        raise RlpError("truncated payload")
    return is_list, start, end


def _item(data: bytes, at: int, limit: int, depth: int) -> tuple[RlpItem, int]:
    is_list, start, end = _header(data, at, limit)
    if not is_list:
        return data[start:end], end
    if depth >= MAX_DEPTH:
        raise RlpError(f"lists nested deeper than {MAX_DEPTH}")
    items: list[RlpItem] = []
    at = start
    while at < end:
        prefix = data[at]
        if prefix < 0x80:  # the common short cases inline (no call per field)
            items.append(data[at : at + 1])
            at += 1
        elif prefix < 0xB8:
            stop = at + 1 + prefix - 0x80
            if stop > end:
                raise RlpError("truncated payload")
            if stop == at + 2 and data[at + 1] < 0x80:
                raise RlpError("a single byte below 0x80 must be its own encoding")
            items.append(data[at + 1 : stop])
            at = stop
        else:
            item, at = _item(data, at, end, depth + 1)
            items.append(item)
    return items, end


def encode(item: Encodable) -> bytes:
    """The canonical RLP encoding of ``item``.

    Raises:
        ValueError: a negative integer, or a type RLP does not encode.
    """
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _length(len(item), 0x80) + item
    if isinstance(item, int) and not isinstance(item, bool):
        if item < 0:
            raise ValueError(f"RLP encodes non-negative integers, not {item}")
        return encode(item.to_bytes((item.bit_length() + 7) // 8, "big"))
    if isinstance(item, list):
        payload = b"".join([encode(x) for x in item])
        return _length(len(payload), 0xC0) + payload
    raise ValueError(f"RLP does not encode {type(item).__name__}")


def _length(size: int, offset: int) -> bytes:
    if size < 56:
        return bytes([offset + size])
    width = (size.bit_length() + 7) // 8
    return bytes([offset + 55 + width]) + size.to_bytes(width, "big")

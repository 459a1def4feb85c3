"""Wegman-Carter message authentication keyed from one-time pool bits.

``tag = (poly_r(C) + s) mod p`` with ``p = 2^127 - 1``: ``poly_r`` evaluates the
message, cut into 15-byte blocks plus a length block, as a polynomial at ``r``.
``r`` and ``s`` are fresh pool bits for every message, so a forgery succeeds with
probability at most ``(blocks + 1) / p`` whatever Eve's computing power. (XOR with a
pad alone is malleable; this tag is what makes the pad tamper-evident.)
"""

from __future__ import annotations

import hmac

import numpy as np

P = (1 << 127) - 1
KEY_BITS = 2 * 128  # r and s, 128 pool bits each (reduced mod p)
TAG_BYTES = 16
_BLOCK = 15


def _int(bits: np.ndarray) -> int:
    return int.from_bytes(np.packbits(bits.astype(np.uint8)).tobytes(), "big")


def _poly(r: int, message: bytes) -> int:
    acc = 0
    for i in range(0, len(message), _BLOCK):
        block = int.from_bytes(message[i : i + _BLOCK] + b"\x01", "big")  # padded, never zero
        acc = (acc + block) * r % P
    return (acc + len(message)) * r % P


def tag(key_bits: np.ndarray, message: bytes) -> bytes:
    """The 16-byte tag of ``message`` under 256 one-time key bits."""
    if key_bits.size != KEY_BITS:
        raise ValueError(f"a MAC key is {KEY_BITS} bits, got {key_bits.size}")
    r, s = _int(key_bits[:128]) % P, _int(key_bits[128:]) % P
    return ((_poly(r, message) + s) % P).to_bytes(TAG_BYTES, "big")


def verify(key_bits: np.ndarray, message: bytes, candidate: bytes) -> bool:
    return hmac.compare_digest(tag(key_bits, message), candidate)

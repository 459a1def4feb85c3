"""keccak-256 through safe-pysha3's C code: about 5x faster than eth-hash's default backend.

The node hashes every transaction several times (its hash, its signing payload, the
sender's address, Merkle leaves), so this is on the hot path.
"""

from __future__ import annotations

import sha3  # type: ignore[import-untyped]  # safe-pysha3 ships no type information
from coincurve import PublicKey


def keccak(data: bytes) -> bytes:
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


def address_of_public(public: PublicKey) -> str:
    """The Ethereum address of a secp256k1 public key (lower-case hex)."""
    return "0x" + keccak(public.format(compressed=False)[1:])[-20:].hex()

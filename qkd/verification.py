"""Error verification: both sides hash their reconciled block; the hashes must match.

The hash is the one committed on chain, ``keccak256(session_id || block)`` with the
block packed MSB-first, so verification and the on-chain commitment are one and the
same 256 bits, charged once to the leakage budget.
"""

from __future__ import annotations

import numpy as np
from eth_utils.crypto import keccak


def commitment(session_id: bytes, block: np.ndarray) -> bytes:
    """``keccak256(session_id || packbits(block))``: 32 bytes."""
    return keccak(session_id + np.packbits(block.astype(np.uint8)).tobytes())

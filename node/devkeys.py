"""The dev chain's well-known keys (never for a real chain: anyone can sign with them).

Kept apart from :mod:`node.client.chain` so that ``qkdchain node`` starts without
importing eth_account and web3 (about 1.9 s of a node's start-up).
"""

from __future__ import annotations

from node.hashing import keccak

DEV_FAUCET_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
"""The first of the well-known dev accounts of anvil and Hardhat ("test test ... junk")."""

DEV_VALIDATOR_KEY = keccak(b"qkdchain dev validator")
"""The single validator's key of a dev chain made without one."""

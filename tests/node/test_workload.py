"""The benchmark's hand-laid commitKey calldata is what eth-abi encodes."""

from __future__ import annotations

from eth_utils.crypto import keccak

from node.benchmark import COMMIT_KEY, _call, _commit_key


def test_commit_key_calldata_matches_eth_abi() -> None:
    for i in range(20):
        session = keccak(text=f"s{i}")
        peer = "0x" + keccak(text=f"p{i}")[:20].hex()
        assert _commit_key(session, peer) == _call(COMMIT_KEY, session, peer, keccak(session), 1024, 3600)

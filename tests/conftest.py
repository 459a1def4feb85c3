"""Chains every shared suite runs on. Add a chain here and every suite runs on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from node.client.anvil import AnvilProcess
from node.client.chain import Chain, EthTesterChain, NodeChain
from node.launcher import NetworkChain

CHAINS = ["eth-tester", "node", "anvil", "network"]


@pytest.fixture(scope="session", params=CHAINS)
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """A running chain, shared by the tests of one session (each test deploys anew)."""
    if request.param == "eth-tester":
        yield EthTesterChain()
    elif request.param == "node":
        node = NodeChain()
        yield node
        node.close()
    elif request.param == "anvil":
        with AnvilProcess() as anvil:
            yield anvil
    elif request.param == "network":  # 4 validator processes, QBFT over libp2p
        network = NetworkChain(validators=4, round_timeout_s=2.0)
        yield network
        network.close()
    else:  # pragma: no cover - a typo in CHAINS
        raise ValueError(request.param)

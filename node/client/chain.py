"""Chain handles: one typed seam over every Ethereum chain the registry runs on.

A :class:`Chain` is a connected ``Web3`` plus the few things a dev chain must do
that JSON-RPC does not standardise: fund accounts and move time. The embedded
reference is eth-tester with the py-evm backend; :class:`RpcChain` is any node
reached over HTTP JSON-RPC (anvil, our own node, Besu).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from coincurve import PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount
from requests.exceptions import RequestException
from web3 import HTTPProvider, Web3

from node.client.signer import Signer
from node.devkeys import DEV_FAUCET_KEY, DEV_VALIDATOR_KEY
from node.errors import ChainError, ChainUnavailable, TransactionError


@runtime_checkable
class Chain(Protocol):
    """What tests, the devnet and benchmarks need from a chain."""

    name: str
    w3: Web3

    def fund(self, address: str, wei: int) -> None:
        """Send ``wei`` to ``address`` from the chain's faucet account.

        Raises:
            TransactionError: the faucet transfer failed.
        """

    def advance_time(self, seconds: int) -> None:
        """Move the chain clock forward by ``seconds`` and mine a block.

        Raises:
            ChainError: the chain has no dev method to move time.
        """

    def close(self) -> None:
        """Release the chain's resources (idempotent)."""


class _FaucetChain:
    """Shared behaviour: a faucet key that funds accounts with signed transfers."""

    name: str
    w3: Web3

    def __init__(self, faucet: LocalAccount) -> None:
        self._faucet = Signer(self.w3, faucet)

    @property
    def faucet(self) -> LocalAccount:
        return self._faucet.account

    def fund(self, address: str, wei: int) -> None:
        receipt = self._faucet.send({"to": Web3.to_checksum_address(address), "value": wei, "gas": 21000})
        if receipt["status"] != 1:
            raise TransactionError(f"faucet transfer to {address} failed")

    def advance_time(self, seconds: int) -> None:
        if seconds < 0:
            raise ChainError("time only moves forward")
        self._dev("evm_increaseTime", [seconds])
        self._dev("evm_mine", [])

    def _dev(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise ChainError(f"{self.name} does not support {method}: {response['error']}")
        return response.get("result")

    def close(self) -> None:
        pass


class EthTesterChain(_FaucetChain):
    """The embedded reference chain: eth-tester + py-evm, auto-mining one block per tx."""

    def __init__(self) -> None:
        # imported here: py-evm and py_ecc raise the recursion limit process-wide to 100,000,
        # which no node process should inherit (a deep JSON body would then overflow the C stack)
        from eth_tester import EthereumTester, PyEVMBackend

        from node.client.provider import EthTesterProvider

        self.name = "eth-tester"
        self.tester = EthereumTester(PyEVMBackend())
        self.w3 = Web3(EthTesterProvider(self.tester))
        faucet_key = self.tester.backend.account_keys[0].to_bytes()
        super().__init__(Account.from_key(faucet_key))


class NodeChain(_FaucetChain):
    """Our node, in this process, served over JSON-RPC on loopback; web3 talks HTTP to it.

    Args:
        data_dir: the node's data directory (a fresh temporary one by default).
        admin: the genesis admin (Trusted Authority); its first deployment is the
            permissioning registry. ``None`` with ``permissioned=False`` gives an open dev chain.
        permissioned: enforce on-chain account permissioning.
        workers: processes for signature recovery.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        admin: str | None = None,
        permissioned: bool = False,
        workers: int | None = 0,
        chain_id: int = 1337,
    ) -> None:
        from node.admission import Genesis
        from node.core import Node, address_of
        from node.server import RpcServer

        self.name = "node"
        faucet = Account.from_key(DEV_FAUCET_KEY)
        validator = address_of(PrivateKey(DEV_VALIDATOR_KEY))
        genesis = Genesis(
            chain_id=chain_id,
            alloc={faucet.address.lower(): 10**30},
            validators=(validator,),
            admin=admin.lower() if admin else None,
            operators=(faucet.address.lower(), validator),
            permissioned=permissioned,
            timestamp=int(time.time()),
        )
        self._own_dir = data_dir is None  # a temp dir made here goes with the chain
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="qkdchain-node-"))
        self.node = Node(self.data_dir, genesis, DEV_VALIDATOR_KEY, workers=workers)
        self.server = RpcServer(self.node, port=0, dev=True, cors_origins=("*",)).start()
        self.url = self.server.url
        self.w3 = Web3(HTTPProvider(self.url, request_kwargs={"timeout": 60}))
        super().__init__(faucet)

    def close(self) -> None:
        self.server.close()
        self.node.close()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class RpcChain(_FaucetChain):
    """Any Ethereum node over HTTP JSON-RPC.

    Args:
        url: the endpoint, e.g. ``http://127.0.0.1:8545``.
        faucet_key: a funded private key; defaults to the well-known dev account.
        name: a label for reports.

    Raises:
        ChainUnavailable: nothing answers at ``url``.
    """

    def __init__(self, url: str, faucet_key: str = DEV_FAUCET_KEY, name: str = "rpc", timeout_s: float = 30.0) -> None:
        self.name = name
        self.url = url
        self.w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout_s}))
        try:
            self.chain_id = self.w3.eth.chain_id
        except (RequestException, OSError) as exc:
            raise ChainUnavailable(f"no Ethereum JSON-RPC endpoint answers at {url}: {exc}") from exc
        super().__init__(Account.from_key(faucet_key))

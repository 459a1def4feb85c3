"""Vehicles and RSUs as agents: an account, a pseudonym credential, a key pool, a verifier."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3

from node.client.chain import Chain
from node.client.registry import KeyRegistry
from node.types import PseudonymId, TxResult
from qkd.keypool import KeyPool
from vehicles.envelope import Envelope
from vehicles.ibc import Credential, RegistryRevocationList, TrustedAuthority, Verifier
from vehicles.ibc.curve import RandomSource
from vehicles.messaging import open_envelope, seal

Role = Literal["vehicle", "rsu"]
FUNDING_WEI = 10**20


@dataclass
class Agent:
    name: str
    role: Role
    account: LocalAccount
    registry: KeyRegistry  # bound to ``account``: every write is this agent's own signed transaction
    credential: Credential
    pool: KeyPool
    revocations: RegistryRevocationList
    verifier: Verifier
    rng: RandomSource | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def pseudonym_id(self) -> PseudonymId:
        return PseudonymId(self.credential.pseudonym.pseudonym_id)

    def send(self, peer: str, plaintext: bytes, now_ms: int) -> tuple[Envelope, TxResult]:
        """Seal ``plaintext`` for ``peer`` with never-used pad bits and record it on chain."""
        return seal(self.name, peer, plaintext, self.pool, self.registry, self.credential, now_ms, self.rng)

    def receive(self, envelope: Envelope) -> bytes:
        """Refresh revocations from the chain, then check and decrypt.

        Raises:
            vehicles.errors.MessageRefused: a subclass naming the check that failed.
        """
        self.revocations.sync()
        return open_envelope(envelope, self.pool, self.registry, self.verifier, self.address)


def onboard(
    name: str,
    role: Role,
    account: LocalAccount,
    ta: TrustedAuthority,
    ta_registry: KeyRegistry,
    chain: Chain,
    pool_dir: Path,
    clock_ms: Callable[[], int],
    rng: RandomSource | None = None,
    record: Callable[[str, TxResult], None] | None = None,
    w3: Web3 | None = None,
) -> Agent:
    """Fund the account, give it its role on chain, issue and register its pseudonym.

    ``w3``: the node the agent talks to (on a validator network, any node's endpoint).
    """
    note = record or (lambda _fn, _r: None)
    chain.fund(account.address, FUNDING_WEI)
    if role == "rsu":
        note("addValidator", ta_registry.add_validator(account.address))
    else:
        note("addVehicle", ta_registry.add_vehicle(account.address))
    credential = ta.issue(keccak(text=f"long-term-identity:{name}"))
    note(
        "registerIdentity",
        ta_registry.register_identity(PseudonymId(credential.pseudonym.pseudonym_id), account.address),
    )
    registry = ta_registry.connect(account, w3)
    revocations = RegistryRevocationList(registry)
    verifier = Verifier(ta.public_key, revocations, clock_ms=clock_ms, rng=rng)
    return Agent(name, role, account, registry, credential, KeyPool(pool_dir / name), revocations, verifier, rng)

"""The devnet demo: a TA, RSUs and vehicles exercising the KeyRegistry on a chain.

This first version drives the ledger side of "the path of one key" (commit,
confirm, pad records, revocation) with key material drawn from a seeded RNG; the
QKD and agent issues replace that with real BB84 sessions and messaging.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from node.chain import Chain
from node.errors import ContractRevert
from node.metrics import Percentiles
from node.registry import KeyRegistry
from node.types import KeyHash, PseudonymId, SessionId, SessionState, TxResult

FUNDING_WEI = 10**20


class DevnetConfigError(ValueError):
    """A devnet option is out of range."""


@dataclass(frozen=True)
class DevnetConfig:
    vehicles: int = 4
    rsus: int = 2
    seed: int = 0
    messages: int = 3
    key_bits: int = 4096
    message_bits: int = 256
    ttl_s: int = 3600

    def __post_init__(self) -> None:
        if self.vehicles < 3:
            raise DevnetConfigError("need at least 3 vehicles (one is revoked, one sees a mismatch)")
        if self.rsus < 1:
            raise DevnetConfigError("need at least one RSU")
        if self.messages < 1 or self.message_bits < 1:
            raise DevnetConfigError("messages and message bits must be positive")
        if self.messages * self.message_bits > self.key_bits:
            raise DevnetConfigError(
                f"{self.messages} messages of {self.message_bits} bits do not fit a {self.key_bits}-bit key"
            )


@dataclass(frozen=True)
class TxRecord:
    function: str
    actor: str
    latency_ms: float
    gas_used: int
    block: int


@dataclass(frozen=True)
class Refusal:
    action: str
    actor: str
    error: str
    detail: str


@dataclass
class DevnetReport:
    chain: str
    registry: str
    config: DevnetConfig
    transactions: list[TxRecord] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    sessions: Counter[str] = field(default_factory=Counter)
    wall_time_s: float = 0.0

    def latency(self) -> Percentiles:
        return Percentiles.of([t.latency_ms for t in self.transactions])

    def by_function(self) -> dict[str, tuple[int, float, int]]:
        """function -> (count, mean latency ms, mean gas)."""
        groups: dict[str, list[TxRecord]] = {}
        for t in self.transactions:
            groups.setdefault(t.function, []).append(t)
        return {
            name: (len(ts), sum(t.latency_ms for t in ts) / len(ts), sum(t.gas_used for t in ts) // len(ts))
            for name, ts in groups.items()
        }

    def to_json(self) -> dict[str, Any]:
        lat = self.latency()
        return {
            "chain": self.chain,
            "registry": self.registry,
            "config": asdict(self.config),
            "wall_time_s": round(self.wall_time_s, 3),
            "transactions": len(self.transactions),
            "latency_ms": lat.to_json(),
            "by_function": {
                k: {"count": c, "mean_latency_ms": round(ms, 3), "mean_gas": g}
                for k, (c, ms, g) in self.by_function().items()
            },
            "sessions": dict(self.sessions),
            "refused": [asdict(r) for r in self.refusals],
        }


class _Run:
    def __init__(self, chain: Chain, config: DevnetConfig, progress: Callable[[str], None]) -> None:
        self.chain = chain
        self.config = config
        self.progress = progress
        self.rng = np.random.default_rng(config.seed)

    def account(self, label: str) -> LocalAccount:
        account: LocalAccount = Account.from_key(keccak(text=f"qkdchain-devnet:{self.config.seed}:{label}"))
        return account

    def record(self, report: DevnetReport, function: str, actor: str, result: TxResult) -> TxResult:
        report.transactions.append(TxRecord(function, actor, result.latency_ms, result.gas_used, result.block_number))
        return result

    def expect_refusal(self, report: DevnetReport, action: str, actor: str, attempt: Callable[[], object]) -> None:
        try:
            attempt()
        except ContractRevert as exc:
            report.refusals.append(Refusal(action, actor, type(exc).__name__, str(exc)))
            return
        raise AssertionError(f"{action} by {actor} was accepted; the registry should have refused it")


def run_devnet(
    chain: Chain, config: DevnetConfig | None = None, progress: Callable[[str], None] | None = None
) -> DevnetReport:
    """Deploy a registry on ``chain`` and run the demo scenario.

    Raises:
        AssertionError: an attack the registry must refuse was accepted.
        node.errors.NodeError: the chain failed.
    """
    config = config or DevnetConfig()
    run = _Run(chain, config, progress or (lambda _msg: None))
    started = time.perf_counter()

    ta_acct = run.account("ta")
    rsu_accts = [run.account(f"rsu{i}") for i in range(config.rsus)]
    veh_accts = [run.account(f"vehicle{i}") for i in range(config.vehicles)]
    outsider_acct = run.account("outsider")
    run.progress(f"funding {2 + config.rsus + config.vehicles} accounts on {chain.name}")
    for acct in (ta_acct, *rsu_accts, *veh_accts, outsider_acct):
        chain.fund(acct.address, FUNDING_WEI)

    run.progress("TA deploys the KeyRegistry")
    ta = KeyRegistry.deploy(chain.w3, ta_acct)
    report = DevnetReport(chain=chain.name, registry=ta.address, config=config)
    assert ta.deployment is not None
    run.record(report, "deploy", "TA", ta.deployment)

    run.progress("TA onboards RSUs and vehicles")
    rsus = [ta.connect(a) for a in rsu_accts]
    vehicles = [ta.connect(a) for a in veh_accts]
    for i, a in enumerate(rsu_accts):
        run.record(report, "addValidator", "TA", ta.add_validator(a.address))
        run.record(report, "registerIdentity", "TA", ta.register_identity(_pseudonym(config, f"rsu{i}"), a.address))
    for i, a in enumerate(veh_accts):
        run.record(report, "addVehicle", "TA", ta.add_vehicle(a.address))
        run.record(report, "registerIdentity", "TA", ta.register_identity(_pseudonym(config, f"v{i}"), a.address))

    agreed: list[tuple[int, SessionId]] = []
    mismatch_at = config.vehicles - 1
    for i, vehicle in enumerate(vehicles):
        j = i % config.rsus
        session = SessionId(keccak(text=f"session:{config.seed}:{i}"))
        block = run.rng.integers(0, 2, config.key_bits, dtype=np.uint8)
        key_hash = KeyHash(keccak(session + np.packbits(block).tobytes()))
        run.progress(f"vehicle{i} <-> rsu{j}: commit and confirm a {config.key_bits}-bit key")
        run.record(
            report,
            "commitKey",
            f"vehicle{i}",
            vehicle.commit_key(session, rsu_accts[j].address, key_hash, config.key_bits, config.ttl_s),
        )
        confirm_hash = key_hash
        if i == mismatch_at:  # the RSU's reconciled block differs: the ledger must say so
            block[0] ^= 1
            confirm_hash = KeyHash(keccak(session + np.packbits(block).tobytes()))
        result = run.record(report, "confirmKey", f"rsu{j}", rsus[j].confirm_key(session, confirm_hash))
        state = SessionState(result.event("KeyConfirmed").args["state"])
        report.sessions[state.name.lower()] += 1
        if state is SessionState.AGREED:
            agreed.append((i, session))

    for i, session in agreed:
        run.progress(f"vehicle{i} records {config.messages} one-time-pad messages")
        for m in range(config.messages):
            ciphertext_hash = keccak(text=f"ciphertext:{config.seed}:{i}:{m}")
            offset = m * config.message_bits
            result = vehicles[i].record_message(session, ciphertext_hash, offset, config.message_bits)
            run.record(report, "recordMessage", f"vehicle{i}", result)

    run.progress("attacks: pad reuse, revoked vehicle, outsider")
    i0, s0 = agreed[0]
    run.expect_refusal(
        report,
        "reuse pad bits at offset 0",
        f"vehicle{i0}",
        lambda: vehicles[i0].record_message(s0, keccak(text="replay"), 0, config.message_bits),
    )
    revoked = 1
    run.record(
        report, "revokeIdentity", "TA", ta.revoke_identity(_pseudonym(config, f"v{revoked}"), "devnet: compromised")
    )
    run.expect_refusal(
        report,
        "commit a key after revocation",
        f"vehicle{revoked}",
        lambda: vehicles[revoked].commit_key(
            SessionId(keccak(text="after-revocation")), rsu_accts[0].address, KeyHash(bytes(32)), 256, 60
        ),
    )
    run.expect_refusal(
        report,
        "commit a key without membership",
        "outsider",
        lambda: ta.connect(outsider_acct).commit_key(
            SessionId(keccak(text="outsider")), rsu_accts[0].address, KeyHash(bytes(32)), 256, 60
        ),
    )
    report.wall_time_s = time.perf_counter() - started
    return report


def _pseudonym(config: DevnetConfig, label: str) -> PseudonymId:
    return PseudonymId(keccak(text=f"pseudonym:{config.seed}:{label}"))

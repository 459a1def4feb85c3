"""The whole path of a key, end to end, on the embedded chain and on anvil."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from node.client.anvil import AnvilProcess
from node.client.chain import EthTesterChain
from node.client.registry import KeyRegistry
from node.errors import AccountRevoked, PadOffsetMismatch
from node.types import SessionId
from qkd.keypool import KeyPool
from qkd.session import SessionConfig
from vehicles.agent import Agent, Role, onboard
from vehicles.errors import MessageRefused
from vehicles.ibc import TrustedAuthority
from vehicles.ibc.curve import SeededRng
from vehicles.keysession import establish_key
from vehicles.scenario import ScenarioConfig, run_on_network, run_scenario

CONFIG = ScenarioConfig(vehicles=4, rsus=2, eve_share=0.25, messages=2, seed=3)


def _outcomes(report: dict[str, Any]) -> dict[str, Any]:
    keep = ("sessions", "abort_reasons", "session_qber", "messages", "attacks", "key_bits", "transactions")
    return {k: report[k] for k in keep}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_scenario(EthTesterChain(), CONFIG, tmp_path_factory.mktemp("pools")).to_json()


def test_every_attack_is_caught_by_the_right_check(embedded: dict[str, Any]) -> None:
    observed = {a["attack"]: a["observed"] for a in embedded["attacks"]}
    assert observed == {
        "ciphertext tampered in transit": "ciphertext_mismatch",
        "delivered message replayed": "replayed",
        "record pad bits at an used offset": "contract:PadOffsetMismatch",
        "another vehicle named as sender, its unused pad claimed": "sender_not_party",
        "genuine message after the forgery": "delivered",
        "message from a vehicle revoked since": "revoked",
        "revoked vehicle records a message": "contract:AccountRevoked",
    }
    assert embedded["messages"]["refused"] == {
        "ciphertext_mismatch": 1,
        "replayed": 1,
        "sender_not_party": 1,
        "contract:PadOffsetMismatch": 1,
        "revoked": 1,
        "contract:AccountRevoked": 1,
    }


def test_tapped_link_aborts_and_honest_links_agree(embedded: dict[str, Any]) -> None:
    assert embedded["abort_reasons"] == {"qber_above_threshold": 1}
    tapped = [s for s in embedded["session_qber"] if s["outcome"] == "aborted"]
    assert len(tapped) == 1 and tapped[0]["qber"] > 0.2
    assert embedded["sessions"]["agreed"] >= 3 and embedded["sessions"]["mismatch"] == 0
    # 3 honest links x 2 messages and the genuine one after the forgery, all delivered
    assert embedded["messages"]["delivered"] == 7
    assert 0 < embedded["key_bits"]["consumed"] < embedded["key_bits"]["produced"]


@pytest.mark.anvil
def test_same_outcomes_on_anvil(embedded: dict[str, Any], tmp_path: Path) -> None:
    with AnvilProcess() as anvil:
        on_anvil = run_scenario(anvil, CONFIG, tmp_path).to_json()
    assert on_anvil["chain"] == "anvil"
    assert _outcomes(on_anvil) == _outcomes(embedded)


@pytest.mark.slow
def test_same_outcomes_on_a_four_validator_network(embedded: dict[str, Any], tmp_path: Path) -> None:
    """``qkdchain devnet --validators 4``: RSUs are validator processes, agents spread over them."""
    on_network = run_on_network(CONFIG, validators=4, data_dir=tmp_path).to_json()
    assert on_network["chain"] == "network-4"
    assert _outcomes(on_network) == _outcomes(embedded)


@dataclass
class _Pair:
    chain: EthTesterChain
    registry: KeyRegistry
    car: Agent
    rsu: Agent
    clock: Callable[[], int]
    rng: SeededRng


def _pair(tmp_path: Path, label: str, seed: int) -> _Pair:
    """A fresh chain and registry with one vehicle and one RSU that share an agreed key."""
    chain = EthTesterChain()
    rng = SeededRng(seed)
    clock = iter(range(1_800_000_000_000, 1_900_000_000_000, 10)).__next__
    ta_account = Account.from_key(keccak(text=f"{label}:ta"))
    chain.fund(ta_account.address, 10**20)
    registry = KeyRegistry.deploy(chain.w3, ta_account)
    ta = TrustedAuthority(rng=rng)

    def agent(name: str, role: Role) -> Agent:
        acct = Account.from_key(keccak(text=f"{label}:{name}"))
        return onboard(name, role, acct, ta, registry, chain, tmp_path, clock, rng)

    car, rsu = agent("car", "vehicle"), agent("rsu", "rsu")
    config = SessionConfig(seed=seed, target_bits=2048)
    assert establish_key(car, rsu, config, keccak(text=f"{label}:session"), 3600).outcome == "agreed"
    return _Pair(chain, registry, car, rsu, clock, rng)


def test_pad_bits_never_reused_across_an_agent_restart(tmp_path: Path) -> None:
    p = _pair(tmp_path, "restart", 5)
    car, rsu, clock = p.car, p.rsu, p.clock
    first, _ = car.send("rsu", b"hello RSU", clock())
    assert rsu.receive(first) == b"hello RSU"

    # the car restarts: a new agent object over the same pool directory
    registry_again = KeyRegistry(
        p.chain.w3, p.registry.address, car.account, deployed_at_block=p.registry.deployed_at_block
    )
    car_again = Agent(
        car.name,
        car.role,
        car.account,
        registry_again,
        car.credential,
        KeyPool(tmp_path / "car"),
        car.revocations,
        car.verifier,
        p.rng,
    )
    second, _ = car_again.send("rsu", b"after restart", clock())
    assert second.header.offset >= first.header.offset + first.header.bits
    assert rsu.receive(second) == b"after restart"
    # forcing the old offset is refused by the chain and by the receiver
    with pytest.raises(PadOffsetMismatch):
        car_again.registry.record_message(
            SessionId(first.header.session_id), keccak(b"x"), first.header.offset, first.header.bits
        )
    with pytest.raises(MessageRefused):
        rsu.receive(replace(first, signed=second.signed))


def test_revoked_sender_cannot_record(tmp_path: Path) -> None:
    p = _pair(tmp_path, "revoked", 6)
    p.registry.revoke_identity(p.car.pseudonym_id, "test")
    before = p.car.pool.unused_bits("rsu")
    with pytest.raises(AccountRevoked):
        p.car.send("rsu", b"x" * 8, p.clock())
    assert p.car.pool.unused_bits("rsu") < before  # the burnt pad bits are not handed out again

"""The whole path of a key, end to end, on the embedded chain and on anvil."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from node.anvil import AnvilProcess
from node.chain import EthTesterChain
from node.errors import AccountRevoked, PadOffsetMismatch
from node.registry import KeyRegistry
from node.types import SessionId
from qkd.bb84 import SourceConfig
from qkd.session import SessionConfig
from vehicles.agent import onboard
from vehicles.ibc import TrustedAuthority
from vehicles.ibc.curve import SeededRng
from vehicles.keysession import establish_key
from vehicles.messaging import MessageRefused
from vehicles.scenario import ScenarioConfig, run_scenario

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
        "ciphertext tampered in transit": "mac_invalid",
        "delivered message replayed": "replayed",
        "record pad bits at an used offset": "contract:PadOffsetMismatch",
        "message from a vehicle revoked since": "revoked",
        "revoked vehicle records a message": "contract:AccountRevoked",
    }
    assert embedded["messages"]["refused"] == {
        "mac_invalid": 1,
        "replayed": 1,
        "contract:PadOffsetMismatch": 1,
        "revoked": 1,
        "contract:AccountRevoked": 1,
    }


def test_tapped_link_aborts_and_honest_links_agree(embedded: dict[str, Any]) -> None:
    assert embedded["abort_reasons"] == {"qber_above_threshold": 1}
    tapped = [s for s in embedded["session_qber"] if s["outcome"] == "aborted"]
    assert len(tapped) == 1 and tapped[0]["qber"] > 0.2
    assert embedded["sessions"]["agreed"] >= 3 and embedded["sessions"]["mismatch"] == 0
    # 3 honest links x 2 messages, all delivered
    assert embedded["messages"]["delivered"] == 6
    assert 0 < embedded["key_bits"]["consumed"] < embedded["key_bits"]["produced"]


@pytest.mark.anvil
def test_same_outcomes_on_anvil(embedded: dict[str, Any], tmp_path: Path) -> None:
    with AnvilProcess() as anvil:
        on_anvil = run_scenario(anvil, CONFIG, tmp_path).to_json()
    assert on_anvil["chain"] == "anvil"
    assert _outcomes(on_anvil) == _outcomes(embedded)


def test_pad_bits_never_reused_across_an_agent_restart(tmp_path: Path) -> None:
    chain = EthTesterChain()
    rng = SeededRng(1)
    clock = iter(range(1_800_000_000_000, 1_900_000_000_000, 10)).__next__
    ta_account = Account.from_key(keccak(text="restart:ta"))
    chain.fund(ta_account.address, 10**20)
    registry = KeyRegistry.deploy(chain.w3, ta_account)
    ta = TrustedAuthority(rng=rng)
    accounts = {n: Account.from_key(keccak(text=f"restart:{n}")) for n in ("car", "rsu")}

    def agent(name: str, role: str) -> Any:
        return onboard(name, role, accounts[name], ta, registry, chain, tmp_path, clock, rng)  # type: ignore[arg-type]

    car, rsu = agent("car", "vehicle"), agent("rsu", "rsu")
    config = SessionConfig(pulses=2_000_000, source=SourceConfig(decoy=True), seed=5)
    assert establish_key(car, rsu, config, keccak(text="s1"), 3600).outcome == "agreed"
    first, _ = car.send("rsu", b"hello RSU", clock())
    assert rsu.receive(first) == b"hello RSU"

    # the car restarts: a new agent object over the same pool directory
    registry_again = KeyRegistry(
        chain.w3, registry.address, accounts["car"], deployed_at_block=registry.deployed_at_block
    )
    car_again = type(car)(
        car.name,
        car.role,
        car.account,
        registry_again,
        car.credential,
        type(car.pool)(tmp_path / "car"),
        car.revocations,
        car.verifier,
        rng,
    )
    second, _ = car_again.send("rsu", b"after restart", clock())
    assert second.offset >= first.offset + first.bits
    assert rsu.receive(second) == b"after restart"
    # forcing the old offset is refused by the chain and by the receiver
    with pytest.raises(PadOffsetMismatch):
        car_again.registry.record_message(SessionId(first.session_id), keccak(b"x"), first.offset, first.bits)
    forged = type(first)(**{**first.__dict__, "signed": second.signed})
    with pytest.raises(MessageRefused):
        rsu.receive(forged)


def test_revoked_sender_cannot_record(tmp_path: Path) -> None:
    chain = EthTesterChain()
    rng = SeededRng(2)
    clock = iter(range(1_800_000_000_000, 1_900_000_000_000, 10)).__next__
    ta_account = Account.from_key(keccak(text="rev:ta"))
    chain.fund(ta_account.address, 10**20)
    registry = KeyRegistry.deploy(chain.w3, ta_account)
    ta = TrustedAuthority(rng=rng)
    car = onboard("car", "vehicle", Account.from_key(keccak(text="rev:car")), ta, registry, chain, tmp_path, clock, rng)
    rsu = onboard("rsu", "rsu", Account.from_key(keccak(text="rev:rsu")), ta, registry, chain, tmp_path, clock, rng)
    config = SessionConfig(pulses=2_000_000, source=SourceConfig(decoy=True), seed=6)
    assert establish_key(car, rsu, config, keccak(text="s"), 3600).outcome == "agreed"
    registry.revoke_identity(car.pseudonym_id, "test")
    before = car.pool.unused_bits("rsu")
    with pytest.raises(AccountRevoked):
        car.send("rsu", b"x" * 8, clock())
    assert car.pool.unused_bits("rsu") < before  # the burnt pad bits are not handed out again

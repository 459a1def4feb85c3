"""Foundry ``cast`` (the binary from npm ``@foundry-rs/cast-linux-amd64``) against one chain.

Each operation runs one or a few cast commands and checks what they print; see
:func:`cast_operations`. Run alone: ``python -m tests.clients.cast_ops --rpc URL --key HEX``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils.crypto import keccak

from contracts import Artifact, load_artifact
from tests.clients._ops import NODE_MODULES, Endpoint, Fixtures, OpFailed, OpResult, run_ops

CAST = NODE_MODULES / ".bin" / "cast"
MEMBER_ADDED = "0x" + keccak(text="MemberAdded(address,uint8)").hex()
ADMIN_TRANSFERRED = "0x" + keccak(text="AdminTransferred(address,address)").hex()
ALREADY_MEMBER = keccak(text="AlreadyMember(address,uint8)")[:4].hex()
NOT_ADMIN = keccak(text="NotAdmin(address)")[:4].hex()
ZERO_ADDRESS = keccak(text="ZeroAddress()")[:4].hex()


def _random_address() -> str:
    return "0x" + os.urandom(20).hex()


class Cast:
    """Runs cast against one endpoint, in an empty directory (no foundry.toml picked up)."""

    def __init__(self, binary: Path, endpoint: Endpoint, workdir: Path, timeout_s: float = 20.0) -> None:
        self.binary = binary
        self.endpoint = endpoint
        self.workdir = workdir
        self.timeout_s = timeout_s
        self.env = dict(os.environ, ETH_RPC_URL=endpoint.rpc_url, NO_COLOR="1", FOUNDRY_DISABLE_NIGHTLY_WARNING="1")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=self.timeout_s,
            cwd=self.workdir,
            env=self.env,
            check=False,
        )

    def __call__(self, *args: str) -> str:
        """Raises OpFailed with cast's message when it exits non-zero."""
        done = self.run(*args)
        if done.returncode != 0:
            # the reason is cast's last line; earlier ones are logs
            said = (done.stderr.strip() or done.stdout.strip())[-400:]
            raise OpFailed(f"cast {args[0]} exited {done.returncode}: {said}")
        return done.stdout.strip()

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json"))

    def fails(self, *args: str) -> str:
        """Run a command that must fail; its stderr (where cast reports the revert)."""
        done = self.run(*args)
        if done.returncode == 0:
            raise OpFailed(f"cast {args[0]} succeeded: {done.stdout.strip()[:200]}")
        return done.stderr

    def send(self, *args: str) -> dict[str, Any]:
        """``cast send`` signed with the endpoint's key; the receipt."""
        receipt: dict[str, Any] = self.json("send", "--private-key", self.endpoint.private_key, *args)
        return receipt


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise OpFailed(message)


def _revert_data(stderr: str, selector: str) -> str:
    """The revert data cast printed, which must start with ``selector``."""
    # cast names the selector alone ("custom error 0x...:") before the whole data
    found = re.findall(r"0x" + selector + r"[0-9a-fA-F]*", stderr)
    _check(bool(found), f"no revert data with selector 0x{selector}: {stderr.strip()[:300]}")
    data: str = max(found, key=len)
    return data


def cast_operations(cast: Cast, artifact: Artifact) -> list[tuple[str, Callable[[], object]]]:
    """The named cast operations, in order, sharing lazily built fixtures."""
    endpoint = cast.endpoint

    def refused_stranger() -> str:
        """An unfunded stranger's transfer: anvil refuses it for funds, a permissioned node for
        permission; cast must print the server's message, not a generic failure."""
        stranger = "0x" + secrets.token_hex(32)
        said = cast.fails("send", "--private-key", stranger, "--gas-limit", "21000", "--gas-price", "10000000000",
                          "--priority-gas-price", "1000000000", "--nonce", "0", "0x" + "42" * 20)  # fmt: skip
        found = re.search(r"error code (-?\d+): ([^\n]+)", said)
        _check(found is not None, f"no server error in cast's output: {said.strip()[-300:]}")
        assert found is not None
        return f"{found.group(1)}: {found.group(2)[:80]}"

    me = Account.from_key(endpoint.private_key).address
    fx = Fixtures()

    def registry() -> dict[str, Any]:
        def build() -> dict[str, Any]:
            receipt = cast.send("--create", "0x" + artifact.bytecode.hex())
            _check(receipt["status"] == "0x1" and bool(receipt["contractAddress"]), f"deployment: {receipt}")
            return receipt

        return fx.need("registry", build)

    def vehicle() -> tuple[str, dict[str, Any]]:
        def build() -> tuple[str, dict[str, Any]]:
            account = _random_address()
            receipt = cast.send(registry()["contractAddress"], "addVehicle(address)", account)
            _check(receipt["status"] == "0x1", f"addVehicle: {receipt['status']}")
            return account, receipt

        return fx.need("vehicle", build)

    def transfer() -> tuple[dict[str, int | str], dict[str, Any]]:
        def build() -> tuple[dict[str, int | str], dict[str, Any]]:
            block = cast.json("block", "latest")
            number = int(block["number"], 16)
            before: dict[str, int | str] = {
                "number": number,
                "hash": block["hash"],
                "balance": int(cast("balance", me, "--block", str(number))),
                "nonce": int(cast("nonce", me, "--block", str(number))),
            }
            receipt = cast.send(_random_address(), "--value", "1000")
            _check(receipt["status"] == "0x1", f"transfer: {receipt['status']}")
            return before, receipt

        return fx.need("transfer", build)

    def mined_revert() -> dict[str, Any]:
        def build() -> dict[str, Any]:
            account, _ = vehicle()
            # a fixed gas limit, so the transaction is mined (and reverts) instead of failing estimation
            return cast.send(registry()["contractAddress"], "addVehicle(address)", account, "--gas-limit", "300000")

        return fx.need("mined revert", build)

    def chain_id() -> int:
        got = int(cast("chain-id"))
        _check(got == endpoint.chain_id, f"chain id {got}")
        return got

    def block_latest() -> int:
        block = cast.json("block", "latest")
        _check(len(block["hash"]) == 66 and len(block["parentHash"]) == 66, f"block {block}")
        return int(block["number"], 16)

    def block_by_hash() -> None:
        latest = cast.json("block", "latest")
        _check(cast("block", latest["hash"], "-f", "number") == str(int(latest["number"], 16)), "a different block")

    def block_full() -> None:
        _, receipt = transfer()
        block = cast.json("block", receipt["blockNumber"], "--full")
        _check(any(tx["hash"] == receipt["transactionHash"] for tx in block["transactions"]), "tx not in its block")

    def send_transfer() -> None:
        receipt = cast.send(_random_address(), "--value", "1")
        _check(receipt["status"] == "0x1" and receipt["type"] == "0x2", f"status {receipt['status']}")

    def send_legacy() -> None:
        receipt = cast.send(_random_address(), "--value", "1", "--legacy")
        _check(receipt["status"] == "0x1" and receipt["type"] == "0x0", f"type {receipt['type']}")

    def mktx_publish() -> None:
        raw = cast("mktx", "--private-key", endpoint.private_key, _random_address(), "--value", "1")
        receipt = cast.json("publish", raw)
        _check(receipt["status"] == "0x1", f"status {receipt['status']}")

    def tx_json() -> None:
        _, receipt = transfer()
        tx = cast.json("tx", receipt["transactionHash"])
        _check(tx["blockNumber"] == receipt["blockNumber"] and tx["from"].lower() == me.lower(), f"tx {tx}")

    def receipt_json() -> None:
        _, receipt = transfer()
        got = cast.json("receipt", receipt["transactionHash"])
        _check(got["status"] == "0x1" and int(got["gasUsed"], 16) == 21_000, f"receipt {got}")

    def deploy() -> str:
        return str(registry()["contractAddress"])

    def code() -> None:
        got = cast("code", registry()["contractAddress"])
        _check(got.lower() == "0x" + artifact.deployed_bytecode.hex(), f"code of {len(got)} chars")

    def storage() -> None:
        word = cast("storage", registry()["contractAddress"], "0")
        _check(word.lower().endswith(me[2:].lower()), f"slot 0 = {word}")

    def call_admin() -> None:
        got = cast("call", registry()["contractAddress"], "admin()(address)")
        _check(got.lower() == me.lower(), f"admin {got}")

    def send_add_vehicle() -> None:
        account, receipt = vehicle()
        topics = [log["topics"] for log in receipt["logs"]]
        _check(any(t[0] == MEMBER_ADDED and t[1].endswith(account[2:]) for t in topics), f"logs {topics}")
        _check(cast("call", registry()["contractAddress"], "roleOf(address)(uint8)", account) != "0", "no role")

    def estimate_call() -> int:
        address = registry()["contractAddress"]
        gas = int(cast("estimate", address, "addVehicle(address)", _random_address(), "--from", me))
        _check(gas > 21_000, f"estimated {gas}")
        return gas

    def estimate_transfer() -> None:
        gas = int(cast("estimate", _random_address(), "--value", "1", "--from", me))
        _check(gas == 21_000, f"estimated {gas}")

    def call_revert() -> str:
        account, _ = vehicle()
        stderr = cast.fails("call", registry()["contractAddress"], "addVehicle(address)", account, "--from", me)
        decoded = cast("decode-error", _revert_data(stderr, ALREADY_MEMBER), "--sig", "AlreadyMember(address,uint8)")
        _check(account[2:] in decoded.lower(), f"decoded {decoded}")
        return decoded.replace("\n", " ")

    def call_revert_not_admin() -> None:
        # no --from: the zero address calls, and is not the admin
        stderr = cast.fails("call", registry()["contractAddress"], "addVehicle(address)", _random_address())
        _revert_data(stderr, NOT_ADMIN)

    def estimate_revert() -> None:
        address = registry()["contractAddress"]
        stderr = cast.fails("estimate", address, "addVehicle(address)", "0x" + "00" * 20, "--from", me)
        _revert_data(stderr, ZERO_ADDRESS)

    def mined_revert_status() -> None:
        receipt = mined_revert()
        _check(receipt["status"] == "0x0", f"status {receipt['status']}")

    def logs_by_account() -> None:
        account, receipt = vehicle()
        logs = cast.json(
            "logs", "--from-block", receipt["blockNumber"], "--to-block", receipt["blockNumber"],
            "--address", registry()["contractAddress"], "MemberAdded(address indexed,uint8)", account,
        )  # fmt: skip
        _check(len(logs) == 1 and logs[0]["transactionHash"] == receipt["transactionHash"], f"{len(logs)} logs")

    def logs_range() -> int:
        vehicle()
        logs = cast.json("logs", "--from-block", registry()["blockNumber"], "--address", registry()["contractAddress"])
        topics = {log["topics"][0] for log in logs}
        _check({MEMBER_ADDED, ADMIN_TRANSFERRED} <= topics, f"topics {topics}")
        return len(logs)

    def run_tx() -> None:
        _, receipt = vehicle()
        out = cast("run", receipt["transactionHash"])
        gas = re.search(r"Gas used: (\d+)", out)
        _check("Traces:" in out and gas is not None, f"output {out[-300:]}")
        assert gas is not None
        replayed, mined = int(gas.group(1)), int(receipt["gasUsed"], 16)
        _check(replayed == mined, f"replayed gas {replayed}, mined {mined}")

    def run_mined_revert() -> None:
        receipt = mined_revert()
        done = cast.run("run", receipt["transactionHash"])
        out = done.stdout + done.stderr
        _check("Traces:" in out and ALREADY_MEMBER in out.lower(), f"exit {done.returncode}: {out.strip()[-300:]}")

    def call_at_block() -> None:
        account, receipt = vehicle()
        earlier = str(int(receipt["blockNumber"], 16) - 1)
        address = registry()["contractAddress"]
        then = cast("call", address, "roleOf(address)(uint8)", account, "--block", earlier)
        now = cast("call", address, "roleOf(address)(uint8)", account)
        _check(then == "0" and now != "0", f"role then {then}, now {now}")

    def balance_at_block() -> None:
        before, _ = transfer()
        then = int(cast("balance", me, "--block", str(before["number"])))
        _check(then == before["balance"] and int(cast("balance", me)) != then, f"then {then}")

    def balance_at_hash() -> None:
        before, _ = transfer()
        then = int(cast("balance", me, "--block", str(before["hash"])))
        _check(then == before["balance"], f"then {then}, recorded {before['balance']}")

    def nonce_at_block() -> None:
        before, _ = transfer()
        then = int(cast("nonce", me, "--block", str(before["number"])))
        _check(then == before["nonce"], f"then {then}, recorded {before['nonce']}")

    def code_before_deployment() -> None:
        receipt = registry()
        earlier = str(int(receipt["blockNumber"], 16) - 1)
        got = cast("code", receipt["contractAddress"], "--block", earlier)
        _check(got == "0x", f"code {got[:20]}")

    def access_list() -> None:
        address = registry()["contractAddress"]
        got = cast.json("access-list", address, "addVehicle(address)", _random_address(), "--from", me)
        _check(any(entry["address"].lower() == address.lower() for entry in got["accessList"]), f"list {got}")

    def find_block() -> None:
        _, receipt = transfer()
        timestamp = cast("block", receipt["blockNumber"], "-f", "timestamp")
        found = int(cast("find-block", timestamp))
        _check(0 < found <= int(cast("block-number")), f"found {found}")

    return [
        ("chain-id", chain_id),
        ("block-number", lambda: int(cast("block-number"))),
        ("client", lambda: cast("client")),
        ("block latest --json", block_latest),
        ("block 0 -f hash", lambda: cast("block", "0", "-f", "hash")),
        ("block <hash>", block_by_hash),
        ("block N --full", block_full),
        ("block finalized", lambda: int(cast("block", "finalized", "-f", "number"))),
        ("age latest", lambda: cast("age", "latest")),
        ("balance", lambda: int(cast("balance", me))),
        ("nonce", lambda: int(cast("nonce", me))),
        ("gas-price", lambda: int(cast("gas-price"))),
        ("base-fee", lambda: int(cast("base-fee"))),
        ("send transfer (EIP-1559)", send_transfer),
        ("send --legacy", send_legacy),
        ("mktx + publish", mktx_publish),
        ("tx --json", tx_json),
        ("receipt --json", receipt_json),
        ("send --create (deploy registry)", deploy),
        ("code", code),
        ("storage (admin slot)", storage),
        ("call admin()", call_admin),
        ("send addVehicle + event in receipt", send_add_vehicle),
        ("estimate contract call", estimate_call),
        ("estimate transfer", estimate_transfer),
        ("call revert + decode-error (AlreadyMember)", call_revert),
        ("call revert without --from (NotAdmin)", call_revert_not_admin),
        ("estimate revert (ZeroAddress)", estimate_revert),
        ("mined revert: receipt status 0", mined_revert_status),
        ("logs by event and indexed arg", logs_by_account),
        ("logs over a block range", logs_range),
        ("run <registry tx>", run_tx),
        ("run <mined revert>", run_mined_revert),
        ("call --block N (older block)", call_at_block),
        ("balance --block N (older block)", balance_at_block),
        ("balance --block <hash>", balance_at_hash),
        ("nonce --block N (older block)", nonce_at_block),
        ("code --block before deployment", code_before_deployment),
        ("access-list", access_list),
        ("find-block", find_block),
        ("a refused transaction shows the node's reason", refused_stranger),
    ]


def run_cast_suite(endpoint: Endpoint, artifact: Artifact, binary: Path = CAST) -> list[OpResult]:
    """Run every cast operation against ``endpoint``; one result per operation."""
    with tempfile.TemporaryDirectory(prefix="cast-") as workdir:
        return run_ops(cast_operations(Cast(binary, endpoint, Path(workdir)), artifact))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rpc", required=True)
    parser.add_argument("--key", required=True, help="a funded private key (hex)")
    args = parser.parse_args()
    probe = Cast(CAST, Endpoint("cli", args.rpc, "", 0, args.key), Path.cwd())
    endpoint = Endpoint("cli", args.rpc, "", int(probe("chain-id")), args.key)
    for result in run_cast_suite(endpoint, load_artifact()):
        print(json.dumps({"name": result.name, "ok": result.ok, "detail": result.detail}))


if __name__ == "__main__":
    main()

"""Execution traces for ``debug_traceTransaction`` and ``debug_traceCall``, shaped as geth's.

pyrevm has one tracer: revm's EIP-3155 step tracer, which writes a JSON line per step
to Python's ``sys.stdout`` (in small pieces). :func:`eip3155` puts a bounded collector in
``sys.stdout``'s place for the duration of one execution (under a lock, so two traces
never mix; the node prints nothing else) and parses the lines back. Depths are made to
start at 1, as geth numbers them (pyrevm runs a transaction one call deep). From the
steps:

- :func:`struct_logs` gives geth's default struct logger: ``{gas, failed, returnValue,
  structLogs: [{pc, op, gas, gasCost, depth, stack, refund}]}`` (no memory or storage:
  EIP-3155 carries neither, as geth's ``disableMemory``/``disableStorage`` defaults);
- :func:`call_frames` gives the ``callTracer`` tree: the top frame complete (type, from,
  to, value, gas, gasUsed, input, output, error, revertReason); nested frames are found
  from the CALL/CREATE steps and the depth changes, with their type, from, to, value, gas
  and gasUsed; EIP-3155 has no memory, so a nested frame's input and output are not
  known and are left out rather than invented.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Iterator
from typing import Any

from eth_abi.abi import decode

from node.client.revert import ERROR_STRING_SELECTOR
from node.engine.base import ExecutionReceipt

MAX_TRACE_BYTES = 64 * 1024 * 1024  # beyond this a step trace is refused (use the callTracer)
MAX_STEPS = 200_000
_CALLS = {0xF1: "CALL", 0xF2: "CALLCODE", 0xF4: "DELEGATECALL", 0xFA: "STATICCALL", 0xF0: "CREATE", 0xF5: "CREATE2"}
_capture = threading.Lock()


class TraceTooLarge(Exception):
    """The execution took more steps than a struct-log trace may hold."""


class _Collector:
    """A ``sys.stdout`` stand-in that keeps what is written, up to a bound (one growing buffer:
    pyrevm writes each step in many tiny pieces)."""

    def __init__(self, limit: int) -> None:
        self.buffer = io.StringIO()
        self.size = 0
        self.limit = limit

    def write(self, text: str) -> int:
        self.size += len(text)
        if self.size <= self.limit:
            self.buffer.write(text)
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def eip3155(evm: Any) -> Iterator[list[dict[str, Any]]]:
    """Trace what runs on ``evm`` inside the block; the steps fill the yielded list at exit.

    Raises:
        TraceTooLarge: the trace passed :data:`MAX_TRACE_BYTES`.
    """
    steps: list[dict[str, Any]] = []
    collector = _Collector(MAX_TRACE_BYTES)
    with _capture, contextlib.redirect_stdout(collector):  # type: ignore[type-var]
        evm.tracing = True
        try:
            yield steps
        finally:
            evm.tracing = False
    if collector.size > MAX_TRACE_BYTES:
        raise TraceTooLarge(f"the trace passed {MAX_TRACE_BYTES} bytes")
    lines = [json.loads(line) for line in collector.buffer.getvalue().splitlines() if line.startswith('{"pc"')]
    shift = min((step["depth"] for step in lines), default=1) - 1
    for step in lines:
        step["depth"] -= shift
    steps.extend(lines)


def struct_logs(steps: list[dict[str, Any]], result: ExecutionReceipt, limit: int = MAX_STEPS) -> dict[str, Any]:
    """geth's default tracer output.

    Raises:
        TraceTooLarge: more than ``limit`` steps.
    """
    if len(steps) > limit:
        raise TraceTooLarge(f"{len(steps)} steps, more than {limit}; ask for the callTracer instead")
    return {
        "gas": result.gas_used,
        "failed": not result.status,
        "returnValue": "0x" + result.output.hex(),
        "structLogs": [
            {
                "pc": s["pc"],
                "op": s["opName"],
                "gas": int(s["gas"], 16),
                "gasCost": int(s["gasCost"], 16),
                "depth": s["depth"],
                "stack": s["stack"],
                "refund": int(s.get("refund", "0x0"), 16),
            }
            for s in steps
        ],
    }


def call_frames(
    steps: list[dict[str, Any]],
    result: ExecutionReceipt,
    sender: str,
    to: str | None,
    value: int,
    gas: int,
    data: bytes,
) -> dict[str, Any]:
    """The ``callTracer`` tree of one execution (see the module docstring for nested frames).

    ``gas`` is what the call started with (the transaction's gas less its intrinsic gas) and
    ``gasUsed`` all the transaction used, as geth reports the top frame.
    """
    top: dict[str, Any] = {
        "type": "CALL" if to is not None else "CREATE",
        "from": sender,
        "to": to if to is not None else result.contract_address,
        "value": hex(value),
        "gas": hex(gas),
        "gasUsed": hex(result.gas_used),
        "input": "0x" + data.hex(),
    }
    if result.output:
        top["output"] = "0x" + result.output.hex()
    if not result.status:
        top["error"] = "execution reverted"
        reason = _reason(result.output)
        if reason is not None:
            top["revertReason"] = reason
    open_frames: list[tuple[dict[str, Any], int]] = [(top, 0)]  # frame, the gas it started with
    for i, step in enumerate(steps):
        depth = step["depth"]
        while len(open_frames) > depth:  # returned from a nested frame
            done, started = open_frames.pop()
            done["gasUsed"] = hex(started - int(steps[i - 1]["gas"], 16) + int(steps[i - 1]["gasCost"], 16))
        kind = _CALLS.get(step["op"])
        following = steps[i + 1] if i + 1 < len(steps) else None
        if kind is None or following is None or following["depth"] != depth + 1:
            continue  # not a call, or one to a precompile or an empty account (no steps inside)
        stack = step["stack"]
        parent = open_frames[-1][0]
        frame: dict[str, Any] = {"type": kind, "from": parent["to"], "gas": hex(int(following["gas"], 16))}
        if kind in ("CALL", "CALLCODE"):
            frame["to"], frame["value"] = _address(stack[-2]), stack[-3]
        elif kind in ("DELEGATECALL", "STATICCALL"):
            frame["to"] = _address(stack[-2])
        else:
            frame["value"] = stack[-1]
        parent.setdefault("calls", []).append(frame)
        open_frames.append((frame, int(following["gas"], 16)))
    while len(open_frames) > 1:  # frames still open at the last step
        done, started = open_frames.pop()
        last = steps[-1]
        done["gasUsed"] = hex(started - int(last["gas"], 16) + int(last["gasCost"], 16))
    return top


def _address(word: str) -> str:
    return "0x" + int(word, 16).to_bytes(32, "big")[-20:].hex()


def _reason(output: bytes) -> str | None:
    if output[:4] != ERROR_STRING_SELECTOR:
        return None
    with contextlib.suppress(Exception):
        return str(decode(["string"], output[4:])[0])
    return None

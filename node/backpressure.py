"""Back-pressure: the backlog holds at most what the node drains in a short wait.

A node that queues everything it is offered turns overload into latency: offered four
times what it executes, its mempool fills and every transaction waits seconds behind
the ones before it. Instead the backlog (the mempool, and the transactions in blocks
built or decided but not yet durable) is bounded by the *measured* drain rate: it may
hold what the node makes durable in ``target_wait_s`` (never less than ``floor``, never
more than ``ceiling``); a client transaction beyond that is refused at once with
:class:`NodeOverloaded`, JSON-RPC -32005 ("limit exceeded", the code Infura, Alchemy and
geth's own clients treat as "slow down and retry"), before its signature is recovered,
so a refusal costs the node almost nothing.

The drain rate is measured where transactions become durable (each store commit): the
transactions a commit made durable, over the time to the next commit, counted only when
a backlog remained in between (an idle node measures nothing, since its rate is the
arrival rate, not what it can do). Samples are smoothed exponentially. Until the first
sample the bound is the floor.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from node.txcodec import TransactionRejected

TARGET_WAIT_S = 0.25
FLOOR = 256
SMOOTHING = 0.2  # weight of a new sample in the drain rate


class NodeOverloaded(TransactionRejected):
    """The mempool holds as much as the node drains in its target wait: retry later."""

    rpc_code = -32005

    def __init__(self, backlog: int, limit: int, drain_tps: float, retry_after_ms: int) -> None:
        rate = f"it executes about {drain_tps:,.0f} tx/s" if drain_tps else "its drain rate is not measured yet"
        super().__init__(
            f"limit exceeded: the node is at capacity ({backlog} transactions wait, at most {limit};"
            f" {rate}); retry in {retry_after_ms} ms"
        )
        self.backlog, self.limit, self.drain_tps, self.retry_after_ms = backlog, limit, drain_tps, retry_after_ms

    @property
    def rpc_data(self) -> dict[str, int]:
        return {"retryAfterMs": self.retry_after_ms}


@dataclass(frozen=True)
class BackpressureConfig:
    """``target_wait_s``: how long a transaction may wait in the mempool at the measured
    drain rate; ``floor`` and ``ceiling`` bound the backlog whatever the rate."""

    target_wait_s: float = TARGET_WAIT_S
    floor: int = FLOOR
    ceiling: int = 100_000

    def __post_init__(self) -> None:
        if not (self.target_wait_s >= 0 and math.isfinite(self.target_wait_s)):
            raise ValueError(f"target wait must be a finite number of seconds >= 0, not {self.target_wait_s}")
        if not 1 <= self.floor <= self.ceiling:
            raise ValueError(f"need 1 <= floor <= ceiling, got {self.floor} and {self.ceiling}")


class DrainMeter:
    """The measured drain rate and the backlog bound it implies (thread-safe)."""

    def __init__(self, config: BackpressureConfig | None = None) -> None:
        self.config = config or BackpressureConfig()
        self._lock = threading.Lock()
        self._rate = 0.0  # transactions per second, 0 until measured
        self._last: tuple[float, bool] | None = None  # (time of the last drain, backlog left behind)

    def taken(self, count: int, now: float, backlog_left: bool) -> None:
        """``count`` transactions were drained (made durable) at ``now`` (monotonic seconds),
        leaving a backlog behind or not. They were drained in the interval since the last
        call; if that one left a backlog, the node worked all through it: a capacity sample."""
        with self._lock:
            if self._last is not None:
                at, busy = self._last
                if busy and count and now > at:
                    sample = count / (now - at)
                    self._rate = sample if not self._rate else self._rate + SMOOTHING * (sample - self._rate)
            self._last = (now, backlog_left)

    @property
    def rate(self) -> float:
        return self._rate

    def limit(self, block_capacity: int = 0) -> int:
        """The most transactions the backlog may hold now: what drains in the target wait, but
        never less than the floor or than ``block_capacity`` (what the node's pipeline holds
        when full): a bound below a block would keep blocks part-empty, so the measured rate,
        and with it the bound, would shrink each block where consensus makes a block take
        longer than the target wait."""
        c = self.config
        return min(c.ceiling, max(c.floor, block_capacity, int(self._rate * c.target_wait_s)))

    def refusal(self, backlog: int, limit: int) -> NodeOverloaded:
        """The refusal for a client when ``backlog`` transactions wait and ``limit`` may: retry
        once the backlog is down to three quarters of the bound, so the node still has work
        when the client comes back (before any measurement: a fifth of the target wait)."""
        rate = self._rate
        wait_s = (backlog - 0.75 * limit) / rate if rate else self.config.target_wait_s / 5
        return NodeOverloaded(backlog, limit, rate, max(1, math.ceil(wait_s * 1000)))

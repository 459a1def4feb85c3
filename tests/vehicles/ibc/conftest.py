from __future__ import annotations

import pytest

from vehicles.ibc import TrustedAuthority
from vehicles.ibc.curve import SeededRng

NOW_MS = 1_800_000_000_000


@pytest.fixture
def rng() -> SeededRng:
    return SeededRng(1234)


@pytest.fixture
def ta(rng: SeededRng) -> TrustedAuthority:
    return TrustedAuthority(rng=rng)


class FakeClock:
    def __init__(self, now_ms: int = NOW_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()

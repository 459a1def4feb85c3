"""Prints the client suites' table of passed operations per tool and chain after the run."""

from __future__ import annotations

import pytest

from tests.clients._ops import RESULTS, summary_table


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS, None)
    if results:
        terminalreporter.section("client suites: operations passed")
        for line in summary_table(results):
            terminalreporter.write_line(line)

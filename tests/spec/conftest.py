"""Prints the spec survey (every execution-apis method per endpoint) after the run."""

from __future__ import annotations

import pytest

from tests.spec._survey import SURVEYS, summary_lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    surveys = config.stash.get(SURVEYS, None)
    if surveys:
        terminalreporter.section("execution-apis spec methods")
        for line in summary_lines(surveys):
            terminalreporter.write_line(line)

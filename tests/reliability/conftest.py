"""The reliability suite's fixtures: the suite-wide leak search and the figures it reports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.lab import FIGURES, LEAKS, Certs, Leaks, make_certs


@pytest.fixture(scope="session")
def leaks() -> Leaks:
    return LEAKS


@pytest.fixture(autouse=True)
def no_secret_in_this_tests_outputs(leaks: Leaks) -> Iterator[None]:
    """Every output a test hands to ``leaks`` is searched for every secret known so far."""
    mark = len(leaks.outputs)
    yield
    found = leaks.scan(leaks.outputs_since(mark))
    assert found == [], f"secrets leaked (where, which): {found}"


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_output(leaks: Leaks) -> Iterator[None]:
    """At the end, every output of the suite against every secret of the suite (a later test's
    secrets may show up in an earlier test's output only if something is badly wrong, but look)."""
    yield
    found = leaks.scan()
    FIGURES["leak search"] = (
        f"{len(leaks.outputs)} outputs, {leaks.scanned_bytes:,} bytes scanned for "
        f"{leaks.secret_count} secret values: {len(found)} leaks"
    )
    assert found == [], f"secrets leaked (where, which): {found}"


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(Path(tmp_path_factory.mktemp("certs")))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "reliability figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")

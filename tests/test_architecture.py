"""The layer contract in .importlinter names every module of the monitor, so none escapes it."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE_LAYERS = {"__init__", "__main__", "simulator"}  # the simulator has a contract of its own


def layered_modules() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    layers = parser["importlinter:contract:layers"]["layers"]
    return {name.removeprefix("monitor.") for name in re.split(r"[\s:|]+", layers) if name}


def top_level_modules() -> set[str]:
    package = ROOT / "monitor"
    names = {p.stem for p in package.glob("*.py")}
    names |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    return names - OUTSIDE_LAYERS


def test_every_module_of_the_monitor_has_a_layer() -> None:
    assert top_level_modules() - layered_modules() == set()


def test_the_contract_names_no_module_that_is_gone() -> None:
    assert layered_modules() - top_level_modules() == set()

"""The results: one row per figure, the machine and versions they were measured on, a table and JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

VERSIONED = ("callback-monitor", "aiohttp", "prometheus-client", "APScheduler", "structlog", "PyYAML")


@dataclass(frozen=True)
class Figure:
    """One number: what it is, at which size, its value, and the target it is held to (if any)."""

    measurement: str
    n: int | None
    label: str
    value: float | None
    unit: str = ""
    target: str = ""
    met: bool | None = None
    digits: int = 0

    def shown(self) -> str:
        if self.value is None:
            return "-"
        text = f"{self.value:,.{self.digits}f}"
        return f"{text} {self.unit}".rstrip()


@dataclass
class Section:
    """What one measurement produced: its figures, remarks, raw data for the JSON, and how long it took."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def add(self, n: int | None, label: str, value: float | None, unit: str = "", **kw: Any) -> Figure:
        figure = Figure(self.name, n, label, value, unit, **kw)
        self.figures.append(figure)
        return figure


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, OS and the versions of everything measured."""
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_mib": _memory_mib(),
        "cpu": _cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {dist: _version(dist) for dist in VERSIONED},
        "revision": _git_revision(),
    }


def header(info: dict[str, Any], command: str) -> str:
    load = ""
    if "loadavg_at_end" in info:
        start, end = info["loadavg_at_start"][0], info["loadavg_at_end"][0]
        load = f"load average (1 min) at start {start:.2f}, at end {end:.2f}\n"
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    mem = info["memory_mib"]
    return (
        f"machine: {info['cores']} cores ({info['usable_cores']} usable), "
        f"{mem / 1024:.1f} GiB memory, {info['cpu']}, {info['os']}\n"
        f"python {info['python']}; {versions}; revision {info['revision']}\n"
        f"command: {command}\n{load}"
    )


def table(sections: Sequence[Section]) -> str:
    """A Markdown table of every figure (readable in a terminal, pasteable into the README)."""
    rows = [("measurement", "N", "figure", "value", "target", "met")]
    for section in sections:
        if section.error:
            rows.append((section.name, "", f"FAILED: {section.error}", "", "", ""))
        for f in section.figures:
            met = "" if f.met is None else ("yes" if f.met else "**no**")
            n = "" if f.n is None else f"{f.n:,}"
            rows.append((f.measurement, n, f.label, f.shown(), f.target, met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {1, 3}

    def line(row: Sequence[str]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join(
        ("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths)
    )
    return "\n".join([line(rows[0]), rule + "|", *(line(r) for r in rows[1:])]) + "\n"


def notes(sections: Sequence[Section]) -> str:
    out = []
    for section in sections:
        for note in section.notes:
            out.append(f"- {section.name}: {note}")
    return "\n".join(out) + ("\n" if out else "")


def write_json(
    directory: Path, info: dict[str, Any], command: str, sections: Sequence[Section], started: float
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    path = directory / f"bench-{stamp}.json"
    doc = {
        "version": 1,
        "started": started,
        "seconds": round(time.time() - started, 1),
        "command": command,
        "argv": sys.argv,
        "machine": info,
        "sections": [
            {
                "name": s.name,
                "seconds": round(s.seconds, 1),
                "error": s.error,
                "figures": [asdict(f) for f in s.figures],
                "notes": s.notes,
                "raw": s.raw,
            }
            for s in sections
        ],
    }
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    return path

"""The mutation score per module from mutmut's results (run by `make mutation`, after `mutmut run`).

A mutant counts as caught when a test failed on it or it hung past the timeout; every other mutant
that ran is a survivor. Survivors listed in docs/mutation-equivalents.md (one line each, with the
reason) are equivalent mutants: they change no behaviour, and the second score leaves them out.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENTS = ROOT / "docs" / "mutation-equivalents.md"

# (row in the table, the mutant names it covers); the same patterns as MUTANTS in the Makefile.
MODULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("drift.py", ("monitor.drift.*",)),
    ("state.py", ("monitor.state.*",)),
    ("redact.py", ("monitor.redact.*",)),
    ("urls.py", ("monitor.urls.*",)),
    ("tencent/usersig.py", ("monitor.tencent.usersig.*",)),
    (
        "tencent/envelope.py",
        (
            "monitor.tencent.envelope.x_parse_envelope*",
            "monitor.tencent.envelope.x__beyond_bounds*",
            "monitor.tencent.envelope.x__clean_request_id*",
            "monitor.tencent.envelope.x_code_label*",
            "monitor.tencent.envelope.x_hostname*",
        ),
    ),
)
CAUGHT = {"killed", "timeout", "caught by type check"}
NOT_RUN = {"not checked", "skipped"}
_RESULT = re.compile(r"^\s*(\S+): (.+)$")
_EQUIVALENT = re.compile(r"`(monitor\.[^`]+__mutmut_\d+)`")


def results(mutmut: str) -> dict[str, str]:
    out = subprocess.run([mutmut, "results", "--all", "true"], capture_output=True, text=True, check=True)
    return {m[1]: m[2].strip() for m in map(_RESULT.match, out.stdout.splitlines()) if m}


def equivalents() -> set[str]:
    if not EQUIVALENTS.exists():
        return set()
    return set(_EQUIVALENT.findall(EQUIVALENTS.read_text(encoding="utf-8")))


def main() -> int:
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    status = results(mutmut)
    explained = equivalents()
    print("| module | mutants | caught | survived | equivalent | score | score without equivalents |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    unexplained: list[str] = []
    for row, patterns in MODULES:
        names = [n for n in status if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        counts = Counter(status[n] for n in names if status[n] not in NOT_RUN)
        ran = sum(counts.values())
        caught = sum(counts[s] for s in CAUGHT)
        survivors = [n for n in names if status[n] not in CAUGHT | NOT_RUN]
        equivalent = [n for n in survivors if n in explained]
        unexplained += [n for n in survivors if n not in explained]
        real = ran - len(equivalent)
        score = f"{100 * caught / ran:.1f}%" if ran else "-"
        cleaned = f"{100 * caught / real:.1f}%" if real else "-"
        print(f"| {row} | {ran} | {caught} | {len(survivors)} | {len(equivalent)} | {score} | {cleaned} |")
    if unexplained:
        print(f"\n{len(unexplained)} survivors neither killed nor explained in {EQUIVALENTS.name}:")
        for name in unexplained:
            print(f"  {name}: {status[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

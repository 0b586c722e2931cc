"""Hand-made mutants of the constants, tables and patterns that mutmut leaves alone (run by `make mutation`).

Each mutant edits one line of the source, runs the focused tests and puts the line back; every one must
make a test fail. The bounds, limits and names here are what an alert, a metric or a leak depends on.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TESTS = (
    "tests/test_drift.py",
    "tests/test_drift_pins.py",
    "tests/test_state.py",
    "tests/test_state_pins.py",
    "tests/test_redact.py",
    "tests/test_urls.py",
    "tests/test_usersig.py",
    "tests/test_client.py",
    "tests/test_codes.py",
    "tests/test_envelope.py",
)

# (file, text as it is, text as mutated): the text must occur exactly once in the file.
MUTANTS: tuple[tuple[str, str, str], ...] = (
    ("monitor/state.py", "HISTORY_LIMIT = 20", "HISTORY_LIMIT = 21"),
    ("monitor/state.py", 'CHECK_SEVERITY = "warning"', 'CHECK_SEVERITY = "critical"'),
    ("monitor/state.py", 'CHECK_FAILING = "check_failing"', 'CHECK_FAILING = "check_failed"'),
    ("monitor/state.py", 'CHECK_RECOVERED = "check_recovered"', 'CHECK_RECOVERED = "check_ok"'),
    ("monitor/state.py", 'DRIFT_DETECTED = "drift_detected"', 'DRIFT_DETECTED = "drift"'),
    ("monitor/state.py", 'DRIFT_RESOLVED = "drift_resolved"', 'DRIFT_RESOLVED = "resolved"'),
    ("monitor/tencent/envelope.py", "_MAX_INFO = 300", "_MAX_INFO = 301"),
    ("monitor/tencent/envelope.py", "MAX_REQUEST_ID = 128", "MAX_REQUEST_ID = 129"),
    ("monitor/tencent/envelope.py", "MAX_ERROR_INFO = 1024", "MAX_ERROR_INFO = 1025"),
    ("monitor/tencent/envelope.py", "MAX_URL = 4096", "MAX_URL = 4097"),
    ("monitor/tencent/envelope.py", "MAX_COMMAND = 128", "MAX_COMMAND = 127"),
    ("monitor/tencent/envelope.py", "MAX_COMMANDS = 64", "MAX_COMMANDS = 65"),
    ("monitor/tencent/client.py", "MAX_BODY = 1 << 20", "MAX_BODY = (1 << 20) + 1"),
    ("monitor/redact.py", 'REDACTED = "REDACTED"', 'REDACTED = "REDACTE"'),
    ("monitor/redact.py", r'r"([?&;][^=&;#?\s]*=)', r'r"([?&;][^=&;#\s]*=)'),  # quadratic again
    ("monitor/redact.py", r'r"://[^/\\?#', r'r"://[^/?#'),
    ("monitor/redact.py", r"""r"://[^/\\?#\s\"'<>]*@")""", r"""r"://[^/\\?#\s\"'<>@]*@")"""),
    ("monitor/tencent/usersig.py", 'str.maketrans("+/=", "*-_")', 'str.maketrans("+/=", "*_-")'),
    ("monitor/tencent/usersig.py", 'str.maketrans("*-_", "+/=")', 'str.maketrans("*-_", "+=/")'),
    ("monitor/urls.py", '"http", "https", "ws"', '"https", "ws"'),
    ("monitor/urls.py", '"https", "ws", "wss", "ftp", "file"', '"http", "https", "wss", "ftp", "file"'),
    ("monitor/urls.py", "range(0x21)", "range(0x20)"),
    ("monitor/urls.py", r'_AUTHORITY_END = re.compile(r"[/\\?#]")', r'_AUTHORITY_END = re.compile(r"[/?#]")'),
    ("monitor/urls.py", r'_NON_SPECIAL = re.compile(r"[/?#]")', r'_NON_SPECIAL = re.compile(r"[/\\?#]")'),
    ("monitor/urls.py", "(?::([0-9]{1,5}))", "(?::([0-9]{1,6}))"),
    ("monitor/urls.py", r"([A-Za-z0-9_.-]+|", r"([A-Za-z0-9_.%-]+|"),
    ("monitor/urls.py", r"\[[0-9A-Fa-f:.]+\])", r"\[[0-9A-Fa-g:.]+\])"),
)


def main() -> int:
    pytest = str(Path(sys.executable).with_name("pytest"))
    survivors = 0
    for rel, old, new in MUTANTS:
        path = ROOT / rel
        original = path.read_text(encoding="utf-8")
        if original.count(old) != 1:
            print(f"not applied ({original.count(old)} matches, update this table): {rel}: {old}")
            survivors += 1
            continue
        path.write_text(original.replace(old, new), encoding="utf-8")
        try:
            run = subprocess.run(
                [pytest, "-q", "-x", "-p", "no:cacheprovider", *TESTS],
                cwd=ROOT,
                capture_output=True,
                timeout=600,
            )
            caught = run.returncode != 0
        except subprocess.TimeoutExpired:
            caught = True
        finally:
            path.write_text(original, encoding="utf-8")
        survivors += not caught
        print(f"{'caught' if caught else 'SURVIVED'}: {rel}: {old} -> {new}", flush=True)
    print(f"hand-made mutants: {len(MUTANTS)}, caught {len(MUTANTS) - survivors}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())

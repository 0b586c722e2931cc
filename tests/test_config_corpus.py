"""The config corpus: every file in configs/invalid is refused with a message that names the place.

Each invalid file starts with ``# expect: <text>``: that text must appear in the ConfigError, which
lists each problem as ``path (line N): message``. The files in configs/valid must load.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError

CONFIGS = Path(__file__).parent / "configs"
INVALID = sorted((CONFIGS / "invalid").glob("*.yaml"))
VALID = sorted((CONFIGS / "valid").glob("*.yaml"))

# Made-up keys: they must never show up in a message.
ENVIRON = {
    "TENCENT_KEY": "corpus-secret-key-0123456789abcdef",
    "TENCENT_KEY_PROD_SG": "corpus-secret-key-prod-sg-0123456789",
    "EMPTY_KEY": "   ",
    "WEBHOOK_SECRET": "corpus-webhook-secret-0123456789abcdef",
    **{f"TENCENT_KEY_{n}": f"corpus-secret-key-{n}" for n in ("1400000001", "1400000002", "1400000003")},
    **{f"TENCENT_KEY_{n}": f"corpus-secret-key-app-{n}" for n in ("a", "b", "c")},
}


def expectation(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <text>'"
    return first.removeprefix("# expect: ")


def test_the_corpus_is_big_enough() -> None:
    assert len(INVALID) >= 30
    assert len(VALID) >= 3


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_config_is_refused_with_its_place(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENVIRON)
    message = str(caught.value)
    assert expectation(path) in message
    assert caught.value.source == str(path)
    assert caught.value.problems, "a ConfigError lists at least one problem"
    assert not any(p.warning for p in caught.value.problems)
    assert all(w.warning for w in caught.value.warnings)
    for secret in ENVIRON.values():
        if secret.strip():
            assert secret not in message


@pytest.mark.parametrize("path", [p for p in VALID if p.name != "design.yaml"], ids=lambda p: p.stem)
def test_valid_config_loads(path: Path) -> None:
    config = load_config(path, environ=ENVIRON)
    assert config.apps
    assert config.source == str(path)


def test_the_design_example_loads_once_its_secret_files_exist(tmp_path: Path) -> None:
    """The example points at /var/run/secrets/tencent/{sdkappid}; here that folder is a temporary one."""
    text = (CONFIGS / "valid" / "design.yaml").read_text(encoding="utf-8")
    assert "/var/run/secrets/tencent/{sdkappid}" in text
    (tmp_path / "1400000002").write_text("design-example-made-up-key\n", encoding="utf-8")
    moved = tmp_path / "design.yaml"
    moved.write_text(text.replace("/var/run/secrets/tencent/", f"{tmp_path}/"), encoding="utf-8")
    config = load_config(moved, environ=ENVIRON)
    assert [app.name for app in config.apps] == ["prod-sg", "staging"]
    assert config.warnings == ()


def test_the_design_example_names_its_missing_secret_file() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(CONFIGS / "valid" / "design.yaml", environ=ENVIRON)
    (problem,) = caught.value.problems
    assert problem.path == "defaults.secret_key_file (used by apps[1] 'staging')"
    assert problem.message.startswith("cannot read secret file /var/run/secrets/tencent/1400000002")
    assert problem.line == 8


def test_the_design_example_is_the_one_in_the_design_document() -> None:
    design = Path(__file__).parents[2] / "shared" / "design.md"
    if not design.exists():
        pytest.skip("shared/design.md is not beside this checkout")
    text = design.read_text(encoding="utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert (CONFIGS / "valid" / "design.yaml").read_text(encoding="utf-8") == example

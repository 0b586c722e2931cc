"""Shared output: text for a terminal shows control and bidi characters as escapes, never acts on them."""

from __future__ import annotations

import pytest

from monitor.config import load_config_text
from monitor.errors import CheckError
from monitor.output import printable, text_lines
from monitor.report import AppResult, render_text
from monitor.state import Outcome


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, spaces and unicode: 房间", "plain text, spaces and unicode: 房间"),
        ("line\nforged", "line\\nforged"),
        ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
        ("tab\tcr\rdel\x7fc1\x9b", "tab\\tcr\\rdel\\x7fc1\\x9b"),
        ("abc\u202edef\u2066\u200b", "abc\\u202edef\\u2066\\u200b"),
        ("para\u2029line\u2028", "para\\u2029line\\u2028"),
    ],
    ids=["clean", "newline", "escape-sequences", "c0-del-c1", "bidi-zero-width", "separators"],
)
def test_printable_escapes_what_a_terminal_would_act_on(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(shown) == shown  # escaping twice changes nothing more


def test_text_lines_keeps_its_own_line_breaks_and_escapes_those_inside_a_line() -> None:
    assert text_lines(["one\nfake", "two"]) == "one\\nfake\ntwo\n"


def test_an_error_message_from_the_vendor_cannot_forge_a_report_line() -> None:
    doc = "version: 1\napps:\n  - {name: shop, sdkappid: 1400000001, secret_key_env: K, callback: null}\n"
    app = load_config_text(doc, environ={"K": "key"}).apps[0]
    error = CheckError("server_error", "failed (ErrorInfo 'x', RequestId r-1\nother  1400000002  in sync)")
    text = render_text([AppResult(app, Outcome(0.0, 1.0, error=error))])
    assert text.splitlines()[1].endswith("RequestId r-1\\nother  1400000002  in sync)")
    assert len(text.splitlines()) == 4  # header, the one row, a blank line, the summary

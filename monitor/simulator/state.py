"""The simulator's state: apps, faults, counters and recorded requests; the state file; the sample apps."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from monitor.errors import ConfigError, Problem
from monitor.tencent.model import CallbackConfig

RECORDED_REQUESTS = 1000
_STATE_KEYS = frozenset({"apps", "faults", "app_faults"})


@dataclass(frozen=True)
class Faults:
    """Misbehaviour to inject; rates are probabilities 0..1, decided per request."""

    latency: float = 0.0
    http_502_rate: float = 0.0
    html_rate: float = 0.0
    garbage_rate: float = 0.0
    empty_rate: float = 0.0
    reset_rate: float = 0.0
    hang_rate: float = 0.0
    error_code: int | None = None
    error_code_rate: float = 0.0
    rate_limit_rate: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "error_code":
                if value is not None and (type(value) is not int or value <= 0):
                    raise ValueError("error_code must be a positive integer or null")
            elif type(value) not in (int, float) or not value >= 0:
                raise ValueError(f"{f.name} must be a number >= 0")
            elif f.name != "latency" and value > 1:
                raise ValueError(f"{f.name} must be between 0 and 1")

    @property
    def active(self) -> bool:
        return self != _NO_FAULTS

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faults:
        """Faults from JSON/YAML fields; raises ValueError on an unknown field or a bad value."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(map(str, unknown))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that differ from the defaults."""
        default = Faults()
        return {k: v for k, v in dataclasses.asdict(self).items() if getattr(default, k) != v}


_NO_FAULTS = Faults()


@dataclass(frozen=True)
class RecordedRequest:
    """One vendor API request as received (the UserSig is deliberately not kept)."""

    action: str
    sdkappid: int | None
    identifier: str
    random: int | None
    body: str
    time: float

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(eq=False)
class _App:
    sdkappid: int
    key: str = field(repr=False)
    admins: tuple[str, ...]
    callback: CallbackConfig | None
    name: str | None = None
    # (usersig, identifier) -> expiry of a signature that verified; the expiry is rechecked each time.
    sig_cache: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)


class SimulatorState:
    """Apps, faults and counters, with the state file's load and dump; no I/O but ``load_state``."""

    def __init__(self) -> None:
        self._apps: dict[int, _App] = {}
        self._faults = Faults()
        self._app_faults: dict[int, Faults] = {}
        self._counts: collections.Counter[tuple[str, int | None]] = collections.Counter()
        self.requests: collections.deque[RecordedRequest] = collections.deque(maxlen=RECORDED_REQUESTS)

    def add_app(
        self,
        sdkappid: int,
        key: str,
        *,
        admins: Iterable[str] = ("administrator",),
        callback: CallbackConfig | None = None,
        name: str | None = None,
    ) -> None:
        """Create or replace an app (a replaced app forgets its cached UserSigs)."""
        if type(sdkappid) is not int or sdkappid <= 0:
            raise ValueError("sdkappid must be a positive integer")
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        admin_list = tuple(admins)
        if isinstance(admins, str) or not admin_list or not all(isinstance(a, str) and a for a in admin_list):
            raise ValueError("admins must be a non-empty list of non-empty strings")
        if name is not None and not isinstance(name, str):
            raise ValueError("name must be a string")
        self._apps[sdkappid] = _App(sdkappid, key, admin_list, callback, name)

    def remove_app(self, sdkappid: int) -> None:
        """Forget an app; raises KeyError when it does not exist. Its faults stay until cleared."""
        del self._apps[sdkappid]

    def set_callback(self, sdkappid: int, callback: CallbackConfig | None) -> None:
        self._apps[sdkappid].callback = callback

    def callback(self, sdkappid: int) -> CallbackConfig | None:
        return self._apps[sdkappid].callback

    def apps(self) -> list[int]:
        return sorted(self._apps)

    def set_faults(self, faults: Faults, sdkappid: int | None = None) -> None:
        """Global faults (``sdkappid`` None) or one app's; an all-default Faults clears an app's own."""
        if sdkappid is None:
            self._faults = faults
        elif faults.active:
            self._app_faults[sdkappid] = faults
        else:
            self._app_faults.pop(sdkappid, None)

    def faults(self, sdkappid: int | None = None) -> Faults:
        """The faults in force for requests naming ``sdkappid`` (None: the global ones)."""
        if sdkappid is None:
            return self._faults
        return self._app_faults.get(sdkappid, self._faults)

    def count(self, action: str | None = None, sdkappid: int | None = None) -> int:
        """Vendor API requests received, whatever their outcome, optionally filtered."""
        return sum(
            n
            for (a, s), n in self._counts.items()
            if (action is None or a == action) and (sdkappid is None or s == sdkappid)
        )

    def counts(self) -> dict[str, Any]:
        """The counters as JSON: totals, per action, and per sdkappid and action."""
        by_action: collections.Counter[str] = collections.Counter()
        by_app: dict[str, dict[str, int]] = {}
        for (action, sdkappid), n in self._counts.items():
            by_action[action] += n
            by_app.setdefault("invalid" if sdkappid is None else str(sdkappid), {})[action] = n
        return {"total": sum(by_action.values()), "by_action": dict(by_action), "by_sdkappid": by_app}

    def reset_counts(self) -> None:
        self._counts.clear()
        self.requests.clear()

    def load_state(self, path: Path) -> None:
        """Replace the whole state with a YAML or JSON state file; raises ConfigError."""
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            # Parser messages quote the offending text, which may be a key: give only where it broke.
            mark = getattr(exc, "problem_mark", None)
            line = None if mark is None else mark.line + 1
            raise ConfigError(source, [Problem("", f"cannot read: {type(exc).__name__}", line)]) from None
        self.load_dict(data, source=source)

    def load_dict(self, data: Any, *, source: str = "<state>") -> None:
        """Replace the whole state with ``data`` (the shape of ``dump_state``); raises ConfigError."""
        if not isinstance(data, Mapping):
            raise ConfigError(source, [Problem("", "the state must be a mapping with 'apps'")])
        problems = [Problem(k, "unknown key") for k in sorted(set(map(str, data)) - _STATE_KEYS)]
        specs: dict[int, _AppSpec] = {}
        app_faults: dict[int, Faults] = {}
        global_faults = Faults()
        raw_apps = data.get("apps") or []
        if not isinstance(raw_apps, list):
            problems.append(Problem("apps", "must be a list"))
            raw_apps = []
        for i, raw in enumerate(raw_apps):
            with _collect(problems, f"apps[{i}]"):
                spec = _parse_app(raw)
                if spec.sdkappid in specs:
                    raise ValueError(f"duplicate sdkappid {spec.sdkappid}")
                specs[spec.sdkappid] = spec
        with _collect(problems, "faults"):
            global_faults = Faults.from_dict(_mapping(data.get("faults") or {}))
        with _collect(problems, "app_faults"):
            for sdkappid, raw in _mapping(data.get("app_faults") or {}).items():
                with _collect(problems, f"app_faults.{sdkappid}"):
                    app_faults[_uint(sdkappid)] = Faults.from_dict(_mapping(raw))
        if problems:
            raise ConfigError(source, problems)
        self._apps.clear()
        for s in specs.values():
            self.add_app(s.sdkappid, s.key, admins=s.admins, callback=s.callback, name=s.name)
        self._faults = global_faults
        self._app_faults = {k: v for k, v in app_faults.items() if v.active}

    def dump_state(self) -> dict[str, Any]:
        """The whole state in the state-file shape, JSON-ready. It contains the secret keys."""
        apps = []
        for app in sorted(self._apps.values(), key=lambda a: a.sdkappid):
            entry: dict[str, Any] = {"sdkappid": app.sdkappid}
            if app.name is not None:
                entry["name"] = app.name
            entry["key"] = app.key
            entry["admins"] = list(app.admins)
            entry["callback"] = _callback_json(app.callback)
            apps.append(entry)
        return {
            "apps": apps,
            "faults": self._faults.to_dict(),
            "app_faults": {str(k): v.to_dict() for k, v in sorted(self._app_faults.items())},
        }


def _callback_json(callback: CallbackConfig | None) -> dict[str, Any] | None:
    return None if callback is None else {"url": callback.url, "commands": list(callback.commands)}


def parse_callback(data: Any) -> CallbackConfig | None:
    """``{"url": str, "commands": [str]}`` or None; raises ValueError."""
    if data is None:
        return None
    data = _mapping(data)
    url, commands = data.get("url"), data.get("commands")
    if set(data) - {"url", "commands"}:
        raise ValueError("callback takes only 'url' and 'commands'")
    if not isinstance(url, str) or not url:
        raise ValueError("callback url must be a non-empty string")
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise ValueError("callback commands must be a list of strings")
    return CallbackConfig(url, tuple(commands))


@dataclass(frozen=True)
class _AppSpec:
    sdkappid: int
    key: str = field(repr=False)
    admins: tuple[str, ...]
    callback: CallbackConfig | None
    name: str | None


def _parse_app(raw: Any, sdkappid: Any = None) -> _AppSpec:
    """One app from JSON/YAML (``sdkappid`` from the URL path, else from ``raw``); raises ValueError."""
    data = _mapping(raw)
    unknown = sorted(set(map(str, data)) - {"sdkappid", "name", "key", "admins", "callback"})
    if unknown:
        raise ValueError(f"unknown key(s): {', '.join(unknown)}")
    if sdkappid is None:
        sdkappid = data.get("sdkappid")
    if type(sdkappid) is not int or sdkappid <= 0:
        raise ValueError("sdkappid must be a positive integer")
    key, admins, name = data.get("key"), data.get("admins", ["administrator"]), data.get("name")
    if not isinstance(key, str) or not key:
        raise ValueError("key must be a non-empty string")
    if not isinstance(admins, list) or not admins or not all(isinstance(a, str) and a for a in admins):
        raise ValueError("admins must be a non-empty list of strings")
    if name is not None and not isinstance(name, str):
        raise ValueError("name must be a string")
    return _AppSpec(sdkappid, key, tuple(admins), parse_callback(data.get("callback")), name)


@contextlib.contextmanager
def _collect(problems: list[Problem], path: str) -> Any:
    try:
        yield
    except (ValueError, TypeError) as exc:
        problems.append(Problem(path, str(exc)))


def _mapping(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError("must be a mapping")
    return data


def _uint(value: Any) -> int:
    number = value if type(value) is int else _uint_or_none(str(value))
    if number is None or number <= 0:
        raise ValueError("sdkappid must be a positive integer")
    return number


def _uint_or_none(text: str) -> int | None:
    # str.isdigit alone accepts other scripts' digits, and int() accepts "+1", " 1" and "1_0".
    if text and len(text) <= 20 and text.isascii() and text.isdigit():
        return int(text)
    return None


SAMPLE_DESIRED = CallbackConfig(
    "https://hooks.example.com/tencent/room",
    (
        "Room.CallbackAfterCreateRoom",
        "Room.CallbackAfterDestroyRoom",
        "Room.CallbackAfterMemberEnter",
        "Room.CallbackAfterMemberLeave",
    ),
)
"""The desired callback of every sample app except ``demo-no-config`` (which should have none)."""


def sample_key(sdkappid: int) -> str:
    """The made-up key of a sample app: a public demo value, never a real Tencent key."""
    return hashlib.sha256(f"callback-monitor demo key {sdkappid}".encode()).hexdigest()


def sample_state() -> dict[str, Any]:
    """The demo's five apps, in the state-file shape. Their keys are public demo keys (``sample_key``).

    Against ``SAMPLE_DESIRED`` (and ``callback: null`` for demo-no-config): 1400000001 is in sync,
    1400000002 points at another host, 1400000003 uses plain http, 1400000004 lacks two commands, and
    1400000005 has no configuration at all (in sync with its desired null).
    """
    want = SAMPLE_DESIRED
    callbacks: list[tuple[int, str, CallbackConfig | None]] = [
        (1400000001, "demo-in-sync", want),
        (
            1400000002,
            "demo-drifted-url",
            CallbackConfig("https://hooks.example.net/collect?token=demo", want.commands),
        ),
        (
            1400000003,
            "demo-plain-http",
            CallbackConfig(want.url.replace("https://", "http://"), want.commands),
        ),
        (1400000004, "demo-missing-commands", CallbackConfig(want.url, want.commands[:2])),
        (1400000005, "demo-no-config", None),
    ]
    apps = [
        {
            "sdkappid": sdkappid,
            "name": name,
            "key": sample_key(sdkappid),
            "admins": ["administrator"],
            "callback": _callback_json(callback),
        }
        for sdkappid, name, callback in callbacks
    ]
    return {"apps": apps, "faults": {}, "app_faults": {}}

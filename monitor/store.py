"""The daemon's current knowledge: every app's state, the loaded config and reload status.

One mutable object shared by the checker (which writes app states), and by metrics and the web
pages (which only read). Everything it holds is immutable, so readers see consistent snapshots
without locks: a reader takes ``store.states`` once and iterates that dict's values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.config import Config
from monitor.state import AlertEvent, AppState


@dataclass
class ReloadStatus:
    successful: bool = True
    last_success: float | None = None
    last_attempt: float | None = None
    last_error: str = ""  # the first lines of the ConfigError, for the status page


@dataclass
class Store:
    config: Config | None = None
    states: dict[str, AppState] = field(default_factory=dict)
    next_check: dict[str, float] = field(default_factory=dict)  # app name -> planned time (epoch)
    reload: ReloadStatus = field(default_factory=ReloadStatus)
    started: float = 0.0
    ready: bool = False
    shard: tuple[int, int] = (0, 1)  # (index, count)
    listeners: list[Callable[[AlertEvent], None]] = field(default_factory=list)

    def emit(self, events: tuple[AlertEvent, ...]) -> None:
        for event in events:
            for listener in self.listeners:
                listener(event)

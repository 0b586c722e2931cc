"""What the room_config API holds for one app: a callback URL and its command words."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.tencent.commands import canonical_set


@dataclass(frozen=True)
class CallbackConfig:
    """One app's callback configuration, as Tencent returns it or as we want it to be.

    ``commands`` keeps the order and spelling given; compare with ``command_set``.
    """

    url: str
    commands: tuple[str, ...]

    @property
    def command_set(self) -> frozenset[str]:
        """The commands as compared: order dropped, the two update-room-info spellings joined."""
        return canonical_set(self.commands)

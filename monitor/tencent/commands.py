"""The callback command words Tencent knows, and the one alias the vendor spells two ways."""

from __future__ import annotations

from collections.abc import Iterable

KNOWN_COMMANDS: frozenset[str] = frozenset(
    {
        "Room.CallbackAfterCreateRoom",
        "Room.CallbackAfterDestroyRoom",
        "Room.CallbackAfterUpdateRoomInfo",
        "Room.CallbackAfterMemberEnter",
        "Room.CallbackAfterMemberLeave",
        "Mic.CallbackAfterSeatInfoChanged",
    }
)

# The get_callback sample and an older list say Room.CallbackUpdateRoomInfo; newer pages say
# Room.CallbackAfterUpdateRoomInfo. Both name one event, so both compare as the newer spelling.
ALIASES: dict[str, str] = {"Room.CallbackUpdateRoomInfo": "Room.CallbackAfterUpdateRoomInfo"}


def canonical(command: str) -> str:
    """The spelling a command word is compared under."""
    return ALIASES.get(command, command)


def canonical_set(commands: Iterable[str]) -> frozenset[str]:
    return frozenset(canonical(c) for c in commands)


def is_known(command: str) -> bool:
    """Unknown words are allowed (the vendor adds events); callers warn about them."""
    return canonical(command) in KNOWN_COMMANDS

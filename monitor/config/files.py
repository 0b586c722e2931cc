"""One safe read of the config file and the files it names: regular only, never blocking, capped."""

from __future__ import annotations

import os
import stat
from pathlib import Path

_CHUNK = 1024 * 1024  # what a file that grew after fstat is read on in
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class UnreadableFile(Exception):
    """Why a file cannot be read, as the end of a message says it ("No such file or directory").

    It never leaves the config package: the loader makes it a ConfigError, a secret's read a
    SecretUnavailable.
    """


class CannotOpen(UnreadableFile):
    """The system refused: missing, no permission, a NUL in the name, an I/O error; ``errno`` says
    which (None for a NUL in the name), so a caller can tell the process running out of descriptors
    from a file that is not there."""

    def __init__(self, why: str, errno: int | None = None) -> None:
        super().__init__(why)
        self.errno = errno


class NotRegular(UnreadableFile):
    """A directory, named pipe, device or socket: reading one may block or never end."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"{kind}, not a regular file")
        self.kind = kind


class TooLarge(UnreadableFile):
    """More bytes than the cap; ``size`` is what fstat said, or None when the file grew while read."""

    def __init__(self, limit: int, size: int | None) -> None:
        super().__init__(f"larger than {describe_size(limit)}")
        self.size = size


def describe_size(limit: int) -> str:
    """64 KiB, 32 MiB: a cap as a message gives it."""
    if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit >= 1024 and limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


def read_regular(path: str | Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), at most ``limit`` of them.

    A look with stat comes first, so a device is never opened; the open is non-blocking (a FIFO
    swapped in after the look opens at once instead of waiting for a writer), and fstat on the open
    file decides. Raises UnreadableFile only: never OSError, and never reads past ``limit`` + 1 bytes.
    """
    try:
        _regular(os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise CannotOpen(exc.strerror or type(exc).__name__, exc.errno) from None
    except ValueError as exc:  # a NUL byte in the path
        raise CannotOpen(str(exc)) from None
    try:
        info = os.fstat(fd)
        _regular(info.st_mode)
        if info.st_size > limit:
            raise TooLarge(limit, info.st_size)
        return _read_up_to(fd, info.st_size, limit)
    except OSError as exc:
        raise CannotOpen(exc.strerror or type(exc).__name__, exc.errno) from None
    finally:
        os.close(fd)


def _regular(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    for test, kind in _KINDS:
        if test(mode):
            raise NotRegular(kind)
    raise NotRegular("an unknown kind of file")  # every kind POSIX has is named above


def _read_up_to(fd: int, expected: int, limit: int) -> bytes:
    """The file's bytes: one read of the size fstat saw (plus a byte, to see the end) costs no more
    memory than the file; only a file that grew since is read on, in chunks, up to the cap."""
    chunks: list[bytes] = []
    size = 0
    ask = min(expected, limit) + 1
    while chunk := os.read(fd, ask):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise TooLarge(limit, None)
        if len(chunk) < ask:  # a short read of a regular file is its end: no second, empty read
            break
        ask = min(_CHUNK, limit + 1 - size)
    return b"".join(chunks)

"""The stat signature of a watched file: what changes when its content is replaced."""

from __future__ import annotations

import os

Signature = tuple[int, int, int, int]


def file_signature(path: os.PathLike[str] | str) -> Signature | None:
    """Inode, device, size and mtime of ``path``, or None when it cannot be stat'ed.

    A write changes the size or mtime; a symlink swap (how Kubernetes rotates a mounted secret)
    changes the inode. A stat costs a fraction of a read, so watchers compare this first.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)

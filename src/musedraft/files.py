"""Safe file output: every file musedraft writes appears whole or not at all.

A crash mid-write leaves the previous file (or nothing), never half a MIDI or a truncated WAV.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from musedraft.errors import OutputExistsError

__all__ = ["atomic_path", "check_writable"]


def check_writable(path: str | os.PathLike, force: bool) -> Path:
    """Refuse to clobber an existing file unless `force` — before any expensive work starts."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists; pass force=True (CLI: --force) to overwrite it.")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file keeps the final suffix because some writers (soundfile, music21) pick the
    format from it.
    """
    path = check_writable(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs should be readable like any file
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)

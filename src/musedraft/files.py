"""Safe file output: every file musedraft writes appears whole or not at all.

A crash mid-write leaves the previous file (or nothing), never half a MIDI or a truncated WAV; a
draft's several files (`Staging`) appear together or not at all.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from musedraft.errors import OutputExistsError, OutputPathError

__all__ = ["atomic_path", "check_writable", "Staging"]

_UMASK = os.umask(0)  # read once: reading it means setting it, which is not safe once threads write files
os.umask(_UMASK)


def check_writable(path: str | os.PathLike, force: bool) -> Path:
    """Refuse to clobber an existing file unless `force`, and refuse a path no file can take (a
    folder, or a file where a folder should be) — before any expensive work starts."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path} is a folder; give a file name (e.g. {path / 'out'}{path.suffix or '.mid'}).")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise OutputPathError(f"{blocking} is a file, so {path} cannot be written inside it; choose another folder.")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists; pass force=True (CLI: --force) to overwrite it.")
    return path


def _temp_beside(path: Path) -> Path:
    """An empty temporary file in `path`'s folder (created if needed), with `path`'s suffix: some
    writers (soundfile, music21) pick the format from it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs should be readable like any file
    except OSError as exc:
        raise OutputPathError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    return Path(tmp)


def _move(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputPathError(f"Cannot write {path}: {exc.strerror or exc}.") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = check_writable(path, force)
    tmp_path = _temp_beside(path)
    try:
        yield tmp_path
        _move(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


class Staging:
    """Several outputs written as one: each into a temporary file beside its target, renamed into
    place by `commit` once the caller has them all. Whatever is not committed is deleted on exit.
    A draft's MIDI without its MusicXML would be a half-written output, and would make the next run
    refuse to overwrite it without --force.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with Staging({"a": folder / "a.txt", "b": folder / "b.txt"}, force=False) as stage:
    ...     _ = stage.path("a").write_text("A")
    ...     _ = stage.path("b").write_text("B")
    ...     sorted(p.name for p in stage.commit(["a", "b"]).values())
    ['a.txt', 'b.txt']
    >>> try:
    ...     with Staging({"c": folder / "c.txt"}, force=False) as stage:
    ...         _ = stage.path("c").write_text("C")
    ...         raise RuntimeError("the MusicXML export failed")
    ... except RuntimeError:
    ...     pass
    >>> sorted(p.name for p in folder.iterdir())
    ['a.txt', 'b.txt']
    """

    def __init__(self, targets: dict[str, Path], force: bool):
        self.targets = {kind: check_writable(path, force) for kind, path in targets.items()}
        self._temps: dict[str, Path] = {}

    def __enter__(self) -> Staging:
        return self

    def path(self, kind: str) -> Path:
        """Where to write `kind` for now."""
        if kind not in self._temps:
            self._temps[kind] = _temp_beside(self.targets[kind])
        return self._temps[kind]

    def commit(self, kinds: list[str]) -> dict[str, Path]:
        """Rename the staged files of `kinds` onto their targets."""
        done = {}
        for kind in kinds:
            _move(self._temps.pop(kind), self.targets[kind])
            done[kind] = self.targets[kind]
        return done

    def __exit__(self, *exc) -> None:
        for tmp in self._temps.values():
            tmp.unlink(missing_ok=True)
        self._temps.clear()

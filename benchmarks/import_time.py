"""How long `import musedraft` takes, against importing the heavy libraries it loads lazily.

Each import runs in a fresh interpreter, 5 times; the median is reported. Writes docs/benchmarks_import.md.

    .venv/bin/python benchmarks/import_time.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from common import command, machine, publish, table

MODULES = ["musedraft", "musedraft.cli", "torch", "music21", "miditok", "musedraft.composer"]


def import_seconds(module: str, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        times.append(time.perf_counter() - t)
    baseline = statistics.median(
        [_timed([sys.executable, "-c", "pass"]) for _ in range(repeats)])
    return statistics.median(times) - baseline


def _timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def main() -> None:
    rows = [[f"`import {m}`", f"{import_seconds(m) * 1000:.0f} ms"] for m in MODULES]
    text = "\n".join([
        "## `import musedraft` time", "",
        f"Fresh interpreter per import, median of 5, interpreter start-up subtracted; {machine()}.", "",
        table(["import", "time"], rows), "",
        "`musedraft` and its CLI import no heavy library: torch, music21, MidiTok and FluidSynth load on first use "
        "(`musedraft.composer` is what the first `compose()` pays).", "",
        f"Command: `{command()}`", ""])
    publish("import", text)


if __name__ == "__main__":
    main()

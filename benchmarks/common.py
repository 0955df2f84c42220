"""Shared by the pipeline benchmarks: the machine line, markdown tables, and writing docs/benchmarks_<name>.md."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    """'2 CPUs (x86_64), load average 2.1 at the start' — other jobs may share the machine."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPUs ({platform.machine()}), load average {load:.1f} at the start"


def command() -> str:
    """How this benchmark was run, with the script path relative to the repository."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT).as_posix() if script.is_relative_to(ROOT) else sys.argv[0]
    return " ".join([".venv/bin/python", shown, *sys.argv[1:]])


def table(headers: list[str], rows: list[list], right: set[int] | None = None) -> str:
    """A markdown table; columns in `right` (default: all but the first) are right-aligned."""
    right = set(range(1, len(headers))) if right is None else right
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def best_of(fn, repeats: int = 3) -> float:
    """Fastest wall time of `repeats` calls: the figure least disturbed by other jobs."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def publish(name: str, text: str, out: str | None = None) -> Path:
    """Print the section and write it to docs/benchmarks_<name>.md (merged into docs/benchmarks.md)."""
    path = Path(out) if out else ROOT / "docs" / f"benchmarks_{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = text.rstrip() + "\n"
    path.write_text(text)
    print(text)
    print(f"(written to {path})")
    return path

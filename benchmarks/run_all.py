"""`make bench`: run every benchmark in one go on this machine, then merge their sections into
docs/benchmarks.md (each script also writes its own docs/benchmarks_<name>.md).

    .venv/bin/python benchmarks/run_all.py [--skip controls,harmony]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (section file name, script and arguments), in pipeline order
BENCHMARKS = [
    ("import", ["benchmarks/import_time.py"]),
    ("tokenize", ["benchmarks/tokenizer.py"]),
    ("decode", ["benchmarks/decode.py"]),
    ("compose", ["benchmarks/compose.py"]),
    ("candidates", ["benchmarks/candidates.py"]),
    ("guidance", ["benchmarks/guidance.py", "--n", "22"]),
    ("harmony", ["benchmarks/harmony.py", "--drafts", "22"]),
    ("render", ["benchmarks/render.py"]),
    ("controls", ["benchmarks/controls.py", "--n", "200"]),
]


def merge() -> Path:
    parts = ["# Benchmarks", "",
             "Every figure below was measured on the 2-core development machine by the command named under it; "
             "ratios come from runs side by side in one process. `make bench` re-runs them all and rewrites this file.",
             ""]
    for name, _ in BENCHMARKS:
        section = ROOT / "docs" / f"benchmarks_{name}.md"
        if section.exists():
            parts += [section.read_text().rstrip(), ""]
    out = ROOT / "docs" / "benchmarks.md"
    out.write_text("\n".join(parts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip", default="", help="comma-separated section names to leave as they are")
    ap.add_argument("--merge-only", action="store_true")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if not args.merge_only:
        for name, cmd in BENCHMARKS:
            if name in skip:
                continue
            t = time.perf_counter()
            print(f"== {name}: {' '.join(cmd)}", flush=True)
            subprocess.run([sys.executable, *cmd], cwd=ROOT, check=True)
            print(f"== {name} took {time.perf_counter() - t:.0f} s", flush=True)
    print(f"wrote {merge()}")


if __name__ == "__main__":
    main()

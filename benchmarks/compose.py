"""End-to-end compose: a 32-bar, 4-instrument draft from request to files, with each stage's share.

Stages: load (checkpoint → Composer), generate (constrained sampling), repair (harmony check and
repair), export (MIDI, MusicXML, piano roll, JSON) and render (FluidSynth preview, WAV + OGG) —
`musedraft.compose(...)` then `draft.save(tmpdir)`, with the timings both record. The first run in
the process pays the imports and the sound-font load; the warm rows are what a second draft costs.

    .venv/bin/python benchmarks/compose.py                       # the shipped model
    .venv/bin/python benchmarks/compose.py --model runs/v1/best  # any checkpoint folder
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from common import command, machine, publish, table

STAGES = ("load", "generate", "repair", "export", "render")


def one_draft(model: str, seed: int, args) -> dict[str, float]:
    from musedraft.composer import _cached, compose  # noqa: PLC0415  (imports are part of the first run)

    _cached.cache_clear()  # time the checkpoint load every run, not only the first
    t = time.perf_counter()
    draft = compose(args.style, key=args.key, instruments=args.instruments, bars=args.bars, seed=seed,
                    time_signature="4/4", model=model)
    compose_wall = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        draft.save(tmp, audio=not args.no_audio)
        save_wall = time.perf_counter() - t
        doc = json.loads((Path(tmp) / "draft.json").read_text())
    tm = doc["timings"]
    export = sum(tm.get(k, 0.0) for k in ("save_midi", "save_musicxml", "save_png"))
    render = tm.get("save_audio", 0.0)
    stages = {"load": tm["load"], "generate": tm["generate"], "repair": tm.get("repair", 0.0),
              "export": export + (save_wall - export - render),  # JSON and bookkeeping count as export
              "render": render}
    stages["total"] = compose_wall + save_wall
    stages["notes"] = sum(len(t.notes) for t in draft.score.tracks)
    return stages


def main() -> None:
    from musedraft.composer import DEFAULT_MODEL  # noqa: PLC0415

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    ap.add_argument("--runs", type=int, default=3, help="drafts to compose (seeds 0..runs-1); the first is cold")
    ap.add_argument("--bars", type=int, default=32)
    ap.add_argument("--style", default="classical")
    ap.add_argument("--key", default="D major")
    ap.add_argument("--instruments", nargs="+", default=["violin", "violin", "viola", "cello"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--no-audio", action="store_true", help="skip the FluidSynth render")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    model = args.model or str(DEFAULT_MODEL)
    if not (Path(model) / "model.safetensors").is_file():
        raise SystemExit(f"No checkpoint at {model}: pass --model FOLDER (e.g. runs/<name>/best) until the "
                         "shipped model exists.")
    head = machine()
    import torch  # noqa: PLC0415

    if args.threads:
        torch.set_num_threads(args.threads)
    runs = [one_draft(model, seed, args) for seed in range(args.runs)]
    warm = runs[1:] or runs
    threads = torch.get_num_threads()
    single = []
    if threads > 1:  # batch-1 decoding is latency-bound: the same warm drafts again on one thread
        torch.set_num_threads(1)
        single = [one_draft(model, seed, args) for seed in range(1, args.runs)] or [one_draft(model, 0, args)]
        torch.set_num_threads(threads)

    def med(key: str, rs) -> float:
        return statistics.median(r[key] for r in rs)

    rows = []
    for stage in (*STAGES, "total"):
        row = [stage, f"{runs[0][stage]:.2f}", f"{med(stage, warm):.2f}",
               "" if stage == "total" else f"{100 * med(stage, warm) / med('total', warm):.0f}%"]
        if single:
            row += [f"{med(stage, single):.2f}",
                    "" if stage == "total" else f"{100 * med(stage, single) / med('total', single):.0f}%"]
        rows.append(row)
    headers = ["stage", f"first run s (cold, {threads} threads)", f"warm s ({threads} threads)", "share"]
    if single:
        headers += ["warm s (1 thread)", "share"]
    from musedraft.model import load_checkpoint  # noqa: PLC0415

    net, _ = load_checkpoint(model)
    lines = [
        f"## Compose end to end ({args.bars} bars, {len(args.instruments)} instruments)", "",
        f"`{command()}` — {args.style}, {args.key}, {' + '.join(args.instruments)}, 4/4; model "
        f"`{model}` ({net.num_params() / 1e6:.2f} M parameters, context {net.cfg.context}); "
        f"{args.runs} drafts (seeds 0-{args.runs - 1}), warm figures are medians of the drafts after the first; "
        f"{head} (other jobs share the machine).", "",
        table(headers, rows), "",
        f"- Notes per draft: {', '.join(str(r['notes']) for r in runs)}.",
        *([f"- Generation on 1 torch thread instead of {threads}: {med('generate', single):.2f} s instead of "
           f"{med('generate', warm):.2f} s. `Generator.generate` now pins torch to one thread itself (a batch-1, "
           "one-token forward gains nothing from a second OpenMP thread and lost 7-45x to it on this shared "
           "machine), so the two columns differ only by noise; the process-wide setting still applies to "
           "the other stages."] if single else []),
        "- load: checkpoint → model + tokenizer (cache cleared before each run); generate: KV-cached constrained "
        "sampling; repair: harmony check + repair; export: MIDI + MusicXML + piano-roll PNG + draft.json; "
        "render: FluidSynth preview to WAV and OGG." + (" (audio skipped)" if args.no_audio else ""),
    ]
    publish("compose", "\n".join(lines), args.out)


if __name__ == "__main__":
    main()

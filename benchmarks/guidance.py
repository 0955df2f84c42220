"""What the sampling settings do to the music: the same requests and seeds composed under the old
settings (session 1), with each change added in turn, and the defaults; every draft is checked
before repair. Writes docs/benchmarks_guidance.md.

    .venv/bin/python benchmarks/guidance.py --n 12 [--model FOLDER]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from collections import Counter

from common import command, machine, publish, table

import musedraft.composer as composer_module
from musedraft import compose, load_model
from musedraft.harmony import HarmonyConfig, repair
from musedraft.metrics import compute_all
from musedraft.presets import scenes
from musedraft.score import ticks_per_bar

# Session 1's sampling, then each later change on top of the previous one. CENTRES is no sampling
# setting: the rows before it run with the habits' instrument centres (pooled and per rank) taken out,
# each line at its instrument's middle, as compose() did before session 19.
CENTRES = "style centres"
OLD = dict(temperature=0.9, top_p=0.95, key_penalty=5.0, tonic_bias=0.5, clash_penalty=0.0, parallel_penalty=0.0,
           entry_bias=0.0, gap_penalty=0.0, leading_tone_bias=0.0, ambitus_penalty=0.0,
           long_note_penalty=0.0, chromatic_budget=False, rest_budget=False, entry_rest=0.0, voice_budget=False,
           length_penalty=0.0, register_penalty=0.0, balance_penalty=0.0, tonic_budget=False, rest_pull=0.0,
           tacet_bars=0.0, tacet_deadline=False, leap_clash=False, beat_clash=False, tonic_downbeat=False, crossing_penalty=0.0,
           **{CENTRES: False})
STEPS = [
    ("session 1: T 0.9, top-p 0.95, key penalty 5, tonic bias 0.5", {}),
    ("+ voice-leading guidance (clash 4.5, parallels 4.5)", dict(clash_penalty=4.5, parallel_penalty=4.5)),
    ("+ T 1.0, top-p 0.98, key penalty 1, tonic bias 0.3", dict(temperature=1.0, top_p=0.98, key_penalty=1.0,
                                                                tonic_bias=0.3)),
    ("+ entry bias 2", dict(entry_bias=2.0)),
    ("+ gap penalty 1.5, leading-tone bias 0.3", dict(gap_penalty=1.5, leading_tone_bias=0.3)),
    ("+ ambitus penalty 1 (style habits)", dict(ambitus_penalty=1.0)),
    ("+ long-note penalty 1 (style habits)", dict(long_note_penalty=1.0)),
    ("+ chromatic and rest budgets (style habits)", dict(chromatic_budget=True, rest_budget=True)),
    ("+ entry bias only after a beat's rest", dict(entry_rest=1.0)),
    ("+ entry bias only while the lines have played less than the style's", dict(voice_budget=True)),
    ("+ length budget per metre (style habits)", dict(length_penalty=1.0)),
    ("+ register pull 0.3", dict(register_penalty=0.3)),
    ("+ pitch-class balance 0.5, tonic bias only within the triad's share",
     dict(balance_penalty=0.5, tonic_budget=True)),
    ("+ rest pull 1.5 while the piece owes its style silence", dict(rest_pull=1.5)),
    ("+ an instrument that sat out two bars pulled in whatever the budget", dict(tacet_bars=2.0)),
    ("+ ... and while the bars left barely let it sound in half the draft's", dict(tacet_deadline=True)),
    ("+ each line centred where the style's parts for its instrument sit (style habits)", {CENTRES: True}),
    ("+ an off-beat leap into a clash costs the full clash penalty", dict(leap_clash=True)),
    ("+ so does a clash on any beat, not only the strong ones", dict(beat_clash=True)),
    ("+ the tonic bias on every downbeat, whatever its budget", dict(tonic_downbeat=True)),
    ("+ chorale voices kept in their order, crossing penalty 3", dict(crossing_penalty=3.0)),
    ("+ parallel penalty 9, twice a clash (the defaults)", dict(parallel_penalty=9.0)),
]
METRICS = ("pitch_class_entropy", "groove_consistency", "polyphony", "notes_per_bar", "pitch_range")


def heard_bars(track, bar: int) -> int:
    """Bars in which the track sounds: an instrument the request named that plays in few is missing."""
    return len({b for note in track.notes for b in range(note.time // bar, (note.end - 1) // bar + 1)})


def run(settings: dict, n: int, model) -> dict:
    """n drafts (one per scene preset in turn, 16 bars, seeds 100...) under these sampling settings."""
    original, habits = composer_module._sampling, model.habits
    sampling = {k: v for k, v in settings.items() if k != CENTRES}
    composer_module._sampling = lambda t, p, d: dataclasses.replace(original(t, p, d), **sampling)
    if not settings[CENTRES]:
        model.habits = {style: dataclasses.replace(h, centres=None, ranks=None) for style, h in habits.items()}
    try:
        presets = scenes()
        found: Counter = Counter()
        values: dict[str, list[float]] = {m: [] for m in METRICS}
        bars = notes = edits = sitting_out = 0
        for i in range(n):
            scene = presets[i % len(presets)]
            draft = compose(scene=scene.name, bars=16, seed=100 + i, repair=False, model=model)
            result = repair(draft.score, HarmonyConfig.for_style(scene.style))
            found.update(f.rule for f in result.findings_before)
            edits += len(result.edits)
            notes += sum(len(t.notes) for t in draft.score.tracks)
            sitting_out += sum(heard_bars(t, ticks_per_bar(draft.score)) < 8 for t in draft.score.tracks)
            bars += 16
            for m, v in compute_all(draft.score).items():
                if m in values:
                    values[m].append(v)
    finally:
        composer_module._sampling, model.habits = original, habits
    per100 = lambda *rules: round(100 * sum(found[r] for r in rules) / bars, 1)  # noqa: E731
    return {"clash": per100("clash"), "weak-clash": per100("weak-clash"),
            "parallels": per100("parallel-fifths", "parallel-octaves"), "out-of-key": per100("out-of-key"),
            "edits_pct": round(100 * edits / max(1, notes), 1), "sitting_out": sitting_out,
            **{m: round(statistics.fmean(v), 3) for m, v in values.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12, help="drafts per setting (one per scene preset in turn)")
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    model = load_model(args.model)
    rows, settings = [], dict(OLD)
    for label, change in STEPS:
        settings.update(change)
        r = run(settings, args.n, model)
        rows.append([label, r["clash"], r["weak-clash"], r["parallels"], r["out-of-key"], f"{r['edits_pct']}%",
                     r["sitting_out"], *(r[m] for m in METRICS)])
        print(label, r, flush=True)
    text = "\n".join([
        "## Sampling settings: what each one does (same requests and seeds)",
        "",
        f"`{command()}` — {machine()}; model `{model.model_id}`. {args.n} drafts per row, one per scene preset in "
        "turn (16 bars, seeds 100...), checked before repair with the style's `HarmonyConfig`; faults per 100 bars, "
        "the share of notes repair edits, how many of the drafts' instruments sound in fewer than 8 of the 16 bars, "
        "and metric means (docs/evaluation.md compares them with real pieces).",
        "",
        table(["sampling", "clash", "weak clash", "parallels", "out of key", "repair edits", "sitting out",
               "pitch-class entropy",
               "groove consistency", "polyphony", "notes per bar", "pitch range"], rows),
    ])
    publish("guidance", text)


if __name__ == "__main__":
    main()

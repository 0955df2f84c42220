"""After compose: do drafts of a style look like the real pieces of that style?

For each style, N drafts and the held-out pieces of that style (the valid and test splits, which
training never sees) are scored with `musedraft.metrics`; the table compares the means. Each draft
mirrors one held-out piece: its key, its metre and its parts (the same instruments; a piano's two
staves are one piano, which compose() writes in four lines),
so a difference in the table is the model's, not a different request's. The harmony checker's
faults (errors and warnings) per 100 bars are counted too: real pieces, drafts before and after repair.

    corpus table (held-out splits) ─► real scores (cut to 16-32 bars) ─┐
    compose(style, key, metre, parts) × N ─► repair ─► drafts ─────────┴─► metric means ─► docs/evaluation.md
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from musedraft.errors import CorpusError, RequestError
from musedraft.files import atomic_path
from musedraft.habits import StyleHabits, line_centre
from musedraft.metrics import METRICS, compute_all
from musedraft.score import first_bars

__all__ = ["TARGET", "evaluate_style", "relative_difference", "evaluation_table", "evaluation_markdown",
           "write_evaluation"]

TARGET = 0.10  # a metric is "close" when the drafts' mean is within 10% of the real pieces' mean
BARS = (16, 32)  # draft lengths are drawn uniformly from this range; real pieces are cut to the same
_ZERO = 1e-6  # a real mean below this makes a relative difference meaningless
HELD_OUT = ("valid", "test")  # splits training never sees (valid only picks the best checkpoint)
MAX_PARTS = 8  # compose() writes at most this many lines


def _key_name(row: dict) -> str | None:
    """The corpus row's analysed key as compose() spells it (music21 writes E- for E flat)."""
    tonic, mode = str(row.get("key_tonic", "")).replace("-", "b"), row.get("mode")
    return f"{tonic} {mode}" if tonic and mode in ("major", "minor") else None


_SINGERS = ("soprano", "alto", "tenor", "bass voice")


def _instruments(row: dict, habits: StyleHabits | None = None) -> list[str | int]:
    """The real piece's parts as compose() instruments: by name where we know the instrument, else
    by GM program (at most MAX_PARTS, top part first as the score lists them). music21 gives each
    staff of a piano its own part; consecutive staves of one keyboard are one instrument. A sung part
    whose name says no voice ("Voice", "Triplum") is the singer whose centre is nearest its notes'
    median, not a whole choir's range: where the style's `habits` centre each singer, as compose()
    does (a madrigal's tenor on B3), else at the singer's middle."""
    from musedraft.instruments import get_instrument, instrument_names, instrument_of_track, lines_of  # noqa: PLC0415

    known = set(instrument_names())
    out: list[str | int] = []
    previous = None
    for part in row.get("parts", [])[:MAX_PARTS]:
        inst = instrument_of_track(part.get("name"), int(part.get("program", 0)))
        if inst.name == "choir" and part.get("median_pitch") is not None:
            inst = min((get_instrument(s) for s in _SINGERS),
                       key=lambda i: abs(line_centre(i, habits) - part["median_pitch"]))
        if not (inst == previous and len(lines_of(inst)) > 1):
            out.append(inst.name if inst.name in known else inst.program)
        previous = inst
    return out


def _pieces(style: str, corpus_cache: Path, splits: tuple[str, ...], limit: int, rng: np.random.Generator) -> list[dict]:
    """The corpus rows of a style in these splits, by id; a deterministic sample of `limit` when there are more."""
    from musedraft.corpus import load_table  # noqa: PLC0415

    rows = sorted((r for r in load_table(corpus_cache) if r.get("split") in splits and r.get("style") == style),
                  key=lambda r: r["id"])
    if len(rows) > limit:
        rows = [rows[i] for i in sorted(rng.choice(len(rows), size=limit, replace=False))]
    return rows


def _faults(findings) -> int:
    """Findings that are faults: errors and warnings (an "info" remark such as voice crossing is not)."""
    return sum(f.severity != "info" for f in findings)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _noise(generated: list[float], real: list[float]) -> float:
    """Two standard errors of (drafts' mean - real mean), relative to the real mean: a difference
    smaller than this could be the luck of which pieces and seeds were drawn. NaN when undefined.

    >>> round(_noise([1.0, 3.0], [2.0, 2.0]), 3)  # s.e. of the drafts' mean is 1.0, the real one's 0
    1.0
    """
    g, r = ([v for v in vs if not math.isnan(v)] for vs in (generated, real))
    if len(g) < 2 or len(r) < 2 or abs(float(np.mean(r))) < _ZERO:
        return math.nan
    se = math.sqrt(np.var(g, ddof=1) / len(g) + np.var(r, ddof=1) / len(r))
    return 2 * se / abs(float(np.mean(r)))


def evaluate_style(style: str, n_drafts: int = 20, model=None, corpus_cache: str | os.PathLike | None = None,
                   seed: int = 0, *, max_real: int = 50, progress: bool = False) -> dict[str, Any]:
    """Metric means of `n_drafts` drafts of `style` against the held-out real pieces of that style.

    Args:
        style: a corpus style (chorale, renaissance, madrigal, medieval, classical, romantic, folk).
        n_drafts: drafts to compose; seeds `seed .. seed + n_drafts - 1`. Draft i mirrors held-out
            piece i (cycling): its key, metre and parts.
        model: a `Composer`, a checkpoint folder, or None for the default model.
        corpus_cache: the corpus folder holding `table.jsonl` and `midi/`
            (default `musedraft.corpus.default_cache_dir() / "corpus"`).
        seed: fixes the draft seeds, the lengths and which real pieces are used.
        max_real: at most this many real pieces, held-out and (for the train column) training ones
            (a deterministic sample when there are more).
        progress: show a tqdm bar over the drafts.
    Returns:
        {"style", "n_drafts", "n_real", "n_train", "bars": {...}, "metrics": {name: {"real", "generated",
        "relative_difference", "noise", "within_target", "train"}}, "harmony": {...}, "notes": [...], "seconds"}.
        Draft metrics are taken after the harmony repair: what compose() hands a user.
    """
    from tqdm import tqdm  # noqa: PLC0415

    from musedraft.composer import Composer, compose, load_model  # noqa: PLC0415
    from musedraft.corpus import default_cache_dir  # noqa: PLC0415
    from musedraft.harmony import HarmonyConfig, check, repair  # noqa: PLC0415
    from musedraft.score import load_midi  # noqa: PLC0415

    if not isinstance(n_drafts, int) or n_drafts < 1:
        raise RequestError(f"n_drafts must be a whole number >= 1, not {n_drafts!r}.")
    t0 = time.perf_counter()
    cache = Path(corpus_cache) if corpus_cache else default_cache_dir() / "corpus"
    rng = np.random.default_rng(seed)
    rows = _pieces(style, cache, HELD_OUT, max_real, rng)
    if not rows:
        raise CorpusError(f"The corpus at {cache} has no held-out pieces of style {style!r}.")
    composer = model if isinstance(model, Composer) else load_model(model)
    config = HarmonyConfig.for_style(style)
    notes: list[str] = []

    real_values, real_findings, real_bars = [], 0, 0
    for row in rows:
        bars = int(rng.integers(BARS[0], BARS[1] + 1))
        score = first_bars(load_midi(cache / row["midi"]), bars)
        real_values.append(compute_all(score))
        real_bars += bars
        real_findings += _faults(check(score, config))
    train_rng = np.random.default_rng(seed + 1)  # its own draws: the held-out pieces and the drafts stay seed's
    train_values = [compute_all(first_bars(load_midi(cache / row["midi"]), int(train_rng.integers(BARS[0], BARS[1] + 1))))
                    for row in _pieces(style, cache, ("train",), max_real, train_rng)]

    draft_values, before, after, draft_bars, fallbacks = [], 0, 0, 0, 0
    for i in tqdm(range(n_drafts), desc=f"evaluate {style}", unit="draft", disable=not progress):
        row = rows[i % len(rows)]
        bars = int(rng.integers(BARS[0], BARS[1] + 1))
        request = {"key": _key_name(row), "time_signature": row.get("time_signature"),
                   "instruments": _instruments(row, composer.habits.get(style)) or None}
        try:
            draft = compose(style, bars=bars, seed=seed + i, repair=False, model=composer, **request)
        except RequestError:  # a key spelling or metre this model does not take: the style's defaults
            fallbacks += 1
            draft = compose(style, bars=bars, seed=seed + i, repair=False, model=composer)
        result = repair(draft.score, config)
        before, after = before + _faults(result.findings_before), after + _faults(result.findings_after)
        draft_values.append(compute_all(result.score))
        draft_bars += bars
    if fallbacks:
        notes.append(f"{fallbacks} of {n_drafts} drafts used the style's default key, metre and instruments "
                     "(the piece's were not accepted by the model).")

    table = {}
    for name in METRICS:
        real, generated = _mean([v[name] for v in real_values]), _mean([v[name] for v in draft_values])
        rel = relative_difference(generated, real)
        within = _within_target(generated, real)
        noise = _noise([v[name] for v in draft_values], [v[name] for v in real_values])
        table[name] = {"real": real, "generated": generated, "relative_difference": rel, "noise": noise,
                       "within_target": bool(within), "train": _mean([v[name] for v in train_values])}
    return {
        "style": style, "n_drafts": n_drafts, "n_real": len(rows), "n_train": len(train_values), "seed": seed,
        "model_id": composer.model_id,
        "bars": {"generated": draft_bars, "real": real_bars},
        "metrics": table,
        "harmony": {"real_per_100_bars": 100.0 * real_findings / real_bars,
                    "generated_before_repair_per_100_bars": 100.0 * before / draft_bars,
                    "generated_after_repair_per_100_bars": 100.0 * after / draft_bars},
        "notes": notes,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _within_target(value: float, real: float) -> bool:
    """Whether `value` meets the target against the real mean: within 10%, or (where the real mean is 0
    and the relative difference undefined) within 0.01."""
    rel = relative_difference(value, real)
    return bool(abs(value - real) < 0.01) if math.isnan(rel) else abs(rel) <= TARGET


def relative_difference(generated: float, real: float) -> float:
    """(generated - real) / |real|; NaN when the real mean is (near) zero or either is NaN.

    >>> relative_difference(2.2, 2.0)
    0.1
    >>> math.isnan(relative_difference(0.1, 0.0))
    True
    """
    if math.isnan(generated) or math.isnan(real) or abs(real) < _ZERO:
        return math.nan
    return round((generated - real) / abs(real), 12)


def _json_safe(value: Any) -> Any:
    """NaN → None, recursively (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _fmt(x: float, digits: int = 3) -> str:
    return "—" if math.isnan(x) else f"{x:.{digits}f}"


def evaluation_table(results: list[dict[str, Any]]) -> str:
    """Markdown: per style and metric the real and generated means, their relative difference and
    whether it is within the 10% target; then the harmony faults per 100 bars."""
    lines = ["| style | metric | real | generated | difference | ±2 s.e. | within 10% | train pieces |",
             "|---|---|---:|---:|---:|---:|:---:|---:|"]
    for r in results:
        for name, m in r["metrics"].items():
            rel, noise = m["relative_difference"], m.get("noise", math.nan)
            diff = f"{100 * rel:+.1f}%" if not math.isnan(rel) else f"{m['generated'] - m['real']:+.3f} (abs.)"
            spread = "—" if noise is None or math.isnan(noise) else f"{100 * noise:.1f}%"
            lines.append(f"| {r['style']} | {name} | {_fmt(m['real'])} | {_fmt(m['generated'])} | {diff} | {spread} | "
                         f"{'yes' if m['within_target'] else '**no**'} | {_fmt(m.get('train', math.nan))} |")
    if results:
        lines += ["", "Harmony checker faults (errors and warnings, the style's `HarmonyConfig`) per 100 bars:", "",
                  "| style | real pieces | drafts before repair | drafts after repair |", "|---|---:|---:|---:|"]
        for r in results:
            h = r["harmony"]
            lines.append(f"| {r['style']} | {_fmt(h['real_per_100_bars'], 1)} | "
                         f"{_fmt(h['generated_before_repair_per_100_bars'], 1)} | "
                         f"{_fmt(h['generated_after_repair_per_100_bars'], 1)} |")
    return "\n".join(lines)


def _misses(results: list[dict[str, Any]]) -> str:
    """'; N of the M misses are smaller than two standard errors, and K lie within 10% of the training
    pieces' mean' (empty without misses): which misses another draw could undo, and which are the
    held-out pieces' difference from what the model learnt."""
    misses = [m for r in results for m in r["metrics"].values() if not m["within_target"]]
    if not misses:
        return ""
    noisy = [m for m in misses if not math.isnan(m["relative_difference"]) and m.get("noise") is not None
             and not math.isnan(m["noise"]) and abs(m["relative_difference"]) < m["noise"]]
    near_train = [m for m in misses if m.get("train") is not None
                  and abs(relative_difference(m["generated"], m["train"])) <= TARGET]
    return (f"; {len(noisy)} of the {len(misses)} misses are smaller than two standard errors, and "
            f"{len(near_train)} {'lies' if len(near_train) == 1 else 'lie'} within {100 * TARGET:.0f}% of the "
            "training pieces' mean")


def _real_against_real(results: list[dict[str, Any]]) -> str:
    """'Training pieces against the held-out ones: K of M within 10%': how far real music of a style
    meets the target against these few held-out pieces, the ceiling a perfect model would reach."""
    trains = [(m["train"], m["real"]) for r in results for m in r["metrics"].values()
              if m.get("train") is not None and not math.isnan(m["train"])]
    if not trains:
        return ""
    within = [_within_target(t, real) for t, real in trains]
    return (f"The training pieces' means, real music of the same styles cut the same way, are within "
            f"{100 * TARGET:.0f}% of the held-out means for **{sum(within)} of {len(within)}**: the ceiling "
            "of this comparison for a model that wrote exactly like its training pieces.")


def evaluation_markdown(results: list[dict[str, Any]], command: str = "musedraft evaluate --metrics") -> str:
    """The whole docs/evaluation.md: method, the table, how many comparisons meet the target."""
    pairs = [m["within_target"] for r in results for m in r["metrics"].values()]
    model_ids = sorted({str(r["model_id"]) for r in results})
    notes = [f"- {r['style']}: {n}" for r in results for n in r["notes"]]
    rows = "\n".join(f"| {r['style']} | {r['n_drafts']} | {r['bars']['generated']} | {r['n_real']} | "
                     f"{r['bars']['real']} | {r.get('n_train', '—')} | {r['seconds']:.0f} |" for r in results)
    return "\n".join([
        "# Evaluation: drafts against held-out real pieces",
        "",
        f"Written by `{command}` (model `{', '.join(model_ids)}`, seed {results[0]['seed'] if results else 0}).",
        "",
        "For each style, each draft (16-32 bars) mirrors one held-out piece of that style (valid and test splits,",
        "never trained on): the same key, metre and parts (a piano's two staves are one piano; a sung part whose",
        "name says no voice is the singer whose register its notes centre in); the real pieces are cut to",
        "lengths drawn the same way. Each metric (`musedraft.metrics`: pitch-class entropy, scale consistency, groove consistency,",
        "polyphony, empty-beat rate, pitch range, notes per bar) is averaged over the pieces, and the drafts' mean",
        "(the empty-beat rate counts from the first note: MIDI pads a pickup to a full bar, and padding is no rest)",
        f"is compared with the real mean. Target: within {100 * TARGET:.0f}%. Where the real mean is 0 the relative",
        "difference is undefined; the absolute difference is shown and counts as within target below 0.01.",
        "Draft metrics are measured after the harmony repair (the style's `HarmonyConfig`), as `compose()`",
        "delivers them. The ±2 s.e. column is two standard errors of the difference of the two means (drafts and",
        "pieces vary), relative to the real mean: a miss smaller than it is within what another draw of seeds",
        "and pieces could change. The train pieces column is the same metric over up to 50 training pieces of the",
        "style, cut the same way: where the drafts sit near it but not near the held-out mean, the few held-out",
        "pieces differ from what the model learnt from.",
        "",
        "| style | drafts | draft bars | real pieces | real bars | train pieces | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
        rows,
        "",
        evaluation_table(results),
        "",
        f"**{sum(pairs)} of {len(pairs)}** style × metric comparisons are within the {100 * TARGET:.0f}% target"
        f"{_misses(results)}.",
        *(["", ceiling] if (ceiling := _real_against_real(results)) else []),
        *(["", "Notes:", *notes] if notes else []),
        "",
    ])


def write_evaluation(out: str | os.PathLike = "docs/evaluation.md", styles: list[str] | None = None,
                     n_drafts: int = 20, model=None, corpus_cache: str | os.PathLike | None = None, seed: int = 0,
                     *, force: bool = False, progress: bool = True, max_real: int = 50,
                     command: str = "musedraft evaluate --metrics") -> Path:
    """Evaluate every style (default: each with held-out pieces) and write the markdown report, plus
    the raw numbers as JSON beside it (`evaluation.json`). What the CLI calls.

    Raises:
        CorpusError: no corpus, or a requested style without held-out pieces.
        OutputExistsError: the report exists and `force` is False (checked before any work).
    """
    from musedraft.composer import Composer, load_model  # noqa: PLC0415
    from musedraft.corpus import STYLES, default_cache_dir, load_table  # noqa: PLC0415
    from musedraft.files import check_writable  # noqa: PLC0415

    out = check_writable(out, force)
    json_out = check_writable(Path(out).with_suffix(".json"), force)
    cache = Path(corpus_cache) if corpus_cache else default_cache_dir() / "corpus"
    if styles is None:
        held_out = {r.get("style") for r in load_table(cache) if r.get("split") in HELD_OUT}
        styles = [s for s in STYLES if s in held_out]
    composer = model if isinstance(model, Composer) else load_model(model)
    results = [evaluate_style(s, n_drafts, composer, cache, seed, max_real=max_real, progress=progress)
               for s in styles]
    with atomic_path(json_out, force=force) as tmp:
        tmp.write_text(json.dumps(_json_safe(results), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    with atomic_path(out, force=force) as tmp:
        tmp.write_text(evaluation_markdown(results, command), encoding="utf-8")
    return Path(out)

"""Harmony, check: run every enabled rule over a score and say what is wrong in musicians' words.

`check()` is the public entry; `all_faults` / `region_faults` are what repair re-runs after each
edit (the whole score once, then only the few beats an edit can have changed).
"""

from __future__ import annotations

import os

import numpy as np
from symusic import Score

from musedraft.harmony.clash import vertical_faults
from musedraft.harmony.config import PARALLEL_RULES, RULES, HarmonyConfig
from musedraft.harmony.findings import Finding, in_file_order
from musedraft.harmony.loop import around, heard_as_loop
from musedraft.harmony.rules import (
    crossing_faults,
    out_of_key_faults,
    parallel_faults,
    range_faults,
    voice_faults,
)
from musedraft.harmony.scan import Context, Fault, build_context, new_dissonant_pairs, pairs_at
from musedraft.harmony.theory import interval_name
from musedraft.score import in_voice_order, load_midi, voice_order

__all__ = ["check", "all_faults", "region_faults", "target_faults", "Region", "region_of", "to_findings", "as_score"]

_RULE_ORDER = {r: n for n, r in enumerate(RULES)}


def as_score(score: Score | str | os.PathLike) -> Score:
    """A Score as given, or loaded (and validated) from a MIDI path."""
    return score if isinstance(score, Score) else load_midi(score)


def check(score: Score | str | os.PathLike, config: HarmonyConfig | None = None, *,
          loop: bool | None = None) -> list[Finding]:
    """Every harmony finding in a score, in time order.

    Args:
        score: a symusic Score, or the path of a MIDI file (loaded with `musedraft.score.load_midi`,
            so an unreadable file raises InvalidMidiError).
        config: which rules run and how strictly; `HarmonyConfig()` (chorale-style defaults) if None.
        loop: the score repeats (game music): its last bar is heard leading into its first as well, and
            a fault made across that join is reported in bar 1 (or in the last bar, where it is there).
            None: as the file says (the loopStart/loopEnd markers a saved loop draft carries).

    Returns:
        One Finding per offending note and rule, sorted by time then track.
    """
    score = as_score(score)
    if heard_as_loop(score, loop):
        wrapped, join = around(score)
        return join.findings(check(wrapped, config, loop=False))
    order = voice_order(score)
    ctx = build_context(in_voice_order(score, order), config or HarmonyConfig())
    return in_file_order(to_findings(ctx, all_faults(ctx)), order)


def _clash_faults(ctx: Context, onset_ids: np.ndarray | None) -> list[Fault]:
    if not (ctx.config.is_on("clash") or ctx.config.is_on("weak-clash")):
        return []
    if onset_ids is not None and len(onset_ids) <= 32:  # a repair region: plain Python is faster
        return [f for k in onset_ids.tolist() for f in vertical_faults(ctx, k, pairs_at(ctx, k)) if ctx.config.is_on(f.rule)]
    ks, ii, jj = new_dissonant_pairs(ctx, onset_ids)
    faults: list[Fault] = []
    if not len(ks):
        return faults
    cuts = np.flatnonzero(np.diff(ks)) + 1
    for k_arr, i_arr, j_arr in zip(np.split(ks, cuts), np.split(ii, cuts), np.split(jj, cuts), strict=True):
        pairs = list(zip(i_arr.tolist(), j_arr.tolist(), strict=True))
        faults.extend(f for f in vertical_faults(ctx, int(k_arr[0]), pairs) if ctx.config.is_on(f.rule))
    return faults


def _note_faults(ctx: Context, notes) -> list[Fault]:
    faults = []
    if ctx.config.is_on("out-of-key"):
        faults += out_of_key_faults(ctx, notes)
    if ctx.config.is_on("out-of-range"):
        faults += range_faults(ctx, notes)
    return faults


def all_faults(ctx: Context) -> list[Fault]:
    """Every fault in the score."""
    live = np.flatnonzero(ctx.alive).tolist()
    return _clash_faults(ctx, None) + _note_faults(ctx, live) + voice_faults(ctx)


class Region:
    """The stretch of music an edit to one voice between `lo` and `hi` (ticks) can change."""

    def __init__(self, ctx: Context, lo: int, hi: int, track: int):
        self.lo, self.hi, self.track = lo, hi, track
        self.onset_ids = np.arange(np.searchsorted(ctx.onsets, lo), np.searchsorted(ctx.onsets, hi))
        self.notes = sorted({i for k in self.onset_ids.tolist() for i in ctx.sounding[k]})


def region_of(ctx: Context, x: int) -> Region:
    """Note x with its neighbours in its voice: their verticals are all a change to x can touch."""
    line = [i for i in (ctx.prev[x], x, ctx.next[x]) if i >= 0]
    return Region(ctx, int(ctx.start[line].min()), int(ctx.end[line].max()), int(ctx.track[x]))


def region_faults(ctx: Context, region: Region) -> list[Fault]:
    """The faults inside a region, exactly as all_faults would report them there."""
    notes = [i for i in region.notes if ctx.alive[i]]
    pad = (region.lo, region.hi)
    voice = [f for f in voice_faults(ctx, region.track, pad) if region.lo <= ctx.onsets[f.onset] <= region.hi]
    return _clash_faults(ctx, region.onset_ids) + _note_faults(ctx, notes) + voice


def target_faults(ctx: Context, f: Fault) -> list[Fault]:
    """The faults of f's rule where f sounds: the cheap first test of a trial repair."""
    if f.rule in ("clash", "weak-clash"):
        return vertical_faults(ctx, f.onset, pairs_at(ctx, f.onset))
    if f.rule == "out-of-key":
        return out_of_key_faults(ctx, [f.note])
    if f.rule == "out-of-range":
        return range_faults(ctx, [f.note])
    t = int(ctx.onsets[f.onset])
    found = crossing_faults(ctx, int(ctx.track[f.note]), (t, t)) if f.rule == "voice-crossing" else \
        parallel_faults(ctx, int(ctx.track[f.note]), (t, t))
    return [g for g in found if g.onset == f.onset]


def _article(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def _message(ctx: Context, f: Fault) -> str:
    x, k = f.note, f.onset
    key = ctx.keys[k]
    where = f"Bar {int(ctx.bar[k])}, beat {float(ctx.beat[k]):g}"  # every message starts so: loop.Join relabels by it
    name = f"{ctx.names[ctx.track[x]]} {key.spell(ctx.pitch[x])}"
    if f.rule in ("clash", "weak-clash"):
        o = f.other
        lo, hi = sorted((x, o), key=lambda i: ctx.pitch[i])
        words = interval_name(key.spell(ctx.pitch[lo]), key.spell(ctx.pitch[hi]))
        if abs(int(ctx.pitch[x]) - int(ctx.pitch[o])) % 12 == 6:
            words = f"tritone ({words})"
        other = f"{ctx.names[ctx.track[o]]} {key.spell(ctx.pitch[o])}"
        if f.rule == "clash":
            return (f"{where}: {name} clashes {_article(words)} against {other} on a strong beat, "
                    "and no suspension, appoggiatura or passing motion explains it")
        return (f"{where}: {name} clashes {_article(words)} against {other} and is neither a passing, "
                "neighbour, suspended nor escape tone")
    if f.rule == "out-of-key":
        return (f"{where}: {name} is outside {key.name} and is neither a chromatic passing tone "
                "nor part of an applied chord")
    if f.rule in PARALLEL_RULES:
        lo1, lo2, up1, up2 = (key.spell(p) for p in f.detail)
        kind = "fifths" if f.rule == "parallel-fifths" else "octaves"
        return (f"{where}: {ctx.names[ctx.track[x]]} and {ctx.names[ctx.track[f.other]]} move in parallel {kind} "
                f"({lo1}→{lo2} against {up1}→{up2})")
    if f.rule == "voice-crossing":
        side = "above" if ctx.track[x] > ctx.track[f.other] else "below"
        return f"{where}: {name} crosses {side} {ctx.names[ctx.track[f.other]]} {key.spell(ctx.pitch[f.other])}"
    inst = ctx.instruments[ctx.track[x]]
    side = "below" if ctx.pitch[x] < inst.low else "above"
    return (f"{where}: {name} is {side} the {inst.name}'s range "
            f"({key.spell(inst.low)}–{key.spell(inst.high)})")


def to_findings(ctx: Context, faults: list[Fault]) -> list[Finding]:
    """Faults → Findings, one per (rule, note) at the first place it sounds, in time order."""
    seen: set[tuple[str, int]] = set()
    out = []
    for f in sorted(faults, key=lambda f: (ctx.onsets[f.onset], ctx.track[f.note], _RULE_ORDER[f.rule], f.note)):
        if (f.rule, f.note) in seen:
            continue
        seen.add((f.rule, f.note))
        x, k = f.note, f.onset
        key = ctx.keys[k]
        out.append(Finding(
            rule=f.rule, severity=ctx.config.severity_of(f.rule), bar=int(ctx.bar[k]), beat=float(ctx.beat[k]),
            track=int(ctx.track[x]), track_name=ctx.names[ctx.track[x]], pitch=int(ctx.pitch[x]),
            pitch_name=key.spell(ctx.pitch[x]), message=_message(ctx, f), time=int(ctx.onsets[k]),
            note_start=int(ctx.start[x]), other_track=None if f.other is None else int(ctx.track[f.other]),
            other_pitch=None if f.other is None else int(ctx.pitch[f.other]),
            other_start=None if f.other is None else int(ctx.start[f.other]), key=key.name,
        ))
    return out

"""Harmony, repair: move each offending note by the smallest interval that removes its fault
without creating another, and report every edit.

Rhythm is never touched: a repair changes pitches, and drops a note only when no move within
`max_move` semitones works. Each trial edit is re-checked over the few beats it can affect; an edit
is kept only if the fault it targets is gone and no new fault appeared there. Rounds repeat on a
freshly scanned score (keys re-analysed) until a round changes nothing, so repair(repair(x)) makes
no edits: its first round is the last round of the first call.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
from symusic import Score

from musedraft.harmony.check import (
    Region,
    all_faults,
    as_score,
    check,
    region_faults,
    region_of,
    target_faults,
    to_findings,
)
from musedraft.harmony.config import PARALLEL_RULES, RULES, HarmonyConfig
from musedraft.harmony.findings import Edit, RepairResult, in_file_order
from musedraft.harmony.loop import around, heard_as_loop
from musedraft.harmony.scan import Context, Fault, build_context, pairs_at, tick_score
from musedraft.score import bar_range, in_voice_order, voice_order

__all__ = ["repair"]

_MAX_ROUNDS = 8
_CLASH = frozenset({1, 2, 6, 10, 11})  # seconds, sevenths, tritones: what "consonant again" rules out
_PARTNER_RULES = {"clash", "weak-clash", "voice-crossing"} | PARALLEL_RULES
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def repair(score: Score | str | os.PathLike, config: HarmonyConfig | None = None, *,
           bars: tuple[int, int] | None = None, loop: bool | None = None) -> RepairResult:
    """Fix what check() finds with the smallest pitch changes; deterministic and idempotent.

    Args:
        score: a symusic Score (left untouched) or a MIDI path.
        config: the same settings check() takes; `repair_rules`, `max_move` and `allow_drop` steer repair.
        bars: (first, last), 1-based and inclusive: only notes struck in these bars may change, so the
            bars around them stay as written (a continuation's primer, the rest of a regenerated
            piece); a fault between a kept note and a free one is fixed on the free one. None: all.
        loop: the score repeats (check(loop=True)): after the repair of its bars, a fault across the join
            from its last bar into its first is mended on the last bar's notes, so the opening stays as
            repaired and every time round sounds the same. None: as the file says (its loop markers).

    Returns:
        RepairResult with the new score, one Edit per changed note (original → final pitch), and the
        findings before and after.
    """
    config = config or HarmonyConfig()
    score = as_score(score)
    if heard_as_loop(score, loop):
        return _repair_loop(score, config, bars)
    given = tick_score(score)
    order = voice_order(given)
    base = in_voice_order(given, order)  # the rules read voices top first, whatever the file's order
    ctx = build_context(base, config)
    faults = all_faults(ctx)
    before, first_order = to_findings(ctx, faults), order
    original = ctx.pitch.copy()
    cause: dict[int, Fault] = {}  # note → the first fault an edit to it removed
    messages: dict[int, str] = {}
    rounds = 0
    if bars is not None:
        bars = bar_range(bars)
    while rounds < _MAX_ROUNDS:  # a round cut short by a drop does not count: each drop removes a note, so they end
        outcome = _round(ctx, faults, cause, messages, _free(ctx, bars))
        if outcome == "unchanged":
            break
        if outcome == "moved":
            rounds += 1
        base, order, ctx, original, cause, messages = _revoiced(given, base, order, ctx, original, cause, messages)
        faults = all_faults(ctx)
    after = to_findings(ctx, faults)
    edits = [replace(e, track=order[e.track]) for e in _edits(ctx, original, cause, messages)]
    back = np.argsort(order).tolist()  # the file's track t is track back[t] of `base`
    return RepairResult(in_voice_order(_apply(base, ctx), back), sorted(edits, key=lambda e: (e.time, e.track)),
                        in_file_order(before, first_order), in_file_order(after, order))


def _repair_loop(score: Score, config: HarmonyConfig, bars: tuple[int, int] | None) -> RepairResult:
    """The bars repaired as a piece, then the join, on one side of it: the last bar where it may move,
    the copy of the opening that `around()` puts after the end kept (the opening already sounds as it
    will each time); else, where only the opening may move (its bars regenerated), that copy, whose
    notes then become bar 1's."""
    inside = repair(score, config, bars=bars, loop=False)
    wrapped, join = around(inside.score)
    first, last = bar_range(bars) if bars is not None else (1, join.bars)
    if first <= join.bars <= last:
        round_ = repair(wrapped, config, bars=(join.bars, join.bars), loop=False)
        mended = join.cut(round_.score)
    elif first == 1:
        round_ = repair(wrapped, config, bars=(join.bars + 1, join.bars + 1), loop=False)
        mended = join.opening_from_copy(round_.score)
    else:  # neither side of the join may change
        return replace(inside, findings_before=check(score, config, loop=True),
                       findings_after=check(inside.score, config, loop=True))
    return RepairResult(mended, sorted(inside.edits + join.edits(round_.edits), key=lambda e: (e.time, e.track)),
                        check(score, config, loop=True), join.findings(round_.findings_after))


def _revoiced(given: Score, base: Score, order: list[int], ctx: Context, original: np.ndarray,
              cause: dict[int, Fault], messages: dict[int, str]):
    """The context for the next round, with the tracks in the voice order the edits so far give them.

    Voices are ranked by their median pitch, and an edit can swap two whose medians were close: check()
    on the repaired score then read another bass and other crossings than repair had, and repairing its
    result again edited more (a two-bar hypothesis example: a D#4 and a G3 moved on the second pass). The
    notes keep their identity (file track, index in it) across the reordering."""
    now = voice_order(_apply(base, ctx))
    if now == sorted(now):
        return base, order, build_context(base, ctx.config, pitch=ctx.pitch, drop=~ctx.alive), original, cause, messages
    new_order = [order[t] for t in now]
    new_base = in_voice_order(given, new_order)
    fresh = build_context(new_base, ctx.config)
    index = {(order[t], p): i for i, (t, p) in enumerate(zip(ctx.track.tolist(), ctx.pos.tolist(), strict=True))}
    old = np.array([index[(new_order[t], p)] for t, p in zip(fresh.track.tolist(), fresh.pos.tolist(), strict=True)],
                   dtype=np.int64)
    new_of = {int(i): j for j, i in enumerate(old.tolist())}
    return (new_base, new_order, build_context(new_base, ctx.config, pitch=ctx.pitch[old], drop=~ctx.alive[old]),
            original[old], {new_of[i]: f for i, f in cause.items()}, {new_of[i]: m for i, m in messages.items()})


def _free(ctx: Context, bars: tuple[int, int] | None) -> np.ndarray:
    """Per note: whether repair may change it (struck within `bars`, or anywhere without them)."""
    if bars is None:
        return np.ones(len(ctx.start), dtype=bool)
    bar = ctx.bar[ctx.first]
    return (bar >= bars[0]) & (bar <= bars[1])


def _round(ctx: Context, faults: list[Fault], cause: dict[int, Fault], messages: dict[int, str],
           free: np.ndarray) -> str:
    """One pass over the score's faults (freshly found) in time order: "moved" if notes moved,
    "dropped" as soon as a note is dropped (the voices are re-linked before going on), else "unchanged".

    Drops used to count as rounds, so repair stopped for good after the eighth dropped note: on a
    random 2,000-bar piece the last edit was in bar 771, and repairing the result again made 3,650
    more edits."""
    current = {f.key for f in faults}
    queue = sorted((f for f in faults if ctx.config.repairs(f.rule)),
                   key=lambda f: (ctx.onsets[f.onset], _SEVERITY_ORDER[ctx.config.severity_of(f.rule)], ctx.track[f.note], f.rule))
    changed = False
    for f in queue:
        if f.key not in current:
            continue  # an earlier edit already fixed it
        if not any(free[x] for x in _arrivals(f) + _departures(ctx, f)):
            continue  # between kept notes (outside `bars`): nothing here may move, so no message to word
        message = to_findings(ctx, [f])[0].message
        fixed = _move(ctx, f, current, free)
        if fixed is not None:
            cause.setdefault(fixed, f)
            messages.setdefault(fixed, message)
            changed = True
        elif ctx.config.allow_drop and ctx.config.severity_of(f.rule) == "error" and f.rule in ("clash", "out-of-range"):
            if free[f.note] and _drop(ctx, f):
                cause.setdefault(f.note, f)
                messages.setdefault(f.note, message)
                return "dropped"
    return "moved" if changed else "unchanged"


def _candidates(ctx: Context, x: int, f: Fault) -> list[int]:
    """Pitches to try for note x, smallest move first. Within a step (two semitones), a pitch that
    sounds consonant against everything at the note's onset comes before one that would merely be
    excused as a non-chord tone; among equals, notes of the local key, then the smoother line (the
    line as written was most likely smooth)."""
    p = int(ctx.pitch[x])
    inst = ctx.instruments[ctx.track[x]]
    low, high = (inst.low, inst.high) if inst is not None else (0, 127)
    if f.rule == "out-of-range":
        octaves = [p + d for d in (12, -12, 24, -24, 36, -36) if low <= p + d <= high]
        return octaves + [min(max(p, low), high)]
    key = ctx.key_of(x)
    prev, nxt = ctx.prev[x], ctx.next[x]
    k = int(ctx.first[x])
    others = [int(ctx.pitch[i]) for i in ctx.sounding[k] if i != x]
    busy = {int(ctx.pitch[i]) for i in ctx.sounding[k] if ctx.track[i] == ctx.track[x] and i != x}
    limit = 2 if f.rule == "voice-crossing" else ctx.config.max_move

    def rank(c: int) -> tuple:
        clashes = sum(abs(c - o) % 12 in _CLASH for o in others)
        smooth = (abs(c - ctx.pitch[prev]) if prev >= 0 else 0) + (abs(ctx.pitch[nxt] - c) if nxt >= 0 else 0)
        return (abs(c - p) > 2 or clashes > 0, abs(c - p), c % 12 not in key.pcs, smooth, c)

    pool = [c for d in range(1, limit + 1) for c in (p - d, p + d) if low <= c <= high and c not in busy]
    return sorted(pool, key=rank)


def _try(ctx: Context, x: int, f: Fault, worst: int) -> tuple[int, int, set, set] | None:
    """The first candidate pitch for x (moving it at most `worst` semitones) that removes f and
    creates no new fault around x, as (pitch, dissonances left where f was, faults before, faults
    after); x is left unchanged."""
    region = region_of(ctx, x)
    before = None  # the faults around x as they stand, found once a move passes the cheap test
    old = int(ctx.pitch[x])
    try:
        for c in _candidates(ctx, x, f):
            if abs(c - old) > worst:
                continue
            ctx.pitch[x] = c
            if any(g.key == f.key for g in target_faults(ctx, f)):
                continue
            if before is None:
                ctx.pitch[x] = old
                before = {g.key for g in region_faults(ctx, region)}
                ctx.pitch[x] = c
            after = {g.key for g in region_faults(ctx, region)}
            if f.key not in after and after <= before:
                return c, len(pairs_at(ctx, f.onset)), before, after
    finally:
        ctx.pitch[x] = old
    return None


def _move(ctx: Context, f: Fault, current: set, free: np.ndarray) -> int | None:
    """Apply the best move that fixes f, of the offending note or its partner (for parallels that
    neither can leave, of a note they came from): the one leaving the fewest dissonances where f
    was, then the smallest; between equals keep the melody (the top voice) and move a lower voice.
    Returns the note moved."""
    best = _best_move(ctx, f, [x for x in _arrivals(f) if free[x]])
    if best is None:
        best = _best_move(ctx, f, [x for x in _departures(ctx, f) if free[x]])
    if best is None:
        return None
    _, x, (pitch, _, before, after) = best
    ctx.pitch[x] = pitch
    current.difference_update(before)
    current.update(after)
    return x


def _arrivals(f: Fault) -> list[int]:
    """The notes a fault sounds on: the offending one, and its partner where two notes make it."""
    return [f.note] + ([f.other] if f.other is not None and f.rule in _PARTNER_RULES else [])


def _departures(ctx: Context, f: Fault) -> list[int]:
    """For parallels, the notes the two voices came from: the motion breaks there as well, when both
    arrive on notes the chord pins down (a doubled root, every pitch near it clashing or crossing; the
    three faults repair left in the evaluation's chorale and madrigal drafts at seed 0) or that must stay
    (the opening a loop comes round to, a kept bar after regenerated ones)."""
    if f.rule not in PARALLEL_RULES:
        return []
    return [int(ctx.prev[x]) for x in (f.note, f.other) if ctx.prev[x] >= 0]


def _best_move(ctx: Context, f: Fault, notes: list[int]) -> tuple | None:
    """Among moves of `notes` that fix f: (rank, note, _try's result) of the best, or None."""
    top = ctx.top(f.onset)
    best = None
    for x in notes:
        found = _try(ctx, x, f, 36 if f.rule == "out-of-range" else ctx.config.max_move)  # octaves for range
        if found is None:
            continue
        rank = (found[1], abs(found[0] - int(ctx.pitch[x])), x == top)
        if best is None or rank < best[0]:
            best = (rank, x, found)
    return best


def _drop(ctx: Context, f: Fault) -> bool:
    """Last resort: silence the note, if that removes the fault and creates none."""
    region = region_of(ctx, f.note)
    before = {g.key for g in region_faults(ctx, region)}
    drop = ~ctx.alive.copy()
    drop[f.note] = True
    trial = build_context(ctx.score, ctx.config, bar_keys=(ctx.bar_keys, ctx.home), drop=drop, pitch=ctx.pitch)
    after = {g.key for g in region_faults(trial, Region(trial, region.lo, region.hi, region.track))}
    if f.key in after or not after <= before:
        return False
    ctx.alive[f.note] = False
    return True


def _apply(base: Score, ctx: Context) -> Score:
    out = base.copy()
    changed = np.flatnonzero(ctx.alive & (ctx.pitch != _original_pitch(base, ctx)))
    for i in changed.tolist():
        out.tracks[int(ctx.track[i])].notes[int(ctx.pos[i])].pitch = int(ctx.pitch[i])
    dropped = sorted(zip(ctx.track[~ctx.alive].tolist(), ctx.pos[~ctx.alive].tolist(), strict=True), reverse=True)
    for t, pos in dropped:  # highest position first so the others keep their index
        del out.tracks[t].notes[pos]
    return out


def _original_pitch(base: Score, ctx: Context) -> np.ndarray:
    return np.array([int(base.tracks[t].notes[p].pitch) for t, p in zip(ctx.track.tolist(), ctx.pos.tolist(), strict=True)],
                    dtype=np.int64)


def _edits(ctx: Context, original: np.ndarray, cause: dict[int, Fault], messages: dict[int, str]) -> list[Edit]:
    edits = []
    for x in sorted(cause, key=lambda i: (ctx.start[i], ctx.track[i], i)):
        new = int(ctx.pitch[x]) if ctx.alive[x] else None
        if new == int(original[x]):
            continue  # moved and moved back in a later round
        key = ctx.key_of(x)
        name = ctx.names[ctx.track[x]]
        old_name = key.spell(int(original[x]))
        did = f"dropped {name} {old_name}" if new is None else f"moved {name} {old_name} to {key.spell(new)}"
        bar, beat = ctx.meter.bar_beat(np.array([ctx.start[x]]))
        edits.append(Edit(bar=int(bar[0]), beat=float(beat[0]), track=int(ctx.track[x]), track_name=name,
                          old_pitch=int(original[x]), new_pitch=new, rule=cause[x].rule,
                          reason=f"{did} ({RULES[cause[x].rule].id}): {messages[x]}", time=int(ctx.start[x])))
    return edits

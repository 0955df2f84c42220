"""Harmony, the other rules: notes outside the local key, parallel fifths and octaves, voice
crossing, notes outside an instrument's range.

Each rule takes a Context and the part of the score to look at (repair re-checks only the
neighbourhood of an edit) and returns `Fault`s. Voice-leading rules read tracks as voices in score
order, top to bottom, and skip chordal tracks (a piano part is not one voice).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from musedraft.harmony.clash import Fault, motion, readings
from musedraft.harmony.keys import Key
from musedraft.harmony.scan import Context
from musedraft.harmony.theory import Chordal, chord_reading, parallel_motion, scale_pcs

__all__ = ["out_of_key_faults", "parallel_faults", "crossing_faults", "range_faults"]

_DOMINANTS = {"major triad", "dominant seventh chord", "incomplete dominant-seventh chord"}
_LEADING = {"diminished triad", "diminished seventh chord", "half-diminished seventh chord",
            "incomplete half-diminished seventh chord"}


def _applied(info: Chordal, key: Key) -> bool:
    """A chord that carries chromatic notes in tonal music: an applied dominant (its root a fifth
    above a note of the key), an applied leading-tone chord (a semitone below one; a diminished
    chord's root is any of its members, MIDI cannot tell them apart), or a chord borrowed from the
    parallel mode (iv and i in major; bIII, bVI, bVII, the Neapolitan)."""
    parallel = scale_pcs(key.tonic, "minor" if key.mode == "major" else "major")
    if info.name in _DOMINANTS and (info.root + 5) % 12 in key.pcs:
        return True
    if info.name in _LEADING:
        return any((info.root + 3 * i + 1) % 12 in key.pcs for i in range(4))
    if info.name in ("major triad", "minor triad"):
        return info.root in key.pcs | parallel or info.root == (key.tonic + 1) % 12
    return False


def _chords_in(q: frozenset[int], info: Chordal) -> list[Chordal]:
    """The chords a reading may stand for: itself, or for a bare third, sixth or fifth the triads
    it is the skeleton of (four-part writing often leaves out a fifth, two voices leave out more)."""
    if info.size >= 3:
        return [info]
    if info.name not in ("Major Third", "Minor Third", "Perfect Fifth", "Minor Sixth", "Major Sixth"):
        return []
    full = (chord_reading(q | {extra}) for extra in range(12) if extra not in q)
    return [c for c in full if c is not None and c.name in ("major triad", "minor triad", "diminished triad")]


def _explained_chromatic(ctx: Context, x: int) -> bool:
    """A chromatic note that leans by a semitone into its next note (a leading tone, a chromatic
    appoggiatura), or that belongs to an applied or borrowed chord sounding with it (other notes
    there may be non-chord tones)."""
    _, a_out = motion(ctx, x)
    if ctx.config.leading_tones and a_out is not None and abs(a_out) == 1:
        return True
    if ctx.config.applied_resolve and a_out is not None and abs(a_out) > 2:
        return False
    pc = int(ctx.pitch[x] % 12)
    for k in range(int(ctx.first[x]), int(ctx.last[x]) + 1):
        pcs = frozenset(int(ctx.pitch[i] % 12) for i in ctx.sounding[k])
        for _, q, info in readings(pcs, ctx.config.max_removed):
            if pc in q and any(_applied(c, ctx.keys[k]) for c in _chords_in(q, info)):
                return True
    return False


def out_of_key_faults(ctx: Context, notes) -> list[Fault]:
    """Pitches outside the local key that are neither chromatic passing/neighbour tones (stepped
    into and out of), leading tones, nor members of an applied or borrowed chord."""
    faults = []
    for x in notes:
        if not ctx.alive[x] or ctx.in_key(x):
            continue
        a_in, a_out = motion(ctx, x)
        steps = a_in is not None and a_out is not None and 1 <= abs(a_in) <= 2 and 1 <= abs(a_out) <= 2
        if steps and ((a_in > 0) == (a_out > 0) or a_out == -a_in):
            continue  # chromatic passing tone, or a chromatic neighbour that returns
        if _explained_chromatic(ctx, x):
            continue
        faults.append(Fault("out-of-key", int(x), int(ctx.first[x])))
    return faults


def _voice_at(ctx: Context, t: int, times: np.ndarray) -> np.ndarray:
    """For one voice (track t): the note sounding at each time, -1 where it rests."""
    idx = np.flatnonzero((ctx.track == t) & ctx.alive)
    if not len(idx):
        return np.full(len(times), -1, dtype=np.int64)
    j = np.searchsorted(ctx.start[idx], times, side="right") - 1
    note = idx[np.maximum(j, 0)]
    return np.where((j >= 0) & (ctx.end[note] > times), note, -1)


def _pair_timeline(ctx: Context, a: int, b: int, window: tuple[int, int] | None):
    times = np.unique(ctx.start[((ctx.track == a) | (ctx.track == b)) & ctx.alive])
    if window is not None:  # pad with enough context for a doubling run or a crossing's start
        pad = ctx.config.doubling_run + 1
        lo = max(0, int(np.searchsorted(times, window[0])) - pad)
        hi = int(np.searchsorted(times, window[1], side="right")) + pad
        times = times[lo:hi]
    return times, _voice_at(ctx, a, times), _voice_at(ctx, b, times)


def _pairs(ctx: Context, track: int | None):
    lines = [t for t in range(len(ctx.names)) if ctx.is_line[t]]
    return [(a, b) for a, b in combinations(lines, 2) if track is None or track in (a, b)]


def parallel_faults(ctx: Context, track: int | None = None, window: tuple[int, int] | None = None) -> list[Fault]:
    """Consecutive perfect fifths / octaves between two voices, confirmed by music21's
    VoiceLeadingQuartet. A run of `doubling_run` octaves is a doubling, not a fault."""
    want = {r for r in ("parallel-fifths", "parallel-octaves") if ctx.config.is_on(r)}
    faults: list[Fault] = []
    if not want:
        return faults
    for a, b in _pairs(ctx, track):
        times, na, nb = _pair_timeline(ctx, a, b, window)
        if len(times) < 2:
            continue
        both = (na >= 0) & (nb >= 0)
        pa, pb = ctx.pitch[np.maximum(na, 0)], ctx.pitch[np.maximum(nb, 0)]
        cls = np.where(both, np.abs(pa - pb) % 12, -1)
        octave = cls == 0
        for m in np.flatnonzero(both[:-1] & both[1:] & (cls[:-1] == cls[1:]) & np.isin(cls[:-1], (0, 7))):
            if na[m] == na[m + 1] or nb[m] == nb[m + 1] or pa[m] == pa[m + 1] or pb[m] == pb[m + 1]:
                continue
            if cls[m] == 0:
                run_lo, run_hi = m, m + 1
                while run_lo > 0 and octave[run_lo - 1]:
                    run_lo -= 1
                while run_hi + 1 < len(cls) and octave[run_hi + 1]:
                    run_hi += 1
                if run_hi - run_lo + 1 >= ctx.config.doubling_run:
                    continue
            k = int(np.searchsorted(ctx.onsets, times[m + 1]))
            key = ctx.keys[k]
            upper = (key.spell(pa[m]), key.spell(pa[m + 1]))
            lower = (key.spell(pb[m]), key.spell(pb[m + 1]))
            if pa[m] < pb[m]:
                upper, lower = lower, upper
            kind = parallel_motion(upper, lower)
            rule = {"fifths": "parallel-fifths", "octaves": "parallel-octaves"}.get(kind or "")
            if rule in want:
                faults.append(Fault(rule, int(nb[m + 1]), k, int(na[m + 1]),
                                    (int(pb[m]), int(pb[m + 1]), int(pa[m]), int(pa[m + 1]))))
    return faults


def crossing_faults(ctx: Context, track: int | None = None, window: tuple[int, int] | None = None) -> list[Fault]:
    """A lower voice rising above the voice written above it (reported where the crossing begins)."""
    faults: list[Fault] = []
    if not ctx.config.is_on("voice-crossing"):
        return faults
    for a, b in _pairs(ctx, track):
        times, na, nb = _pair_timeline(ctx, a, b, window)
        both = (na >= 0) & (nb >= 0)
        crossed = both & (ctx.pitch[np.maximum(nb, 0)] > ctx.pitch[np.maximum(na, 0)])
        begins = crossed & ~np.concatenate([[False], crossed[:-1]])
        for m in np.flatnonzero(begins):
            k = int(np.searchsorted(ctx.onsets, times[m]))
            mover = nb[m] if ctx.start[nb[m]] == times[m] or ctx.start[na[m]] != times[m] else na[m]
            other = na[m] if mover == nb[m] else nb[m]
            faults.append(Fault("voice-crossing", int(mover), k, int(other)))
    return faults


def range_faults(ctx: Context, notes) -> list[Fault]:
    """Notes outside the playable range of their track's instrument (GM program → musedraft.instruments)."""
    faults = []
    for x in notes:
        inst = ctx.instruments[ctx.track[x]]
        if ctx.alive[x] and inst is not None and not inst.low <= ctx.pitch[x] <= inst.high:
            faults.append(Fault("out-of-range", int(x), int(ctx.first[x])))
    return faults

"""Harmony, the other rules: notes outside the local key, parallel fifths and octaves, voice
crossing, notes outside an instrument's range.

Each rule takes a Context and the part of the score to look at (repair re-checks only the
neighbourhood of an edit) and returns `Fault`s. Voice-leading rules read tracks as voices in score
order, top to bottom, and skip chordal tracks (a piano part is not one voice).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import combinations

from musedraft.harmony.clash import heard_readings
from musedraft.harmony.config import PARALLEL_RULES
from musedraft.harmony.keys import Key
from musedraft.harmony.nct import motion
from musedraft.harmony.scan import Context, Fault
from musedraft.harmony.theory import Chordal, alteration, chord_reading, parallel_motion, scale_pcs

__all__ = ["out_of_key_faults", "voice_faults", "parallel_faults", "crossing_faults", "range_faults"]

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


def _leaning(ctx: Context, x: int) -> int:
    """+1 for a note written raised in its local key (it leads up), -1 for a lowered one (down)."""
    key = ctx.key_of(x)
    return alteration(int(ctx.pitch[x] % 12), key.tonic, key.mode)


def _explained_chromatic(ctx: Context, x: int) -> bool:
    """A chromatic note that leans by a semitone into its next note the way it is written (a raised
    note up, as a leading tone; a lowered one down), or that belongs to an applied or borrowed chord
    sounding with it (other notes there may be non-chord tones)."""
    _, a_out = motion(ctx, x)
    if ctx.config.leading_tones and a_out is not None and a_out == _leaning(ctx, x):
        return True
    if ctx.config.applied_resolve and a_out is not None and abs(a_out) > 2:
        return False
    pc = int(ctx.pitch[x] % 12)
    for k in range(int(ctx.first[x]), int(ctx.last[x]) + 1):
        for _, q, info in heard_readings(ctx, k, ctx.config.applied_slack):
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


def _pair_timeline(ctx: Context, a: int, b: int, window: tuple[int, int] | None):
    """The times either voice strikes (around `window` when given, with enough context for a
    doubling run or the start of a crossing) and the note each voice sounds then (-1: a rest).

    Plain Python over the two voices' notes: repair asks this for a few beats at a time, where
    numpy's per-call cost would dominate.
    """
    pad = ctx.config.doubling_run + 1
    voices = []
    for t in (a, b):
        idx, starts = ctx.voice_list[t]
        if window is not None:
            idx = idx[max(0, bisect_left(starts, window[0]) - pad): bisect_right(starts, window[1]) + pad]
        voices.append(idx)
    start, end = ctx.start_list, ctx.end_list
    times = sorted({start[i] for v in voices for i in v})
    if window is not None:
        lo = max(0, bisect_left(times, window[0]) - pad)
        times = times[lo: bisect_right(times, window[1]) + pad]
    sounding = []
    for notes in voices:
        at, j = [], -1
        for t in times:
            while j + 1 < len(notes) and start[notes[j + 1]] <= t:
                j += 1
            at.append(notes[j] if j >= 0 and end[notes[j]] > t else -1)
        sounding.append(at)
    return times, sounding[0], sounding[1]


def _pairs(ctx: Context, track: int | None):
    lines = [t for t in range(len(ctx.names)) if ctx.is_line[t] and not ctx.drum[t]]
    return [(a, b) for a, b in combinations(lines, 2) if track is None or track in (a, b)]


def voice_faults(ctx: Context, track: int | None = None, window: tuple[int, int] | None = None) -> list[Fault]:
    """Parallels and crossings between every pair of voices (those involving `track` when given)."""
    faults: list[Fault] = []
    for a, b in _pairs(ctx, track):
        timeline = _pair_timeline(ctx, a, b, window)
        faults += _parallels(ctx, *timeline) + _crossings(ctx, *timeline)
    return faults


def parallel_faults(ctx: Context, track: int | None = None, window: tuple[int, int] | None = None) -> list[Fault]:
    """Consecutive perfect fifths / octaves between two voices."""
    return [f for a, b in _pairs(ctx, track) for f in _parallels(ctx, *_pair_timeline(ctx, a, b, window))]


def crossing_faults(ctx: Context, track: int | None = None, window: tuple[int, int] | None = None) -> list[Fault]:
    """A lower voice rising above the voice written above it (reported where the crossing begins)."""
    return [f for a, b in _pairs(ctx, track) for f in _crossings(ctx, *_pair_timeline(ctx, a, b, window))]


def _parallels(ctx: Context, times: list[int], na: list[int], nb: list[int]) -> list[Fault]:
    """Parallel (or contrary) perfect fifths and octaves along one pair's timeline, confirmed by
    music21's VoiceLeadingQuartet. A run of `doubling_run` octaves is a doubling, not a fault."""
    want = {r for r in PARALLEL_RULES if ctx.config.is_on(r)}
    faults: list[Fault] = []
    if not want:
        return faults
    pitch = ctx.pitch
    cls = [abs(int(pitch[x]) - int(pitch[y])) % 12 if x >= 0 and y >= 0 else -1 for x, y in zip(na, nb, strict=True)]
    for m in range(len(times) - 1):
        if cls[m] not in (0, 7) or cls[m + 1] != cls[m]:
            continue
        a1, a2, b1, b2 = na[m], na[m + 1], nb[m], nb[m + 1]
        if a1 == a2 or b1 == b2 or pitch[a1] == pitch[a2] or pitch[b1] == pitch[b2]:
            continue  # a voice holds or repeats: oblique motion
        if cls[m] == 0:
            lo, hi = m, m + 1
            while lo > 0 and cls[lo - 1] == 0:
                lo -= 1
            while hi + 1 < len(cls) and cls[hi + 1] == 0:
                hi += 1
            if hi - lo + 1 >= ctx.config.doubling_run:
                continue
        k = bisect_left(ctx.onset_list, times[m + 1])
        key = ctx.keys[k]
        upper = (key.spell(pitch[a1]), key.spell(pitch[a2]))
        lower = (key.spell(pitch[b1]), key.spell(pitch[b2]))
        if pitch[a1] < pitch[b1]:
            upper, lower = lower, upper
        kind = parallel_motion(upper, lower, ctx.config.contrary_parallels)
        rule = {"fifths": "parallel-fifths", "octaves": "parallel-octaves"}.get(kind or "")
        if rule in want:
            faults.append(Fault(rule, b2, k, a2, (int(pitch[b1]), int(pitch[b2]), int(pitch[a1]), int(pitch[a2]))))
    return faults


def _crossings(ctx: Context, times: list[int], na: list[int], nb: list[int]) -> list[Fault]:
    """Where the lower voice of a pair starts sounding above the upper one."""
    faults: list[Fault] = []
    if not ctx.config.is_on("voice-crossing"):
        return faults
    pitch, start = ctx.pitch, ctx.start_list
    was = False
    for t, x, y in zip(times, na, nb, strict=True):
        crossed = x >= 0 and y >= 0 and pitch[y] > pitch[x]
        if crossed and not was:
            mover, other = (y, x) if start[y] == t or start[x] != t else (x, y)
            faults.append(Fault("voice-crossing", mover, bisect_left(ctx.onset_list, t), other))
        was = crossed
    return faults


def range_faults(ctx: Context, notes) -> list[Fault]:
    """Notes outside the playable range of their track's instrument (GM program → musedraft.instruments)."""
    faults = []
    for x in notes:
        inst = ctx.instruments[ctx.track[x]]
        if ctx.alive[x] and inst is not None and not inst.low <= ctx.pitch[x] <= inst.high:
            faults.append(Fault("out-of-range", int(x), int(ctx.first[x])))
    return faults

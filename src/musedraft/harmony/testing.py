"""Harmony, test material: one-line score builders, real chorales as Scores, and injected slips.

Shared by tests/test_harmony*.py and benchmarks/harmony.py, like numpy.testing: pure functions,
no pytest in sight.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from symusic import Note, Score, Tempo, TimeSignature, Track

from musedraft.harmony.config import HarmonyConfig
from musedraft.harmony.scan import Context, build_context
from musedraft.harmony.theory import DISSONANT_SEMITONES, midi

__all__ = ["voices", "context_of", "note_at", "onset_at", "from_music21", "chorale", "Injected", "inject_errors"]

TPQ = 480
_CLASH = DISSONANT_SEMITONES - {5}  # seconds, sevenths, ninths, tritones (a fourth clashes only over the bass)


def voices(*lines: str, time_signature: tuple[int, int] = (4, 4), names: list[str] | None = None,
           programs: list[int] | None = None) -> Score:
    """A score from one string per voice, top voice first: 'C5:2 D5 E5:0.5 r:0.5 F5'.

    Each token is a music21 pitch name (or 'r' for a rest) and an optional length in quarters
    (default 1). Voices are named soprano/alto/tenor/bass when there are four or fewer.

    >>> s = voices("E5:2 D5:2", "C4:4")
    >>> [(t.name, [(n.time, n.duration, n.pitch) for n in t.notes]) for t in s.tracks]
    [('soprano', [(0, 960, 76), (960, 960, 74)]), ('alto', [(0, 1920, 60)])]
    """
    score = Score(TPQ)
    score.time_signatures.append(TimeSignature(0, *time_signature))
    score.tempos.append(Tempo(0, 90.0))
    default_names = ["soprano", "alto", "tenor", "bass"] if len(lines) <= 4 else [f"voice {i + 1}" for i in range(len(lines))]
    for v, line in enumerate(lines):
        track = Track(name=(names or default_names)[v], program=(programs or [0] * len(lines))[v])
        t = 0.0
        for token in line.split():
            name, _, length = token.partition(":")
            quarters = float(length) if length else 1.0
            if name.lower() != "r":
                track.notes.append(Note(int(round(t * TPQ)), int(round(quarters * TPQ)), midi(name), 80))
            t += quarters
        score.tracks.append(track)
    return score


def context_of(score: Score, config: HarmonyConfig | None = None) -> Context:
    """The checker's scan of a score (for doctests and tests that look inside)."""
    return build_context(score, config or HarmonyConfig())


def note_at(ctx: Context, track: str | int, quarter: float) -> int:
    """Index of the note a voice (name or index) sounds at `quarter` quarters from the start.

    >>> ctx = context_of(voices("C5 D5 E5", "C3:3"))
    >>> int(ctx.pitch[note_at(ctx, "soprano", 1)]), int(ctx.pitch[note_at(ctx, "alto", 2.5)])
    (74, 48)
    """
    t = track if isinstance(track, int) else ctx.names.index(track)
    tick = int(round(quarter * ctx.score.ticks_per_quarter))
    for i in ctx.voice_notes[t].tolist():
        if ctx.start[i] <= tick < ctx.end[i]:
            return i
    raise ValueError(f"{ctx.names[t]} is silent at quarter {quarter}")


def onset_at(ctx: Context, quarter: float) -> int:
    """Index of the onset (vertical) at `quarter` quarters from the start."""
    return int(np.searchsorted(ctx.onsets, int(round(quarter * ctx.score.ticks_per_quarter))))


def from_music21(m21_score) -> Score:
    """A music21 score → Score at tpq 480, one program-0 track per part, bar lines where music21 has them.

    A pickup bar is padded at the front (music21 keeps it short), so beat 1 of every bar lands on
    a bar line of the MIDI grid and strong beats are where the composer put them.
    """
    from music21 import meter  # noqa: PLC0415  (music21 is loaded already; keeps the import local to its use)

    score = Score(TPQ)
    parts = list(m21_score.parts)
    first_measure = parts[0].getElementsByClass("Measure").first() if parts else None
    shift = float(first_measure.paddingLeft) if first_measure is not None else 0.0
    for part in parts:
        track = Track(name=(part.partName or f"Part {len(score.tracks) + 1}").strip(), program=0)
        for n in part.stripTies(inPlace=False).flatten().notes:
            dur = int(round(float(n.duration.quarterLength) * TPQ))
            if dur <= 0:
                continue
            start = int(round((float(n.getOffsetInHierarchy(part)) + shift) * TPQ))
            for p in n.pitches:
                track.notes.append(Note(start, dur, int(p.midi), 80))
        if len(track.notes):
            score.tracks.append(track)
    sigs = parts[0].flatten().getElementsByClass(meter.TimeSignature) if parts else []
    for ts in sigs:
        offset = float(ts.offset) + (shift if ts.offset > 0 else 0.0)
        score.time_signatures.append(TimeSignature(int(round(offset * TPQ)), ts.numerator, ts.denominator))
    if not len(score.time_signatures):
        score.time_signatures.append(TimeSignature(0, 4, 4))
    score.tempos.append(Tempo(0, 80.0))
    return score


def chorale(bwv: str) -> Score:
    """A Bach chorale from music21's corpus ('bwv66.6') as a Score."""
    from music21 import corpus  # noqa: PLC0415

    return from_music21(corpus.parse(f"bach/{bwv}"))


@dataclass(frozen=True)
class Injected:
    track: int
    index: int  # position of the note in its track
    start: int
    original: int  # MIDI pitch before the slip
    wrong: int  # MIDI pitch after it


def inject_errors(score: Score, fraction: float = 0.05, seed: int = 0) -> tuple[Score, list[Injected]]:
    """Move `fraction` of the notes by 1-2 semitones so that each now clashes: a note that sounded
    consonant against every other voice at its onset now makes a second, seventh, ninth or tritone
    with one of them. Slipped notes never overlap each other in time, so each is judged on its own.
    """
    rng = random.Random(seed)
    ctx = build_context(score, HarmonyConfig())
    order = list(range(len(ctx.start)))
    rng.shuffle(order)
    target = max(1, int(round(fraction * len(order))))
    out = score.copy()
    taken: list[tuple[int, int]] = []
    injected: list[Injected] = []
    for x in order:
        if len(injected) >= target:
            break
        s, e = int(ctx.start[x]), int(ctx.end[x])
        if any(s < te and ts < e for ts, te in taken):
            continue
        others = [int(ctx.pitch[i]) for i in ctx.sounding[ctx.first[x]] if ctx.track[i] != ctx.track[x]]
        if any(abs(int(ctx.pitch[x]) - o) % 12 in _CLASH for o in others):
            continue  # already a dissonance (a passing note...): moving it would not make a new clash
        moves = [1, -1, 2, -2]
        rng.shuffle(moves)
        for d in moves:
            wrong = int(ctx.pitch[x]) + d
            if others and any(abs(wrong - o) % 12 in _CLASH for o in others):
                t, pos = int(ctx.track[x]), int(ctx.pos[x])
                out.tracks[t].notes[pos].pitch = wrong
                injected.append(Injected(t, pos, s, int(ctx.pitch[x]), wrong))
                taken.append((s, e))
                break
    injected.sort(key=lambda i: (i.start, i.track))
    return out, injected



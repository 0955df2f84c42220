"""After compose: objective statistics of a score, to compare drafts with real pieces of a style.

Pure functions `metric(score) -> float` over the hub Score, on `notes_array` (one vectorised scan
each). Definitions follow MusPy / Wu & Yang's Jazz Transformer evaluation; drum tracks are ignored.
A metric that is undefined for the score (no notes, fewer than two bars...) returns NaN, so means
over many scores use `numpy.nanmean`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from musedraft.score import Score, notes_array, ticks_per_bar

__all__ = [
    "pitch_class_entropy",
    "scale_consistency",
    "groove_consistency",
    "polyphony",
    "empty_beat_rate",
    "empty_beats",
    "pitch_range",
    "notes_per_bar",
    "METRICS",
    "compute_all",
]

_MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=bool)  # C major; every mode of it is a rotation
GROOVE_STEPS_PER_QUARTER = 4  # onset grid of groove_consistency: sixteenths


def _example(*tracks: list[tuple[int, float, float]], time_signature: tuple[int, int] = (4, 4)) -> Score:
    """A doctest score: tracks of (pitch, onset in quarters, duration in quarters), tpq 4."""
    from symusic import Note, TimeSignature, Track  # noqa: PLC0415

    score = Score(4)
    score.time_signatures.append(TimeSignature(0, *time_signature))
    for notes in tracks:
        track = Track()
        for pitch, onset, dur in notes:
            track.notes.append(Note(int(onset * 4), int(dur * 4), pitch, 80))
        score.tracks.append(track)
    return score


def pitch_class_entropy(score: Score) -> float:
    """Shannon entropy (bits) of the note-count histogram over the 12 pitch classes.

    0 for one pitch class, log2(12) ≈ 3.585 for all twelve equally often; tonal music sits near 3.

    >>> pitch_class_entropy(_example([(60, 0, 1), (72, 1, 1)]))  # two Cs: one class
    0.0
    >>> pitch_class_entropy(_example([(60, 0, 1), (62, 1, 1), (64, 2, 1), (65, 3, 1)]))  # C D E F
    2.0
    """
    notes = notes_array(score)
    if not len(notes):
        return math.nan
    counts = np.bincount(notes["pitch"] % 12, minlength=12)
    p = counts[counts > 0] / len(notes)
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def scale_consistency(score: Score) -> float:
    """The largest share of notes that fit one major (equivalently natural minor) scale, over the 12 roots.

    >>> scale_consistency(_example([(60, 0, 1), (64, 1, 1), (67, 2, 1)]))  # C E G
    1.0
    >>> round(scale_consistency(_example([(60 + k, k / 4, 0.25) for k in range(12)])), 4)  # chromatic: 7/12
    0.5833
    """
    notes = notes_array(score)
    if not len(notes):
        return math.nan
    counts = np.bincount(notes["pitch"] % 12, minlength=12)
    in_scale = max(int(counts[np.roll(_MAJOR, root)].sum()) for root in range(12))
    return in_scale / len(notes)


def groove_consistency(score: Score) -> float:
    """1 - mean Hamming distance between the onset patterns of adjacent bars.

    Each bar becomes a binary vector on a sixteenth-note grid (1 where any part starts a note);
    the distance of two bars is the share of grid positions where they differ. 1.0 means every
    bar has the same rhythm. Needs at least two bars.

    >>> groove_consistency(_example([(60, 0, 1), (62, 1, 1), (64, 4, 1), (65, 5, 1)]))  # same rhythm twice
    1.0
    >>> groove_consistency(_example([(60, 0, 4), (62, 4, 1), (64, 5, 1), (65, 6, 1), (67, 7, 1)]))  # 1 onset vs 4
    0.8125
    """
    notes = notes_array(score)
    bar = ticks_per_bar(score)
    tpq = score.ticks_per_quarter
    steps = max(1, bar * GROOVE_STEPS_PER_QUARTER // tpq)  # grid positions per bar
    if not len(notes) or bar <= 0:
        return math.nan
    n_bars = int(notes["end"].max() - 1) // bar + 1
    if n_bars < 2:
        return math.nan
    grid = np.zeros((n_bars, steps), dtype=bool)
    step = np.rint((notes["start"] % bar) * GROOVE_STEPS_PER_QUARTER / tpq).astype(np.int64)
    grid[notes["start"] // bar, np.minimum(step, steps - 1)] = True
    distance = (grid[1:] != grid[:-1]).mean(axis=1)  # (n_bars - 1,)
    return float(1.0 - distance.mean())


def polyphony(score: Score) -> float:
    """Mean number of notes sounding at each distinct onset time (chords and held notes count).

    >>> polyphony(_example([(60, 0, 2), (64, 0, 1), (65, 1, 1)]))  # onsets 0 and 1 each hear 2 notes
    2.0
    >>> polyphony(_example([(60, 0, 1), (62, 1, 1)]))
    1.0
    """
    notes = notes_array(score)
    if not len(notes):
        return math.nan
    onsets = np.unique(notes["start"])
    starts, ends = np.sort(notes["start"]), np.sort(notes["end"])
    sounding = np.searchsorted(starts, onsets, side="right") - np.searchsorted(ends, onsets, side="right")
    return float(sounding.mean())


def empty_beat_rate(score: Score) -> float:
    """Share of quarter-note beats, from the first note's beat to the last note's end, in which no note sounds.

    MusPy counts from time 0; we start at the first note because MIDI has no short pickup bar: an
    anacrusis sits at its beat in a full first bar, and the beats before it are padding, not rests
    (that padding was 88% of the "empty" beats of held-out chorales).

    >>> empty_beat_rate(_example([(60, 0, 1), (62, 3, 1)]))  # beats 2 and 3 are silent
    0.5
    >>> empty_beat_rate(_example([(60, 3, 1), (62, 4, 1)]))  # a pickup on beat 4: no rest
    0.0
    """
    empty = empty_beats(score)
    return float(empty.mean()) if len(empty) else math.nan


def empty_beats(score: Score) -> np.ndarray:
    """Per quarter-note beat, from the first note's beat to the last note's end: whether no note sounds
    (empty for a score without notes). `empty_beat_rate` is its mean; style habits pool it over pieces."""
    notes = notes_array(score)
    if not len(notes):
        return np.zeros(0, dtype=bool)
    tpq = score.ticks_per_quarter
    first = int(notes["start"].min()) // tpq
    n_beats = -(-int(notes["end"].max()) // tpq)
    covered = np.zeros(n_beats + 1, dtype=np.int64)
    np.add.at(covered, notes["start"] // tpq, 1)  # a difference array: +1 at the first beat a note touches
    np.add.at(covered, -(-notes["end"] // tpq), -1)  # -1 after the last
    return np.cumsum(covered)[first:n_beats] == 0


def pitch_range(score: Score) -> float:
    """Highest minus lowest pitch, in semitones.

    >>> pitch_range(_example([(48, 0, 1)], [(67, 0, 1)]))
    19.0
    """
    notes = notes_array(score)
    if not len(notes):
        return math.nan
    return float(notes["pitch"].max() - notes["pitch"].min())


def notes_per_bar(score: Score) -> float:
    """Pitched notes per bar, over the bars from 0 to the last note's end.

    >>> notes_per_bar(_example([(60, 0, 1), (62, 1, 1), (64, 2, 1), (65, 4, 4)]))  # 4 notes, 2 bars
    2.0
    """
    notes = notes_array(score)
    if not len(notes):
        return math.nan
    bars = -(-int(notes["end"].max()) // ticks_per_bar(score))
    return len(notes) / bars


METRICS: dict[str, Callable[[Score], float]] = {
    "pitch_class_entropy": pitch_class_entropy,
    "scale_consistency": scale_consistency,
    "groove_consistency": groove_consistency,
    "polyphony": polyphony,
    "empty_beat_rate": empty_beat_rate,
    "pitch_range": pitch_range,
    "notes_per_bar": notes_per_bar,
}


def compute_all(score: Score) -> dict[str, float]:
    """Every metric of `score`, by name.

    >>> sorted(compute_all(_example([(60, 0, 1)])))[:2]
    ['empty_beat_rate', 'groove_consistency']
    """
    return {name: fn(score) for name, fn in METRICS.items()}

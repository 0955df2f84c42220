"""A primer's drum kit carried on through the bars the model writes.

The model learnt from music21's corpus, which has no drum kit, so it writes no drums. A game
maker's primer often has them, and a continuation whose beat stops at the primer's last bar is not a
draft one can loop or build on. A drummer keeps the groove: the new bars repeat the primer's last
pattern, and the closing bar strikes its downbeat only, under the cadence's held chord.
"""

from __future__ import annotations

from collections import Counter

from symusic import Track

PERIODS = (1, 2, 4)  # bars a groove repeats in, shortest first; a primer that repeats none gives its last 4


def pattern_bars(track: Track, bar: int, bars: int, grid: int) -> int:
    """How many of the primer's last bars make its groove: the shortest period in PERIODS whose last
    two spans sound alike (notes compared on the `grid`, so played timing does not hide a repeat), else
    the last four bars (a fill ending a four-bar phrase then comes back every four bars, as it would
    be played), or as many as the primer has."""
    end = bars * bar

    def span(first: int, length: int) -> Counter:
        return Counter((round((n.time - first) / grid), n.pitch) for n in track.notes if first <= n.time < first + length)

    for period in PERIODS:
        length = period * bar
        if 2 * period <= bars and span(end - 2 * length, length) == span(end - length, length):
            return period
    return min(PERIODS[-1], bars)


def carry_on(track: Track, bar: int, bars: int, new_bars: int, grid: int) -> Track:
    """The drum track with `new_bars` bars after the primer's `bars` (ticks per `bar`) playing its groove.

    Left as it is where the user already wrote drums past the primer's pitched music (they decided
    what happens there) or where the groove's bars are silent (the drums had stopped)."""
    end = bars * bar
    if not new_bars or any(n.time >= end for n in track.notes):
        return track.copy()
    period = pattern_bars(track, bar, bars, grid)
    groove = [n for n in track.notes if n.time >= end - period * bar]
    close = end + (new_bars - 1) * bar  # the closing bar, which holds the cadence's chord
    finish = end + new_bars * bar
    added = []
    for repeat in range(1, new_bars + 1):  # enough: a period is at least a bar
        for note in groove:
            time = note.time + repeat * period * bar
            if time < close + grid / 2:  # the closing bar: its downbeat only
                added.append(note.copy())
                added[-1].time = time
                added[-1].duration = min(note.duration, finish - time)
    out = track.copy()
    out.notes = type(out.notes)(sorted([*out.notes, *added], key=lambda n: (n.time, n.pitch)))
    return out

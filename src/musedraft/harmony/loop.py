"""Harmony, loops: a piece that repeats (background music for a game) is also heard from its last bar
into its first, and that join is a place of its own for slips. Bar by bar, 44 repaired scene loops
(16 bars) were clean; played round, 4 of them moved in parallel octaves or fifths into the opening.

The join is heard by copying the opening after the end: the rules then read the last bar with what
follows it and the first bar with what leads into it, and nothing in them needs to know about loops.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from symusic import Score, TimeSignature

from musedraft.harmony.findings import Edit, Finding
from musedraft.harmony.meter import Meter
from musedraft.harmony.scan import tick_score
from musedraft.score import LOOP_MARKERS, is_marked_loop

__all__ = ["Join", "around", "heard_as_loop"]

LEAD_BARS = 2  # bars of the opening copied after the end: the first is judged, the second is what it moves on to


@dataclass(frozen=True)
class Join:
    """Where a loop comes round: after `bars` bars, at tick `end`."""

    bars: int
    end: int

    def findings(self, found: list[Finding]) -> list[Finding]:
        """A loop's findings from those of `around()`'s score: bars 2 to the last as found there (their
        neighbours are the loop's), and the copy's first bar as bar 1 (the loop's real bar 1 has nothing
        before it there)."""
        kept = [f for f in found if 1 < f.bar <= self.bars]
        kept += [self._at_opening(f) for f in found if f.bar == self.bars + 1]
        return sorted(kept, key=lambda f: (f.time, f.track))

    def edits(self, edits: list[Edit]) -> list[Edit]:
        """Edits made on `around()`'s score, told in the loop's bars (one in the copy of the opening is in bar 1)."""
        return [replace(e, reason=self._told(e.reason)) if e.time < self.end else
                replace(e, reason=self._told(e.reason), bar=e.bar - self.bars, time=e.time - self.end) for e in edits]

    def cut(self, score: Score) -> Score:
        """`around()`'s score without the copy of the opening."""
        out = score.copy()
        for track in out.tracks:
            track.notes.filter(lambda n: n.time < self.end, inplace=True)
        out.time_signatures.filter(lambda ts: ts.time < self.end, inplace=True)
        return out

    def opening_from_copy(self, score: Score) -> Score:
        """`around()`'s score cut, its first bar as the copy of it after the end now has it (mended there)."""
        second = Meter(score).bar_start(2)
        out = self.cut(score)
        for track, whole in zip(out.tracks, score.tracks, strict=True):
            track.notes.filter(lambda n: n.time >= second, inplace=True)
            for note in whole.notes:
                if self.end <= note.time < self.end + second:
                    moved = note.copy()
                    moved.time -= self.end
                    track.notes.append(moved)
            track.notes.sort()
        return out

    def _at_opening(self, f: Finding) -> Finding:
        back = lambda tick: None if tick is None else tick - self.end if tick >= self.end else tick  # noqa: E731
        return replace(f, bar=f.bar - self.bars, time=back(f.time), note_start=back(f.note_start),
                       other_start=back(f.other_start), message=self._told(f.message))

    def _told(self, text: str) -> str:
        # every finding's message starts "Bar N, beat B:" (check._message); past the end, N is the copy's
        return text.replace(f"Bar {self.bars + 1}, beat", "Bar 1, beat")


def heard_as_loop(score: Score, loop: bool | None) -> bool:
    """check()'s and repair()'s `loop`: as given, or (None) as the file says by its loop markers."""
    return is_marked_loop(score) if loop is None else loop


def around(score: Score) -> tuple[Score, Join]:
    """The score with its first LEAD_BARS bars copied after its last bar (where its loopEnd marker says,
    at a bar line; else the bar its last note sounds in), in the opening's time signature, and where
    that join is.

    >>> from musedraft.metrics import _example
    >>> s = _example([(60, 0, 4), (67, 4, 2), (65, 6, 2)], [(48, 0, 4), (41, 4, 4)])   # two bars of 4/4
    >>> wrapped, join = around(s)
    >>> join, [(n.time, n.pitch) for n in wrapped.tracks[1].notes]
    (Join(bars=2, end=32), [(0, 48), (16, 41), (32, 48), (48, 41)])
    """
    score = tick_score(score)
    meter = Meter(score)
    marked = [int(m.time) for m in score.markers if m.text == LOOP_MARKERS[1] and m.time > 0]
    bars, end = _last_bar(meter, max([n.end - 1 for t in score.tracks for n in t.notes], default=0))  # Score.end() counts markers
    if marked and marked[-1] > end:  # silent bars before the marker loop too, if it stands at a bar line
        at_marker = _last_bar(meter, marked[-1] - 1)
        bars, end = at_marker if at_marker[1] == marked[-1] else (bars, end)
    lead = meter.bar_start(LEAD_BARS + 1)
    out = score.copy()
    for track in out.tracks:
        copies = [n.copy() for n in track.notes if n.time < lead]
        for note in copies:
            note.time += end
        track.notes.extend(copies)
        track.notes.sort()
    opening = meter.signature_at(0)
    if meter.signature_at(end) != opening:
        out.time_signatures.append(TimeSignature(end, *opening))
        out.time_signatures.sort()
    return out, Join(bars, end)


def _last_bar(meter: Meter, tick: int) -> tuple[int, int]:
    """(the bar `tick` falls in, the tick where the next bar starts)."""
    bar = int(meter.bar_beat(np.array([tick]))[0][0])
    return bar, meter.bar_start(bar + 1)

"""Harmony, metre: where each tick falls in its bar, and how strong that position is.

A dissonance on the downbeat is a different event from the same dissonance on the "and" of two,
so every rule asks this module first. Bars count from the time-signature map (changes included);
beats are in the denominator's unit, as notation programs number them (6/8 has beats 1-6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from symusic import Score

from musedraft.score import metre_segments, units_per_beat

__all__ = ["Meter", "STRONG", "BEAT", "OFFBEAT"]

STRONG, BEAT, OFFBEAT = 2, 1, 0  # metrical strength levels


@dataclass(frozen=True)
class _Segment:
    tick: int  # where this time signature starts
    first_bar: int  # 0-based index of its first bar
    bar: int  # ticks per bar
    unit: int  # ticks per denominator beat
    pulse: int  # ticks per felt beat (three units in compound metres)
    strong_half: bool  # whether the half bar is a strong beat too (4/4, 12/8, 4/2)
    signature: tuple[int, int]  # (numerator, denominator)


class Meter:
    """The metrical grid of a score.

    >>> from symusic import Score, TimeSignature
    >>> s = Score(480); s.time_signatures.append(TimeSignature(0, 4, 4))
    >>> m = Meter(s)
    >>> m.bar_beat(np.array([0, 960, 1200, 1920]))
    (array([1, 1, 1, 2]), array([1. , 3. , 3.5, 1. ]))
    >>> m.strength(np.array([0, 480, 960, 1200])).tolist()   # strong, beat, strong, offbeat
    [2, 1, 2, 0]
    """

    def __init__(self, score: Score):
        self.tpq = score.ticks_per_quarter
        self._segments: list[_Segment] = []
        for tick, first_bar, bar, num, den in metre_segments(score):
            unit = max(1, self.tpq * 4 // max(1, den))
            per_beat = units_per_beat(num, den)
            pulse, beats = unit * per_beat, num // per_beat
            self._segments.append(_Segment(tick, first_bar, bar, unit, pulse, beats >= 4 and beats % 2 == 0, (num, den)))
        self._ticks = np.array([s.tick for s in self._segments], dtype=np.int64)
        self.tolerance = max(1, self.tpq // 32)  # performed MIDI lands a few ticks off the grid

    def _seg(self, ticks: np.ndarray) -> np.ndarray:
        return np.searchsorted(self._ticks, ticks, side="right") - 1

    def _fields(self, name: str, seg: np.ndarray) -> np.ndarray:
        return np.array([getattr(s, name) for s in self._segments], dtype=np.int64)[seg]

    def bar_beat(self, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """1-based bar numbers and 1-based beats (floats, in the denominator's unit)."""
        ticks = np.asarray(ticks, dtype=np.int64)
        seg = self._seg(ticks)
        rel = ticks - self._fields("tick", seg)
        bar_len = self._fields("bar", seg)
        bar = self._fields("first_bar", seg) + rel // bar_len
        beat = 1.0 + (rel % bar_len) / self._fields("unit", seg)
        return bar + 1, np.round(beat, 3)

    def bar_index(self, ticks: np.ndarray) -> np.ndarray:
        """0-based bar index of each tick (the key analysis windows over these)."""
        return self.bar_beat(ticks)[0] - 1

    def bar_start(self, bar: int) -> int:
        """Tick where 1-based `bar` starts (past the last time signature, its bars go on)."""
        seg = next(s for s in reversed(self._segments) if s.first_bar < bar or s is self._segments[0])
        return seg.tick + (bar - 1 - seg.first_bar) * seg.bar

    def signature_at(self, tick: int) -> tuple[int, int]:
        """(numerator, denominator) of the time signature in force at `tick`."""
        return self._segments[int(self._seg(np.array([tick]))[0])].signature

    def beat_ticks(self, tick: int = 0) -> int:
        """Ticks of one felt beat at `tick` (a quarter in 4/4, a dotted quarter in 6/8)."""
        return int(self._fields("pulse", self._seg(np.array([tick])))[0])

    def strength(self, ticks: np.ndarray) -> np.ndarray:
        """STRONG on the downbeat (and the half bar of 4/4-like metres), BEAT on other beats, else OFFBEAT."""
        ticks = np.asarray(ticks, dtype=np.int64)
        seg = self._seg(ticks)
        bar_len = self._fields("bar", seg)
        pos = (ticks - self._fields("tick", seg)) % bar_len
        tol = self.tolerance

        def near(multiple: np.ndarray) -> np.ndarray:
            r = pos % multiple
            return (r <= tol) | (multiple - r <= tol)

        half = np.where(self._fields("strong_half", seg).astype(bool), bar_len // 2, bar_len)
        out = np.full(len(ticks), OFFBEAT, dtype=np.int64)
        out[near(self._fields("pulse", seg))] = BEAT
        out[near(half)] = STRONG
        return out

"""Harmony, keys: which key each bar is in, so "out of key" means out of the *local* key.

Krumhansl-Schmuckler as music21 implements it (its profiles, its Pearson correlation over the 24
keys), applied to pitch-class duration histograms that numpy sums per bar and per sliding window.
A tonic chord of F# minor in bar 3 and a cadence in A major in bar 9 each get their own key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from symusic import Score

from musedraft.harmony.meter import Meter
from musedraft.harmony.theory import key_name, key_profiles, pitch_name, scale_pcs
from musedraft.score import notes_array

__all__ = ["Key", "pc_histograms", "best_keys", "local_keys", "key_of_score"]


@dataclass(frozen=True)
class Key:
    """A key as the checker uses it: tonic pitch class and mode, with music21-backed helpers."""

    tonic: int
    mode: str  # "major" or "minor"

    @property
    def name(self) -> str:
        return key_name(self.tonic, self.mode)

    @property
    def pcs(self) -> frozenset[int]:
        return scale_pcs(self.tonic, self.mode)

    def spell(self, midi_pitch: int) -> str:
        """'F#4': the pitch as written in this key."""
        return pitch_name(int(midi_pitch), self.tonic, self.mode)


_KEYS = [Key(t, "major") for t in range(12)] + [Key(t, "minor") for t in range(12)]


def _rotated_profiles() -> np.ndarray:
    major, minor = key_profiles()
    rows = [np.roll(major, t) for t in range(12)] + [np.roll(minor, t) for t in range(12)]
    return np.array(rows)  # (24, 12): row k = weight of each pitch class in key k


def pc_histograms(bar: np.ndarray, pitch: np.ndarray, duration: np.ndarray, n_bars: int) -> np.ndarray:
    """(n_bars, 12) summed durations of each pitch class per bar (a note counts in its first bar)."""
    hist = np.zeros((n_bars, 12))
    np.add.at(hist, (bar, pitch % 12), duration)
    return hist


def best_keys(hist: np.ndarray) -> np.ndarray:
    """Index into the 24 keys (0-11 major, 12-23 minor) best correlated with each histogram row.

    The same arithmetic as music21's `KrumhanslSchmuckler._getDifference`, vectorised; an empty row
    gets -1.
    """
    prof = _rotated_profiles()
    p = prof - prof.mean(axis=1, keepdims=True)
    h = hist - hist.mean(axis=1, keepdims=True)
    denom = np.sqrt((h**2).sum(axis=1, keepdims=True)) * np.sqrt((p**2).sum(axis=1))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(denom > 0, (h @ p.T) / denom, -np.inf)
    best = corr.argmax(axis=1)
    best[~np.isfinite(corr.max(axis=1))] = -1
    return best


def local_keys(hist: np.ndarray, window_bars: int) -> list[Key]:
    """One key per bar from a window of `window_bars` bars around it (the piece's key if empty).

    >>> h = np.zeros((2, 12)); h[0, [0, 4, 7]] = 2; h[1, [7, 11, 2]] = 2; h[1, [6, 9, 0]] = 1
    >>> [k.name for k in local_keys(h, 1)]
    ['C major', 'G major']
    """
    n = len(hist)
    before = (window_bars - 1) // 2
    after = window_bars - 1 - before
    csum = np.vstack([np.zeros((1, 12)), np.cumsum(hist, axis=0)])
    lo = np.clip(np.arange(n) - before, 0, n)
    hi = np.clip(np.arange(n) + after + 1, 0, n)
    windows = csum[hi] - csum[lo]
    whole = best_keys(hist.sum(axis=0, keepdims=True))[0]
    idx = best_keys(windows)
    idx[idx < 0] = whole if whole >= 0 else 0
    return [_KEYS[i] for i in idx]


def key_of_score(score: Score) -> str:
    """The key of a whole score by Krumhansl-Schmuckler ('F# minor'); 'C major' when it has no notes."""
    notes = notes_array(score)
    if not len(notes):
        return "C major"
    meter = Meter(score)
    bars = meter.bar_index(notes["start"])
    hist = pc_histograms(np.zeros_like(bars), notes["pitch"], (notes["end"] - notes["start"]) / score.ticks_per_quarter, 1)
    best = best_keys(hist)[0]
    return _KEYS[max(0, best)].name

"""Piano roll: a PNG of the draft, one colour per track, bar lines and a legend.

A glance at draft.png shows what a listen takes a minute to tell: which part sits where, where
the texture thins out, whether the bass moves. matplotlib (Agg, no display) loads only here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from musedraft.files import atomic_path, check_writable
from musedraft.instruments import track_names
from musedraft.score import bar_lines

if TYPE_CHECKING:
    from symusic import Score

__all__ = ["piano_roll_png"]

_DPI = 100


def piano_roll_png(
    score: Score,
    path: str | os.PathLike,
    *,
    bars_marked: bool = True,
    title: str | None = None,
    force: bool = False,
) -> Path:
    """Draw every track's notes (bars in time × pitch) into a PNG, atomically.

    Args:
        score: the hub score.
        path: the .png to write.
        bars_marked: draw a line at each barline, numbered every bar (every 4th past 32 bars).
        title: text above the roll.
        force: overwrite an existing file.

    Drum tracks are drawn as short ticks at their GM note numbers, so they stay visible without
    stretching the pitch axis into percussion keys; the legend carries the track names.
    """
    # A bare Figure renders through Agg without pyplot: no global backend switch, nothing left
    # open in a notebook that calls us.
    import matplotlib  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    path = check_writable(path, force)
    tpq = score.ticks_per_quarter
    lines = bar_lines(score)
    n_bars = len(lines) - 1
    width = min(24.0, max(8.0, 0.45 * n_bars + 2))
    fig = Figure(figsize=(width, 5.0), dpi=_DPI)
    ax = fig.subplots()
    colours = matplotlib.colormaps["tab10"].colors
    handles = []
    low, high = 127, 0
    for i, (track, label) in enumerate(zip(score.tracks, track_names(score.tracks), strict=True)):
        if not len(track.notes):
            continue
        notes = track.notes.numpy()
        colour = colours[i % len(colours)]
        starts = notes["time"] / tpq
        lengths = notes["duration"] / tpq
        if track.is_drum:
            lengths = lengths.clip(max=0.25)
        pitches = notes["pitch"]
        ax.barh(pitches, lengths, left=starts, height=0.8, color=colour, edgecolor="black", linewidth=0.3, alpha=0.85)
        low, high = min(low, int(pitches.min())), max(high, int(pitches.max()))
        handles.append(Patch(facecolor=colour, edgecolor="black", label=label))
    if bars_marked:
        step = 1 if n_bars <= 32 else 4
        for b, tick in enumerate(lines):
            x = tick / tpq
            ax.axvline(x, color="0.55", linewidth=0.6 if b % step else 1.0, zorder=0)
            if b < n_bars and b % step == 0:
                ax.text(x + 0.05, 1.0, str(b + 1), transform=ax.get_xaxis_transform(), fontsize=7, va="bottom", color="0.3")
    ax.set_xlim(0, lines[-1] / tpq)
    ax.set_ylim(low - 2, high + 2)
    ax.set_xlabel("quarter notes")
    ax.set_ylabel("MIDI pitch")
    ax.grid(axis="y", color="0.92", linewidth=0.5)
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10, pad=14)
    fig.tight_layout()
    with atomic_path(path, force=True) as tmp:
        fig.savefig(tmp, format="png")
    return path

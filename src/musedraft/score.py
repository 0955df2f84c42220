"""The hub: every stage reads and writes a symusic `Score`; this module loads, checks and inspects it.

MIDI from users is untrusted, so `load_midi` validates before anything else touches the data:
bad bytes become `InvalidMidiError` with a message, never a crash deep inside a parser.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np
from symusic import Score, TimeSignature

from musedraft.errors import InvalidMidiError, RequestError

__all__ = [
    "Score",
    "MidiLimits",
    "load_midi",
    "ticks_per_bar",
    "bar_count",
    "bar_lines",
    "metre_segments",
    "tidy_metre",
    "first_bars",
    "time_signature",
    "units_per_beat",
    "tempo_bpm",
    "seconds_at_tick",
    "notes_array",
    "most_at_once",
    "voice_order",
    "in_voice_order",
    "bar_range",
    "LOOP_MARKERS",
    "is_marked_loop",
    "NOTE_DTYPE",
]

NOTE_DTYPE = np.dtype(
    [("track", "i4"), ("start", "i8"), ("end", "i8"), ("pitch", "i4"), ("velocity", "i4")]
)


class MidiLimits:
    """Bounds that keep a hostile file from eating the machine (all generous for real music)."""

    max_bytes = 32 * 1024 * 1024
    max_tracks = 256
    max_notes = 2_000_000
    max_hours = 6.0


def load_midi(source: str | os.PathLike | bytes) -> Score:
    """Read a MIDI file (path or bytes) into a Score, or raise InvalidMidiError saying why.

    Zero-length notes are dropped (DAWs sometimes leave them); a file left with no pitched notes
    is refused because there is nothing to continue, check or repair.
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if path.is_dir():
            raise InvalidMidiError(f"{path} is a folder; give the path of a .mid file in it.")
        if not path.is_file():
            raise InvalidMidiError(f"{path}: no such file.")
        if path.stat().st_size > MidiLimits.max_bytes:
            raise InvalidMidiError(f"{path}: larger than {MidiLimits.max_bytes >> 20} MB; not a MIDI file we accept.")
        data = path.read_bytes()
    if data[:4] != b"MThd":
        raise InvalidMidiError(f"{name}: not a Standard MIDI File (it must start with the 'MThd' header).")
    if len(data) < 14:
        raise InvalidMidiError(f"{name}: cut short ({len(data)} bytes, inside the 14-byte MIDI header); "
                               "the download or copy did not finish.")
    if len(data) > MidiLimits.max_bytes:
        raise InvalidMidiError(f"{name}: larger than {MidiLimits.max_bytes >> 20} MB.")
    declared_tracks = int.from_bytes(data[10:12], "big")
    if declared_tracks > MidiLimits.max_tracks:
        raise InvalidMidiError(f"{name}: declares {declared_tracks} tracks; at most {MidiLimits.max_tracks} are accepted.")
    try:
        score = Score.from_midi(data)
    except Exception as exc:  # symusic raises bare RuntimeError/ValueError on corrupt data
        raise InvalidMidiError(f"{name}: unreadable MIDI ({exc}). Re-export it from your DAW or notation program.") from None
    return _validated(score, name)


def _validated(score: Score, name: str) -> Score:
    if len(score.tracks) > MidiLimits.max_tracks:
        raise InvalidMidiError(f"{name}: {len(score.tracks)} tracks; at most {MidiLimits.max_tracks} are accepted.")
    if score.ticks_per_quarter <= 0:
        raise InvalidMidiError(f"{name}: invalid time division {score.ticks_per_quarter}.")
    total = sum(len(t.notes) for t in score.tracks)
    if total > MidiLimits.max_notes:
        raise InvalidMidiError(f"{name}: {total} notes; at most {MidiLimits.max_notes} are accepted.")
    for track in score.tracks:
        track.notes.filter(lambda n: n.duration > 0, inplace=True)
    pitched = [t for t in score.tracks if not t.is_drum and len(t.notes)]
    if not pitched:
        drums = any(t.is_drum and len(t.notes) for t in score.tracks)
        what = "only drum notes" if drums else "no notes of positive length"
        raise InvalidMidiError(f"{name}: the file has {what}; musedraft needs at least one pitched part.")
    score.tracks = [t for t in score.tracks if len(t.notes)]
    # symusic gathers the conductor events of every track, so a file that repeats its key signature
    # in each track (ours do: MuseScore reads keys only there) read back as one copy per track, and
    # each save wrote them all again into every track.
    score.key_signatures = _distinct(score.key_signatures, lambda e: (e.time, e.key, e.tonality))
    # a signature of 9 sharps or of tonality 5 names no key (symusic passes the bytes through): ignored
    score.key_signatures.filter(lambda e: -7 <= e.key <= 7 and e.tonality in (0, 1), inplace=True)
    score.time_signatures = _distinct(score.time_signatures, lambda e: (e.time, e.numerator, e.denominator))
    score.tempos = _distinct(score.tempos, lambda e: (e.time, e.mspq))
    if score.start() < 0:  # symusic keeps ticks in int32: deltas past 2**31 wrap around
        raise InvalidMidiError(f"{name}: event times overflow (absurd tick values); re-export the file.")
    if len(score.tempos) and score.tempos.numpy()["mspq"].min() <= 0:
        raise InvalidMidiError(f"{name}: a tempo of 0 microseconds per quarter note is not valid MIDI; re-export the file.")
    hours = seconds_at_tick(score, score.end()) / 3600.0
    if hours > MidiLimits.max_hours:
        raise InvalidMidiError(f"{name}: lasts {hours:.0f} hours; absurd tick values? At most {MidiLimits.max_hours:.0f} h are accepted.")
    return score


def voice_order(score: Score) -> list[int]:
    """The score's tracks top first by the median pitch of their notes (drum and empty tracks last,
    each group otherwise in file order).

    The model and the harmony rules read track order as voice order (the corpus lists parts top to
    bottom): the model's slot 0 is the top part, and for the rules the last line is the bass a
    fourth is judged against and a line sounding above one listed before it crosses it. A DAW file
    may list its bass first, and a draft lists its instruments as they were asked for
    (["cello", "violin"]).
    """
    def rank(t: int) -> tuple:
        track = score.tracks[t]
        if track.is_drum or not len(track.notes):
            return (1, 0.0, t)
        return (0, -float(np.median(track.notes.numpy()["pitch"])), t)

    return sorted(range(len(score.tracks)), key=rank)


def in_voice_order(score: Score, order: list[int]) -> Score:
    """`score` with its tracks in `order` (the score itself when that is its own order)."""
    if order == sorted(order):
        return score
    out = score.copy()
    out.tracks = [score.tracks[t].copy() for t in order]
    return out


def bar_range(bars, total: int | None = None) -> tuple[int, int]:
    """(first, last) bar numbers, 1-based and inclusive, checked: whole numbers, first <= last, and
    within the music's `total` bars when it is known. The RequestError says what to give instead.

    >>> bar_range((9, 12), total=16)
    (9, 12)
    """
    try:
        first, last = bars
    except (TypeError, ValueError):
        raise RequestError(f"bars must be (first, last), two bar numbers, not {bars!r}.") from None
    whole = isinstance(first, numbers.Integral) and isinstance(last, numbers.Integral)
    if total is not None and not (whole and 1 <= first <= last <= total):
        raise RequestError(f"bars={bars} must lie within 1-{total} (the music has {total} bars).")
    if not (whole and 1 <= first <= last):
        raise RequestError(f"bars={bars!r} must be whole numbers with 1 <= first <= last.")
    return int(first), int(last)


def _distinct(events, identity):
    """The events without repeats (the same identity), in their order."""
    seen, kept = set(), []
    for event in events:
        if identity(event) not in seen:
            seen.add(identity(event))
            kept.append(event)
    return type(events)(kept)


def seconds_at_tick(score: Score, tick: int) -> float:
    """Wall-clock seconds at `tick` under the whole tempo map (120 BPM until the first tempo event;
    a fast opening tempo must not hide a slow one)."""
    tempos = score.tempos.numpy()
    times, mspq = tempos["time"].astype(np.int64), tempos["mspq"].astype(np.float64)
    order = np.argsort(times, kind="stable")
    keep = times[order] < tick
    starts = np.concatenate(([0], times[order][keep]))
    rates = np.concatenate(([500_000.0], mspq[order][keep]))  # 120 BPM until the first tempo event
    ends = np.append(starts[1:], tick)
    return float(((ends - starts) * rates).sum() / score.ticks_per_quarter / 1e6)


def time_signature(score: Score) -> tuple[int, int]:
    """(numerator, denominator) of the opening time signature; 4/4 when the file has none."""
    if len(score.time_signatures):
        ts = score.time_signatures[0]
        return int(ts.numerator), int(ts.denominator)
    return 4, 4


def units_per_beat(numerator: int, denominator: int) -> int:
    """Time-signature units in one felt beat: three eighths (or sixteenths) in compound metres such as
    6/8, 9/8 and 12/8, else one. The harmony checker's metre and the generator's clash penalty share it.

    >>> units_per_beat(6, 8), units_per_beat(3, 8), units_per_beat(6, 4)
    (3, 1, 1)
    """
    return 3 if numerator % 3 == 0 and numerator > 3 and denominator >= 8 else 1


def tempo_bpm(score: Score) -> float:
    """Opening tempo in quarter notes per minute; 120 (the MIDI default) when the file has none."""
    if len(score.tempos):
        return float(score.tempos[0].qpm)
    return 120.0


def ticks_per_bar(score: Score) -> int:
    num, den = time_signature(score)
    return score.ticks_per_quarter * 4 * num // den


def tidy_metre(score: Score) -> Score:
    """The score's time signatures as a reader needs them, for notation and for writing bar by bar.

    A change of metre that falls between bar lines (after an incomplete bar, as where a movement ends
    short) gets a time signature of its own for that short bar, as a notation program writes it (2/4 for
    half a bar of 4/4): music21 built bars of negative length from such a file. Before the first
    signature the music is in 4/4, as MIDI has it, and says so. A signature after the last note struck
    times no music, and would give bars added after the end its metre: it is dropped.

    >>> from symusic import Note, TimeSignature, Track
    >>> s = Score(4); s.time_signatures.append(TimeSignature(0, 4, 4)); s.time_signatures.append(TimeSignature(24, 3, 8))
    >>> s.time_signatures.append(TimeSignature(36, 2, 4)); t = Track(); t.notes.append(Note(30, 4, 60, 80)); s.tracks.append(t)
    >>> [(ts.time, ts.numerator, ts.denominator) for ts in tidy_metre(s).time_signatures]
    [(0, 4, 4), (16, 2, 4), (24, 3, 8)]
    """
    last = max((int(n.time) for t in score.tracks for n in t.notes), default=0)
    given = sorted(score.time_signatures, key=lambda ts: ts.time)
    metres = [(int(ts.time), int(ts.numerator), int(ts.denominator)) for ts in given if ts.time <= last]
    if metres and metres[0][0] > 0:
        metres.insert(0, (0, 4, 4))
    tidy = []
    for k, (tick, num, den) in enumerate(metres):
        end = metres[k + 1][0] if k + 1 < len(metres) else None
        bar = score.ticks_per_quarter * 4 * num // den
        line = tick if end is None else tick + (end - tick) // bar * bar
        rest = 0 if end is None else end - line
        fits = [d for d in (4, 8, 16, 32) if rest * d % (4 * score.ticks_per_quarter) == 0]
        if line > tick or not (rest and fits):
            tidy.append((tick, num, den))
        if rest and fits:  # the short bar before the change: in its own metre (replacing a bar too short for its own)
            tidy.append((line, rest * fits[0] // (4 * score.ticks_per_quarter), fits[0]))
        if len(tidy) > 1 and tidy[-1][1:] == tidy[-2][1:]:  # no change after all
            tidy.pop()
    if tidy == [(int(ts.time), int(ts.numerator), int(ts.denominator)) for ts in given]:
        return score
    out = score.copy()
    out.time_signatures = type(out.time_signatures)([TimeSignature(*metre) for metre in tidy])
    return out


def metre_segments(score: Score) -> list[tuple[int, int, int, int, int]]:
    """(tick, first bar (0-based), ticks per bar, numerator, denominator) of each time signature: how
    the harmony checker, the piano roll and continue/regenerate all count bars. 4/4 until the first
    signature, as MIDI has it; a change between bar lines cuts that bar short; of two signatures at
    one tick the later holds.

    >>> from symusic import TimeSignature
    >>> s = Score(4); s.time_signatures.append(TimeSignature(0, 4, 4)); s.time_signatures.append(TimeSignature(24, 3, 4))
    >>> metre_segments(s)
    [(0, 0, 16, 4, 4), (24, 2, 12, 3, 4)]
    """
    signatures = sorted(((int(ts.time), int(ts.numerator), int(ts.denominator)) for ts in score.time_signatures),
                        key=lambda sig: sig[0])
    if not signatures or signatures[0][0] > 0:
        signatures.insert(0, (0, 4, 4))
    segments: list[tuple[int, int, int, int, int]] = []
    for k, (tick, num, den) in enumerate(signatures):
        if k + 1 < len(signatures) and signatures[k + 1][0] == tick:
            continue
        first = segments[-1][1] + -(-(tick - segments[-1][0]) // segments[-1][2]) if segments else 0
        segments.append((tick, first, max(1, max(1, score.ticks_per_quarter * 4 // max(1, den)) * num), num, den))
    return segments


def bar_lines(score: Score) -> list[int]:
    """Ticks of the bar lines from the start to the end of the last bar the music touches, across
    changes of metre (`metre_segments`).

    >>> from symusic import Note, TimeSignature, Track
    >>> s = Score(4); s.time_signatures.append(TimeSignature(0, 4, 4)); s.time_signatures.append(TimeSignature(32, 3, 4))
    >>> t = Track(); t.notes.append(Note(0, 40, 60, 80)); s.tracks.append(t)
    >>> bar_lines(s)
    [0, 16, 32, 44]
    """
    segments, end, lines = metre_segments(score), max(score.end(), 1), [0]
    while lines[-1] < end:
        tick, first, bar, _, _ = next(seg for seg in reversed(segments) if seg[1] <= len(lines))
        lines.append(tick + (len(lines) - first) * bar)
    return lines


def bar_count(score: Score) -> int:
    """Number of bars the music spans (a note ringing into a bar counts that bar)."""
    return max(1, -(-score.end() // ticks_per_bar(score)))


def notes_array(score: Score) -> np.ndarray:
    """All pitched notes as one structured array, sorted by (start, track, pitch).

    The harmony checker and the metrics scan this instead of Python objects: a 64-bar quartet is a
    few thousand rows and every rule becomes a vectorised comparison.
    """
    parts = []
    for i, track in enumerate(score.tracks):
        if track.is_drum or not len(track.notes):
            continue
        arr = track.notes.numpy()
        rows = np.empty(len(arr["time"]), dtype=NOTE_DTYPE)
        rows["track"] = i
        rows["start"] = arr["time"]
        rows["end"] = arr["time"] + arr["duration"]
        rows["pitch"] = arr["pitch"]
        rows["velocity"] = arr["velocity"]
        parts.append(rows)
    if not parts:
        return np.empty(0, dtype=NOTE_DTYPE)
    notes = np.concatenate(parts)
    return notes[np.lexsort((notes["pitch"], notes["track"], notes["start"]))]


def first_bars(score: Score, bars: int) -> Score:
    """The first `bars` bars of a piece, notes ringing past the cut shortened to it."""
    end = bars * ticks_per_bar(score)
    cut = score.clip(0, end, clip_end=False)
    for track in cut.tracks:
        for note in track.notes:
            note.duration = min(note.duration, end - note.time)
    return cut


LOOP_MARKERS = ("loopStart", "loopEnd")  # the MIDI markers a saved loop draft carries (Draft.markers), as many engines read them


def is_marked_loop(score: Score) -> bool:
    """Whether a score carries a loop's markers: loopStart at its beginning and a loopEnd."""
    marks = {(m.text, int(m.time)) for m in score.markers}
    return (LOOP_MARKERS[0], 0) in marks and any(text == LOOP_MARKERS[1] for text, _ in marks)


def most_at_once(track) -> int:
    """The most notes the track has sounding together: 1 for a line, more for chords."""
    events = sorted([(n.time, 1) for n in track.notes] + [(n.end, -1) for n in track.notes])
    now = top = 0
    for _, step in events:  # at a tick where one note ends and another starts, the end comes first
        now += step
        top = max(top, now)
    return top

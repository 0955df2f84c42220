"""Export: the hub Score becomes a Standard MIDI File a DAW and MuseScore open cleanly.

We write the file ourselves with mido rather than `Score.dump_midi`: symusic 0.6 puts the tempo
map inside the first instrument's track, gives a 16th pitched track the channel of the 1st, and
pretty_midi drops markers. Here track 0 is a conductor track (tempo, time and key signatures,
markers) and every instrument gets a named track, its GM program and a channel of its own (drums
on channel 10). Pitched tracks repeat the key signature: MuseScore 3 reads keys only from the
track holding the notes (pretty_midi warns about that, and reads it correctly).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from musedraft.errors import RequestError
from musedraft.files import atomic_path, check_writable
from musedraft.instruments import track_names

if TYPE_CHECKING:
    import mido
    from symusic import Score

__all__ = ["write_midi", "midi_bytes", "midi_file", "key_signature", "key_of_signature", "split_key", "assign_channels", "DRUM_CHANNEL"]

DRUM_CHANNEL = 9  # GM percussion: "channel 10" counted from 1
_MELODIC_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)
_LETTER_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}
# mido's key names for each number of sharps (negative: flats), major and minor.
_MAJOR_NAMES = dict(zip(range(-7, 8), "Cb Gb Db Ab Eb Bb F C G D A E B F# C#".split(), strict=True))
_MINOR_NAMES = dict(zip(range(-7, 8), "Abm Ebm Bbm Fm Cm Gm Dm Am Em Bm F#m C#m G#m D#m A#m".split(), strict=True))


def split_key(key: str) -> tuple[str, int, str]:
    """The one grammar of key names: 'D major' / 'f# minor' / 'Bb' / 'Ebm' / 'D♭ major' →
    (letter, accidentals: sharps positive, flats negative, mode).

    >>> split_key("D major"), split_key("f# minor"), split_key("Bb"), split_key("Ebm")
    (('D', 0, 'major'), ('F', 1, 'minor'), ('B', -1, 'major'), ('E', -1, 'minor'))
    """
    text = key.strip().replace("♯", "#").replace("♭", "b") if isinstance(key, str) else ""
    parts = text.split()
    tonic = parts[0] if parts else ""
    mode = parts[1].lower() if len(parts) > 1 else "major"
    if len(parts) == 1 and len(tonic) > 1 and tonic.endswith("m"):
        tonic, mode = tonic[:-1], "minor"
    accidentals = tonic[1:]
    if (len(parts) > 2 or not tonic or tonic[0].upper() not in _LETTER_FIFTHS or mode not in ("major", "minor")
            or any(c not in "#b" for c in accidentals)):
        raise RequestError(f"Unknown key {key!r}; write it like 'D major', 'F# minor', 'Bb major' or 'Am'.")
    return tonic[0].upper(), accidentals.count("#") - accidentals.count("b"), mode


def key_signature(key: str) -> tuple[int, str]:
    """'D major' / 'Bb minor' / 'F#m' → (sharps, mode); flats count negative.

    The spelling matters (F# major has six sharps, Gb major six flats), so we read the tonic's
    letter and accidentals rather than its pitch class. Keys beyond seven accidentals take the
    enharmonic signature a notation program would show (A# major → Bb major).

    >>> key_signature("D major"), key_signature("Bb minor"), key_signature("F#m"), key_signature("A# major")
    ((2, 'major'), (-5, 'minor'), (3, 'minor'), (-2, 'major'))
    """
    letter, alter, mode = split_key(key)
    sharps = _LETTER_FIFTHS[letter] + 7 * alter - (3 if mode == "minor" else 0)
    while sharps > 7:
        sharps -= 12
    while sharps < -7:
        sharps += 12
    return sharps, mode


def assign_channels(score: Score) -> list[int]:
    """One MIDI channel per track: drums on 9, pitched tracks on the other fifteen in order.

    Past fifteen pitched tracks a track shares the channel of an earlier one with the same GM
    program (harmless: same sound); a sixteenth distinct sound cannot be played by one GM device,
    so that is refused rather than silently played with the wrong instrument.
    """
    channels: list[int] = []
    free = list(_MELODIC_CHANNELS)
    by_program: dict[int, int] = {}
    for i, track in enumerate(score.tracks):
        if track.is_drum:
            channels.append(DRUM_CHANNEL)
            continue
        program = int(track.program)
        if free:
            channel = free.pop(0)
            by_program.setdefault(program, channel)
        elif program in by_program:
            channel = by_program[program]
        else:
            raise RequestError(
                f"Track {i} ({track.name or 'unnamed'}) needs a 16th MIDI channel: a General MIDI file holds "
                "at most 15 different pitched sounds plus drums. Merge parts that share an instrument."
            )
        channels.append(channel)
    return channels


def midi_file(score: Score, *, key: str | None = None, markers: Iterable[tuple[int, str]] = ()) -> mido.MidiFile:
    """Build the type-1 `mido.MidiFile` for a score (see the module docstring for the layout).

    Args:
        score: the hub score, in ticks.
        key: 'D major' etc. for the key-signature meta event; None keeps the score's own key
            signatures (if any).
        markers: (tick, text) marker events such as section names and loop points, added to any
            markers the score already carries.
    """
    import mido  # noqa: PLC0415  (only needed when writing)

    if "tick" not in str(score.ttype).lower():
        score = score.to("tick")
    channels = assign_channels(score)
    if key is not None:
        keys = [(0, _key_name(*key_signature(key)))]
    else:
        keys = [(int(ks.time), _key_name(int(ks.key), _mode(ks))) for ks in score.key_signatures]
    mid = mido.MidiFile(type=1, ticks_per_beat=int(score.ticks_per_quarter))
    mid.tracks.append(_conductor_track(score, keys, markers))
    for track, name, channel in zip(score.tracks, track_names(score.tracks), channels, strict=True):
        mid.tracks.append(_instrument_track(track, name, channel, [] if track.is_drum else keys))
    return mid


def midi_bytes(score: Score, *, key: str | None = None, markers: Iterable[tuple[int, str]] = ()) -> bytes:
    """The file `write_midi` would write, as bytes (for pretty_midi/music21 readers in memory)."""
    buffer = io.BytesIO()
    midi_file(score, key=key, markers=markers).save(file=buffer)
    return buffer.getvalue()


def write_midi(
    score: Score,
    path: str | os.PathLike,
    *,
    key: str | None = None,
    markers: Sequence[tuple[int, str]] = (),
    force: bool = False,
) -> Path:
    """Write `score` as a type-1 Standard MIDI File, atomically.

    Raises:
        OutputExistsError: `path` exists and `force` is False (checked before any work).
        RequestError: unknown key, or more distinct pitched instruments than GM has channels.
    """
    path = check_writable(path, force)
    data = midi_bytes(score, key=key, markers=markers)
    with atomic_path(path, force=True) as tmp:
        tmp.write_bytes(data)
    return path


def _conductor_track(score: Score, keys: list[tuple[int, str]], markers: Iterable[tuple[int, str]]) -> mido.MidiTrack:
    import mido  # noqa: PLC0415

    events: list[tuple[int, int, mido.MetaMessage]] = []  # (tick, order, message)
    title = "musedraft"
    events.append((0, 0, mido.MetaMessage("track_name", name=title)))
    time_signatures = list(score.time_signatures) or None
    if time_signatures is None:
        events.append((0, 1, mido.MetaMessage("time_signature", numerator=4, denominator=4)))
    else:
        for ts in time_signatures:
            events.append(
                (int(ts.time), 1, mido.MetaMessage("time_signature", numerator=int(ts.numerator), denominator=int(ts.denominator)))
            )
    for tick, name in keys:
        events.append((tick, 2, mido.MetaMessage("key_signature", key=name)))
    tempos = list(score.tempos)
    if not tempos:
        events.append((0, 3, mido.MetaMessage("set_tempo", tempo=500_000)))
    for tempo in tempos:
        events.append((int(tempo.time), 3, mido.MetaMessage("set_tempo", tempo=int(tempo.mspq))))
    seen: set[tuple[int, str]] = set()
    for tick, text in [*((int(m.time), str(m.text)) for m in score.markers), *markers]:
        if (int(tick), text) not in seen:
            seen.add((int(tick), text))
            events.append((int(tick), 4, mido.MetaMessage("marker", text=text)))
    return _to_track(events)


def _instrument_track(track, name: str, channel: int, keys: list[tuple[int, str]]) -> mido.MidiTrack:
    """A named instrument track. It repeats the key signature: MuseScore 3 reads keys only from
    the track holding the notes and otherwise guesses one from the pitches."""
    import mido  # noqa: PLC0415

    events: list[tuple[int, int, mido.Message | mido.MetaMessage]] = [
        (0, 0, mido.MetaMessage("track_name", name=name)),
        (0, 1, mido.MetaMessage("instrument_name", name=name)),
        (0, 2, mido.Message("control_change", channel=channel, control=0, value=0)),  # GM bank 0
        # a drum track's program picks its kit (GM2: 40 brushes); it used to be written as 0 whatever the file said
        (0, 3, mido.Message("program_change", channel=channel, program=int(track.program))),
    ]
    events += [(tick, 1, mido.MetaMessage("key_signature", key=name)) for tick, name in keys]
    for cc in track.controls:
        if (int(cc.time), int(cc.number), int(cc.value)) == (0, 0, 0):
            continue  # the bank select above, read back from a file of ours: once, not once more per save
        events.append((int(cc.time), 4, mido.Message("control_change", channel=channel, control=int(cc.number), value=int(cc.value))))
    for bend in track.pitch_bends:
        events.append((int(bend.time), 4, mido.Message("pitchwheel", channel=channel, pitch=int(bend.value))))
    # symusic derives `pedals` from CC64 and keeps the CC64 events too: write pedals only when the
    # controls lack them (a score built in code), never both.
    has_cc64 = any(int(cc.number) == 64 for cc in track.controls)
    for pedal in [] if has_cc64 else track.pedals:
        events.append((int(pedal.time), 4, mido.Message("control_change", channel=channel, control=64, value=127)))
        events.append((int(pedal.time + pedal.duration), 4, mido.Message("control_change", channel=channel, control=64, value=0)))
    # Same-pitch notes that overlap would have the first note-off silence the second note on a
    # shared channel: end the earlier note where the later one starts.
    last_on: dict[int, list[int]] = {}
    notes = sorted((int(n.time), int(n.end), int(n.pitch), int(n.velocity)) for n in track.notes)
    clipped: list[list[int]] = []
    for start, end, pitch, velocity in notes:
        previous = last_on.get(pitch)
        if previous is not None and previous[1] > start:
            previous[1] = start
        row = [start, end, pitch, max(1, min(127, velocity))]
        last_on[pitch] = row
        clipped.append(row)
    for start, end, pitch, velocity in clipped:
        if end <= start:
            continue
        # Offs sort before ons at the same tick (order 5 < 6) so a repeated note is re-struck.
        events.append((start, 6, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)))
        events.append((end, 5, mido.Message("note_off", channel=channel, note=pitch, velocity=64)))
    return _to_track(events)


def _to_track(events: list[tuple[int, int, object]]) -> mido.MidiTrack:
    """Absolute-tick events → a delta-time track ending in end_of_track."""
    import mido  # noqa: PLC0415

    track = mido.MidiTrack()
    now = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=max(0, tick) - now))
        now = max(0, tick)
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def key_of_signature(ks) -> str:
    """The key a symusic KeySignature names, spelt as `key_signature` reads it back: six flats in
    major is Gb major, not F# major, so a file read back keeps its spelling.

    >>> from symusic import KeySignature
    >>> [key_of_signature(KeySignature(0, k, t)) for k, t in ((-6, 0), (6, 0), (7, 1), (0, 1))]
    ['Gb major', 'F# major', 'A# minor', 'A minor']
    """
    mode = "minor" if int(ks.tonality) == 1 else "major"
    name = _key_name(int(ks.key), mode)
    return f"{name[:-1]} minor" if mode == "minor" else f"{name} major"


def _key_name(sharps: int, mode: str) -> str:
    sharps = max(-7, min(7, sharps))
    return (_MINOR_NAMES if mode == "minor" else _MAJOR_NAMES)[sharps]


def _mode(ks) -> str:
    return "minor" if int(ks.tonality) == 1 else "major"

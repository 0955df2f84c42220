"""Notation: the hub Score → a music21 score → MusicXML a notation program shows readably.

We snap every note to a sixteenth grid ourselves before music21 sees it: music21's default
quantiser invents triplets from timing jitter, and a humanised line whose notes overlap by a few
ticks would be split into two voices. After snapping, music21's MIDI reader builds the chords,
voices, measures and ties, and we put back what it gets wrong: one instrument per part named after
the track, the requested key, and pitch spellings that belong to that key.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from musedraft.errors import MusedraftError, NotationError
from musedraft.export import key_of_signature, key_signature, midi_bytes
from musedraft.files import atomic_path, check_writable
from musedraft.instruments import instrument_of_track, track_names
from musedraft.score import LOOP_MARKERS, most_at_once, tidy_metre

if TYPE_CHECKING:
    import music21
    from symusic import Score, Track

__all__ = ["to_music21", "write_musicxml", "musicxml_bytes", "quantise", "GRID_DIVISOR"]

MIDDLE_C = 60  # a keyboard's upper staff starts here
GRID_DIVISOR = 4  # notes snap to 1/4 of a quarter: sixteenths, so a dotted eighth stays one


def quantise(score: Score, divisor: int = GRID_DIVISOR) -> Score:
    """A copy with onsets and ends snapped to 1/`divisor` of a quarter note.

    Every note keeps at least one grid step, duplicates (same pitch, same onset) merge, and a note
    that would still sound when the same pitch strikes again is cut there: notation cannot show
    one pitch twice at once in a voice, and MIDI would not play it either.
    """
    from symusic import Note  # noqa: PLC0415  (already loaded: the Score came from it)

    out = score.copy()
    step = out.ticks_per_quarter / divisor
    for track in out.tracks:
        rows: dict[tuple[int, int], list[int]] = {}
        for note in track.notes:
            start = int(round(round(note.time / step) * step))
            end = int(round(round(note.end / step) * step))
            end = max(end, int(round(start + step)))
            key = (int(note.pitch), start)
            if key in rows:  # keep the longer, louder of two duplicates
                rows[key][0] = max(rows[key][0], end)
                rows[key][1] = max(rows[key][1], int(note.velocity))
            else:
                rows[key] = [end, int(note.velocity)]
        by_pitch: dict[int, list[tuple[int, list[int]]]] = {}
        for (pitch, start), row in rows.items():
            by_pitch.setdefault(pitch, []).append((start, row))
        for starts in by_pitch.values():
            starts.sort(key=lambda s: s[0])
            for (start, row), (next_start, _) in zip(starts, starts[1:], strict=False):
                row[0] = min(row[0], next_start) if next_start > start else row[0]
        track.notes.clear()
        for (pitch, start), (end, velocity) in sorted(rows.items(), key=lambda r: (r[0][1], r[0][0])):
            track.notes.append(Note(start, end - start, pitch, velocity))
    return out


def to_music21(score: Score, key: str | None = None, *, title: str | None = None) -> music21.stream.Score:
    """Convert the hub score to a music21 Score ready for MusicXML.

    Args:
        score: the hub score (one track per instrument; empty tracks are left out).
        key: 'D major' etc.; sets the key signature and respells pitches into that key. None
            takes the score's key signatures, if any: a key change is written where it falls, and
            the notes after it are spelt in the new key.
        title: the movement title shown above the music.

    Returns:
        A music21 Score with one Part per non-empty track, named after the track, with its GM
        program, time signature, key and tempo, durations on a sixteenth grid, in its instrument's
        clef; a keyboard's or harp's chords are two PartStaffs (treble and bass) in a braced StaffGroup.
    """
    from music21 import key as m21key  # noqa: PLC0415
    from music21 import metadata, midi, tempo  # noqa: PLC0415
    from music21.midi import translate  # noqa: PLC0415

    score = tidy_metre(score)
    keys = _keys(score, key)
    named = [(t, name) for t, name in zip(score.tracks, track_names(score.tracks), strict=True) if len(t.notes)]
    kept, names = [t for t, _ in named], [name for _, name in named]
    snapped = quantise(score)
    snapped.tracks = [t for t in snapped.tracks if len(t.notes)]
    insts = [None if t.is_drum else instrument_of_track(t.name, int(t.program)) for t in kept]
    staves = [_hands(t) if inst is not None and inst.grand_staff else [t] for t, inst in zip(snapped.tracks, insts, strict=True)]
    snapped.tracks = [staff for group in staves for staff in group]
    # music21 reads channel-10 notes as Unpitched and forgets which drum they were (key 51 comes
    # back as plain "Percussion"): hand drums over as pitches and make them Unpitched ourselves.
    shared = next((int(t.program) for t in snapped.tracks if not t.is_drum), 0)
    for track in snapped.tracks:
        if track.is_drum:
            track.is_drum, track.program = False, shared
    mf = midi.MidiFile()
    mf.readstr(midi_bytes(snapped, key=keys[0][1] if keys else None))
    m21 = translate.midiFileToStream(mf, quantizePost=True, quarterLengthDivisors=(GRID_DIVISOR,))
    groups, parts = [], list(m21.parts)
    for group in staves:
        groups.append(parts[: len(group)])
        parts = parts[len(group):]
    m21_keys = [(offset, m21key.KeySignature(key_signature(name)[0]).asKey(key_signature(name)[1]))
                for offset, name in keys]
    parts = []
    for number, (group, track, name, inst) in enumerate(zip(groups, kept, names, insts, strict=True), start=1):
        if len(group) == 2:
            group = _grand_staff(m21, group)
        parts += group
        # treble over bass on a grand staff, else the instrument's own clef (a viola's alto) or music21's by range
        clefs = ["treble", "bass"] if len(group) == 2 else [inst.clef if inst is not None else None]
        for part, clef_name in zip(group, clefs, strict=True):
            if clef_name is not None:
                _set_clef(part, clef_name)
        for part in group:
            _finish_part(part, track, name, number, m21_keys)
    for part in list(m21.parts):  # in the tracks' order, a keyboard's staves in its place
        m21.remove(part)
    for part in parts:
        m21.insert(0, part)
    if parts:
        _mark_sections(parts[0], score)
    for part in parts[1:]:  # one tempo mark above the score, not one stacked per part
        for mark in list(part.recurse().getElementsByClass(tempo.MetronomeMark)):
            mark.activeSite.remove(mark)
    m21.metadata = metadata.Metadata()
    m21.metadata.title = title or "musedraft draft"
    m21.metadata.composer = ""
    return m21


def _mark_sections(part, score: Score) -> None:
    """A file's section markers ('Verse', 'B') as rehearsal marks over the top staff, where a notation
    program shows them. Loop points are for game engines, not readers: they stay in the MIDI only."""
    from music21 import expressions  # noqa: PLC0415

    for marker in score.markers:
        if marker.text not in LOOP_MARKERS:
            _insert_at(part, int(marker.time) / score.ticks_per_quarter, expressions.RehearsalMark(marker.text))


def _insert_at(part, offset: float, element) -> None:
    """Put `element` into the measure of `part` that holds `offset` (quarter notes from the start)."""
    from music21 import stream  # noqa: PLC0415

    measures = list(part.getElementsByClass(stream.Measure)) or [part]
    measure = next((m for m in reversed(measures) if m.offset <= offset), measures[0])
    measure.insert(offset - measure.offset, element)


def _keys(score: Score, key: str | None) -> list[tuple[float, str]]:
    """(offset in quarter notes, key name) of each key the music is written in, first to last: `key`
    alone where given, else the score's key signatures (a signature repeating the key in force is no
    change). A piece that modulates keeps its key changes for a reader, as its MIDI file does."""
    if key is not None:
        return [(0.0, key)]
    keys: list[tuple[float, str]] = []
    for ks in sorted(score.key_signatures, key=lambda ks: int(ks.time)):
        name, offset = key_of_signature(ks), int(ks.time) / score.ticks_per_quarter
        if keys and offset == keys[-1][0]:
            keys.pop()  # two signatures at one tick: the later one holds
        if not keys or name != keys[-1][1]:
            keys.append((offset, name))
    if keys:
        keys[0] = (0.0, keys[0][1])  # a first signature after the first notes still names the opening's key
    return keys


def _finish_part(part, track, name: str, number: int, keys) -> None:
    """One staff as a notation program should show it: the track's instrument and name (ids fixed:
    music21 draws them at random), voices for overlapping notes, the key and spellings in it."""
    from music21 import clef, instrument, stream  # noqa: PLC0415
    from music21 import key as m21key  # noqa: PLC0415

    for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
        old.activeSite.remove(old)
    if track.is_drum:
        sound = instrument.UnpitchedPercussion()
        sound.midiChannel = 9
        for old in list(part.recurse().getElementsByClass(clef.Clef)):
            old.activeSite.replace(old, clef.PercussionClef())
        _to_unpitched(part)
    else:
        sound = instrument.instrumentFromMidiProgram(int(track.program))
        sound.midiProgram = int(track.program)
    sound.partName = sound.instrumentName = name
    sound.partId, sound.instrumentId = f"P{number}", f"P{number}-I1"  # music21 draws them at random: same seed, same file
    sound.partAbbreviation = sound.instrumentAbbreviation = _abbreviation(name)
    part.partName, part.partAbbreviation = name, _abbreviation(name)
    _split_voices(part)
    _rests_by_beat(part)
    first = part.getElementsByClass(stream.Measure).first() or part
    first.insert(0, sound)
    for old in list(part.recurse().getElementsByClass(m21key.KeySignature)):
        old.activeSite.remove(old)
    if keys and not track.is_drum:
        for offset, key in keys:
            _insert_at(part, offset, m21key.Key(key.tonic.name, key.mode))
        for (offset, key), (end, _) in zip(keys, [*keys[1:], (math.inf, None)], strict=True):
            _respell(part, key, offset, end)


def _hands(track: Track) -> list[Track]:
    """A keyboard's or harp's chords on two staves: notes from middle C up on the upper one, as a
    notation program's own MIDI import splits them. One staff for a single line (music21 writes every
    part on program 0, so a violin there reads as a piano) or where either staff would be empty."""
    if most_at_once(track) < 2:
        return [track]
    upper, lower = track.copy(), track.copy()
    upper.notes = track.notes.filter(lambda n: n.pitch >= MIDDLE_C, inplace=False)
    lower.notes = track.notes.filter(lambda n: n.pitch < MIDDLE_C, inplace=False)
    return [upper, lower] if len(upper.notes) and len(lower.notes) else [track]


def _set_clef(part, name: str) -> None:
    """Write the whole part in one clef: music21 picks treble or bass by range."""
    from music21 import clef, stream  # noqa: PLC0415

    for old in list(part.recurse().getElementsByClass(clef.Clef)):
        old.activeSite.remove(old)
    first = part.getElementsByClass(stream.Measure).first() or part
    first.insert(0, clef.clefFromString(name))


def _grand_staff(m21, pair: list) -> list:
    """Two parts as the staves of one instrument: PartStaffs in a braced StaffGroup, which music21
    writes as one MusicXML part with two staves. The caller puts them in the score."""
    from music21 import layout, stream  # noqa: PLC0415

    staves = []
    for part in pair:
        staff = stream.PartStaff()
        for element in list(part):
            staff.insert(part.elementOffset(element), element)
        staves.append(staff)
    m21.insert(0, layout.StaffGroup(staves, symbol="brace", barTogether=True))
    return staves


def write_musicxml(
    score: Score, path: str | os.PathLike, key: str | None = None, force: bool = False, *, title: str | None = None
) -> Path:
    """Write `score` as uncompressed MusicXML (`.musicxml`), atomically.

    Raises:
        OutputExistsError: `path` exists and `force` is False (checked before any work).
        NotationError: music21 could not write the music (it raises its own exceptions, from deep
            inside its MIDI import or MusicXML export, on music it cannot notate).
    """
    path = check_writable(path, force)
    try:
        data = musicxml_bytes(to_music21(score, key, title=title))
    except MusedraftError:
        raise
    except Exception as exc:  # noqa: BLE001  (music21's own exceptions, of several classes)
        raise NotationError(f"{path.name}: music21 could not write this music as MusicXML ({exc}). The MIDI "
                            "file holds all of it: write it alone with musedraft.export.write_midi, and open it "
                            "in a notation program.") from exc
    with atomic_path(path, force=True) as tmp:
        tmp.write_bytes(data)
    return path


def musicxml_bytes(m21: music21.stream.Score) -> bytes:
    """MusicXML for a score from `to_music21`, with drum parts a notation program recognises.

    A transposing instrument's part (a contrabass, a clarinet in B flat, a horn in F) is written at
    its written pitch, which its `<transpose>` element tells a reader how to sound: music21 writes the
    element but leaves the notes at sounding pitch, so MuseScore played a contrabass an octave low and
    a clarinet a tone low. Those parts are transposed for the export and back after it: the caller's
    score stays at sounding pitch (key analysis reads it), and a copy of the whole score cost more.

    music21 writes every drum note of a part as one anonymous instrument. MuseScore needs one
    `<score-instrument>` per drum with its `<midi-unpitched>` key, and an `<instrument>` on each
    note; we tag each drum note with a private colour, export, and rewrite the tags into those.
    """
    from music21 import note  # noqa: PLC0415
    from music21.musicxml.m21ToXml import GeneralObjectExporter  # noqa: PLC0415

    transposing = [p for p in m21.parts if any(i.transposition is not None for i in p.getInstruments(recurse=True))]
    for part in transposing:
        part.atSoundingPitch = True
        part.toWrittenPitch(inPlace=True)
    tagged = []
    for part in m21.parts:
        hits = [u for el in part.recurse().notes for u in getattr(el, "notes", (el,)) if isinstance(u, note.Unpitched)]
        for u in hits:
            if u.style.color is None and "gm_key" in u.editorial:
                u.style.color = f"#0000{int(u.editorial['gm_key']):02X}"
                tagged.append(u)
    try:
        raw = GeneralObjectExporter(m21).parse()
    finally:  # leave the caller's score as it was
        for u in tagged:
            u.style.color = None
        for part in transposing:
            part.toSoundingPitch(inPlace=True)
    raw = re.sub(rb"\s*<encoding-date>[^<]*</encoding-date>", b"", raw, count=1)  # today's date: not the draft's
    return _rewrite_drum_parts(raw) if tagged else raw


# GM percussion key → (display pitch, notehead) on a percussion staff, after common drum-set
# notation: bass drums in the bottom space, snare in the third space, toms between, cymbals and
# hi-hats above the staff with x heads. Keys not listed sit on the snare line.
_DRUM_DISPLAY = {
    35: ("E4", "normal"), 36: ("F4", "normal"), 37: ("C5", "x"), 38: ("C5", "normal"), 39: ("C5", "x"),
    40: ("C5", "normal"), 41: ("G4", "normal"), 42: ("G5", "x"), 43: ("A4", "normal"), 44: ("D4", "x"),
    45: ("B4", "normal"), 46: ("G5", "circle-x"), 47: ("D5", "normal"), 48: ("E5", "normal"), 49: ("A5", "x"),
    50: ("F5", "normal"), 51: ("F5", "x"), 52: ("A5", "x"), 53: ("F5", "diamond"), 54: ("E5", "x"),
    55: ("B5", "x"), 56: ("E5", "triangle"), 57: ("B5", "x"), 59: ("F5", "x"),
}


def _to_unpitched(part) -> None:
    """Turn a drum part's notes (read as pitches = GM keys) into Unpitched notes and chords."""
    from music21 import note, percussion  # noqa: PLC0415

    for element in list(part.recurse().notes):
        hits = []
        for p in element.pitches:
            display, head = _DRUM_DISPLAY.get(int(p.midi), ("C5", "normal"))
            hit = note.Unpitched(displayName=display)
            hit.notehead = head
            hit.editorial["gm_key"] = int(p.midi)
            hits.append(hit)
        new = hits[0] if len(hits) == 1 else percussion.PercussionChord(hits)
        new.duration = element.duration
        if element.tie is not None:
            for hit in hits:
                hit.tie = element.tie.__class__(element.tie.type)
        element.activeSite.replace(element, new)


def _rewrite_drum_parts(raw: bytes) -> bytes:
    """Colour tags on drum notes → one score-instrument per GM key and an instrument per note, in each
    part that has unpitched notes (counted in the file, where a piano's two staves are one part)."""
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    import pretty_midi  # noqa: PLC0415  (GM drum names)

    start = raw.index(b"<score-partwise")
    root = ET.fromstring(raw[start:])
    score_parts, parts = root.find("part-list").findall("score-part"), root.findall("part")
    for i in (j for j, part in enumerate(parts) if part.find(".//unpitched") is not None):
        header, part = score_parts[i], parts[i]
        pid, keys = header.get("id"), set()
        for n in part.iter("note"):
            colour = n.get("color", "")
            if not (colour.startswith("#0000") and n.find("unpitched") is not None):
                continue
            key = int(colour[5:7], 16)
            keys.add(key)
            for el in n.iter():
                el.attrib.pop("color", None)
            after = max(j for j, c in enumerate(n) if c.tag in ("grace", "chord", "cue", "unpitched", "duration", "tie"))
            n.insert(after + 1, ET.Element("instrument", id=f"{pid}-I{key + 1}"))
        for old in header.findall("score-instrument") + header.findall("midi-instrument"):
            header.remove(old)
        at = max(j for j, c in enumerate(header) if c.tag.startswith("part-")) + 1
        for offset, key in enumerate(sorted(keys)):
            inst = ET.Element("score-instrument", id=f"{pid}-I{key + 1}")
            ET.SubElement(inst, "instrument-name").text = pretty_midi.note_number_to_drum_name(key) or f"Percussion {key}"
            header.insert(at + offset, inst)
        for key in sorted(keys):
            midi = ET.SubElement(header, "midi-instrument", id=f"{pid}-I{key + 1}")
            ET.SubElement(midi, "midi-channel").text = "10"
            ET.SubElement(midi, "midi-unpitched").text = str(key + 1)
    return raw[:start] + ET.tostring(root, encoding="unicode").encode("utf-8")


def _split_voices(part) -> None:
    """Give overlapping notes of a measure separate voices, each voice one note (or chord) at a time,
    and carry a note that overflows its bar into the next one, tied.

    music21's MIDI reader makes voices only for notes that start together and end apart, leaves
    staggered overlaps in one voice or in the measure beside its voices, and can leave a tied note
    longer than what is left of its bar. MusicXML writes a voice's notes one after another, so a note
    struck under a held one came out late, and every note after it in the bar (found by a hypothesis
    test over random parts and metres: 7 of 200 scores). Such a measure is re-voiced: each note or
    chord goes to the first voice free at its onset, rests fill the gaps.
    """
    from music21 import stream  # noqa: PLC0415

    measures = list(part.getElementsByClass(stream.Measure))
    carried: list = []  # the rest of notes tied over the bar line, from offset 0 of the next bar
    k = 0
    while k < len(measures):
        measure = measures[k]
        bar = float(measure.barDuration.quarterLength)
        containers = [measure, *measure.voices]
        sounding = [(0.0, e) for e in carried] + [(float(e.getOffsetBySite(c)), e) for c in containers for e in c.notes]
        tied_in, carried = bool(carried), []
        long = any(offset + float(e.quarterLength) > bar + 1e-9 for offset, e in sounding)
        if tied_in or long or (measure.voices and measure.notes) or any(_overlaps(c) for c in containers):
            _revoice(measure, sounding, bar, carried)
        if carried and k == len(measures) - 1:
            measures.append(stream.Measure(number=measure.number + 1))
            part.append(measures[-1])
        k += 1


def _revoice(measure, sounding: list, bar: float, carried: list) -> None:
    """Rebuild `measure` from `sounding` ((offset, note or chord)): voices one note at a time, the
    part of a note past the bar line appended to `carried`, rests filling each voice."""
    from music21 import stream  # noqa: PLC0415

    for voice in list(measure.voices):
        measure.remove(voice)
    for element in list(measure.notesAndRests):
        measure.remove(element)
    voices: list[list] = []  # [voice, where it is free again]
    for offset, element in sorted(sounding, key=lambda x: (x[0], -float(x[1].quarterLength))):
        if offset + float(element.quarterLength) > bar + 1e-9:
            element, remainder = element.splitAtQuarterLength(bar - offset, retainOrigin=True)
            carried.append(remainder)
        slot = next((v for v in voices if v[1] <= offset + 1e-9), None)
        if slot is None:
            slot = [stream.Voice(id=str(len(voices) + 1)), 0.0]
            voices.append(slot)
        slot[0].insert(offset, element)
        slot[1] = offset + float(element.quarterLength)
    for voice, _ in voices:
        voice.makeRests(refStreamOrTimeRange=[0.0, bar], fillGaps=True, inPlace=True, hideRests=False)
        measure.insert(0, voice)


def _overlaps(container) -> bool:
    """Whether a note or rest of the container starts before the one before it ends."""
    ringing_until = -1.0
    for element in container.notesAndRests:
        if element.offset < ringing_until - 1e-9:
            return True
        ringing_until = max(ringing_until, float(element.offset + element.quarterLength))
    return False


def _rests_by_beat(part) -> None:
    """Rewrite each rest as a reader counts it: cut at the beats it crosses, a pair of beats kept whole
    only where a half rest stands (beats 1-2 or 3-4 of a simple metre with an even number of beats).
    music21 fills a gap with one rest of its length: a half rest after the first eighth of a 6/8 bar,
    a dotted-quarter rest from the second half of beat 2 in 3/4. Whole-bar rests stay whole."""
    from music21 import meter, note, stream  # noqa: PLC0415

    for measure in part.getElementsByClass(stream.Measure):
        ts = measure.timeSignature or measure.getContextByClass(meter.TimeSignature)
        if ts is None:
            continue
        beat, beats, bar = float(ts.beatDuration.quarterLength), int(ts.beatCount), float(ts.barDuration.quarterLength)
        halves = ts.beatDivisionCount == 2 and beats % 2 == 0
        for container in (measure, *measure.voices):
            for rest in list(container.getElementsByClass(note.Rest)):
                start, end = float(rest.offset), float(rest.offset + rest.quarterLength)
                if end - start >= bar or rest.style.hideObjectOnPrint:
                    continue
                spans = _beat_spans(start, end, beat, beats, halves)
                if len(spans) == 1:
                    continue
                container.remove(rest)
                for a, b in spans:
                    container.insert(a, note.Rest(quarterLength=b - a))


def _beat_spans(start: float, end: float, beat: float, beats: int, halves: bool) -> list[tuple[float, float]]:
    """(start, end) of each rest a silence from `start` to `end` is written as (quarter lengths in the bar).

    >>> _beat_spans(1.5, 3.0, 1.0, 3, False)  # 3/4, from the second half of beat 2: an eighth, a quarter
    [(1.5, 2.0), (2.0, 3.0)]
    >>> _beat_spans(0.5, 3.0, 1.5, 2, False)  # 6/8 after the first eighth: a quarter, a dotted quarter
    [(0.5, 1.5), (1.5, 3.0)]
    >>> _beat_spans(1.0, 4.0, 1.0, 4, True)  # 4/4 after beat 1: a quarter, then a half rest on beat 3
    [(1.0, 2.0), (2.0, 4.0)]
    """
    cuts = sorted({start, end} | {k * beat for k in range(1, beats) if start < k * beat < end})
    spans: list[tuple[float, float]] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        if spans and halves:
            first, last = spans[-1]
            if last - first == beat and b - a == beat and round(first / beat) % 2 == 0:
                spans[-1] = (first, b)
                continue
        spans.append((a, b))
    return spans


def _respell(part, key, start: float = 0.0, end: float = math.inf) -> None:
    """Spell every pitch struck from offset `start` to `end` as the key would: diatonic names first,
    then by the key's direction.

    Pitches read from MIDI come out with default spellings (D# in B-flat major); a reader wants
    E-flat. Chromatic notes take sharps in sharp keys and flats in flat keys, except the raised
    sixth and seventh of a minor key, which are always the raised scale degrees (C# in D minor), and
    a natural always beats an accidental (B, not C-flat, in B-flat major).
    """
    from music21 import pitch as m21pitch  # noqa: PLC0415

    scale = [(p.step, p.accidental.alter if p.accidental else 0.0) for p in key.pitches[:7]]
    names: dict[int, str] = {}
    for step, alter in scale:
        names[int(m21pitch.Pitch(step).ps + alter) % 12] = _name(step, alter)
    tonic_pc = key.tonic.pitchClass
    raised = {(tonic_pc + 9) % 12: 5, (tonic_pc + 11) % 12: 6} if key.mode == "minor" else {}
    prefer_sharp = key.sharps > 0
    for pc in range(12):
        if pc in names:
            continue
        below = next((s, a) for s, a in scale if int(m21pitch.Pitch(s).ps + a + 1) % 12 == pc)
        above = next((s, a) for s, a in scale if int(m21pitch.Pitch(s).ps + a - 1) % 12 == pc)
        sharp, flat = (below[0], below[1] + 1), (above[0], above[1] - 1)
        if pc in raised:
            step, alter = scale[raised[pc]]
            names[pc] = _name(step, alter + 1)
        elif abs(sharp[1]) != abs(flat[1]):  # a natural beats an accidental (B, not C-flat, in B-flat)
            names[pc] = _name(*min(sharp, flat, key=lambda c: abs(c[1])))
        elif prefer_sharp or (key.sharps == 0 and pc != 10):
            names[pc] = _name(*sharp)
        else:
            names[pc] = _name(*flat)
    for element in part.recurse().notes:
        if (start, end) != (0.0, math.inf) and not start <= element.getOffsetInHierarchy(part) < end:
            continue
        for p in element.pitches:
            midi_number = int(round(p.ps))
            spelled = m21pitch.Pitch(names[midi_number % 12])
            spelled.octave = 4
            spelled.octave += (midi_number - int(round(spelled.ps))) // 12
            p.step, p.accidental, p.octave = spelled.step, spelled.accidental, spelled.octave


def _abbreviation(name: str) -> str:
    """The short name on later systems, kept distinct per part: 'Violin II' → 'Vio. II'.

    >>> _abbreviation("Violin II"), _abbreviation("cello"), _abbreviation("french horn")
    ('Vio. II', 'cello', 'fre. horn')
    """
    first, *rest = name.split()
    return " ".join([first if len(first) <= 5 else first[:3] + ".", *rest])


def _name(step: str, alter: float) -> str:
    return step + {-2: "--", -1: "-", 0: "", 1: "#", 2: "##"}[int(alter)]

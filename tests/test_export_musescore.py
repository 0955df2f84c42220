"""MuseScore 3 opens our exports: one part per track, the right names, programs, key and metre.

MuseScore converts headless (`QT_QPA_PLATFORM=offscreen mscore3 -o out.mscx in.musicxml`); we read
its own .mscx to see what a user would see. Skipped where mscore3 is not installed
(`apt-get install musescore3`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from musedraft.draft import Draft

MSCORE = shutil.which("mscore3") or shutil.which("musescore3")
pytestmark = pytest.mark.skipif(MSCORE is None, reason="MuseScore 3 is not installed (apt-get install musescore3)")
TPQ = 480
TRACKS = (("flute", 73, False), ("viola", 41, False), ("cello", 42, False), ("piano", 0, False), ("drums", 0, True))
CHORD = (39, 46, 67, 70)  # Eb2 Bb2 | G4 Bb4: one piano track, both hands


def quartet() -> Score:
    """Five named tracks in Eb major, 3/4, eight bars; a piano strikes chords, the drums keep time."""
    s = Score(TPQ)
    s.tempos.append(Tempo(0, qpm=96.0))
    s.time_signatures.append(TimeSignature(0, 3, 4))
    lines = {"flute": [75, 79, 82, 80, 79, 77], "viola": [63, 67, 65, 63, 62, 63], "cello": [51, 46, 48, 44, 46, 39]}
    for name, program, drum in TRACKS:
        t = Track(name=name, program=program, is_drum=drum)
        for beat in range(24):
            if drum:
                t.notes.append(Note(beat * TPQ, TPQ // 2, 36 if beat % 3 == 0 else 42, 90))
            elif name == "piano":
                t.notes.extend(Note(beat * TPQ, TPQ, pitch, 70) for pitch in CHORD if beat % 3 == 0)
            elif beat % 2 == 0 or name == "flute":
                pitch = lines[name][(beat // 2) % 6] if name != "flute" else lines[name][beat % 6]
                t.notes.append(Note(beat * TPQ, TPQ * (1 if name == "flute" else 2), pitch, 80))
        s.tracks.append(t)
    return s


def mscore(src: Path, dst: Path) -> Path:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([MSCORE, "-o", str(dst), str(src)], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0 and dst.is_file(), proc.stderr[-2000:]
    return dst


def parts_of(mscx: Path) -> list[dict]:
    """What MuseScore shows: per part its name, MIDI program, staves, key and time signatures."""
    score = ET.parse(mscx).getroot().find("Score")
    staff_music = {s.get("id"): s for s in score.findall("Staff")}
    parts = []
    for part in score.findall("Part"):
        staves = [s.get("id") for s in part.findall("Staff")]
        instrument = part.find("Instrument")
        first = staff_music[staves[0]]
        key = first.find(".//KeySig/accidental")
        parts.append({
            "name": instrument.findtext("longName") or part.findtext("trackName"),
            "program": int(instrument.find("Channel/program").get("value")),
            "staves": len(staves),
            "clefs": [staff_music[k].findtext(".//Clef/concertClefType") for k in staves],
            "key": int(key.text) if key is not None else None,
            "time": (first.findtext(".//TimeSig/sigN"), first.findtext(".//TimeSig/sigD")),
            "percussion": part.find("Staff/StaffType").get("group") == "percussion",
        })
    return parts


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    draft = Draft(quartet(), {"style": "classical", "bars": 8}, seed=3, model_id="test", key="Eb major", loop=True)
    return draft.save(tmp_path_factory.mktemp("draft"), audio=False)


def test_musicxml_opens_with_one_named_part_per_track(saved, tmp_path):
    parts = parts_of(mscore(saved["musicxml"], tmp_path / "x.mscx"))
    assert [(p["name"], p["program"], p["percussion"]) for p in parts] == [(n, prog, d) for n, prog, d in TRACKS]
    assert all(p["time"] == ("3", "4") for p in parts)
    assert [p["key"] for p in parts if not p["percussion"]] == [-3, -3, -3, -3]


def test_musicxml_writes_each_instrument_in_its_clef_and_a_piano_on_a_grand_staff(saved, tmp_path):
    """Music21 picks treble or bass clef by range; a viola reads alto clef, and a piano's one track of
    chords is two staves (middle C up on the upper one), as an arranger expects to find them."""
    parts = parts_of(mscore(saved["musicxml"], tmp_path / "x.mscx"))
    assert [(p["name"], p["staves"], p["clefs"]) for p in parts if not p["percussion"]] == [
        ("flute", 1, ["G"]), ("viola", 1, ["C3"]), ("cello", 1, ["F"]), ("piano", 2, ["G", "F"])]


def test_midi_opens_with_one_part_per_track_keeping_names_and_programs(saved, tmp_path):
    parts = parts_of(mscore(saved["midi"], tmp_path / "m.mscx"))
    assert len(parts) == len(TRACKS)
    for part, (name, program, drum) in zip(parts, TRACKS, strict=True):
        assert name in part["name"]  # MuseScore titles MIDI parts "<GM name>, <track name>"
        assert part["program"] == program and part["percussion"] == drum
        assert part["time"] == ("3", "4")
        if not drum:
            assert part["key"] == -3  # read from the file, not guessed from the notes


def test_musicxml_engraves_to_pdf(saved, tmp_path):
    pdf = mscore(saved["musicxml"], tmp_path / "score.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5000


def test_transposing_instruments_sound_as_written_in_the_midi(tmp_path):
    """A contrabass sounds an octave under its part, a clarinet in B flat a tone, a horn in F a fifth:
    MuseScore, reading the MusicXML's written pitches and <transpose>, plays every note at the pitch
    the draft's MIDI sounds (music21 alone wrote sounding pitches under the transposition, which put
    the contrabass an octave low). The piano beside them keeps its grand staff."""
    s = Score(TPQ)
    s.tempos.append(Tempo(0, qpm=96.0))
    s.time_signatures.append(TimeSignature(0, 4, 4))
    lines = {"clarinet": (71, [62, 66, 69, 70]), "french horn": (60, [57, 62, 54, 57]),
             "contrabass": (43, [38, 42, 45, 33]), "piano": (0, [50, 74, 50, 74])}
    for name, (program, pitches) in lines.items():
        t = Track(name=name, program=program)
        t.notes.extend(Note(i * TPQ, TPQ, p, 80) for i, p in enumerate(pitches))
        if name == "piano":
            t.notes.extend(Note(i * TPQ, TPQ, p + 12, 80) for i, p in enumerate(pitches))
        s.tracks.append(t)
    draft = Draft(s, {"style": "classical", "bars": 1}, seed=0, model_id="test", key="D major", loop=False)
    saved = draft.save(tmp_path / "t", audio=False)
    root = ET.parse(mscore(saved["musicxml"], tmp_path / "t.mscx")).getroot().find("Score")
    played = [sorted(int(p.text) for p in staff.iter("pitch")) for staff in root.findall("Staff")]
    assert played[:3] == [sorted(lines[n][1]) for n in ("clarinet", "french horn", "contrabass")]
    assert sorted(played[3] + played[4]) == sorted(lines["piano"][1] + [p + 12 for p in lines["piano"][1]])


def test_a_key_change_and_section_names_open_where_they_fall(tmp_path):
    """A user's music that turns from Eb to G major at bar 5, with sections A and B: MuseScore shows
    the key change at bar 5 from the MusicXML and from the MIDI, and A and B as rehearsal marks."""
    from symusic import KeySignature, TextMeta  # noqa: PLC0415

    s = quartet()
    bar = 3 * TPQ
    s.key_signatures.append(KeySignature(0, -3, 0))
    s.key_signatures.append(KeySignature(4 * bar, 1, 0))
    s.markers.append(TextMeta(0, "A"))
    s.markers.append(TextMeta(4 * bar, "B"))
    paths = Draft(s, {"style": "classical", "bars": 8}, seed=3, model_id="test", key="G major").save(tmp_path / "d", audio=False)
    for kind in ("musicxml", "midi"):
        root = ET.parse(mscore(paths[kind], tmp_path / f"{kind}.mscx")).getroot().find("Score")
        flute = root.find("Staff")
        keys = [(n, int(m.find(".//KeySig/accidental").text)) for n, m in enumerate(flute.findall("Measure"), start=1)
                if m.find(".//KeySig/accidental") is not None]
        assert keys == [(1, -3), (5, 1)], kind
    xml_root = ET.parse(tmp_path / "musicxml.mscx").getroot().find("Score")
    marks = [(n, "".join(m.find(".//RehearsalMark/text").itertext())) for n, m in enumerate(xml_root.find("Staff").findall("Measure"), start=1)
             if m.find(".//RehearsalMark") is not None]
    assert marks == [(1, "A"), (5, "B")]

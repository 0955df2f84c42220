"""Draft.save: six files side by side, nothing clobbered, and the editable files survive a failed render."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
from mutagen.oggvorbis import OggVorbis
from symusic import Note, Score, Tempo, TimeSignature, Track

from musedraft import audio
from musedraft.draft import Draft, renpy_snippet
from musedraft.errors import MusedraftWarning, OutputExistsError, RenderError, SoundFontError

try:
    import fluidsynth  # noqa: F401

    audio.find_soundfont()
    NO_AUDIO = None if shutil.which("fluidsynth") else "the fluidsynth program is not installed"
except (ImportError, OSError):
    NO_AUDIO = "libfluidsynth is not installed (apt-get install fluidsynth)"
except SoundFontError:
    NO_AUDIO = "no GM sound font (apt-get install fluid-soundfont-gm)"
needs_audio = pytest.mark.skipif(NO_AUDIO is not None, reason=NO_AUDIO or "")
TPQ = 480
SR_BAR_SAMPLES = 3 * 22050  # one 3/4 bar at 120 BPM = 1.5 s at 44.1 kHz
FILES = {"midi": "draft.mid", "musicxml": "draft.musicxml", "png": "draft.png", "wav": "draft.wav", "ogg": "draft.ogg", "json": "draft.json"}


def waltz(bars: int = 4) -> Score:
    """A 3/4 waltz at 120 BPM: melody on the beat, bass on one, the last chord rings to the bar end."""
    s = Score(TPQ)
    s.tempos.append(Tempo(0, qpm=120.0))
    s.time_signatures.append(TimeSignature(0, 3, 4))
    melody, bass = Track(name="violin", program=40), Track(name="cello", program=42)
    for beat in range(bars * 3):
        melody.notes.append(Note(beat * TPQ, TPQ, [74, 76, 78, 79, 78, 76][beat % 6], 85))
    for bar in range(bars):
        bass.notes.append(Note(bar * 3 * TPQ, 3 * TPQ, [50, 45, 43, 50][bar % 4], 80))
    s.tracks.extend([melody, bass])
    return s


def draft(loop: bool = True) -> Draft:
    return Draft(waltz(), {"scene": "daily", "key": "D major", "tempo": 120, "time_signature": "3/4", "bars": 4,
                           "instruments": ["violin", "cello"], "seed": 7, "loop": loop},
                 seed=7, model_id="tiny-test", key="D major", loop=loop,
                 repair={"edits": [{"bar": 2, "what": "parallel fifth"}], "findings": []}, timings={"generate": 0.5})


@needs_audio
def test_save_writes_six_files_side_by_side(tmp_path):
    paths = draft().save(tmp_path)
    assert {k: p.name for k, p in paths.items()} == FILES
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES.values())  # and no temp files
    doc = json.loads(paths["json"].read_text())
    assert doc["request"]["scene"] == "daily" and doc["seed"] == 7 and doc["model_id"] == "tiny-test"
    assert doc["repair"]["edits"][0]["what"] == "parallel fifth"
    assert doc["files"] == FILES and doc["audio"]["rendered"] is True
    assert {"generate", "save_midi", "save_musicxml", "save_png", "save_audio"} <= set(doc["timings"])
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_audio
def test_loop_points_agree_across_json_ogg_wav_and_midi(tmp_path):
    paths = draft().save(tmp_path)
    doc = json.loads(paths["json"].read_text())
    length = 4 * SR_BAR_SAMPLES  # 4 bars of 3/4 at 120 BPM: 6 s
    assert doc["loop_points"]["start_samples"] == 0 and doc["loop_points"]["length_samples"] == length
    assert doc["loop_points"]["end_seconds"] == pytest.approx(6.0)
    tags = OggVorbis(str(paths["ogg"])).tags
    assert (tags["LOOPSTART"], tags["LOOPLENGTH"]) == (["0"], [str(length)])
    for kind in ("wav", "ogg"):
        info = sf.info(str(paths[kind]))
        assert (info.frames, info.samplerate, info.channels) == (length, 44100, 2)  # exactly one loop
    wav, _ = sf.read(str(paths["wav"]))
    assert 0.85 < np.abs(wav).max() < 0.9
    assert wav[:100].std() > 0  # the folded tail is in the head: not a silent lead-in
    now, markers = 0, {}
    for msg in mido.MidiFile(paths["midi"]).tracks[0]:
        now += msg.time
        if msg.type == "marker":
            markers[msg.text] = now
    assert markers == {"loopStart": 0, "loopEnd": 4 * 3 * TPQ}
    assert '"<loop 0>audio/draft.ogg"' in doc["renpy"] and "play music draft" in doc["renpy"]


@needs_audio
def test_without_loop_the_audio_keeps_its_tail_and_no_loop_tags(tmp_path):
    paths = draft(loop=False).save(tmp_path)
    doc = json.loads(paths["json"].read_text())
    assert doc["loop_points"] is None and doc["renpy"] is None
    assert sf.info(str(paths["wav"])).frames > 4 * SR_BAR_SAMPLES
    assert "LOOPSTART" not in OggVorbis(str(paths["ogg"])).tags


def test_existing_outputs_are_not_overwritten_without_force(tmp_path):
    (tmp_path / "draft.png").write_bytes(b"mine")
    with pytest.raises(OutputExistsError, match="draft.png"):
        draft().save(tmp_path, audio=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["draft.png"]  # nothing else was written
    assert (tmp_path / "draft.png").read_bytes() == b"mine"
    paths = draft().save(tmp_path, audio=False, force=True)
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_a_missing_sound_font_still_leaves_the_editable_files(tmp_path):
    with pytest.raises(SoundFontError, match="fluid-soundfont-gm") as caught:
        draft().save(tmp_path, soundfont=tmp_path / "missing.sf2")
    written = caught.value.paths
    assert "draft.mid" in str(caught.value) and "No audio" in str(caught.value)
    assert set(written) == {"midi", "musicxml", "png", "json"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written.values())
    doc = json.loads((tmp_path / "draft.json").read_text())
    assert doc["audio"]["rendered"] is False and doc["audio"]["error_type"] == "SoundFontError"
    assert "fluid-soundfont-gm" in doc["audio"]["error"]
    assert doc["loop_points"]["length_samples"] == 4 * SR_BAR_SAMPLES  # still known without audio
    assert isinstance(caught.value, RenderError)


TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


@needs_audio
@pytest.mark.skipif(not TIMGM.is_file(), reason="timgm6mb-soundfont is not installed")
def test_an_instrument_the_font_lacks_is_named_in_draft_json(tmp_path):
    d = draft(loop=False)
    kit = Track(name="drums", program=1, is_drum=True)  # the GS room kit: TimGM6mb has no such kit
    kit.notes.append(Note(0, TPQ, 42, 80))
    d.score.tracks.append(kit)
    with pytest.warns(MusedraftWarning, match="drum kit 1"):
        d.save(tmp_path, soundfont=TIMGM)
    doc = json.loads((tmp_path / "draft.json").read_text())
    assert doc["audio"]["rendered"] is True
    assert doc["audio"]["warnings"] == ["TimGM6mb.sf2 lacks drum kit 1: it plays as drum kit 0 (standard). "
                                        "A complete General MIDI font (FluidR3_GM.sf2) has them all."]
    draft(loop=False).save(tmp_path / "plain", soundfont=TIMGM)
    assert "warnings" not in json.loads((tmp_path / "plain" / "draft.json").read_text())["audio"]


@needs_audio
def test_force_after_a_failed_render_removes_stale_audio(tmp_path):
    draft().save(tmp_path)
    with pytest.raises(SoundFontError):
        draft().save(tmp_path, force=True, soundfont=tmp_path / "missing.sf2")
    assert not (tmp_path / "draft.wav").exists() and not (tmp_path / "draft.ogg").exists()


def test_audio_false_writes_the_four_editable_files(tmp_path):
    paths = draft().save(tmp_path, audio=False, name="scene1")
    assert sorted(p.name for p in paths.values()) == ["scene1.json", "scene1.mid", "scene1.musicxml", "scene1.png"]
    assert json.loads(paths["json"].read_text())["audio"] == {"rendered": False}


def test_conversions_agree_with_the_score():
    d = draft()
    pm = d.to_pretty_midi()
    assert [(i.name, i.program) for i in pm.instruments] == [("violin", 40), ("cello", 42)]
    assert [p.partName for p in d.to_music21().parts] == ["violin", "cello"]
    copy = d.to_symusic()
    copy.tracks[0].notes.clear()
    assert len(d.score.tracks[0].notes) == 12  # the draft keeps its own score


def test_renpy_snippet_names_a_valid_identifier():
    text = renpy_snippet("town-theme.ogg", 1.5)
    assert 'define audio.town_theme = "<loop 1.5>audio/town-theme.ogg"' in text

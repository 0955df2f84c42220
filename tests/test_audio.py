"""Audio: sound-font lookup, real FluidSynth renders, loud errors, OGG/WAV loop metadata.

Every render here goes through FluidSynth for real. The module is skipped only where FluidSynth
(library or program) is genuinely absent; the seam test lives in test_audio_seam.py.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from symusic import Note, Score, Tempo, TimeSignature, Track

from musedraft import audio
from musedraft.errors import MusedraftWarning, OutputExistsError, RenderError, RequestError, SoundFontError
from musedraft.export import write_midi
from musedraft.score import seconds_at_tick

try:
    import fluidsynth  # noqa: F401

    HAVE_LIB = True
except (ImportError, OSError):
    HAVE_LIB = False
HAVE_CLI = shutil.which("fluidsynth") is not None
try:
    FONT = audio.find_soundfont()
except SoundFontError:
    FONT = None
needs_fluidsynth = pytest.mark.skipif(
    not (HAVE_LIB and HAVE_CLI and FONT), reason="FluidSynth or a GM sound font is not installed (apt-get install fluidsynth fluid-soundfont-gm)"
)
SR = audio.SAMPLE_RATE


def song(*tracks, qpm: float = 120.0, ts=(4, 4), tpq: int = 480) -> Score:
    """Score from (name, program, [(beat, beats, pitch), ...], is_drum) tuples."""
    s = Score(tpq)
    s.tempos.append(Tempo(0, qpm=qpm))
    s.time_signatures.append(TimeSignature(0, *ts))
    for name, program, notes, drum in tracks:
        t = Track(name=name, program=program, is_drum=drum)
        for beat, beats, pitch in notes:
            t.notes.append(Note(int(beat * tpq), int(beats * tpq), pitch, 90))
        s.tracks.append(t)
    return s


def two_bars() -> Score:
    return song(("flute", 73, [(b, 1, 72 + b % 5) for b in range(8)], False), ("cello", 42, [(0, 4, 48), (4, 4, 43)], False))


def centroid(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x.mean(axis=1))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    return float((spec * freqs).sum() / spec.sum())


def rms_envelope(x: np.ndarray, frame: int = 441) -> np.ndarray:
    n = len(x) // frame
    return np.sqrt((x[: n * frame].reshape(n, frame, 2) ** 2).mean(axis=(1, 2)))


# --- sound-font lookup ------------------------------------------------------------------------


def test_soundfont_argument_beats_environment_beats_defaults(tmp_path, monkeypatch):
    if FONT is None:
        pytest.skip("no GM sound font installed (apt-get install fluid-soundfont-gm)")
    a, b = tmp_path / "a.sf2", tmp_path / "b.sf2"
    for link in (a, b):
        link.symlink_to(FONT)
    monkeypatch.setenv("MUSEDRAFT_SOUNDFONT", str(b))
    assert audio.find_soundfont(a) == a
    assert audio.find_soundfont() == b
    monkeypatch.delenv("MUSEDRAFT_SOUNDFONT")
    monkeypatch.setattr(audio, "_REPO_SOUNDFONTS", tmp_path / "empty")
    assert str(audio.find_soundfont()) in {str(Path(p).resolve()) for p in audio.DEBIAN_SOUNDFONTS}


def test_soundfont_repo_folder_beats_system_fonts(tmp_path, monkeypatch):
    if FONT is None:
        pytest.skip("no GM sound font installed (apt-get install fluid-soundfont-gm)")
    local = tmp_path / "Mine.sf2"
    local.symlink_to(FONT)
    monkeypatch.delenv("MUSEDRAFT_SOUNDFONT", raising=False)
    monkeypatch.setattr(audio, "_REPO_SOUNDFONTS", tmp_path)
    assert audio.find_soundfont() == local.resolve()


def test_missing_soundfont_names_the_package(tmp_path, monkeypatch):
    with pytest.raises(SoundFontError, match="fluid-soundfont-gm"):
        audio.find_soundfont(tmp_path / "nope.sf2")
    monkeypatch.setenv("MUSEDRAFT_SOUNDFONT", str(tmp_path / "gone.sf2"))
    with pytest.raises(SoundFontError, match="MUSEDRAFT_SOUNDFONT"):  # never a silent fallback
        audio.find_soundfont()
    monkeypatch.delenv("MUSEDRAFT_SOUNDFONT")
    monkeypatch.setattr(audio, "_REPO_SOUNDFONTS", tmp_path)
    monkeypatch.setattr(audio, "DEBIAN_SOUNDFONTS", (str(tmp_path / "none.sf2"),))
    with pytest.raises(SoundFontError, match="apt-get install fluid-soundfont-gm"):
        audio.find_soundfont()


def test_a_file_that_is_not_a_soundfont_is_refused(tmp_path):
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(100))
    with pytest.raises(SoundFontError, match="not a SoundFont"):
        audio.find_soundfont(fake)


# --- rendering --------------------------------------------------------------------------------


@needs_fluidsynth
def test_render_is_stereo_float_covering_the_music_and_its_tail():
    score = two_bars()
    out = audio.render(score)
    assert out.dtype == np.float32 and out.ndim == 2 and out.shape[1] == 2
    music_s = seconds_at_tick(score, score.end())
    assert music_s == pytest.approx(4.0)
    assert music_s * SR < len(out) < (music_s + audio.TAIL_MAX_S) * SR
    assert np.max(np.abs(out)) > 1e-3
    # sound where the notes are, and the tail decays to near silence at the end
    env = rms_envelope(out)
    assert env[:390].min() > 1e-4 and env[-5:].max() < env.max() * 1e-2


@needs_fluidsynth
def test_library_and_cli_backends_render_the_same_music():
    score = two_bars()
    lib, cli = audio.render(score, backend="library"), audio.render(score, backend="cli")
    n = int(4.0 * SR)
    a, b = rms_envelope(lib[:n]), rms_envelope(cli[:n])
    level_db = 20 * np.log10(np.sqrt((lib[:n] ** 2).mean()) / np.sqrt((cli[:n] ** 2).mean()))
    assert abs(level_db) < 1.0
    assert np.corrcoef(a, b)[0, 1] > 0.95  # same notes at the same times


@needs_fluidsynth
def test_same_score_renders_identical_samples():
    first = audio.render(two_bars())
    audio.render(song(("x", 56, [(0, 3, 60)], False)))  # whatever ran in between
    assert np.array_equal(first, audio.render(two_bars()))


@needs_fluidsynth
def test_drums_play_the_percussion_kit_on_channel_10():
    hat = [(b / 2, 0.5, 42) for b in range(8)]  # closed hi-hat in the GM kit
    drums = audio.render(song(("drums", 0, hat, True)))
    piano = audio.render(song(("piano", 0, hat, False)))  # the same key numbers on a piano
    assert centroid(drums) > 3000 > 1500 > centroid(piano)


@needs_fluidsynth
def test_program_changes_the_timbre():
    notes = [(0, 2, 60), (2, 2, 64)]
    flute, trumpet = (audio.render(song(("x", p, notes, False))) for p in (73, 56))
    assert abs(centroid(flute) - centroid(trumpet)) > 200


TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")  # timgm6mb-soundfont: 8 drum kits where FluidR3 has 31


@needs_fluidsynth
@pytest.mark.skipif(not TIMGM.is_file(), reason="timgm6mb-soundfont is not installed")
@pytest.mark.parametrize("backend", ["library", "cli"])
def test_a_kit_the_font_lacks_plays_as_the_standard_kit_and_says_so(backend):
    hat = [(b / 2, 0.5, 42) for b in range(8)]
    room = song(("drums", 1, hat, True), ("violin", 40, [(0, 4, 67)], False))  # GS room kit: not in TimGM6mb
    with pytest.warns(MusedraftWarning, match=r"lacks drum kit 1: it plays as drum kit 0 \(standard\)"):
        out = audio.render(room, soundfont=TIMGM, backend=backend)  # the program itself used to fail the cli render
    standard = song(("drums", 0, hat, True), ("violin", 40, [(0, 4, 67)], False))
    if backend == "library":
        assert np.array_equal(out, audio.render(standard, soundfont=TIMGM))
    assert room.tracks[0].program == 1  # the caller's score is left as it was


@needs_fluidsynth
@pytest.mark.skipif(not TIMGM.is_file(), reason="timgm6mb-soundfont is not installed")
def test_the_command_line_reports_a_substitute_in_one_line(tmp_path):
    write_midi(song(("violin", 40, [(0, 2, 67)], False), ("drums", 1, [(0, 1, 42)], True)), tmp_path / "in.mid")
    run = subprocess.run([sys.executable, "-m", "musedraft.cli", "render", str(tmp_path / "in.mid"), "-o",
                          str(tmp_path / "out.wav"), "--soundfont", str(TIMGM)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and (tmp_path / "out.wav").is_file()
    assert run.stderr.splitlines() == ["musedraft: warning: TimGM6mb.sf2 lacks drum kit 1: it plays as drum kit 0 "
                                       "(standard). A complete General MIDI font (FluidR3_GM.sf2) has them all."]


def test_a_missing_instrument_falls_back_within_its_family_then_to_program_0():
    only = {(0, 0), (0, 41), (0, 43), (128, 0)}
    has = lambda bank, p: (bank, p) in only  # noqa: E731
    assert audio.substitute_program(False, 42, has) == 41  # cello → viola, the first string the font has
    assert audio.substitute_program(False, 73, has) == 0  # no pipe at all → piano
    assert audio.substitute_program(False, 43, has) == 43
    assert audio.substitute_program(True, 25, has) == 0
    with pytest.raises(SoundFontError, match="not a General MIDI font"):
        audio.substitute_program(False, 73, lambda bank, p: p == 5)


@needs_fluidsynth
def test_silent_render_is_an_error():
    with pytest.raises(RenderError, match="silence"):  # key 1 is unmapped in the GM drum kit
        audio.render(song(("drums", 0, [(0, 1, 1)], True)))
    with pytest.raises(RenderError, match="no notes"):
        audio.render(song(("piano", 0, [], False)))


def test_a_score_longer_than_an_hour_is_refused_before_any_audio_is_made():
    """Two hours at 120 BPM would be ~2.5 GB of float audio: refused up front, with what to do."""
    score = song(("piano", 0, [(0, 1, 60), (14_400, 1, 62)], False))  # the second note starts after 2 h
    assert seconds_at_tick(score, score.end()) > 7200
    with pytest.raises(RenderError, match="lasts 120 minutes.*score.clip"):
        audio.render(score)


def test_missing_fluidsynth_program_names_the_package(monkeypatch):
    if FONT is None:
        pytest.skip("needs a sound font so the missing program is the only fault")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RenderError, match="apt-get install fluidsynth"):
        audio.render(two_bars(), backend="cli")


def test_missing_fluidsynth_library_names_the_package():
    # A fresh interpreter in which `import fluidsynth` fails, exactly as without libfluidsynth.
    script = (
        "import sys; sys.modules['fluidsynth'] = None\n"
        "from symusic import Score, Track, Note\n"
        "from musedraft import audio\n"
        "s = Score(480); t = Track(name='p', program=0); t.notes.append(Note(0, 480, 60, 80)); s.tracks.append(t)\n"
        "try:\n    audio.render(s)\nexcept audio.RenderError as e:\n    print('ERR', e)\n"
    )
    if FONT is None:
        pytest.skip("needs a sound font so the missing library is the only fault")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ERR") and "apt-get install fluidsynth" in out


def test_unknown_backend_is_a_request_error():
    if FONT is None:
        pytest.skip("font lookup happens first")
    with pytest.raises(RequestError, match="backend"):
        audio.render(two_bars(), backend="timidity")


# --- loops and files --------------------------------------------------------------------------


def test_make_loop_adds_everything_past_the_end_onto_the_head():
    x = np.arange(1, 26, dtype=np.float32).reshape(-1, 1).repeat(2, axis=1)  # 25 frames
    looped = audio.make_loop(x, 10)
    assert looped.shape == (10, 2)
    expected = x[:10, 0] + x[10:20, 0] + np.pad(x[20:25, 0], (0, 5))
    np.testing.assert_array_equal(looped[:, 0], expected)
    assert looped.sum() == pytest.approx(x.sum())  # nothing lost, nothing doubled
    short = audio.make_loop(x[:4], 10)
    assert short.shape == (10, 2) and short[4:].sum() == 0
    with pytest.raises(RequestError):
        audio.make_loop(x, 0)


def rpg_maker_tag(data: bytes, key: bytes) -> int:
    """Parse a tag the way RPG Maker does: digits after KEY= until a zero byte (atoi-like)."""
    i = data.index(key + b"=") + len(key) + 1
    raw = data[i : data.index(b"\x00", i)]
    digits = b""
    for byte in raw:
        if not 48 <= byte <= 57:
            break
        digits += bytes([byte])
    return int(digits)


def vorbis_comments(data: bytes) -> list[str]:
    """The user comments of the first Vorbis comment header, in file order."""
    i = data.index(b"\x03vorbis") + 7
    vendor = struct.unpack("<I", data[i : i + 4])[0]
    i += 4 + vendor
    count = struct.unpack("<I", data[i : i + 4])[0]
    i += 4
    out = []
    for _ in range(count):
        n = struct.unpack("<I", data[i : i + 4])[0]
        out.append(data[i + 4 : i + 4 + n].decode())
        i += 4 + n
    return out


@pytest.mark.parametrize("title", ["short", "x" * 44])  # "TITLE=" + 44 chars: a length byte of '2'
def test_ogg_loop_tags_come_first_and_parse_like_rpg_maker(tmp_path, title):
    t = np.arange(3 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stereo = np.stack([tone, tone], axis=1)
    path = audio.write_ogg(tmp_path / "loop.ogg", stereo, SR, 0, len(stereo), title=title)
    data = path.read_bytes()
    comments = vorbis_comments(data)
    assert comments[:2] == ["LOOPSTART=0", f"LOOPLENGTH={len(stereo)}"]
    assert rpg_maker_tag(data, b"LOOPSTART") == 0
    assert rpg_maker_tag(data, b"LOOPLENGTH") == len(stereo)
    back, sr = sf.read(str(path), dtype="float32")
    assert sr == SR and len(back) == len(stereo)  # Vorbis keeps the exact length: the loop is exact
    with pytest.raises(OutputExistsError):
        audio.write_ogg(path, stereo, SR, 0, len(stereo))


def test_the_same_audio_gives_the_same_ogg_file(tmp_path):
    """libvorbis draws a random stream serial number per file; write_ogg sets it from the audio, so the
    bytes repeat, every page keeps a valid checksum (the file decodes to the frames written), and
    other audio gets another serial."""
    from mutagen.ogg import OggPage  # noqa: PLC0415

    t = np.arange(2 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stereo = np.stack([tone, tone], axis=1)
    first, again = (audio.write_ogg(tmp_path / f"{name}.ogg", stereo, SR, 0, len(stereo)) for name in ("a", "b"))
    other = audio.write_ogg(tmp_path / "c.ogg", stereo * 0.5, SR, 0, len(stereo))
    assert first.read_bytes() == again.read_bytes()
    back, _ = sf.read(str(first), dtype="float32")
    assert back.shape == stereo.shape and np.corrcoef(back[:, 0], tone)[0, 1] > 0.99
    serials = []
    for path in (first, other):
        with open(path, "rb") as fh:
            page = OggPage(fh)
        serials.append(page.serial)
    assert serials[0] != serials[1]
    assert rpg_maker_tag(first.read_bytes(), b"LOOPLENGTH") == len(stereo)


def test_long_ogg_is_written_in_blocks(tmp_path):
    noise = np.random.default_rng(0).uniform(-0.2, 0.2, (65 * SR, 2)).astype(np.float32)
    path = audio.write_ogg(tmp_path / "long.ogg", noise, SR)
    assert sf.info(str(path)).frames == len(noise)


def test_wav_carries_a_smpl_loop_chunk(tmp_path):
    x = np.zeros((SR, 2), np.float32)
    x[::100] = 0.5
    path = audio.write_wav(tmp_path / "loop.wav", x, SR, (0, SR))
    data = path.read_bytes()
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    i = data.index(b"smpl")
    fields = struct.unpack("<9I6I", data[i + 8 : i + 8 + 60])
    assert fields[7] == 1 and fields[11:13] == (0, SR - 1)  # one loop: start, inclusive end
    back, sr = sf.read(str(path))
    assert sr == SR and back.shape == (SR, 2)


@needs_fluidsynth
def test_render_file_writes_by_suffix_and_refuses_to_overwrite(tmp_path):
    mid = write_midi(two_bars(), tmp_path / "song.mid")
    for suffix in (".wav", ".ogg", ".flac"):
        out = audio.render_file(mid, tmp_path / f"song{suffix}")
        info = sf.info(str(out))
        assert info.samplerate == SR and info.channels == 2 and info.duration > 4.0
    peak = np.max(np.abs(sf.read(str(tmp_path / "song.wav"))[0]))
    assert 0.85 < peak < 0.9  # normalised to -1 dBFS
    with pytest.raises(OutputExistsError):
        audio.render_file(mid, tmp_path / "song.wav")
    with pytest.raises(RequestError, match=".wav"):
        audio.render_file(mid, tmp_path / "song.mp3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.flac", "song.mid", "song.ogg", "song.wav"]  # no temp files

"""Audio: render the hub Score through FluidSynth, make it loop seamlessly, write WAV/OGG/FLAC.

The last stage of the pipeline and the only module that touches FluidSynth. FluidSynth fails
quietly (a missing sound font renders with some other font, or nothing), so every step is
checked here: the font file, `sfload`, every instrument's preset, and the output level.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musedraft.errors import MusedraftWarning, RenderError, RequestError, SoundFontError
from musedraft.export import midi_bytes, midi_file
from musedraft.files import atomic_path, check_writable
from musedraft.score import seconds_at_tick

if TYPE_CHECKING:
    from symusic import Score

__all__ = [
    "SAMPLE_RATE",
    "DEBIAN_SOUNDFONTS",
    "find_soundfont",
    "render",
    "render_file",
    "normalize",
    "make_loop",
    "write_wav",
    "write_ogg",
]

SAMPLE_RATE = 44100
GAIN = 0.2  # FluidSynth's default master gain; output is float, so nothing clips before normalize()
SILENCE = 1e-4  # peak below -80 dBFS: nothing audible came out
MAX_MINUTES = 60.0  # longest preview rendered: an hour of float stereo at 44.1 kHz is already 1.3 GB
TAIL_MAX_S = 10.0  # release + reverb tail we wait for after the last note-off, at most
OGG_BLOCK = 65536  # frames per soundfile write: one large OGG write has crashed libvorbis
DEBIAN_SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # fluid-soundfont-gm, MIT, 148 MB
    "/usr/share/sounds/sf3/MuseScore_General.sf3",  # musescore-general-soundfont, MIT
    "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",  # musescore-general-soundfont-small, MIT
    "/usr/share/sounds/sf2/TimGM6mb.sf2",  # timgm6mb-soundfont, GPL-2, 6 MB
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf3/FluidR3_GM.sf3",
    "/usr/share/sounds/sf3/default-GM.sf3",
)
_REPO_SOUNDFONTS = Path(__file__).resolve().parents[2] / "soundfonts"
_INSTALL_FLUIDSYNTH = (
    "FluidSynth is not installed: `apt-get install fluidsynth` (Debian/Ubuntu; it brings libfluidsynth3) "
    "or `brew install fluid-synth` (macOS), then `pip install pyfluidsynth`."
)
_INSTALL_FONT = (
    "install a General MIDI sound font (`apt-get install fluid-soundfont-gm`), put a .sf2/.sf3 in the "
    "repository's soundfonts/ folder, or set MUSEDRAFT_SOUNDFONT=/path/to/font.sf2."
)


def find_soundfont(path: str | os.PathLike | None = None) -> Path:
    """The General MIDI sound font to render with.

    Looked up in order: `path`, `$MUSEDRAFT_SOUNDFONT`, the repository's `soundfonts/` folder,
    the Debian font paths (`DEBIAN_SOUNDFONTS`). A font that is named (argument or environment)
    but unusable is an error, never a silent fallback to another font.

    Raises:
        SoundFontError: the named font is missing or not a SoundFont, or none was found; the
            message says what to install.
    """
    for named, origin in ((path, "the soundfont argument"), (os.environ.get("MUSEDRAFT_SOUNDFONT"), "MUSEDRAFT_SOUNDFONT")):
        if named:
            return _checked_font(Path(named).expanduser(), origin)
    candidates = sorted(_REPO_SOUNDFONTS.glob("*.sf[23]")) if _REPO_SOUNDFONTS.is_dir() else []
    candidates += [Path(p) for p in DEBIAN_SOUNDFONTS]
    for candidate in candidates:
        if candidate.is_file():
            return _checked_font(candidate.resolve(), str(candidate))
    raise SoundFontError("No General MIDI sound font found: " + _INSTALL_FONT)


def _checked_font(path: Path, origin: str) -> Path:
    if not path.is_file():
        raise SoundFontError(f"Sound font {path} (from {origin}) does not exist; " + _INSTALL_FONT)
    with path.open("rb") as fh:
        head = fh.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise SoundFontError(f"{path} (from {origin}) is not a SoundFont 2/3 file; " + _INSTALL_FONT)
    return path


def render(
    score: Score,
    *,
    soundfont: str | os.PathLike | None = None,
    sample_rate: int = SAMPLE_RATE,
    backend: str = "library",
) -> np.ndarray:
    """Render a score to stereo audio with FluidSynth.

    Args:
        score: the hub score; channels and programs are assigned as in the exported MIDI.
        soundfont: a .sf2/.sf3 path; None looks one up (`find_soundfont`).
        sample_rate: output rate in Hz.
        backend: "library" (pyfluidsynth, in process: the faster one, see docs/benchmarks.md)
            or "cli" (the `fluidsynth` program).

    Returns:
        float32 array of shape (frames, 2), unnormalised, including the release tail.

    Raises:
        RenderError: FluidSynth is missing, failed, the result is silent, or the score lasts
            longer than MAX_MINUTES (the audio would not fit in memory).
        SoundFontError: no usable sound font, or one with no preset a track can fall back to.

    Warns:
        MusedraftWarning: the font lacks a track's instrument, which plays as the nearest preset
            it has (see `_playable`).
    """
    if not any(len(t.notes) for t in score.tracks):
        raise RenderError("The score has no notes; there is nothing to render.")
    minutes = seconds_at_tick(score, score.end()) / 60.0
    if minutes > MAX_MINUTES:
        raise RenderError(f"The score lasts {minutes:.0f} minutes; previews are rendered up to {MAX_MINUTES:.0f} minutes. "
                          "Render a section (score.clip(start, end)) or save without audio (--no-audio).")
    font = find_soundfont(soundfont)
    score = _playable(score, font, sample_rate)
    if backend == "library":
        audio = _render_library(score, font, sample_rate)
    elif backend == "cli":
        audio = _render_cli(midi_bytes(score), font, sample_rate)
    else:
        raise RequestError(f"Unknown render backend {backend!r}; use 'library' or 'cli'.")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if not np.isfinite(peak) or peak < SILENCE:
        raise RenderError(
            f"FluidSynth rendered silence with {font}: the font may lack General MIDI presets. "
            "Try FluidR3_GM.sf2 (`apt-get install fluid-soundfont-gm`)."
        )
    return audio


class _Synth:
    """A fresh pyfluidsynth synthesizer with one font loaded, for one render.

    A synth reused across renders keeps its chorus LFO phase and other state, so the same score
    would render to different samples; a fresh one renders identical samples every time. It is
    cheap because FluidSynth shares loaded samples between the synths of a process for as long as
    one of them holds the font: `_PINNED` keeps one such holder per font, so a font is read (and
    an .sf3 decompressed, ~3 s for MuseScore_General) once per process, not once per render.
    """

    def __init__(self, font: Path, sample_rate: int) -> None:
        import ctypes  # noqa: PLC0415

        fluidsynth = _import_fluidsynth()
        self.synth = fluidsynth.Synth(gain=GAIN, samplerate=float(sample_rate))
        self.sfid = self.synth.sfload(str(font))
        if self.sfid < 0:
            self.synth.delete()
            raise SoundFontError(f"FluidSynth could not load {font}; is it a valid SoundFont? " + _INSTALL_FONT)
        write = ctypes.CDLL(fluidsynth.lib).fluid_synth_write_float
        write.argtypes = [ctypes.c_void_p, ctypes.c_int] + [ctypes.c_void_p, ctypes.c_int, ctypes.c_int] * 2
        write.restype = ctypes.c_int
        self._write = write

    def has_preset(self, bank: int, program: int) -> bool:
        return self.synth.sfpreset_name(self.sfid, bank, program) is not None

    def __enter__(self) -> _Synth:
        return self

    def __exit__(self, *exc) -> None:
        self.synth.delete()

    def write(self, out: np.ndarray) -> None:
        """Fill `out` ((frames, 2) float32, C-contiguous) with the synth's next frames."""
        if len(out):
            address = out.ctypes.data
            if self._write(self.synth.synth, len(out), address, 0, 2, address, 1, 2) != 0:
                raise RenderError("FluidSynth failed while rendering (fluid_synth_write_float).")


_PINNED: dict[str, _Synth] = {}  # font path → an idle synth holding its samples in FluidSynth's cache


def _pinned_synth(font: Path, sample_rate: int) -> _Synth:
    if str(font) not in _PINNED:
        _PINNED[str(font)] = _Synth(font, sample_rate)
    return _PINNED[str(font)]


def _fresh_synth(font: Path, sample_rate: int) -> _Synth:
    _pinned_synth(font, sample_rate)
    return _Synth(font, sample_rate)


def _import_fluidsynth():
    try:
        import fluidsynth  # noqa: PLC0415
    except (ImportError, OSError):
        raise RenderError(_INSTALL_FLUIDSYNTH) from None
    if not hasattr(fluidsynth, "Synth"):  # an unrelated PyPI package is also called `fluidsynth`
        raise RenderError("The installed `fluidsynth` module is not pyfluidsynth: `pip uninstall fluidsynth && pip install pyfluidsynth`.")
    return fluidsynth


def _playable(score: Score, font: Path, sample_rate: int) -> Score:
    """The score with every track on a preset the font has, and a warning naming each substitute.

    FluidSynth keeps a channel's last preset when a program change names one the font lacks (the
    library returns an error code, the program prints an error and exits 0), so a violin would
    play as a piano with no word said. We choose the substitute ourselves, the same for both
    backends: the first preset of the same General MIDI family (strings, brass...), else program
    0; a missing drum kit plays as the standard kit.
    """
    has = _pinned_synth(font, sample_rate).has_preset
    swaps: dict[tuple[bool, int], int] = {}
    for track in score.tracks:
        key = (bool(track.is_drum), int(track.program))
        if key not in swaps:
            swaps[key] = substitute_program(*key, has)
    swaps = {key: sub for key, sub in swaps.items() if sub != key[1]}
    if not swaps:
        return score
    score = score.copy()
    for track in score.tracks:
        track.program = swaps.get((bool(track.is_drum), int(track.program)), int(track.program))
    warnings.warn(f"{font.name} lacks " + "; ".join(f"{_preset_name(drum, old)}: it plays as {_preset_name(drum, new)}"
                                                    for (drum, old), new in sorted(swaps.items()))
                  + ". A complete General MIDI font (FluidR3_GM.sf2) has them all.", MusedraftWarning, stacklevel=3)
    return score


def substitute_program(is_drum: bool, program: int, has) -> int:
    """`program` if the font `has(bank, program)`, else the nearest preset it has (see `_playable`).

    >>> substitute_program(False, 42, lambda bank, p: p in (0, 40, 41))  # no cello: a violin
    40
    >>> substitute_program(True, 40, lambda bank, p: p == 0)  # no brushes: the standard kit
    0
    """
    bank = 128 if is_drum else 0
    family = [] if is_drum else list(range(program // 8 * 8, program // 8 * 8 + 8))
    for candidate in [program, *family, 0]:
        if has(bank, candidate):
            return candidate
    raise SoundFontError(f"The sound font has no {_preset_name(is_drum, program)} and no {_preset_name(is_drum, 0)} to "
                         "play it with; it is not a General MIDI font. " + _INSTALL_FONT)


def _preset_name(is_drum: bool, program: int) -> str:
    if is_drum:
        return f"drum kit {program}" + (" (standard)" if program == 0 else "")
    import pretty_midi  # noqa: PLC0415

    return f"program {program} ({pretty_midi.program_to_instrument_name(program)})"


def _render_library(score: Score, font: Path, sample_rate: int) -> np.ndarray:
    """Sequence the MIDI events ourselves into an in-process synth (sample-accurate, float)."""
    mid = midi_file(score)
    total = mid.length + TAIL_MAX_S
    out = np.zeros((int(total * sample_rate) + 1, 2), np.float32)
    with _fresh_synth(font, sample_rate) as synth:
        fs, sfid = synth.synth, synth.sfid
        now_s, pos = 0.0, 0
        for msg in mid:  # mido merges the tracks and turns delta ticks into seconds via the tempo map
            now_s += msg.time
            if msg.is_meta:
                continue
            target = min(int(round(now_s * sample_rate)), len(out))
            synth.write(out[pos:target])
            pos = target
            if msg.type == "note_on" and msg.velocity > 0:
                fs.noteon(msg.channel, msg.note, msg.velocity)
            elif msg.type in ("note_off", "note_on"):
                fs.noteoff(msg.channel, msg.note)
            elif msg.type == "program_change":
                fs.program_select(msg.channel, sfid, 128 if msg.channel == 9 else 0, msg.program)
            elif msg.type == "control_change" and msg.control != 0:  # bank select: handled above
                fs.cc(msg.channel, msg.control, msg.value)
            elif msg.type == "pitchwheel":
                fs.pitch_bend(msg.channel, msg.pitch)
        # Release and reverb tail: render until 80 dB below the peak (so a loop fold misses
        # nothing audible), or TAIL_MAX_S.
        peak = float(np.max(np.abs(out[:pos]))) if pos else 0.0
        floor = max(peak * 1e-4, 1e-7)
        block = sample_rate // 10
        while pos < len(out):
            end = min(pos + block, len(out))
            synth.write(out[pos:end])
            quiet = float(np.max(np.abs(out[pos:end]))) < floor
            pos = end
            if quiet and fs.get_active_voice_count() == 0:
                break
    return out[:pos]


def _render_cli(data: bytes, font: Path, sample_rate: int) -> np.ndarray:
    """Render with the `fluidsynth` program (fast-render to a float WAV), then read it back."""
    import soundfile as sf  # noqa: PLC0415

    exe = shutil.which("fluidsynth")
    if exe is None:
        raise RenderError(_INSTALL_FLUIDSYNTH)
    with tempfile.TemporaryDirectory(prefix="musedraft-render-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(data)
        cmd = [exe, "-ni", "-q", "-g", str(GAIN), "-r", str(sample_rate), "-O", "float", "-T", "wav", "-F", str(wav), str(font), str(mid)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        # The program exits 0 even when it could not load the font: read its error lines too.
        errors = [line for line in (proc.stderr + proc.stdout).splitlines() if "error" in line.lower()]
        if proc.returncode != 0 or errors or not wav.is_file():
            raise RenderError(f"fluidsynth failed ({proc.returncode}): {' / '.join(errors) or proc.stderr.strip()}")
        audio, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio[:, :2])


def normalize(audio: np.ndarray, peak_dbfs: float = -1.0) -> np.ndarray:
    """Scale so the peak sits at `peak_dbfs`: drafts preview at the same level, and never clip."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak == 0.0:
        return audio.astype(np.float32)
    return (audio * (10 ** (peak_dbfs / 20) / peak)).astype(np.float32)


def make_loop(audio: np.ndarray, loop_length_samples: int) -> np.ndarray:
    """Cut `audio` to one loop and fold what rings past the loop end back onto its head.

    Played looped, the head of each repeat sounds together with the release and reverb of the
    repeat before it; adding the tail onto the head reproduces exactly that, so the seam has no
    gap, no step and no click (a synth is linear, so the sum is what it would have played).
    Audio shorter than the loop is padded with silence.
    """
    if loop_length_samples <= 0:
        raise RequestError(f"Loop length must be positive, got {loop_length_samples} samples.")
    out = np.zeros((loop_length_samples, *audio.shape[1:]), np.float32)
    head = audio[:loop_length_samples]
    out[: len(head)] = head
    for start in range(loop_length_samples, len(audio), loop_length_samples):
        tail = audio[start : start + loop_length_samples]
        out[: len(tail)] += tail
    return out


def write_wav(
    path: str | os.PathLike, audio: np.ndarray, sr: int, loop: tuple[int, int] | None = None, *, force: bool = False
) -> Path:
    """16-bit PCM WAV, atomically; `loop=(start, length)` in samples adds a `smpl` loop chunk.

    The `smpl` chunk is how Godot ("Detect from WAV"), Unity and most samplers find loop points.
    """
    import soundfile as sf  # noqa: PLC0415

    path = check_writable(path, force)
    with atomic_path(path, force=True) as tmp:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
        if loop is not None:
            _append_smpl_chunk(tmp, sr, *loop)
    return path


def _append_smpl_chunk(path: Path, sr: int, start: int, length: int) -> None:
    import struct  # noqa: PLC0415

    period_ns = round(1e9 / sr)
    # manufacturer, product, period, unity note 60, pitch fraction, SMPTE format/offset, 1 loop, 0 extra
    body = struct.pack("<9I", 0, 0, period_ns, 60, 0, 0, 0, 1, 0)
    body += struct.pack("<6I", 0, 0, start, start + length - 1, 0, 0)  # id, forward loop, inclusive end
    data = path.read_bytes() + b"smpl" + struct.pack("<I", len(body)) + body
    path.write_bytes(data[:4] + struct.pack("<I", len(data) - 8) + data[8:])


def write_ogg(
    path: str | os.PathLike,
    audio: np.ndarray,
    sr: int,
    loop_start: int | None = None,
    loop_length: int | None = None,
    *,
    force: bool = False,
    title: str | None = None,
) -> Path:
    """OGG Vorbis, written in blocks, with RPG Maker loop tags LOOPSTART/LOOPLENGTH first.

    RPG Maker reads the tags in samples and parses LOOPLENGTH's digits until a zero byte, so the
    comment after it must not have a length whose first byte is an ASCII digit: we pad it.
    libvorbis (through libsndfile) gives each file a random stream serial number, the only bytes in
    which two renders of the same audio differ; the serial is set from the audio itself, so the same
    draft gives the same file and a build that caches by content sees no change.
    """
    import soundfile as sf  # noqa: PLC0415
    from mutagen.oggvorbis import OggVorbis  # noqa: PLC0415

    path = check_writable(path, force)
    audio = np.ascontiguousarray(np.clip(audio, -1.0, 1.0), dtype=np.float32)
    with atomic_path(path, force=True) as tmp:
        with sf.SoundFile(str(tmp), "w", samplerate=sr, channels=audio.shape[1], format="OGG", subtype="VORBIS") as fh:
            for start in range(0, len(audio), OGG_BLOCK):
                fh.write(audio[start : start + OGG_BLOCK])
        ogg = OggVorbis(str(tmp))
        ogg.tags.clear()
        comments = []
        if loop_start is not None and loop_length is not None:
            comments += [("LOOPSTART", str(int(loop_start))), ("LOOPLENGTH", str(int(loop_length)))]
        comments += [("TITLE", title or "musedraft draft"), ("ENCODER", "musedraft")]
        for i, (key, value) in enumerate(comments):
            while i > 0 and 48 <= (len(key) + 1 + len(value.encode())) % 256 <= 57:
                value += " "  # the length's low byte would read as a digit of the value before
            ogg.tags.append((key, value))
        ogg.save()
        _set_serial(tmp, zlib.crc32(audio.tobytes()))
    return path


def _set_serial(path: Path, serial: int) -> None:
    """Give every page of a one-stream OGG file this serial number (mutagen recomputes each page's checksum)."""
    from mutagen.ogg import OggPage  # noqa: PLC0415

    pages = []
    with open(path, "rb") as fh:
        while True:
            try:
                pages.append(OggPage(fh))
            except EOFError:
                break
    for page in pages:
        page.serial = serial
    path.write_bytes(b"".join(page.write() for page in pages))


def render_file(
    midi_or_score: Score | str | os.PathLike | bytes,
    out_path: str | os.PathLike,
    *,
    soundfont: str | os.PathLike | None = None,
    force: bool = False,
    sample_rate: int = SAMPLE_RATE,
) -> Path:
    """Render a MIDI file (path or bytes) or a Score to `.wav`, `.ogg` or `.flac` by suffix.

    The audio is normalised to -1 dBFS. Used by `musedraft render song.mid -o song.wav`.

    Raises:
        OutputExistsError, InvalidMidiError, RenderError, SoundFontError, RequestError (suffix).
    """
    out_path = check_writable(out_path, force)
    suffix = out_path.suffix.lower()
    if suffix not in (".wav", ".ogg", ".flac"):
        raise RequestError(f"Cannot write {out_path.name}: use a .wav, .ogg or .flac file name.")
    if isinstance(midi_or_score, (str, os.PathLike, bytes)):
        from musedraft.score import load_midi  # noqa: PLC0415

        score = load_midi(midi_or_score)
    else:
        score = midi_or_score
    audio = normalize(render(score, soundfont=soundfont, sample_rate=sample_rate))
    if suffix == ".ogg":
        return write_ogg(out_path, audio, sample_rate, force=True)
    if suffix == ".wav":
        return write_wav(out_path, audio, sample_rate, force=True)
    import soundfile as sf  # noqa: PLC0415

    with atomic_path(out_path, force=True) as tmp:
        sf.write(str(tmp), audio, sample_rate, subtype="PCM_16", format="FLAC")
    return out_path

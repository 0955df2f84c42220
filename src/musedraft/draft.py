"""The Draft: what `compose()` returns, and `save()`, which writes every output side by side.

save() writes draft.mid, draft.musicxml, draft.png, draft.wav, draft.ogg and draft.json into one
folder. The editable files come first and never depend on audio: with no FluidSynth or no sound
font the MIDI, MusicXML, PNG and JSON are still written, the JSON records why there is no audio,
and save() then raises the RenderError (its `.paths` lists what was written).

The same seed gives byte-identical MIDI, MusicXML, PNG and WAV files. The OGG differs in its stream
serial number (libsndfile draws one per file; players ignore it) and draft.json in its timings.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musedraft.errors import MusedraftWarning, RenderError
from musedraft.files import Staging
from musedraft.score import LOOP_MARKERS, Score, bar_count, ticks_per_bar

if TYPE_CHECKING:
    import music21
    import pretty_midi

__all__ = ["Draft", "renpy_snippet", "output_paths"]

_SUFFIXES = {"midi": ".mid", "musicxml": ".musicxml", "png": ".png", "wav": ".wav", "ogg": ".ogg", "json": ".json"}
_AUDIO = ("wav", "ogg")


def output_paths(out_dir: str | os.PathLike, name: str = "draft", audio: bool = True) -> dict[str, Path]:
    """The files `Draft.save` writes into `out_dir`, by kind: what to check before composing, so a
    folder that save() would refuse is refused before the minutes of generation, not after."""
    return {k: Path(out_dir) / f"{name}{suffix}" for k, suffix in _SUFFIXES.items() if audio or k not in _AUDIO}


@dataclass
class Draft:
    score: Score  # final score: one named track per instrument, GM program set
    request: dict  # JSON-able resolved request: style/scene, key, tempo, time_signature, instruments, bars, seed, loop
    seed: int  # the seed that reproduces this draft
    model_id: str  # checkpoint id the draft was sampled from
    key: str  # "D major", "F# minor"...
    loop: bool = False  # written as loopable background music (tail folded, loop tags)
    repair: dict | None = None  # JSON-able repair report: {"edits", "findings_before", "findings_after", "notes"}
    timings: dict[str, float] = field(default_factory=dict)  # seconds per compose stage

    def to_symusic(self) -> Score:
        """A copy of the hub score (edit it freely; the draft keeps its own)."""
        return self.score.copy()

    def to_pretty_midi(self) -> pretty_midi.PrettyMIDI:
        """The draft as pretty_midi sees the exported MIDI file (same tracks, programs, tempo)."""
        import io  # noqa: PLC0415

        import pretty_midi  # noqa: PLC0415

        from musedraft.export import midi_bytes  # noqa: PLC0415

        data = midi_bytes(self.score, key=self.written_key(), markers=self.markers())
        with warnings.catch_warnings():
            # We repeat the key signature in every instrument track (MuseScore 3 reads it only
            # there); pretty_midi warns about that, then merges the copies correctly.
            warnings.filterwarnings("ignore", message="Tempo, Key or Time signature", category=RuntimeWarning)
            return pretty_midi.PrettyMIDI(io.BytesIO(data))

    def to_music21(self) -> music21.stream.Score:
        """The notation view: named parts, key, metre, rhythms on a sixteenth grid."""
        from musedraft.notation import to_music21  # noqa: PLC0415

        return to_music21(self.score, self.written_key(), title=self._title())

    def written_key(self) -> str | None:
        """The key signature the files carry: the draft's key, or None where the score changes key
        (a user's music that modulates, continued or regenerated), whose own signatures are then written."""
        from musedraft.export import key_of_signature  # noqa: PLC0415

        return None if len({key_of_signature(ks) for ks in self.score.key_signatures}) > 1 else self.key

    def loop_end_tick(self) -> int:
        """Where the loop ends: after the requested bars (or every bar the music touches)."""
        bars = int(self.request.get("bars") or 0) or bar_count(self.score)
        return bars * ticks_per_bar(self.score)

    def loop_points(self) -> dict[str, Any] | None:
        """Loop start/length in samples (at the preview's 44.1 kHz) and seconds; None unless looping.

        The loop starts at 0 and spans the requested bars exactly; the tail past it is folded
        into the head of the audio (audio.make_loop), so the file is exactly one loop long.
        """
        if not self.loop:
            return None
        from musedraft.audio import SAMPLE_RATE  # noqa: PLC0415
        from musedraft.score import seconds_at_tick  # noqa: PLC0415

        length = int(round(seconds_at_tick(self.score, self.loop_end_tick()) * SAMPLE_RATE))
        return {
            "start_samples": 0,
            "length_samples": length,
            "end_samples": length,
            "sample_rate": SAMPLE_RATE,
            "start_seconds": 0.0,
            "end_seconds": round(length / SAMPLE_RATE, 6),
            "start_tick": 0,
            "end_tick": self.loop_end_tick(),
        }

    def markers(self) -> list[tuple[int, str]]:
        """Markers for the MIDI file: the loop points when looping (sections come with the score)."""
        if not self.loop:
            return []
        return [(0, LOOP_MARKERS[0]), (self.loop_end_tick(), LOOP_MARKERS[1])]

    def save(
        self,
        out_dir: str | os.PathLike,
        *,
        force: bool = False,
        audio: bool = True,
        soundfont: str | os.PathLike | None = None,
        name: str = "draft",
    ) -> dict[str, Path]:
        """Write the draft's files side by side into `out_dir` (created if needed).

        Args:
            out_dir: the folder.
            force: overwrite existing outputs. Without it nothing is written if any exists.
            audio: render draft.wav and draft.ogg with FluidSynth.
            soundfont: the .sf2/.sf3 to render with (default: `audio.find_soundfont()`).
            name: file stem ("draft" → draft.mid, draft.json...).

        Returns:
            {"midi", "musicxml", "png", "wav", "ogg", "json"} → paths written.

        Raises:
            OutputExistsError: an output exists and `force` is False (nothing was written).
            OutputPathError: `out_dir` cannot hold the files (nothing was written).
            RenderError / SoundFontError: audio was asked for and could not be made; every other
                file was written, draft.json records the error, and the exception's `.paths` holds
                the dict this method would have returned.
        Any other failure writes nothing: the files are staged beside their targets and renamed
        into place together. With force, a draft.wav/draft.ogg of an earlier save that this one
        does not replace (no audio asked for, or rendering failed) is removed, so the folder holds
        one draft, not two.
        """
        from musedraft.export import write_midi  # noqa: PLC0415
        from musedraft.notation import write_musicxml  # noqa: PLC0415
        from musedraft.pianoroll import piano_roll_png  # noqa: PLC0415

        out = Path(out_dir)
        targets = output_paths(out, name)
        timings: dict[str, float] = {}
        audio_info: dict[str, Any] = {"rendered": False}
        error: RenderError | None = None
        with Staging(output_paths(out, name, audio), force) as stage:

            def timed(label: str, fn, *args, **kwargs) -> None:
                t0 = time.perf_counter()
                fn(*args, **kwargs)
                timings[label] = round(time.perf_counter() - t0, 4)

            timed("save_midi", write_midi, self.score, stage.path("midi"), key=self.written_key(), markers=self.markers(), force=True)
            timed("save_musicxml", write_musicxml, self.score, stage.path("musicxml"), self.written_key(), True, title=self._title())
            timed("save_png", piano_roll_png, self.score, stage.path("png"), title=self._title(), force=True)
            if audio:
                try:
                    t0 = time.perf_counter()
                    audio_info = self._write_audio(stage.path("wav"), stage.path("ogg"), soundfont)
                    timings["save_audio"] = round(time.perf_counter() - t0, 4)
                except RenderError as exc:
                    error = exc
                    audio_info = {"rendered": False, "error": str(exc), "error_type": type(exc).__name__}
            written = {k: p for k, p in stage.targets.items() if error is None or k not in _AUDIO}
            document = self._document(name, audio_info, timings, written)
            stage.path("json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            stage.commit(list(written))
        if force and "wav" not in written:
            for stale in (targets["wav"], targets["ogg"]):
                stale.unlink(missing_ok=True)
        if error is not None:
            kept = ", ".join(path.name for path in written.values())
            failure = type(error)(f"{error} No audio was written; {kept} are in {out}/.")
            failure.paths = dict(written)
            raise failure from None
        return written

    def _write_audio(self, wav: Path, ogg: Path, soundfont) -> dict[str, Any]:
        from musedraft.audio import (  # noqa: PLC0415
            SAMPLE_RATE,
            find_soundfont,
            make_loop,
            normalize,
            render,
            write_ogg,
            write_wav,
        )

        font = find_soundfont(soundfont)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:  # kept in draft.json, where a pack's user looks
            warnings.simplefilter("always", MusedraftWarning)
            audio = render(self.score, soundfont=font, sample_rate=SAMPLE_RATE)
        render_s = time.perf_counter() - t0
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        info: dict[str, Any] = {
            "rendered": True,
            "soundfont": str(font),
            "sample_rate": SAMPLE_RATE,
            "render_seconds": round(render_s, 4),
            "realtime_factor": round(len(audio) / SAMPLE_RATE / max(render_s, 1e-9), 1),
        }
        substitutes = [str(w.message) for w in caught if issubclass(w.category, MusedraftWarning)]
        if substitutes:
            info["warnings"] = substitutes
        loop_points = None
        if self.loop:
            points = self.loop_points()
            audio = make_loop(audio, points["length_samples"])
            loop_points = (points["start_samples"], points["length_samples"])
        audio = normalize(audio)
        info["duration_seconds"] = round(len(audio) / SAMPLE_RATE, 4)
        write_wav(wav, audio, SAMPLE_RATE, loop_points, force=True)  # staged paths: save() checked the targets
        write_ogg(ogg, audio, SAMPLE_RATE, *(loop_points or (None, None)), force=True, title=self._title())
        return info

    def _document(self, name: str, audio_info: dict, timings: dict, written: dict[str, Path]) -> dict[str, Any]:
        return {
            "musedraft_draft": 1,
            "request": self.request,
            "seed": self.seed,
            "model_id": self.model_id,
            "key": self.key,
            "loop": self.loop,
            "repair": self.repair,
            "tracks": [
                {"name": t.name, "program": int(t.program), "is_drum": bool(t.is_drum), "notes": len(t.notes)}
                for t in self.score.tracks
            ],
            "loop_points": self.loop_points(),
            "renpy": renpy_snippet(f"{name}.ogg") if self.loop else None,
            "audio": audio_info,
            "timings": {**self.timings, **timings},
            "files": {kind: path.name for kind, path in written.items()},
        }

    def _title(self) -> str:
        what = self.request.get("scene") or self.request.get("style") or "draft"
        return f"musedraft {what} in {self.key} (seed {self.seed})"


def renpy_snippet(ogg_name: str, loop_start_seconds: float = 0.0) -> str:
    """Ren'Py lines that play the OGG looped from `loop_start_seconds` (Ren'Py reads seconds)."""
    stem = Path(ogg_name).stem.replace("-", "_").replace(" ", "_")
    return (
        f"# Copy {ogg_name} into game/audio/, then in any .rpy file:\n"
        f'define audio.{stem} = "<loop {loop_start_seconds:.6g}>audio/{ogg_name}"\n'
        f"# and where the scene starts (the music channel loops by default):\n"
        f"#     play music {stem} fadein 1.0\n"
    )

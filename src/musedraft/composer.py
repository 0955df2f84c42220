"""Where the stages meet: request → controls → constrained generation → score → repair → Draft.

    request ─► controls (style, mode, registers) ─► model + masks ─► REMI ids ─► Score
            ─► transpose to the key, name the tracks ─► harmony repair ─► Draft (.save: MIDI, MusicXML, audio)
"""

from __future__ import annotations

import bisect
import math
import numbers
import os
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

from symusic import KeySignature, PitchBend, Score, Tempo, TextMeta, TimeSignature, Track

from musedraft.corpus import ORDERED_STYLES, check_style
from musedraft.drums import carry_on
from musedraft.errors import RequestError
from musedraft.export import key_of_signature, key_signature
from musedraft.habits import line_centres
from musedraft.instruments import (
    MOST_LINES,
    Instrument,
    get_instrument,
    instrument_of_track,
    lines_of,
    numbered_names,
    register_of,
    track_names,
)
from musedraft.score import (
    LOOP_MARKERS,
    bar_lines,
    bar_range,
    in_voice_order,
    is_marked_loop,
    metre_segments,
    most_at_once,
    ticks_per_bar,
    tidy_metre,
    voice_order,
)
from musedraft.tokenizer import Controls, normalising_shift, parse_key, transpose

if TYPE_CHECKING:
    from musedraft.draft import Draft

__all__ = ["Composer", "Request", "load_model", "compose", "compose_candidates", "continue_midi", "regenerate",
           "estimate_key", "check_request", "DEFAULT_MODEL"]

DEFAULT_MODEL = Path(__file__).parent / "checkpoints" / "default"
TPQ = 480

_STYLE_DEFAULTS = {  # instruments, tempo
    "chorale": (["soprano", "alto", "tenor", "bass voice"], 80),
    "renaissance": (["soprano", "alto", "tenor", "bass voice"], 72),
    "madrigal": (["soprano", "alto", "tenor", "tenor", "bass voice"], 84),
    "medieval": (["alto", "tenor", "bass voice"], 90),
    "classical": (["violin", "violin", "viola", "cello"], 108),
    "romantic": (["violin", "viola", "cello"], 88),
    "folk": (["fiddle"], 112),
}
_CLOSING_BARS = 2  # bars a loop's ending writes with the opening as right-hand context
MAX_SEED = 2**32 - 1  # a draft's sampling seed is seed * 7919 + a small offset: this keeps it inside 64 bits
# The tempo token the model is conditioned on. 92% of corpus pieces carry no metronome mark, so
# MidiTok wrote Tempo_120 for them and the model barely knows other tempo tokens (a slow one made it
# write near-empty bars). The requested tempo is written exactly into the MIDI instead.
MODEL_TEMPO = 120.0


@dataclass
class Request:
    """A resolved compose request: every field set, JSON-able through `to_dict`."""

    style: str
    key: str
    tempo: float
    time_signature: str
    instruments: list[str]
    bars: int
    seed: int
    loop: bool
    scene: str | None = None
    density: float = 0.6

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Composer:
    """A loaded checkpoint with its tokenizer and generator; compose/continue/regenerate run on it."""

    def __init__(self, folder: str | Path):
        from musedraft.generate import Generator  # noqa: PLC0415
        from musedraft.habits import load_habits  # noqa: PLC0415
        from musedraft.model import load_checkpoint  # noqa: PLC0415
        from musedraft.tokenizer import Tokenizer  # noqa: PLC0415
        from musedraft.vocab import Vocab  # noqa: PLC0415

        self.folder = Path(folder)
        self.model, self.meta = load_checkpoint(self.folder)
        try:
            self.tokenizer = Tokenizer(Vocab.load(self.folder))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            from musedraft.errors import ModelError  # noqa: PLC0415

            raise ModelError(f"{folder}: vocab.json is missing or unreadable ({exc}); a checkpoint folder needs "
                             "model.safetensors, config.json, vocab.json and tokenizer.json together.") from None
        if self.tokenizer.vocab.size != self.model.cfg.vocab_size:
            from musedraft.errors import ModelError  # noqa: PLC0415

            raise ModelError(f"{folder}: the model has {self.model.cfg.vocab_size} token ids but the vocabulary "
                             f"beside it has {self.tokenizer.vocab.size}; the checkpoint folder is mixed up.")
        self.generator = Generator(self.model, self.tokenizer)
        self.habits = load_habits(self.folder)  # per style; {} for a checkpoint without habits.json
        self.model_id = self.meta.get("id", self.folder.name)

    @property
    def grid(self) -> int:
        """Ticks (at TPQ) between the tokenizer's positions: the grid it puts each note on."""
        return TPQ // self.tokenizer.vocab.config.beat_res


@lru_cache(maxsize=4)
def _cached(folder: str) -> Composer:
    return Composer(folder)


def load_model(path: str | Path | None = None) -> Composer:
    """A checkpoint folder from `musedraft train`, else `$MUSEDRAFT_MODEL`, else the shipped model.

    Cached per folder, so composing many drafts loads the weights once.
    """
    folder = path or os.environ.get("MUSEDRAFT_MODEL") or DEFAULT_MODEL
    if not Path(folder).is_dir():
        from musedraft.errors import ModelError  # noqa: PLC0415

        raise ModelError(f"No model at {folder}: pass a checkpoint folder from `musedraft train`, or reinstall "
                         "musedraft to restore the shipped model.")
    return _cached(str(Path(folder).resolve()))


def _resolve(style, scene, key, tempo, time_signature, instruments, bars, seed, loop) -> Request:
    preset = None
    if scene is not None:
        from musedraft.presets import get_scene  # noqa: PLC0415

        preset = get_scene(scene)
    style = check_style(style or (preset.style if preset else "classical"))
    mode = preset.mode if preset else "major"
    key = key or ("C major" if mode == "major" else "A minor")
    parse_key(key)
    if tempo is None:
        tempo = preset.default_tempo if preset else _STYLE_DEFAULTS[style][1]
    if not isinstance(tempo, numbers.Real) or isinstance(tempo, bool) or not 20 <= float(tempo) <= 300:
        raise RequestError(f"Tempo must be a number of quarter notes per minute from 20 to 300, not {tempo!r}.")
    time_signature = time_signature or (preset.time_signature if preset else "4/4")
    instruments = list(instruments or (preset.instruments if preset else _STYLE_DEFAULTS[style][0]))
    bars, seed = _whole("bars", bars, 1, 512), _whole("seed", seed, 0, MAX_SEED)
    if loop and bars < _CLOSING_BARS + 2:
        raise RequestError(f"A loop needs at least {_CLOSING_BARS + 2} bars.")
    return Request(style, key, float(tempo), time_signature, instruments, bars, seed, bool(loop),
                   scene, preset.density if preset else 0.6)


def _whole(name: str, value, low: int, high: int) -> int:
    """`value` as an int if it is a whole number in low..high (numpy's too), else a RequestError."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and low <= value <= high:
        return int(value)
    raise RequestError(f"{name} must be a whole number from {low} to {high}, not {value!r}.")


def _lines(insts: list[Instrument], slots: int, caps: list[int] | None = None) -> tuple[list[list[Instrument]], list[int]]:
    """The lines the model writes for each instrument (at most `caps[k]` for instrument k), and the
    instrument each line belongs to, in line order.

    Keyboards and harps take several lines (`instruments.lines_of`); when the request would need more
    than the stream's `slots` track slots, they give up inner voices first, down to one line each.
    """
    if len(insts) > slots:
        raise RequestError(f"Between 1 and {slots} instruments, not {len(insts)}.")
    caps = caps or [MOST_LINES] * len(insts)
    most = MOST_LINES
    while most > 1 and sum(len(lines_of(i, min(most, c))) for i, c in zip(insts, caps, strict=True)) > slots:
        most -= 1
    per_instrument = [lines_of(i, min(most, c)) for i, c in zip(insts, caps, strict=True)]
    return per_instrument, [k for k, lines in enumerate(per_instrument) for _ in lines]


def _slot_order(centres: list[float]) -> list[int]:
    """Line indices sorted top voice first (by where each line centres): slot 0 is the highest part, as in the corpus."""
    return sorted(range(len(centres)), key=lambda i: -centres[i])


def compose(style: str | None = None, *, scene: str | None = None, key: str | None = None,
            tempo: float | None = None, time_signature: str | None = None,
            instruments: list[str | int] | None = None, bars: int = 16, seed: int = 0, loop: bool = False,
            repair: bool = True, temperature: float | None = None, top_p: float | None = None, model: Composer | str | os.PathLike | None = None) -> Draft:
    """Compose a new multi-track draft.

    Args:
        style: corpus style to write in (chorale, renaissance, madrigal, medieval, classical, romantic, folk).
        scene: a visual-novel scene preset (`musedraft.scenes()`); explicit arguments override it.
        key: e.g. "D major", "F# minor"; the draft is in exactly this key.
        tempo: quarter notes per minute, written as-is into the MIDI.
        time_signature: e.g. "3/4" (every bar has it).
        instruments: names or GM programs, up to 8; each plays one line, except that a piano, harpsichord
            or organ plays four (melody, two inner voices, bass) in its one track and a harp three, fewer
            when the request would need more than 8 lines.
        bars: exact number of bars.
        seed: same seed, same notes.
        loop: write an ending that leads back into the opening (for looping game music) instead of a cadence.
        repair: run the harmony repair and record its edits in the draft.
        temperature, top_p: sampling settings; None keeps the generator's defaults (1.0, 0.98; see
            `musedraft.generate.SamplingConfig`).
    Returns:
        A `Draft`; `draft.save("out/")` writes MIDI, MusicXML, audio, JSON and a piano roll.
    """
    return compose_candidates(1, style, scene=scene, key=key, tempo=tempo, time_signature=time_signature,
                              instruments=instruments, bars=bars, seed=seed, loop=loop, repair=repair,
                              temperature=temperature, top_p=top_p, model=model)[0]


def compose_candidates(n: int, style: str | None = None, *, scene: str | None = None, key: str | None = None,
                       tempo: float | None = None, time_signature: str | None = None,
                       instruments: list[str | int] | None = None, bars: int = 16, seed: int = 0,
                       loop: bool = False, repair: bool = True, temperature: float | None = None, top_p: float | None = None,
                       model: Composer | str | os.PathLike | None = None) -> list[Draft]:
    """`n` drafts of one request, with seeds `seed .. seed+n-1`, generated together as one batch.

    Draft k is note for note the draft `compose(..., seed=seed+k)` would give; the batch shares one
    forward pass per step, so auditioning four candidates costs much less than four composes.
    Arguments are those of `compose`.
    """
    if not isinstance(n, int) or not 1 <= n <= 64:
        raise RequestError(f"candidates must be a whole number from 1 to 64, not {n!r}.")
    t0 = time.perf_counter()
    req = check_request(style, scene=scene, key=key, tempo=tempo, time_signature=time_signature,
                        instruments=instruments, bars=bars, seed=seed, loop=loop, temperature=temperature, top_p=top_p)
    composer = model if isinstance(model, Composer) else load_model(model)
    timings = {"load": time.perf_counter() - t0}
    insts = [get_instrument(i) for i in req.instruments]
    per_instrument, owner = _lines(insts, composer.tokenizer.vocab.config.max_tracks)
    lines = [line for group in per_instrument for line in group]
    tonic, mode = parse_key(req.key)
    shift = normalising_shift(tonic, mode)
    where = line_centres(lines, composer.habits.get(req.style))
    order = _slot_order(where)
    slot_insts = [lines[i] for i in order]
    # Training names a line's register from its median in the C major / A minor frame the model reads,
    # so the centre is moved into that frame first: a soprano's G#4 in F major reads as D#4, an alto's band.
    centres = [where[i] + shift for i in order]
    controls = Controls(req.style, mode, [register_of(c) for c in centres])
    header = composer.tokenizer.header_ids(controls)
    if composer.tokenizer.unsupported_time_signature(_ts_score(req.time_signature)):
        raise RequestError(f"Time signature {req.time_signature} is not supported by this model.")
    cfg = _sampling(temperature, top_p, req.density)
    ranges = [(i.low + shift, i.high + shift) for i in slot_insts]
    tracks = [owner[i] for i in order]
    drums = _drums(slot_insts)
    reqs = [replace(req, seed=req.seed + k) for k in range(n)]
    t1 = time.perf_counter()
    if loop:
        bodies = _generate(composer, header, [], req.bars - _CLOSING_BARS, ranges, mode, reqs, cfg, cadence=False,
                           centres=centres, tracks=tracks, drums=drums)
        streams = []
        for body, r in zip(bodies, reqs, strict=True):
            fixed = header + _fim_block(composer, body, _first_bars(composer, body, _CLOSING_BARS))
            closing = _generate(composer, fixed, [], _CLOSING_BARS, ranges, mode, [r], cfg, cadence=False,
                                tempo=None, seed_offset=1, centres=centres, tracks=tracks, drums=drums)[0]
            streams.append(body + closing)
    else:
        streams = _generate(composer, header, [], req.bars, ranges, mode, reqs, cfg, cadence=True, centres=centres,
                            tracks=tracks, drums=drums)
    timings["generate"] = time.perf_counter() - t1
    if n > 1:
        timings["candidates_in_batch"] = n
    drafts = []
    for stream, r in zip(streams, reqs, strict=True):
        score = _to_score(composer, header + stream, -shift, tracks, numbered_names(insts),
                          [i.program for i in insts], r)
        drafts.append(_finish(score, r, composer, repair, dict(timings), t0, closing=None if loop else (r.bars - 1) * _bar_ticks(r)))
    return drafts


def _sampling(temperature: float | None, top_p: float | None, density: float):
    """The generator's sampling settings; None keeps its default (musedraft.generate.SamplingConfig)."""
    from musedraft.generate import SamplingConfig  # noqa: PLC0415

    given = _sampling_overrides(temperature, top_p)
    return SamplingConfig(offbeat_penalty=max(0.0, (0.6 - density) * 4), **given)


def _sampling_overrides(temperature, top_p) -> dict[str, float]:
    """The sampling settings a request gives, checked (torch is not needed to refuse them)."""
    given = {k: v for k, v in (("temperature", temperature), ("top_p", top_p)) if v is not None}
    for name, value in given.items():
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 < value <= (1 if name == "top_p" else 10):
            raise RequestError(f"{name} must be a number above 0 and at most {1 if name == 'top_p' else 10}, not {value!r}.")
    return given


def check_request(style: str | None = None, *, scene: str | None = None, key: str | None = None,
                  tempo: float | None = None, time_signature: str | None = None,
                  instruments: list[str | int] | None = None, bars: int = 16, seed: int = 0, loop: bool = False,
                  temperature: float | None = None, top_p: float | None = None) -> Request:
    """The resolved request, or the RequestError `compose()` raises for it, without loading a model:
    compose() starts here, and a batch (a pack) checks every request before composing any, so a typo
    in its last scene does not leave half a pack behind. (Whether the model knows the metre is only
    known with the model.)"""
    req = _resolve(style, scene, key, tempo, time_signature, instruments, bars, seed, loop)
    for name in req.instruments:
        get_instrument(name)
    _ts_score(req.time_signature)
    _sampling_overrides(temperature, top_p)
    return req


def _ts_score(ts: str) -> Score:
    try:
        num, den = (int(x) for x in ts.split("/"))
    except (ValueError, AttributeError):
        raise RequestError(f"Time signature must look like '3/4', not {ts!r}.") from None
    if not 1 <= num <= 32 or den not in (1, 2, 4, 8, 16, 32):
        raise RequestError(f"Time signature {ts} has no meaning: beats from 1 to 32, a beat of 1, 2, 4, 8, 16 or 32.")
    s = Score(TPQ)
    s.time_signatures.append(TimeSignature(0, num, den))
    return s


def _generate(composer, fixed, music, bars, ranges, mode, reqs, cfg, cadence, tempo="request", seed_offset=0,
              centres=None, tracks=None, drums=(), primer=False):
    """New streams (EOS dropped), one per request in `reqs` (same request, different seeds), in one batch.
    `centres` (a fresh piece's instruments' registers) draw drifting lines back; `tracks` (the instrument
    of each line) say which lines are one keyboard's chords, no voices for parallels or crossings, and
    pull in an instrument sitting the piece out, unless the lines are a `primer`'s: those centre and
    rest where the user put them. `drums` are the lines a timpani plays (no voice for parallels, nor the bass)."""
    from musedraft.generate import Constraints  # noqa: PLC0415

    reqs = [reqs] if isinstance(reqs, Request) else reqs
    fresh = tempo == "request" and not music  # a new piece, not a continuation or a middle
    h = composer.habits.get(reqs[0].style)  # none: the checkpoint samples without style habits
    habits = h.guidance(mode, reqs[0].time_signature) if h else {}
    c = Constraints(bars=bars, time_signature=reqs[0].time_signature, pitch_ranges=ranges, mode=mode,
                    tempo=MODEL_TEMPO if tempo == "request" else tempo, cadence=cadence, tonic_start=fresh,
                    centres=centres, tracks=tracks, tacet=not primer, drums=drums, ordered=reqs[0].style in ORDERED_STYLES,
                    **habits)
    seeds = [r.seed * 7919 + seed_offset for r in reqs]
    rows = composer.generator.generate_batch(fixed, music, c, cfg, seeds=seeds)
    return [[t for t in new if t != composer.tokenizer.eos] for new in rows]


def _drums(lines: list[Instrument]) -> tuple[int, ...]:
    """The lines a timpani plays (`Instrument.strikes_roots`)."""
    return tuple(k for k, line in enumerate(lines) if line.strikes_roots)


def _first_bars(composer, stream: list[int], n: int) -> list[int]:
    starts = composer.tokenizer.bar_starts(stream)
    return stream[: starts[n]] if len(starts) > n else list(stream)


def _leading_bars(composer, stream: list[int], room: int) -> list[int]:
    """The opening whole bars of `stream` that fit in `room` tokens (at least one bar)."""
    starts = [int(b) for b in composer.tokenizer.bar_starts(stream)] + [len(stream)]
    fitting = [b for b in starts[1:] if b <= room]
    return stream[: fitting[-1] if fitting else starts[1]]


def _fim_block(composer, prefix: list[int], suffix: list[int]) -> list[int]:
    """FIM_PRE prefix FIM_SUF suffix FIM_MID within half the context: the suffix keeps at most a
    quarter (cut after a whole note), the prefix its last bars that fit in the rest."""
    v = composer.tokenizer.vocab
    suffix = composer.generator.head(list(suffix), composer.model.cfg.context // 4)
    room = composer.model.cfg.context // 2 - len(suffix) - 16
    prefix = composer.generator._trim(list(prefix), max(room, 0))
    return [v["FIM_PRE"], *prefix, v["FIM_SUF"], *suffix, v["FIM_MID"]]


def _to_score(composer, ids, semitones, track_of_slot, names, programs, req: Request, tempos=None) -> Score:
    """Decoded slots → named tracks in request order, in the requested key, tempo and metre.

    `track_of_slot[k]` is the track slot k's line goes into: a piano's lines become one track.
    `tempos`, a primer's tempo map, replaces the request's one tempo: its ritardandos stay where they
    were, and new bars go on at its last tempo.
    """
    decoded = composer.tokenizer.decode(ids).resample(TPQ)
    by_slot = {t.program: t for t in decoded.tracks}
    score = Score(TPQ)
    num, den = (int(x) for x in req.time_signature.split("/"))
    score.time_signatures.append(TimeSignature(0, num, den))
    score.tempos.extend(tempos or [Tempo(0, req.tempo)])
    sharps, mode = key_signature(req.key)  # by its spelling: Gb major has six flats, F# major six sharps
    score.key_signatures.append(KeySignature(0, sharps, 0 if mode == "major" else 1))
    tracks = [Track(name=name, program=program, is_drum=False) for name, program in zip(names, programs, strict=True)]
    end = req.bars * TPQ * 4 * num // den
    for slot, idx in enumerate(track_of_slot):
        line = Track()
        for note in by_slot[slot].notes if slot in by_slot else ():
            note.pitch = note.pitch + semitones
            note.velocity = 84 if slot == 0 else 72
            line.notes.append(note)
        _clip_overlaps(line, end)
        tracks[idx].notes.extend(line.notes)
    for track in tracks:
        _merge_unisons(track)
    score.tracks = tracks
    return score


def _clip_overlaps(track: Track, end: int) -> None:
    """One line per slot: a note ends where the next one starts, and nothing rings past the
    last bar (a loop must be exactly its bars long)."""
    track.notes.sort()
    notes = list(track.notes)
    for a, b in zip(notes, notes[1:], strict=False):
        if a.time < b.time < a.time + a.duration:  # a later onset cuts a ringing note; a chord stays
            a.duration = b.time - a.time
    for n in notes:
        n.duration = min(n.duration, end - n.time)
    track.notes.filter(lambda n: n.duration > 0 and n.time < end, inplace=True)


def _merge_unisons(track: Track) -> None:
    """Two lines of one track on the same key: MIDI cannot hold a pitch twice on a channel, so a
    unison keeps one note and a pitch struck again while held ends the held one."""
    track.notes.sort(key=lambda n: (n.pitch, n.time, -n.duration))
    notes, keep = list(track.notes), []
    for n in notes:
        if keep and keep[-1].pitch == n.pitch and n.time < keep[-1].end:
            if n.time == keep[-1].time:
                continue  # the same note twice: the longer one, first in this order, stays
            keep[-1].duration = n.time - keep[-1].time
        keep.append(n)
    track.notes.clear()
    track.notes.extend(keep)
    track.notes.sort()


def _finish(score: Score, req: Request, composer: Composer, do_repair: bool, timings: dict, t0: float,
            closing: int | None = None, bars: tuple[int, int] | None = None):
    """The Draft of a score: repaired (only `bars`, first to last, where the rest is the user's music
    and stays as they wrote it), the closing chord (the bar from tick `closing`, if it closes on a
    cadence) kept, the report and timings recorded."""
    from musedraft.draft import Draft  # noqa: PLC0415

    report = None
    if req.loop:  # the score says where it comes round, as a saved loop's MIDI does: check() and repair()
        # hear the join there, also when the last bar is silent, and without being told loop=True
        score.markers.extend([TextMeta(0, LOOP_MARKERS[0]), TextMeta(req.bars * _bar_ticks(req), LOOP_MARKERS[1])])
    if do_repair:
        from musedraft.harmony import HarmonyConfig, check  # noqa: PLC0415
        from musedraft.harmony import repair as harmony_repair  # noqa: PLC0415

        t = time.perf_counter()
        config = HarmonyConfig.for_style(req.style)
        result = harmony_repair(score, config, bars=bars, loop=req.loop)
        edits, repaired = result.edits, result.score
        if closing is not None:  # the closing chord was written to the key's tonic on purpose: repair keeps it
            repaired = _with_last_bar(repaired, score, closing)
            edits = [e for e in edits if e.time < closing]
        score = repaired
        report = {"edits": [e.to_dict() for e in edits],
                  "findings_before": [f.to_dict() for f in result.findings_before],
                  "findings_after": [f.to_dict() for f in (check(score, config) if closing is not None else result.findings_after)],
                  "notes": sum(len(t.notes) for t in score.tracks)}
        timings["repair"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    return Draft(score=score, request=req.to_dict(), seed=req.seed, model_id=composer.model_id, key=req.key,
                 loop=req.loop, repair=report, timings={k: round(v, 4) for k, v in timings.items()})


def _bar_ticks(req: Request) -> int:
    num, den = (int(x) for x in req.time_signature.split("/"))
    return TPQ * 4 * num // den


def _with_last_bar(repaired: Score, original: Score, start: int) -> Score:
    """`repaired` with every note from tick `start` on taken back from `original`."""
    out = repaired.copy()
    for track, source in zip(out.tracks, original.tracks, strict=True):
        track.notes.filter(lambda n: n.time < start, inplace=True)
        for note in source.notes:
            if note.time >= start:
                track.notes.append(note.copy())
        track.notes.sort()
    return out


def estimate_key(score: Score) -> str:
    """The key of a score: its MIDI key signature if it has one, else a Krumhansl-Schmuckler
    analysis (music21) of its duration-weighted pitch classes."""
    if len(score.key_signatures):
        return key_of_signature(score.key_signatures[0])
    from musedraft.harmony.keys import key_of_score  # noqa: PLC0415

    return key_of_score(score)


def _primer_parts(source) -> tuple[Score, dict | None]:
    from musedraft.score import load_midi  # noqa: PLC0415

    if hasattr(source, "score") and hasattr(source, "request"):  # a Draft
        return source.score.copy(), source.request
    if isinstance(source, Score):
        return source.copy(), None
    return load_midi(source), None


def _split_lines(track: Track, lines: list[Instrument]) -> list[Track]:
    """A keyboard track as the lines the model writes (top first). At each onset the notes struck go,
    in pitch order, to distinct lines that are not still holding a note, the lines whose range centres
    fit them best; notes beyond the lines join the nearest one as a chord. No note is dropped."""
    out = [Track(name=track.name, program=track.program, is_drum=False) for _ in lines]
    centre = [(i.low + i.high) / 2 for i in lines]
    busy_until = [0] * len(lines)
    onsets: dict[int, list] = {}
    for note in track.notes:
        onsets.setdefault(note.time, []).append(note)
    for onset in sorted(onsets):
        group = sorted(onsets[onset], key=lambda n: -n.pitch)
        free = [j for j in range(len(lines)) if busy_until[j] <= onset]
        pool = free if len(free) >= len(group) else list(range(len(lines)))
        # the top and bottom notes (and as many between as lines allow) each get a line of their own
        distinct = list(range(len(group))) if len(group) <= len(pool) else [*range(len(pool) - 1), len(group) - 1]
        chosen = min(combinations(pool, len(distinct)),
                     key=lambda ks: sum(abs(centre[k] - group[i].pitch) for k, i in zip(ks, distinct, strict=True)))
        placed = dict(zip(distinct, chosen, strict=True))
        for i, note in enumerate(group):
            k = placed[i] if i in placed else min(chosen, key=lambda j: abs(centre[j] - note.pitch))
            out[k].notes.append(note.copy())
            busy_until[k] = max(busy_until[k], note.end)
    return out


@dataclass
class _Prepared:
    """A user's score in the model's terms, and what maps the model's answer back onto its tracks."""

    header: list[int]
    stream: list[int]  # the music as REMI ids, transposed by `shift` into the model's frame
    shift: int
    programs: list[int]  # of the user's pitched tracks, whose names are the request's instruments
    ranges: list[tuple[int, int]]  # per line, in the model's frame: the instrument's and the music's own
    mode: str
    request: Request
    track_of_line: list[int]  # which of the user's tracks each line belongs to
    tempos: list[Tempo]
    source: Score  # the user's score at TPQ, every track
    modelled: list[int]  # the index in source.tracks of each track the model writes (its pitched ones, at most 8)
    drums: tuple[int, ...]  # the lines a timpani plays
    loops: bool  # the source says it loops: a Draft's `loop`, or the loop markers musedraft writes into its MIDI

    def to_score(self, composer: Composer, ids: list[int], written: tuple[int, int]) -> Score:
        """The model's ids back in the user's key, tracks, programs and tempo map. Outside `written`
        (first and last bar the model wrote, 1-based) the user's notes come back as they were: their
        timing, lengths and velocities, which the tokens round to a 32nd-note grid, cut at 12 beats or do
        not carry. A note belongs to the bar the tokenizer put it in. The tracks the model does not write
        (drums, parts past the eighth) come back as they were, in the file's track order."""
        score = _to_score(composer, ids, -self.shift, self.track_of_line, self.request.instruments, self.programs,
                          self.request, self.tempos)
        bar = _bar_ticks(self.request)
        start, end = (written[0] - 1) * bar, written[1] * bar
        grid = composer.grid  # where the tokenizer put each note
        for track, k in zip(score.tracks, self.modelled, strict=True):
            given = [n for n in self.source.tracks[k].notes if not start <= round(n.time / grid) * grid < end]
            new = [n for n in track.notes if start <= n.time < end]
            track.notes = type(track.notes)(sorted((n.copy() for n in given + new), key=lambda n: (n.time, n.pitch)))
        for track, k in zip(score.tracks, self.modelled, strict=True):
            _keep_performance(track, self.source.tracks[k], start, end)
        if len({key_of_signature(ks) for ks in self.source.key_signatures}) > 1:  # it modulates: keep where
            score.key_signatures = self.source.key_signatures.copy()
        # section names stay; loop points are the result's to say (Draft.markers), not the source's
        score.markers = self.source.markers.filter(lambda m: m.text not in LOOP_MARKERS, inplace=False)
        ours = dict(zip(self.modelled, score.tracks, strict=True))
        score.tracks = [ours[i] if i in ours else t.copy() for i, t in enumerate(self.source.tracks)
                        if i in ours or len(t.notes)]
        return score


def _keep_performance(track: Track, source: Track, start: int, end: int) -> None:
    """A user's track keeps what it says besides its notes: controllers (volume, expression, the
    sustain pedal) throughout, as they shape the whole part; pitch bends, which belong to the notes
    they bend, outside the bars written anew (ticks `start` to `end`), with the wheel centred over
    the new notes and set back as the user had it after them. (Lyrics cannot come: symusic 0.6 reads
    none from a MIDI file.)"""
    track.controls = source.controls.copy()
    track.pedals = source.pedals.copy()
    bends = sorted(source.pitch_bends, key=lambda b: b.time)
    kept = [b.copy() for b in bends if not start <= b.time < end]

    def value_at(tick: int) -> int:
        return next((int(b.value) for b in reversed(bends) if b.time < tick), 0)

    if value_at(start) != 0:
        kept.append(PitchBend(start, 0))
    if value_at(end) != 0 and not any(b.time == end for b in bends) and any(n.time >= end for n in source.notes):
        kept.append(PitchBend(end, value_at(end)))
    track.pitch_bends = type(source.pitch_bends)(sorted(kept, key=lambda b: b.time))


def _padded_pickup(score: Score) -> Score:
    """An upbeat as the model knows it: notation programs export a pickup as a short first bar with a
    time signature of its own (MuseScore 3: 1/4, then 4/4 from the next bar), which read as a change of
    metre; the corpus's MIDI, like most, pads it to a full bar. The music moves later by the beats the
    pickup lacks, its opening tempo, key and markers stay at the start, and the one metre holds from bar 1;
    the result comes back so, with rests before the upbeat."""
    signatures = sorted(score.time_signatures, key=lambda ts: ts.time)
    if len(signatures) < 2 or signatures[0].time != 0:
        return score
    pickup, metre = signatures[0], signatures[1]
    short = score.ticks_per_quarter * 4 * int(pickup.numerator) // int(pickup.denominator)
    full = score.ticks_per_quarter * 4 * int(metre.numerator) // int(metre.denominator)
    if metre.time != short or short >= full:
        return score
    out = score.shift_time(full - short)
    for events in (out.tempos, out.key_signatures, out.markers):
        for event in events:
            if event.time == full - short:  # it was at the start: it stays there
                event.time = 0
    out.time_signatures = type(out.time_signatures)(
        [TimeSignature(0, int(metre.numerator), int(metre.denominator)), *(ts for ts in out.time_signatures if ts.time > full)])
    return out


def _user_score(source) -> tuple[Score, dict | None]:
    """A user's music (a MIDI path or bytes, a Score, a Draft) at the model's resolution, a pickup padded,
    with the request it was composed with (a Draft's) or None."""
    score, request = _primer_parts(source)
    return _padded_pickup(tidy_metre(score)).resample(TPQ), request


@dataclass(frozen=True)
class _Stretch:
    """Bars of a piece in one metre, from tick `start` to `end` (None: to the end), after `before` bars."""

    start: int
    end: int | None
    before: int
    bars: int | None  # how many bars it has (None for the last: as many as its music)
    metre: tuple[int, int]

    def holds(self, bar: int) -> bool:
        return bar > self.before and (self.bars is None or bar <= self.before + self.bars)


def _stretches(score: Score) -> list[_Stretch]:
    """The piece cut where its metre changes (bars counted as `metre_segments` counts them): the model
    writes one metre at a time."""
    every = metre_segments(score)
    segments = [seg for k, seg in enumerate(every) if k == 0 or seg[3:] != every[k - 1][3:]]  # a repeated metre is no change
    return [_Stretch(tick, nxt[0] if nxt else None, first, nxt[1] - first if nxt else None, (num, den))
            for (tick, first, _, num, den), nxt in zip(segments, [*segments[1:], None], strict=True)]


def _window(score: Score, stretch: _Stretch) -> Score:
    """The music of one stretch on its own, from tick 0: the notes struck in it, the tempo and key in force
    where it starts and those changing within it, its metre, markers, controllers and bends."""
    end = math.inf if stretch.end is None else stretch.end
    inside = lambda e: stretch.start <= e.time < end  # noqa: E731
    out = score.copy()
    for events in (out.tempos, out.key_signatures):
        kept = [e.copy() for e in events if inside(e)]
        earlier = [e for e in events if e.time <= stretch.start]
        if earlier and not any(e.time == stretch.start for e in kept):
            in_force = max(earlier, key=lambda e: e.time).copy()
            in_force.time = stretch.start
            kept.insert(0, in_force)
        events.clear()
        events.extend(kept)
    out.time_signatures = type(out.time_signatures)([TimeSignature(stretch.start, *stretch.metre)])
    out.markers.filter(lambda m: inside(m) and m.text not in LOOP_MARKERS, inplace=True)
    for track in out.tracks:
        for events in (track.notes, track.controls, track.pitch_bends, track.pedals):
            events.filter(inside, inplace=True)
    return out.shift_time(-stretch.start)


def _spliced(score: Score, window: Score, written: Score, stretch: _Stretch) -> Score:
    """`score` with one stretch's music as `written` (the window's music, continued or rewritten) has it:
    everything before and after the stretch as the user wrote it, the tempo, metre and key changes theirs."""
    end = math.inf if stretch.end is None else stretch.end
    out = score.copy()
    out.markers.filter(lambda m: m.text not in LOOP_MARKERS, inplace=True)
    if not len(out.key_signatures):  # the key the window was read in (estimated), for the whole piece
        out.key_signatures.extend(ks.copy() for ks in written.key_signatures[:1])
    placed = written.shift_time(stretch.start)
    present = [i for i, t in enumerate(window.tracks) if len(t.notes)]  # the window's tracks that `written` holds
    for i, track in zip(present, placed.tracks, strict=True):
        mine = out.tracks[i]
        mine.name = track.name
        for attr in ("notes", "controls", "pitch_bends", "pedals"):
            kept = [e for e in getattr(mine, attr) if not stretch.start <= e.time < end] + list(getattr(track, attr))
            events = getattr(mine, attr)
            events.clear()
            events.extend(sorted((e.copy() for e in kept), key=lambda e: e.time))
    return out


def _bars_of(score: Score) -> int:
    """How many bars a score's notes reach into, across its changes of metre."""
    last = max((n.end - 1 for t in score.tracks for n in t.notes), default=0)
    return bisect.bisect_right(bar_lines(score), last)


def _prepare(composer: Composer, score: Score, request: dict | None, style: str | None, bars: int, seed: int,
             at_bar: int | None = None) -> _Prepared:
    """A user's score (`_user_score`, in one metre) in the model's terms: normalised line tracks, header,
    stream, and how to map back.

    The new music is written in the key in force where it starts, bar `at_bar` (None: after the end):
    a primer that modulates goes on in the key it reached, not the one it set out in.

    A keyboard track that plays chords is split into up to four lines (as compose() writes a piano),
    so its continuation plays chords too; the lines become one track again in the result.
    """
    from musedraft.score import tempo_bpm, time_signature  # noqa: PLC0415  (the name compose's argument has)

    tok = composer.tokenizer
    modelled = [i for i, t in enumerate(score.tracks) if not t.is_drum and len(t.notes)][: tok.vocab.config.max_tracks]
    pitched = [score.tracks[i] for i in modelled]
    programs = [int(t.program) for t in pitched]
    insts = [instrument_of_track(t.name, program) for t, program in zip(pitched, programs, strict=True)]
    names = track_names(pitched)
    per_instrument, _ = _lines(insts, tok.vocab.config.max_tracks, [most_at_once(t) for t in pitched])
    line_tracks, line_insts, track_of_line = [], [], []
    for k, (track, lines) in enumerate(zip(pitched, per_instrument, strict=True)):
        for line, line_track in zip(lines, _split_lines(track, lines), strict=True):
            if len(line_track.notes):
                line_tracks.append(line_track)
                line_insts.append(line)
                track_of_line.append(k)
    lined = score.copy()
    lined.tracks = line_tracks
    # A file that lists its bass first reads as nonsense to the model (40 held-out chorales: 2.3 nats a
    # note top first, 7.0 reversed), so the lines go in top first whatever the file's order; the result keeps it.
    order = voice_order(lined)
    lined = in_voice_order(lined, order)
    line_insts, track_of_line = ([xs[j] for j in order] for xs in (line_insts, track_of_line))
    if len({key_of_signature(ks) for ks in score.key_signatures}) > 1:
        at = math.inf if at_bar is None else (at_bar - 1) * ticks_per_bar(score)
        signatures = sorted(score.key_signatures, key=lambda ks: ks.time)
        key = key_of_signature(([ks for ks in signatures if ks.time <= at] or signatures[:1])[-1])
    else:
        key = (request or {}).get("key") or estimate_key(score)
    style = check_style(style or (request or {}).get("style") or "classical")
    tonic, mode = parse_key(key)
    shift = normalising_shift(tonic, mode)
    normal = tok.slot_score(transpose(lined, shift, *tok.vocab.config.pitch_range))
    header = tok.header_ids(Controls.of_score(normal, style, mode))
    stream = tok.stream_ids(normal)
    ranges = []
    for t, inst in zip(normal.tracks, line_insts, strict=True):
        pitches = [n.pitch for n in t.notes]
        ranges.append((min(inst.low + shift, min(pitches)), max(inst.high + shift, max(pitches))))
    num, den = time_signature(score)
    req = Request(style, key, round(tempo_bpm(score), 2), f"{num}/{den}", names, bars, int(seed), False)
    loops = bool(request.get("loop")) if request else is_marked_loop(score)
    return _Prepared(header, stream, shift, programs, ranges, mode, req, track_of_line, list(score.tempos), score,
                     modelled, _drums(line_insts), loops)



def continue_midi(primer, bars: int = 8, *, style: str | None = None, seed: int = 0, repair: bool = True,
                  temperature: float | None = None, top_p: float | None = None, model: Composer | str | os.PathLike | None = None) -> Draft:
    """Continue a user's music by `bars` bars, ending on a cadence.

    Args:
        primer: a MIDI path, MIDI bytes, a symusic Score or a Draft. Its tracks (up to 8 pitched ones)
            keep their names and programs and go on; its notes come back as written (the model reads
            them on its 32nd-note grid), and the repair leaves them alone (it edits the new bars only).
            Drum tracks go on playing the primer's groove (`musedraft.drums`: its last bar, two or four,
            repeated; the closing bar strikes its downbeat); pitched tracks past the eighth come back as
            they were, with no new bars.
        bars: how many new bars to add after the primer's last bar.
    Returns:
        A Draft holding the primer followed by the continuation, in the key, tempo and metre the primer
        ends in (a primer that changes metre is read from its last change on: the model writes one metre).
    """
    t0 = time.perf_counter()
    bars, seed = _whole("bars", bars, 1, 256), _whole("seed", seed, 0, MAX_SEED)
    composer = model if isinstance(model, Composer) else load_model(model)
    whole, request = _user_score(primer)
    last = _stretches(whole)[-1]  # a piece that changes metre goes on from its last stretch, in its metre
    window = _window(whole, last) if last.start else whole
    p = _prepare(composer, window, request, style, bars, seed)
    bar = _bar_ticks(p.request)
    starts = composer.tokenizer.bar_starts(p.stream)
    # the tokens hold bars where notes are struck; a final chord held on through a bar of its own (a beat
    # or more: not a late release) is primer too, so the new bars begin after it, not under it
    sounds = max((n.end for t in window.tracks if not t.is_drum for n in t.notes), default=0)
    held = max(0, (sounds - TPQ) // bar + 1 - len(starts))
    stream = p.stream + p.stream[starts[-1]: starts[-1] + 2] * held  # Bar, TimeSig: a bar with nothing struck
    primer_bars = len(starts) + held
    cfg = _sampling(temperature, top_p, p.request.density)
    t1 = time.perf_counter()
    new = _generate(composer, p.header, stream, bars, p.ranges, p.mode, p.request, cfg, cadence=True, tempo=None,
                    tracks=p.track_of_line, drums=p.drums, primer=True)[0]
    timings = {"load": t1 - t0, "generate": time.perf_counter() - t1}
    written = (primer_bars + 1, primer_bars + bars)
    p.request.bars = primer_bars + bars  # in the window: nothing rings past its last bar
    score = p.to_score(composer, p.header + stream + new, written)
    score.tracks = [carry_on(t, bar, primer_bars, bars, composer.grid) if t.is_drum else t for t in score.tracks]
    if last.start:
        score = _spliced(whole, window, score, last)
    p.request.bars += last.before
    return _finish(score, p.request, composer, repair, timings, t0, closing=last.start + (primer_bars + bars - 1) * bar,
                   bars=(last.before + written[0], last.before + written[1]))


def regenerate(source, bars: tuple[int, int], *, style: str | None = None, seed: int = 0, repair: bool = True,
               temperature: float | None = None, top_p: float | None = None, model: Composer | str | os.PathLike | None = None,
               loop: bool | None = None) -> Draft:
    """Rewrite bars `first..last` (1-based, inclusive), keeping the music before and after them.

    The new bars are written with both sides in view (fill-in-the-middle), so they lead into what
    follows; regenerating the final bars writes a new cadence instead, or, in a loop, bars that lead
    back into the opening. The repair edits the new bars only (in a loop, hearing the join too); the
    others keep their notes and velocities, and drum tracks come back as they were. In a piece that
    changes metre the bars must lie in one metre, and the model reads that stretch alone.
    `loop`: whether the piece loops; None takes the source's word (a loop Draft, or the MIDI file of one).
    """
    t0 = time.perf_counter()
    seed = _whole("seed", seed, 0, MAX_SEED)
    composer = model if isinstance(model, Composer) else load_model(model)
    whole, request = _user_score(source)
    asked = bar_range(bars)
    stretches = _stretches(whole)
    stretch = next(s for s in stretches if s.holds(asked[0]))  # the last holds every bar after it
    if not stretch.holds(asked[1]):  # a change of metre falls among the bars
        change = stretch.before + stretch.bars + 1
        raise RequestError(f"Bars {asked[0]}-{asked[1]} cross the change of metre at bar {change}; musedraft writes one "
                           f"metre at a time: regenerate bars {asked[0]}-{change - 1} and {change}-{asked[1]} separately.")
    windowed = len(stretches) > 1
    window = _window(whole, stretch) if windowed else whole
    p = _prepare(composer, window, request, style, 0, seed, at_bar=asked[0] - stretch.before)
    starts = list(composer.tokenizer.bar_starts(p.stream)) + [len(p.stream)]
    total = len(starts) - 1
    if asked[1] - stretch.before > total:
        raise RequestError(f"bars={bars} must lie within 1-{stretch.before + total} (the music has {stretch.before + total} bars).")
    first, last = asked[0] - stretch.before, asked[1] - stretch.before
    prefix, suffix = p.stream[: starts[first - 1]], p.stream[starts[last]:]
    cfg = _sampling(temperature, top_p, p.request.density)
    t1 = time.perf_counter()
    n = last - first + 1
    # a piece that changes metre is rewritten within one stretch, as a piece: what comes round, or after
    # the stretch in another metre, the model cannot read
    p.request.loop = not windowed and (p.loops if loop is None else bool(loop))
    closes = not p.request.loop and stretch.end is None
    # what the new bars come from and lead into: going round a loop, the end comes before the opening
    before, after = (prefix or suffix, suffix or prefix) if p.request.loop else (prefix, suffix)
    if after:
        fixed = p.header + _fim_block(composer, before, _leading_bars(composer, after, composer.model.cfg.context // 4))
        middle = _generate(composer, fixed, [], n, p.ranges, p.mode, p.request, cfg, cadence=False, tempo=None,
                           tracks=p.track_of_line, drums=p.drums, primer=True)[0]
    else:
        middle = _generate(composer, p.header, prefix, n, p.ranges, p.mode, p.request, cfg, cadence=closes,
                           tempo=None, tracks=p.track_of_line, drums=p.drums, primer=True)[0]
    timings = {"load": t1 - t0, "generate": time.perf_counter() - t1}
    p.request.bars = total  # in the window: nothing rings past its last bar
    score = p.to_score(composer, p.header + prefix + middle + suffix, (first, last))
    if windowed:
        score = _spliced(whole, window, score, stretch)
        p.request.bars = _bars_of(score)
    closing = stretch.start + (total - 1) * _bar_ticks(p.request) if closes and not after else None
    return _finish(score, p.request, composer, repair, timings, t0, closing=closing,
                   bars=(stretch.before + first, stretch.before + last))

"""Before generation: what the training pieces of each style usually do, measured once and shipped
beside the weights (habits.json in the checkpoint folder): how far a line ranges, how long a note lasts.

A 1.7 M-parameter model with a 512-token window forgets where a line started: in drafts mirroring
held-out pieces its folk tunes spanned 17 semitones and its Renaissance voices 16 (medians), where
the training pieces' lines span 14 and 12 over 16-32 bars. The sampler keeps each line inside an
ambitus it draws from the style's line spans (one ceiling for every line was a ceiling the drafts
filled), and those spans come from the training split only, so the held-out pieces stay held out.
Likewise it sometimes writes a chorale as a hymn in whole notes (60% of one draft's notes, where no
training chorale has even 15%): notes longer than the style's longest usual note cost extra. A style's
share of notes on each pitch class outside the key (chorales in major: F sharp 1.7%, E flat 0.1%) is
what the key guidance lets through before it starts to cost, and its share of beats in which every part
rests (Renaissance 0.13%, romantic 1.05%) the silence the sampler lets through before a rest costs. The
share of the time a line plays (chorales 96%, madrigals 71%) is how far the sampler pulls resting
voices back in. The share of notes in each length class, per metre (medieval pieces in 6/8: a third
eighths, a quarter dotted quarters), is what the sampler lets each note length have before it costs:
the model writes 6/8 as the folk tunes that hold most of its 6/8 notes. Where the style's parts for an
instrument centre (madrigal sopranos on B4, where a soprano's middle is G#4) is where its lines are
centred: drafts asking for the named singers' modern registers sang Monteverdi's upper voices 5-7
semitones low. Where a piece has several parts for one instrument, each rank has its own centre
(classical first violins on D5, second violins on F#4-G4): with one centre pooled over both (B4), a
quartet's two violins were named one register, and music21 heard the requested key in fewer quartet drafts.

    corpus table (train split) ─► openings of 16-32 bars ─► each line's span, each note's length,
        each note's pitch class (in C major / A minor), each silent beat, the time each line plays,
        each note's length class in its metre, each part's median by instrument (and by rank among
        a piece's parts for one instrument) ─► habits per style
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from musedraft.errors import CorpusError, ModelError
from musedraft.files import atomic_path
from musedraft.instruments import Instrument, instrument_of_track, lines_of

__all__ = ["StyleHabits", "HabitsConfig", "measure_habits", "save_habits", "load_habits", "length_class",
           "line_centre", "line_centres", "LENGTH_EDGES", "ANY_METRE"]

FILENAME = "habits.json"
# Upper edges, in quarters, of the note-length classes: sixteenths, eighths, quarters, dotted quarters,
# halves, dotted halves, longer. A class, not the exact length: a share per Duration token would be
# too thin to measure (medieval 6/8 has 24 training pieces).
LENGTH_EDGES = (0.375, 0.75, 1.25, 1.75, 2.5, 3.5)
ANY_METRE = "*"  # the lengths key pooling every metre, for a metre the style has too few pieces in


def length_class(quarters):
    """The length class (index into the shares) of notes lasting `quarters` (a number or an array)."""
    return np.searchsorted(LENGTH_EDGES, quarters)


@dataclass(frozen=True)
class StyleHabits:
    ambitus: int  # semitones between a line's lowest and highest note that most lines of the style stay within
    pieces: int  # training pieces measured
    lines: int  # lines (tracks with enough notes to have a span) measured
    longest_note: float | None = None  # beats of the metre that all but the longest 1 in 100 notes stay within
    pitch_classes: dict[str, list[float]] | None = None  # mode -> share of notes on each pitch class, in C major / A minor
    rests: float | None = None  # share of beats, from the first note, in which every part rests
    sounding: float | None = None  # share of the time, from the first note to the last, that a line plays
    lengths: dict[str, list[float]] | None = None  # metre ('6/8', or ANY_METRE) -> share of notes in each length class
    spans: list[int] | None = None  # spans (semitones) of the lines above the bass, or of a lone line, at equally likely quantiles: each new line draws its ambitus from them
    bass_spans: list[int] | None = None  # the same for the lowest line of pieces in two or more (chorale basses span 18 semitones, the voices above 12-14)
    centres: dict[str, float] | None = None  # one-line instrument -> median pitch of the style's parts for it (those with HabitsConfig.min_parts): where the style writes for it
    ranks: dict[str, list[float]] | None = None  # one-line instrument -> the centre of its top, second, ... part in the style's pieces with two or more parts for it (each rank with HabitsConfig.min_parts)

    def centre(self, line: Instrument, rank: int | None = None) -> float:
        """Where a line for `line`'s instrument sits in this style: madrigal sopranos centre on B4, a
        soprano's middle (G#4) a minor third below. `rank` is the line's place (0: the top) among a
        request's lines for the same instrument: a classical first violin centres on D5, the second on
        F#4-G4, where the two pooled centre on B4. An instrument the style has too few parts for, or a
        keyboard's line (its own range), keeps its middle; a rank the style has too few parts for takes
        the pooled centre; a centre outside the line's range is moved into it."""
        by_rank = (self.ranks or {}).get(line.name, [])
        centre = by_rank[rank] if rank is not None and rank < len(by_rank) else (self.centres or {}).get(line.name)
        if centre is None or len(lines_of(line)) > 1:
            return line.middle
        return min(max(centre, line.low), line.high)

    def guidance(self, mode: str, time_signature: str) -> dict:
        """The generator's Constraints fields these habits fill, for a request in `mode` and `time_signature`."""
        profile = (self.pitch_classes or {}).get(mode)
        lengths = self.lengths or {}
        shares = lengths.get(time_signature, lengths.get(ANY_METRE))
        return dict(ambitus=self.ambitus, spans=tuple(self.spans) if self.spans else None,
                    bass_spans=tuple(self.bass_spans) if self.bass_spans else None,
                    longest_note=self.longest_note, rests=self.rests,
                    borrowed=tuple(profile) if profile else None, sounding=self.sounding,
                    lengths=tuple(shares) if shares else None)


def line_centre(line: Instrument, habits: StyleHabits | None, rank: int | None = None) -> float:
    """Where `line` centres: in its style (`StyleHabits.centre`), or at its instrument's middle for a
    checkpoint without habits for the style."""
    return habits.centre(line, rank) if habits else line.middle


def line_centres(lines: list[Instrument], habits: StyleHabits | None) -> list[float]:
    """Where each of a request's lines centres. Several lines for one instrument rank in the order
    asked for, as a score lists violin I above violin II; a lone line takes its instrument's pooled centre."""
    count = Counter(line.name for line in lines)
    seen: Counter[str] = Counter()
    centres = []
    for line in lines:
        centres.append(line_centre(line, habits, seen[line.name] if count[line.name] > 1 else None))
        seen[line.name] += 1
    return centres


@dataclass(frozen=True)
class HabitsConfig:
    excerpt_bars: tuple[int, int] = (16, 32)  # each piece's opening of a length drawn from this range: a draft's length
    quantile: float = 0.75  # the ambitus is this quantile of the line spans: three lines in four stay inside it
    span_draws: int = 10  # the spans a new line draws from: the midpoints of this many equally likely bands of the line spans
    note_quantile: float = 0.99  # the longest usual note is this quantile of the note lengths
    min_notes: int = 5  # a line with fewer notes says little about its span
    min_parts: int = 5  # an instrument with fewer of the style's parts keeps its own middle (StyleHabits.centre)
    max_pieces: int = 300  # per style (a deterministic sample); folk has 11,000 tunes
    metre_pieces: int = 10  # a metre with at least this many of the style's pieces gets its own length shares
    split: str = "train"
    seed: int = 0


def measure_habits(corpus_cache: str | os.PathLike, config: HabitsConfig | None = None,
                   progress: bool = False) -> dict[str, StyleHabits]:
    """Each style's habits from the corpus built by `musedraft corpus build` (its table and MIDI files)."""
    from tqdm import tqdm  # noqa: PLC0415

    from musedraft.corpus import load_table  # noqa: PLC0415
    from musedraft.metrics import empty_beats  # noqa: PLC0415
    from musedraft.score import first_bars, load_midi, time_signature  # noqa: PLC0415
    from musedraft.tokenizer import normalising_shift  # noqa: PLC0415

    cfg = config or HabitsConfig()
    cache = Path(corpus_cache)
    rows = sorted((r for r in load_table(cache) if r.get("split") == cfg.split), key=lambda r: r["id"])
    by_style: dict[str, list[dict]] = {}
    for row in rows:
        by_style.setdefault(row["style"], []).append(row)
    if not by_style:
        raise CorpusError(f"The corpus at {cache} has no pieces in its {cfg.split!r} split.")
    rng = np.random.default_rng(cfg.seed)
    habits = {}
    for style, style_rows in tqdm(sorted(by_style.items()), desc="habits", unit="style", disable=not progress):
        if len(style_rows) > cfg.max_pieces:
            style_rows = [style_rows[i] for i in sorted(rng.choice(len(style_rows), cfg.max_pieces, replace=False))]
        lengths, silent, heard, played, span = [], 0, 0, 0, 0
        upper, bass = [], []  # spans of the lines above the bass (or a lone line) and of the bass
        classes = {"major": np.zeros(12), "minor": np.zeros(12)}
        by_metre: dict[str, np.ndarray] = {}  # time signature -> notes per length class
        metre_count: dict[str, int] = {}
        medians: dict[str, list[float]] = {}  # one-line instrument -> median pitch of each part for it
        ranked: dict[str, list[list[float]]] = {}  # one-line instrument -> per piece with several parts for it, their medians top first
        for row in style_rows:
            bars = int(rng.integers(cfg.excerpt_bars[0], cfg.excerpt_bars[1] + 1))
            score = first_bars(load_midi(cache / row["midi"]), bars)
            num, den = time_signature(score)
            beat = score.ticks_per_quarter * 4 / den  # a beat of the metre, as Duration tokens count
            lines = [t for t in score.tracks if not t.is_drum]
            notes = [n for t in lines for n in t.notes]
            measured = sorted(((float(np.median([n.pitch for n in t.notes])), t) for t in lines
                               if len(t.notes) >= cfg.min_notes), key=lambda m: -m[0])
            line_spans = [int(np.ptp([n.pitch for n in t.notes])) for _, t in measured]
            parts: dict[str, list[float]] = {}  # this piece's parts by instrument, top part first
            for median, t in measured:
                inst = instrument_of_track(t.name, t.program)
                if len(lines_of(inst)) == 1:
                    medians.setdefault(inst.name, []).append(median)
                    parts.setdefault(inst.name, []).append(median)
            for name, ms in parts.items():
                if len(ms) > 1:
                    ranked.setdefault(name, []).append(ms)
            if len(line_spans) > 1:
                bass.append(line_spans.pop())
            upper += line_spans
            ticks = np.array([n.duration for n in notes], dtype=np.float64)
            lengths += list(ticks / beat)
            metre = f"{num}/{den}"
            by_metre[metre] = by_metre.get(metre, 0) + np.bincount(length_class(ticks / score.ticks_per_quarter),
                                                                   minlength=len(LENGTH_EDGES) + 1)
            metre_count[metre] = metre_count.get(metre, 0) + 1
            shift = normalising_shift(row["key_pc"], row["mode"])  # to C major / A minor, as the tokens are
            moved = np.array([n.pitch + shift for n in notes], dtype=np.int64)
            classes[row["mode"]] += np.bincount(moved % 12, minlength=12)
            empty = empty_beats(score)
            silent, heard = silent + int(empty.sum()), heard + len(empty)
            if notes:  # every line counts over the whole excerpt: a voice that enters late has rested till then
                played += sum(_played(t.notes) for t in lines)
                span += len(lines) * (max(n.end for n in notes) - min(n.start for n in notes))
        if upper:  # every line with a span is in one or the other, and a piece's top line is always in upper
            spans = upper + bass
            habits[style] = StyleHabits(int(np.quantile(spans, cfg.quantile)), len(style_rows), len(spans),
                                        round(float(np.quantile(lengths, cfg.note_quantile)), 2),
                                        {m: [round(float(x), 4) for x in c / c.sum()] for m, c in classes.items() if c.sum()},
                                        round(silent / heard, 4), round(played / span, 4) if span else None,
                                        _length_shares(by_metre, metre_count, cfg.metre_pieces),
                                        _draws(upper, cfg.span_draws), _draws(bass, cfg.span_draws),
                                        {name: round(float(np.median(m)), 1) for name, m in sorted(medians.items())
                                         if len(m) >= cfg.min_parts} or None,
                                        _rank_centres(ranked, cfg.min_parts))
    return habits


def _rank_centres(ranked: dict[str, list[list[float]]], least: int) -> dict[str, list[float]] | None:
    """Per instrument, the median of its top, second, ... parts' medians over the pieces that have such
    a part, down to the first rank with fewer than `least` parts; an instrument needs two such ranks."""
    centres = {}
    for name, pieces in sorted(ranked.items()):
        kept = []
        for rank in itertools.count():
            at = [ms[rank] for ms in pieces if len(ms) > rank]
            if len(at) < least:
                break
            kept.append(round(float(np.median(at)), 1))
        if len(kept) > 1:
            centres[name] = kept
    return centres or None


def _draws(spans: list[int], n: int) -> list[int] | None:
    """The midpoints of `n` equally likely bands of `spans`: what a new line draws its ambitus from."""
    return [int(round(x)) for x in np.quantile(spans, (np.arange(n) + 0.5) / n)] if spans else None


def _length_shares(by_metre: dict[str, np.ndarray], pieces: dict[str, int], least: int) -> dict[str, list[float]]:
    """Share of notes in each length class: pooled over every metre, and per metre with `least` pieces."""
    pooled = sum(by_metre.values())
    counts = {ANY_METRE: pooled} | {m: c for m, c in sorted(by_metre.items()) if pieces[m] >= least and c.sum()}
    return {m: [round(float(x), 4) for x in c / c.sum()] for m, c in counts.items() if c.sum()}


def _played(notes) -> int:
    """Ticks in which at least one of a line's notes sounds (its chords and overlaps counted once)."""
    total, start, end = 0, None, None
    for n in sorted(notes, key=lambda n: n.start):
        if end is None or n.start > end:
            total += 0 if end is None else end - start
            start, end = n.start, n.end
        else:
            end = max(end, n.end)
    return total + (0 if end is None else end - start)


def save_habits(habits: dict[str, StyleHabits], folder: str | os.PathLike, config: HabitsConfig | None = None) -> Path:
    """Write habits.json into a checkpoint folder (atomically: a checkpoint never holds half a file)."""
    cfg = config or HabitsConfig()
    path = Path(folder) / FILENAME
    doc = {"measured_on": f"{cfg.split} split, openings of {cfg.excerpt_bars[0]}-{cfg.excerpt_bars[1]} bars",
           "ambitus_quantile": cfg.quantile, "longest_note_quantile": cfg.note_quantile,
           "styles": {style: asdict(h) for style, h in sorted(habits.items())}}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def load_habits(folder: str | os.PathLike) -> dict[str, StyleHabits]:
    """A checkpoint's habits; empty when it has none (a model trained before habits existed samples without)."""
    path = Path(folder) / FILENAME
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
        return {style: StyleHabits(**h) for style, h in doc["styles"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path} is unreadable ({exc}); delete it or rewrite it with "
                         "`musedraft corpus habits --out <checkpoint folder>`.") from None

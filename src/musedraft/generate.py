"""Generation: KV-cached sampling under masks that make every sequence valid REMI and honour the request.

The request's hard constraints (exact bar count, time signature, tempo, which track slots play and in
what pitch range, a closing cadence) are masks over the vocabulary; soft ones (stay in the key,
rhythmic density, avoid clashes and parallels with the other voices, keep each line in its register
and the style's habits) are logit biases. Filters run in a fixed order: grammar/constraint mask →
biases → temperature → top-k → top-p → one draw from a seeded torch.Generator, so a seed fixes the notes.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from functools import cache, cached_property

import numpy as np
import torch

from musedraft import sampling
from musedraft.errors import DecodeError
from musedraft.grammar import GrammarState
from musedraft.habits import LENGTH_EDGES, length_class
from musedraft.model import MusicTransformer
from musedraft.score import units_per_beat
from musedraft.tokenizer import Tokenizer

__all__ = ["SamplingConfig", "Constraints", "Generator", "SCALES"]

# Pitch classes in the normalised keys (C major, A minor; minor admits the raised leading tone).
SCALES = {"major": {0, 2, 4, 5, 7, 9, 11}, "minor": {9, 11, 0, 2, 4, 5, 7, 8}}
TONIC_TRIAD = {"major": {0, 4, 7}, "minor": {9, 0, 4}}
DOMINANT_SEVENTH = {"major": {7, 11, 2, 5}, "minor": {4, 8, 11, 2}}
TONIC = {"major": 0, "minor": 9}
DOMINANT = {"major": 7, "minor": 4}
LEADING_TONE = {"major": 11, "minor": 8}  # the dominant's third
OTHER_THIRD = {"major": 3, "minor": 1}  # the tonic's third in the other mode: E flat in C major, C sharp in A minor


@dataclass
class SamplingConfig:
    # 1.0 / 0.98, measured against held-out pieces (docs/evaluation.md): at 0.9 / 0.95 drafts came out
    # too regular in rhythm and too plain in pitch; the voice-leading guidance keeps the extra freedom
    # from turning into clashes.
    temperature: float = 1.0  # < 1 sharpens the model's choices
    top_k: int = 0  # 0 = off
    top_p: float = 0.98  # nucleus mass kept; 1 = off
    key_penalty: float = 1.0  # logit subtracted from pitches outside the scale; 0 = free chromaticism
    tonic_bias: float = 0.3  # logit added to the tonic triad's pitch classes: a key that must be unmistakable
    leading_tone_bias: float = 0.3  # in minor, logit added to the raised seventh and taken from the subtonic
    offbeat_penalty: float = 0.0  # logit subtracted from onsets between beats (sparser rhythm)
    clash_penalty: float = 4.5  # logit subtracted from a pitch that clashes with a sounding voice (on the beat; halved between beats)
    leap_clash: bool = True  # off the beat too, the full clash penalty for a pitch the line leaps to
    beat_clash: bool = True  # the full clash penalty on every felt beat, not only the strong ones (chorales change chord on each)
    parallel_penalty: float = 9.0  # logit subtracted from a pitch that moves in parallel fifths/octaves with another voice (twice a clash: see _voice_leading)
    crossing_penalty: float = 3.0  # where voices keep their order (Constraints.ordered), logit subtracted per line a pitch would cross
    gap_penalty: float = 1.5  # logit subtracted from a Position or Bar that leaves the music silent (see _gap_offsets)
    entry_bias: float = 2.0  # logit added at each onset to the Program token of a slot that has rested entry_rest beats: voices rest less
    entry_rest: float = 1.0  # beats a slot must have rested before the entry bias pulls it back in (see _entry_offsets)
    tacet_bars: float = 2.0  # bars an instrument that has played under half the style's share may rest before its lines are pulled in whatever the voice budget (see _tacet); 0 = off
    tacet_pull: float = 2.0  # logit added to that pull for each further bar the instrument rests
    tacet_deadline: bool = True  # pull an instrument in, however briefly it has rested, while the bars left barely let it sound in half the draft's (see _bars_owed)
    ambitus_penalty: float = 1.0  # logit subtracted per semitone a pitch takes its line beyond its ambitus (Constraints.spans or .ambitus)
    long_note_penalty: float = 1.0  # logit subtracted per beat a Duration lasts beyond Constraints.longest_note
    register_penalty: float = 0.3  # logit per semitone a pitch lies beyond its line's centre on the side the line has drifted to (Constraints.centres)
    register_slack: float = 4.0  # semitones a line's mean pitch may stray from its centre before register_penalty applies
    length_penalty: float = 1.0  # logit subtracted from a Duration whose length class the music already uses more than Constraints.lengths; 0 = off
    balance_penalty: float = 0.5  # logit subtracted from a pitch in the scale whose class the music already uses more than Constraints.borrowed gives it; 0 = off
    tonic_budget: bool = True  # the tonic bias only while the tonic triad has no more of the music's notes than Constraints.borrowed gives it
    tonic_downbeat: bool = True  # the tonic bias on every downbeat whatever the budget (see _tonic_wanted)
    chromatic_budget: bool = True  # no key penalty on a borrowed pitch class while the music uses it less than Constraints.borrowed (never the other mode's third)
    voice_budget: bool = True  # the entry bias only while the lines in view have played less of the time than Constraints.sounding
    rest_budget: bool = True  # no gap penalty while the silences of a beat or more stay within Constraints.rests of the whole piece (or one beat)
    rest_pull: float = 1.5  # logit added to a Position or Bar that opens a silence of a beat or more, times the beats of Constraints.rests the piece still owes (at most one); 0 = off
    use_cache: bool = True  # the uncached loop is the reference the tests compare against


@dataclass
class Constraints:
    """What the request fixes, expressed in the normalised key (C major / A minor)."""

    bars: int  # exactly this many new bars
    time_signature: str  # e.g. '3/4', forced after every Bar
    pitch_ranges: list[tuple[int, int]]  # per track slot, inclusive (normalised pitches)
    mode: str = "major"
    tempo: float | None = None  # forced at the first position of the first new bar
    cadence: bool = True  # close on V(7) → I in the last two bars
    tonic_start: bool = False  # the first downbeat sounds the tonic triad (a fresh piece states its key)
    ambitus: int | None = None  # semitones every line may span, counting the music in view; None = no limit (unless spans)
    spans: tuple[int, ...] | None = None  # the style's line spans above the bass, equally likely (its habit): each line draws its ambitus from them by the seed; None = ambitus
    bass_spans: tuple[int, ...] | None = None  # the same for the bass (bass_slot), when there are lines above it; None = spans
    longest_note: float | None = None  # beats the style's notes rarely outlast (the closing chord may); None = no limit
    borrowed: tuple[float, ...] | None = None  # share of the style's notes on each pitch class in this mode (its habit): the chromatic budget, the balance and the tonic budget; None = every note outside the scale costs key_penalty, no balance
    rests: float | None = None  # share of beats the style leaves silent in every part (its habit); None = every such rest costs gap_penalty
    sounding: float | None = None  # share of the time the style's lines play (its habit); None = the entry bias pulls every resting line in
    tracks: list[int] | None = None  # per track slot, the instrument its line plays (a piano's four lines: one); None = unknown: every line a voice, no tacet pull
    tacet: bool = True  # pull in an instrument of `tracks` that sits the music out (off for a primer's lines, which rest as written)
    centres: list[float] | None = None  # per track slot, the pitch its line centres on (its instrument's register); None = no pull
    lengths: tuple[float, ...] | None = None  # share of the style's notes in each length class in this metre (its habit); None = no length budget
    drums: tuple[int, ...] = ()  # slots a timpani plays: no voice for parallels, not the bass (as the harmony checker hears it)
    ordered: bool = False  # the lines keep their slots' order, top first (chorale writing: the harmony checker remarks on crossings)

    @property
    def slots(self) -> int:
        return len(self.pitch_ranges)

    @cached_property
    def bass_slot(self) -> int:  # asked at every pitch
        voices = [k for k in range(self.slots) if k not in self.drums] or list(range(self.slots))
        return min(voices, key=lambda k: sum(self.pitch_ranges[k]))

    @cached_property
    def chordal(self) -> set[int]:
        """Slots that are no voice of their own: a timpani's, and the lines of an instrument playing several."""
        return set(self.drums).union(*(g for g in self.instruments if len(g) > 1))

    @cached_property
    def instruments(self) -> list[list[int]]:
        """The slots of each instrument (`tracks`), worked out once a request, not at every onset; none without tracks."""
        groups: dict[int, list[int]] = {}
        for k, track in enumerate(self.tracks or ()):
            groups.setdefault(track, []).append(k)
        return list(groups.values())


_CLASHES = np.array([d in (1, 2, 6, 10, 11) for d in range(12)])  # seconds, tritones, sevenths (and ninths)


@dataclass(frozen=True)
class _Voice:
    """A note, in grid positions from the start of the new music."""

    slot: int
    pitch: int
    start: int
    end: int
    previous: _Voice | None  # the slot's note before this one (its own previous dropped): what parallels are made of


@cache
def _metre(time_signature: str | None) -> tuple[int, int]:
    """(numerator, denominator) of a TimeSig value such as '6/8'; 4/4 before any."""
    num, den = (time_signature or "4/4").split("/")
    return int(num), int(den)


def _together(a: _Voice, b: _Voice) -> bool:
    """Whether two notes sound together at the later of their onsets: the harmony checker then hears
    the interval between them move to whatever the two lines strike next, across a rest too."""
    return max(a.start, b.start) < min(a.end, b.end)


@dataclass
class _Progress:
    """What the constraint masks need beyond the grammar state."""

    grammar: GrammarState = field(default_factory=GrammarState)
    need_tempo: bool = False
    slots_here: list[int] = field(default_factory=list)  # slots already sounding at this position
    bar_start: int = 0  # grid position where the current bar starts
    bar_length: int = 0  # grid positions in the current bar
    pitch: int = -1  # the pitch just chosen, waiting for its duration
    sounding: list[_Voice] = field(default_factory=list)  # notes that have not ended yet (a primer's too), oldest first
    last: dict[int, _Voice] = field(default_factory=dict)  # slot -> its latest note, ended or not (a primer's too)
    compass: dict[int, tuple[int, int]] = field(default_factory=dict)  # slot -> (lowest, highest) pitch, primer included
    pitch_sum: dict[int, tuple[int, int]] = field(default_factory=dict)  # slot -> (sum of its pitches, notes), primer included
    pitch_classes: np.ndarray = field(default_factory=lambda: np.zeros(12, dtype=np.int64))  # notes so far per class, primer included
    heard_from: int | None = None  # grid position of the first note in view (the primer's is before 0)
    silence: int = 0  # grid positions since then in silences of a beat or more (every part resting)
    ended: dict[int, int] = field(default_factory=dict)  # slot -> where its latest note ends
    played_by: dict[int, int] = field(default_factory=dict)  # slot -> grid positions it has sounded since heard_from, each note counted to its end
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(len(LENGTH_EDGES) + 1, dtype=np.int64))  # notes so far per length class, primer included
    ambitus: dict[int, int] = field(default_factory=dict)  # slot -> semitones its line may span (see Generator._ambitus)
    bars_heard: dict[int, set[int]] = field(default_factory=dict)  # slot -> the new bars (from 1) its notes sound in

    @property
    def now(self) -> int:
        return self.bar_start + max(0, self.grammar.position)

    def played_share(self, slots: int) -> float | None:
        """Share of the time since the first note that the `slots` lines have sounded (None before any)."""
        if self.heard_from is None or self.now <= self.heard_from:
            return None
        return sum(self._heard(k) for k in self.played_by) / (slots * (self.now - self.heard_from))

    def line_share(self, slot: int) -> float | None:
        """Share of the time since the first note that this one line has sounded (None before any note)."""
        if self.heard_from is None or self.now <= self.heard_from:
            return None
        return self._heard(slot) / (self.now - self.heard_from)

    def _heard(self, slot: int) -> int:
        """Grid positions the line has sounded up to now: its notes are counted to their ends when struck."""
        return self.played_by.get(slot, 0) - max(0, self.ended.get(slot, self.now) - self.now)

    @property
    def ringing(self) -> list[_Voice]:
        """The notes sounding at the current onset (`sounding` keeps those ending here too, for rests)."""
        now = self.now
        return [v for v in self.sounding if v.start <= now < v.end]

    @property
    def silent_from(self) -> int | None:
        """Where every voice has stopped (None before any note)."""
        return max((v.end for v in self.sounding), default=None)


class Generator:
    """Turns (prompt ids, constraints, seed) into new token ids with a model and a tokenizer."""

    def __init__(self, model: MusicTransformer, tokenizer: Tokenizer):
        self.model, self.tok = model, tokenizer
        v = tokenizer.vocab
        g = tokenizer.grammar
        self.grammar = g
        self.V = v.size
        self.pitch_ids = np.flatnonzero(g.type_mask["Pitch"])
        self.pitch_of = g.value  # pitch number for Pitch ids
        self.program_ids = np.flatnonzero(g.type_mask["Program"])
        self.position_ids = g.positions
        self.tempo_ids = np.flatnonzero(g.type_mask["Tempo"])
        self.tempo_values = np.array([float(v.value_of(i)) for i in self.tempo_ids])
        self.duration_ids = np.flatnonzero(g.type_mask["Duration"])
        self.duration_beats = np.array([self._beats(v.value_of(i)) for i in self.duration_ids])
        self.duration_of = np.zeros(self.V)  # beats, for Duration ids
        self.duration_of[self.duration_ids] = self.duration_beats
        self.duration_index = np.full(self.V, -1)  # position in duration_ids, for Duration ids
        self.duration_index[self.duration_ids] = np.arange(len(self.duration_ids))
        self.eos, self.bar = v["EOS_None"], v["Bar_None"]
        self.res = v.config.beat_res
        self._classes: dict[str, np.ndarray] = {}  # time signature -> length class per Duration id

    @staticmethod
    def _beats(value: str) -> float:
        b, p, r = (int(x) for x in value.split("."))
        return b + p / r

    def tempo_id(self, bpm: float) -> int:
        return int(self.tempo_ids[np.argmin(np.abs(self.tempo_values - bpm))])

    # -- masks ---------------------------------------------------------------------------------
    def _allowed(self, p: _Progress, c: Constraints, cfg: SamplingConfig) -> tuple[np.ndarray, np.ndarray]:
        s = p.grammar
        allowed = self.grammar.allowed(s)
        offsets = np.zeros(self.V, dtype=np.float32)
        final = s.bars == c.bars
        penultimate = s.bars == c.bars - 1
        allowed[self.bar] &= s.bars < c.bars
        allowed[self.eos] &= final and (not c.cadence or self._cadence_complete(p, c))
        if s.last == "Bar":
            allowed[:] = False
            allowed[self.tok.vocab[f"TimeSig_{c.time_signature}"]] = True
        elif s.last == "TimeSig" and p.need_tempo and c.tempo is not None:
            allowed[:] = False  # a fresh piece starts on the downbeat of bar 1, where its tempo stands
            allowed[self.position_ids[0]] = True
        elif s.last == "Tempo" and c.tonic_start and s.bars == 1:
            allowed &= self.grammar.type_mask["Program"]  # ... and sounds there (an empty first bar was possible)
        if s.last == "Position":
            allowed[self.tempo_ids] = False
            if p.need_tempo and c.tempo is not None:
                allowed[:] = False
                allowed[self.tempo_id(c.tempo)] = True
        if allowed[self.program_ids].any():
            slots = np.arange(len(self.program_ids))
            ok = slots < c.slots
            if p.slots_here:  # each slot is one line: one note per slot per onset, in score order
                ok &= slots > max(p.slots_here)
            if c.cadence and final:
                ok &= slots == (max(p.slots_here) + 1 if p.slots_here else 0)
            allowed[self.program_ids] &= ok
            if cfg.entry_bias and s.position >= 0:
                offsets[self.program_ids[: c.slots]] += self._entry_offsets(p, c, cfg)
        if (cfg.gap_penalty or cfg.rest_pull) and p.sounding and (allowed[self.bar] or allowed[self.position_ids].any()):
            offsets += self._gap_offsets(p, c, cfg)
        if allowed[self.position_ids].any():
            pos = np.arange(len(self.position_ids))
            if c.cadence and final:
                allowed[self.position_ids] &= pos == 0  # the closing chord starts on the downbeat
            if cfg.offbeat_penalty:
                offsets[self.position_ids] -= np.where(pos % self.res == 0, 0.0, cfg.offbeat_penalty)
        if s.last == "Program":
            lo, hi = c.pitch_ranges[s.slot]
            pitches = self.pitch_of[self.pitch_ids]
            allowed[self.pitch_ids] &= (pitches >= lo) & (pitches <= hi)
            pcs = pitches % 12
            chord = root = None  # the chord every voice struck here must belong to, and the bass's note (its root)
            if c.cadence and final:
                chord, root = TONIC_TRIAD[c.mode], TONIC[c.mode]
            elif c.tonic_start and s.bars == 1 and s.position == 0:
                chord, root = TONIC_TRIAD[c.mode], TONIC[c.mode]
            elif c.cadence and penultimate and 2 * s.position >= s.bar_positions:
                chord, root = self._dominant(p, c), DOMINANT[c.mode]
            if chord is not None:
                in_chord = np.isin(pcs, list(chord) if s.slot != c.bass_slot else [root])
                if s.slot == c.bass_slot:  # the bass is written last at an onset: under what is struck, no inversion
                    above = [v.pitch for v in p.sounding if v.start == p.now and v.slot != s.slot]
                    in_chord &= pitches <= min(above, default=127)
                if (allowed[self.pitch_ids] & in_chord).any():
                    allowed[self.pitch_ids] &= in_chord
            # One budget per pitch class (the style's share of its notes): past it, a note outside the scale
            # costs key_penalty, one in the scale balance_penalty. The scale's own notes got a budget because
            # the model leant on the dominant (G in C major 24% of madrigal drafts' notes, Monteverdi's 19%;
            # E in A minor 25% against 19%): drafts were plainer than the music they learnt from.
            in_scale = np.isin(pcs, list(SCALES[c.mode]))
            room = self._chromatic_room(p, c)[pcs] if c.borrowed is not None else None
            if cfg.key_penalty:
                outside = ~in_scale
                if cfg.chromatic_budget and room is not None:  # never the other mode's third: the mode is a promise
                    outside &= ~room | (pcs == OTHER_THIRD[c.mode])
                offsets[self.pitch_ids] -= np.where(outside, cfg.key_penalty, 0.0)
            if cfg.balance_penalty and room is not None:
                offsets[self.pitch_ids] -= np.where(in_scale & ~room, cfg.balance_penalty, 0.0)
            if cfg.tonic_bias and self._tonic_wanted(p, c, cfg):
                offsets[self.pitch_ids] += np.where(np.isin(pcs, list(TONIC_TRIAD[c.mode])), cfg.tonic_bias, 0.0)
            if cfg.leading_tone_bias and c.mode == "minor":  # G# over G: what tells A minor from C major
                offsets[self.pitch_ids] += np.select([pcs == 8, pcs == 7], [cfg.leading_tone_bias, -cfg.leading_tone_bias])
            if cfg.clash_penalty or cfg.parallel_penalty:
                bass = c.bass_slot if root is not None and s.slot != c.bass_slot else None
                offsets[self.pitch_ids] -= self._voice_leading(p, pitches, cfg, bass, root, c.chordal)
            if cfg.crossing_penalty and c.ordered:
                offsets[self.pitch_ids] -= cfg.crossing_penalty * self._crossings(p, c, pitches)
            if cfg.register_penalty and c.centres is not None:
                offsets[self.pitch_ids] -= self._register_pull(p, c, cfg, pitches)
            if cfg.ambitus_penalty and s.slot in p.ambitus and s.slot in p.compass:
                low, high = p.compass[s.slot]
                beyond = np.maximum(pitches, high) - np.minimum(pitches, low) - p.ambitus[s.slot]
                offsets[self.pitch_ids] -= cfg.ambitus_penalty * np.maximum(beyond, 0)
        if s.last == "Pitch" and c.cadence and final:
            bar_beats = s.bar_positions / self.res
            allowed[self.duration_ids] &= self.duration_beats >= bar_beats / 2
        elif s.last == "Pitch":
            if cfg.long_note_penalty and c.longest_note is not None:
                offsets[self.duration_ids] -= cfg.long_note_penalty * np.maximum(self.duration_beats - c.longest_note, 0)
            if cfg.length_penalty and c.lengths is not None:
                over = ~self._length_room(p, c)[self._length_classes(s.time_signature)]
                offsets[self.duration_ids] -= np.where(over, cfg.length_penalty, 0.0)
        return allowed, offsets

    @staticmethod
    def _crossings(p: _Progress, c: Constraints, pitches: np.ndarray) -> np.ndarray:
        """Per pitch, how many sounding lines it would cross: above a line written above it, or below one
        written below it. Lines of one keyboard or harp (one track, chords) and a timpani are no voices
        to the checker, so they neither cross nor are crossed."""
        count = np.zeros(len(pitches), dtype=np.float32)
        slot = p.grammar.slot
        if slot in c.chordal:
            return count
        for v in p.ringing:
            if v.slot != slot and v.slot not in c.chordal:
                count += (pitches > v.pitch) if v.slot < slot else (pitches < v.pitch)
        return count

    @staticmethod
    def _register_pull(p: _Progress, c: Constraints, cfg: SamplingConfig, pitches: np.ndarray) -> np.ndarray:
        """Penalties that draw a line back towards its centre once its mean pitch has strayed more than
        `register_slack` from it: per semitone a pitch lies beyond the centre on the side the line has
        drifted to, so a step back is free and a leap further costs most. The register token tells the
        model only a band of ten semitones, and it drifted up through it: medieval voices sat about
        five semitones above the singers' centres (a Triplum sung round G4 drafted round D5), quartet
        cellos round B3 where Haydn's and Mozart's sit round D3."""
        total, notes = p.pitch_sum.get(p.grammar.slot, (0, 0))
        centre = c.centres[p.grammar.slot]
        drift = total / notes - centre if notes else 0.0
        if abs(drift) <= cfg.register_slack:
            return np.zeros(len(pitches), dtype=np.float32)
        return cfg.register_penalty * np.maximum(np.sign(drift) * (pitches - centre), 0.0)

    def _length_classes(self, time_signature: str) -> np.ndarray:
        """The length class of each Duration token in this metre (its beats are the metre's beats)."""
        if time_signature not in self._classes:
            quarters = self.duration_beats * 4 / _metre(time_signature)[1]
            self._classes[time_signature] = length_class(quarters)
        return self._classes[time_signature]

    @staticmethod
    def _length_room(p: _Progress, c: Constraints) -> np.ndarray:
        """Per length class: whether one more note of it keeps the music within its style's share.
        The model learnt 6/8 mostly from folk tunes (72% of the 6/8 training notes) and wrote medieval
        voices in 6/8 as jigs: 0.81 notes per line and quarter, 43% of them eighths, where the training
        pieces have 0.53 and 34%. Like the chromatic budget it counts the primer's notes and grows with
        the music; a length the music is short of is free, so the model's own rhythm decides which."""
        counts = p.lengths
        return counts + 1 <= np.asarray(c.lengths) * (int(counts.sum()) + 1)

    @staticmethod
    def _chromatic_room(p: _Progress, c: Constraints) -> np.ndarray:
        """Per pitch class: whether one more note on it keeps the music within its style's share of it.
        Bach's chorales in major borrow 4% of their notes, F sharp (V of V) 1.7% and E flat (the minor
        third, a change of mode) 0.1%; a flat penalty on every borrowed note made drafts more diatonic
        than any chorale (pitch-class entropy -10%), and no penalty lets the key drift. The budget
        counts the primer's notes too and grows with the music."""
        counts = p.pitch_classes
        return counts + 1 <= np.asarray(c.borrowed) * (int(counts.sum()) + 1)

    @staticmethod
    def _tonic_wanted(p: _Progress, c: Constraints, cfg: SamplingConfig) -> bool:
        """Whether the tonic bias should lean on the tonic triad: while its pitch classes hold no more of
        the music's notes than the style's pieces give them (always without that habit). Leaning on it at
        every note made every style's drafts plainer than its real pieces (pitch-class entropy 3-10%
        under the held-out pieces' in all seven styles, beyond two standard errors in four); the drafts'
        triad mostly has its share without it (madrigal drafts in A minor: 60% of the notes, Monteverdi's 50%).

        On a bar's downbeat it leans whatever the budget (`tonic_downbeat`): a key is heard from its strong
        beats. With the budget alone music21 heard the requested key in 186 and 185 of 200 control drafts
        (v11); with the downbeat too in 192 and 191, at a pitch-class entropy 0.9% and 0.4% lower. Leaning
        everywhere gave 194 and 192, at 3.5% lower (benchmarks/controls.py's requests, two samples)."""
        if not cfg.tonic_budget or c.borrowed is None or (cfg.tonic_downbeat and p.grammar.position == 0):
            return True
        triad = list(TONIC_TRIAD[c.mode])
        share = float(np.asarray(c.borrowed)[triad].sum())
        return p.pitch_classes[triad].sum() <= share * p.pitch_classes.sum()

    def _entry_offsets(self, p: _Progress, c: Constraints, cfg: SamplingConfig) -> np.ndarray:
        """The entry bias per slot: for a line resting a beat or more, not one between two notes (pulled
        in at every onset, medieval drafts' voices struck 9.2 notes a bar, their training pieces 7.5;
        entry_rest 0 -> 1, 30 drafts), while the lines have played less than the style's (the voice
        budget), and whatever the budget for the lines of an instrument sitting out (`_tacet`)."""
        wanted = self._voices_wanted(p, c, cfg)
        tacet = self._tacet(p, c, cfg)
        bias = np.zeros(c.slots, dtype=np.float32)
        for k in range(c.slots):
            end = p.ended.get(k)
            if end is not None and p.now - end < cfg.entry_rest * self.res:
                continue
            if k in tacet:
                bias[k] = cfg.entry_bias + cfg.tacet_pull * (tacet[k] - cfg.tacet_bars)
            elif wanted:
                bias[k] = cfg.entry_bias
        return bias

    @staticmethod
    def _tacet(p: _Progress, c: Constraints, cfg: SamplingConfig) -> dict[int, float]:
        """Slot -> bars its instrument has rested, for each instrument (`Constraints.tracks`) silent
        `tacet_bars` bars that has played less than half the style's share. The voice budget counts all
        lines together, and with the others busy the model let a requested instrument sit the draft
        out: the contrabass of 8 of 12 16-bar "tense" and "battle" drafts sounded in 1-3 bars, the
        fifth line beside a timpani in the same register. By instrument, not by line: a piano's inner
        voice may rest while its hands play, and pulling every line that had rested two bars made
        romantic drafts (piano and voice) range 11.2% wider than their pieces, not 6.7% (30 drafts);
        and an instrument that has played its share may rest as long as it likes, unless it would then
        be heard in fewer than half the bars (`_bars_owed`)."""
        if not cfg.tacet_bars or c.tracks is None or not c.tacet:
            return {}
        out: dict[int, float] = {}
        for slots in c.instruments:
            owed = Generator._bars_owed(p, c, slots) if cfg.tacet_deadline else None
            pulls = [] if owed is None else [cfg.tacet_bars + owed]
            if p.now >= cfg.tacet_bars * p.bar_length:  # (a fresh piece's lines have rested at most since bar 1)
                rested = (p.now - max(p.ended.get(k, 0) for k in slots)) / max(p.bar_length, 1)  # never heard: since bar 1
                shares = [x for x in (p.line_share(k) for k in slots) if x is not None]
                quiet = c.sounding is None or not shares or max(shares) < c.sounding / 2
                if rested >= cfg.tacet_bars and quiet:
                    pulls.append(rested)
            if pulls:
                out.update(dict.fromkeys(slots, max(pulls)))
        return out

    @staticmethod
    def _bars_owed(p: _Progress, c: Constraints, slots: list[int]) -> int | None:
        """How hard to pull an instrument whose bars left are barely enough to hear it in half the
        draft's bars: 1 with one bar to spare, 2 with none (or too few); None while it has time. The
        share of the time it has played is not the bars it is heard in: a Renaissance cello that had
        played past half its style's share sat out enough bars to sound in 7 of 16 (seed 117)."""
        bar = p.grammar.bars
        heard = set().union(*(p.bars_heard.get(k, set()) for k in slots))
        owed = -(-c.bars // 2) - len(heard)
        left = c.bars - bar + (bar not in heard)  # bars it could still sound in, this one included while silent
        if owed <= 0 or left - owed > 1:
            return None
        return 2 - max(0, left - owed)

    @staticmethod
    def _voices_wanted(p: _Progress, c: Constraints, cfg: SamplingConfig) -> bool:
        """Whether the entry bias should pull resting lines in: while the lines in view have played less
        of the time than the style's lines do (always without that habit). v3 rests its voices more than
        v2, and the bias at every onset made its madrigals 13.3 notes a bar, polyphony 4.5, against the
        held-out madrigals' 11.0 and 4.2 (bounded: 12.1 and 4.2; 30 drafts)."""
        share = p.played_share(c.slots) if cfg.voice_budget and c.sounding is not None else None
        return share is None or share < c.sounding

    def _gap_offsets(self, p: _Progress, c: Constraints, cfg: SamplingConfig) -> np.ndarray:
        """Penalties for Position and Bar tokens by how long they leave the music silent: nothing for
        a rest shorter than a beat when several parts play (a bar for a single line, which breathes
        between phrases), then `gap_penalty` plus as much again for each further beat. A Bar's cost
        is that of the silence to its downbeat; nearer onsets cost less, so a silence ends early.
        A rest the style's share of silence (Constraints.rests) still has room for costs nothing: with
        every rest penalised, drafts rested less than the real pieces in six styles of seven. The share
        is of the whole music in view once the new bars are written, not of the music so far: silence
        comes in whole beats at phrase ends, and a share of what has been heard grows to a beat only
        after 1/share beats (a chorale's 0.9% would wait 27 bars), so a running quota spared almost none.
        For the same reason a style that rests at all may rest one beat: 0.94% of a 24-bar chorale is
        0.9 beats, a budget that let no rest through (chorale drafts 0.43% of beats silent, madrigals
        0.03%; allowed one beat: 0.52% and 0.18%, against the held-out pieces' 0.57% and 0.31%).

        Sparing rests is not asking for them: the model seldom stops every voice at once, and drafts
        rested at 14-55% of their training pieces' rate in five styles (folk tunes 0.61% of beats, 300
        training tunes 1.37%). So while the piece still owes its style silence, a rest of a beat or more
        gets `rest_pull` times the beats still owed, at most one: a style whose share is under a beat a
        piece (Renaissance openings 0.13%, an eighth of a beat in 24 bars of 4/4) is pulled that little.
        Not in the closing bar, which holds the cadence (30 drafts per style: folk 0.61% -> 1.32% of
        beats, classical 0.49% -> 1.54% against their training pieces' 3.06%; docs/model.md)."""
        silent_from = p.silent_from
        allowance = self.res if c.slots > 1 else p.bar_length
        offsets = np.zeros(self.V, dtype=np.float32)
        onsets = p.bar_start + np.arange(len(self.position_ids), dtype=np.float32)
        gaps = np.append(onsets, p.bar_start + p.bar_length) - silent_from
        cost = np.where(gaps >= allowance, cfg.gap_penalty * (1.0 + (gaps - allowance) / self.res), 0.0)
        if c.rests is not None and p.heard_from is not None:
            piece = c.bars * p.bar_length - p.heard_from  # grid positions from the first note to the last new bar line
            if cfg.rest_budget:
                budget = max(c.rests * piece, self.res) if c.rests > 0 else 0.0
                cost = np.where(p.silence + gaps <= budget, 0.0, cost)
            if cfg.rest_pull and p.grammar.bars < c.bars:
                owed = min(1.0, (c.rests * piece - p.silence) / self.res)  # beats of silence the piece owes its style
                cost -= np.where(gaps >= self.res, cfg.rest_pull * max(owed, 0.0), 0.0)
        offsets[self.position_ids] -= cost[:-1]
        offsets[self.bar] -= cost[-1]
        return offsets

    def _voice_leading(self, p: _Progress, pitches: np.ndarray, cfg: SamplingConfig,
                       bass: int | None = None, root: int | None = None, chordal: Collection[int] = ()) -> np.ndarray:
        """Penalties for each candidate pitch of the slot being written, against the other voices
        sounding now: a second, seventh or tritone (full on the beat, half between beats: passing
        notes are fine there), and parallel fifths or octaves with a voice that moved too.
        Parallels are heard as the harmony checker hears them: from the two lines' previous notes where
        those sounded together, across a rest as well. Counting only lines that moved without a rest
        missed most of what the checker then found (30 drafts mirroring held-out chorales: 41 of its 68
        parallels had a rest before them in one of the two voices; classical, 29 of 44).
        At a cadence the `bass` slot, written last, must strike pitch class `root`: it has no choice
        left to step out of a parallel, so the voices above are held to the one it will make. Without
        this, every parallel that outlasted an all but forbidding penalty (50) was against the bass in
        the last two bars (24 chorale drafts: 13 of 13).
        A parallel costs twice a clash: at the same 4.5, 48 SATB chorale drafts (16 bars) moved in parallels 4.8
        times per 100 bars (Bach's chorales 1.5), and at 9 never, with fewer weak-beat clashes too (13.4 -> 12.6);
        in scene drafts, where a voice kept out of a parallel lands on a clash more often, the faults come out even.
        Parallels count only between voices, as the checker hears them (`chordal`: Constraints.chordal).
        A timpani strikes roots and fifths under the music, doubling the bass in octaves, and a piano's or
        harp's lines are one track of chords (harmony.scan: no line): neither is held to parallels, and
        their clashes count.
        Soft: the model may still insist, and the harmony check after generation has the last word."""
        s, now = p.grammar, p.now
        numerator, denominator = _metre(s.time_signature)
        # where a clash costs the full penalty: with beat_clash every felt beat (beats 2 and 4 of 4/4 too, the
        # dotted quarters of 6/8), else the downbeat and the half bar of an even metre
        if cfg.beat_clash:
            full = s.position % max(1, s.bar_positions // numerator * units_per_beat(numerator, denominator)) == 0
        else:
            full = s.position == 0 or (numerator % 2 == 0 and numerator >= 4 and 2 * s.position == s.bar_positions)
        mine = p.last.get(s.slot)
        parallels = cfg.parallel_penalty and mine is not None and s.slot not in chordal
        penalty = np.zeros(len(pitches), dtype=np.float32)
        # Off the beat a dissonance reached by step may be a passing or neighbour note; one reached by leap
        # seldom is (an appoggiatura), so it costs as much as on the beat.
        leapt = cfg.leap_clash and mine is not None and np.abs(pitches - mine.pitch) > 2  # per pitch, or False
        weight = np.where(leapt | full, 1.0, 0.5) * cfg.clash_penalty
        for v in p.ringing:
            if v.slot == s.slot:
                continue
            if cfg.clash_penalty:
                penalty += np.where(_CLASHES[np.abs(pitches - v.pitch) % 12], weight, 0.0)
            theirs = v.previous
            if parallels and v.slot not in chordal and v.start == now and theirs is not None and _together(mine, theirs):
                was = abs(mine.pitch - theirs.pitch) % 12
                if was in (0, 7) and v.pitch != theirs.pitch:
                    moved = pitches != mine.pitch
                    penalty += np.where(moved & (np.abs(pitches - v.pitch) % 12 == was), cfg.parallel_penalty, 0.0)
        below = p.last.get(bass) if bass is not None and bass not in chordal else None
        if parallels and below is not None and below.start < now and _together(mine, below):
            was = (mine.pitch - below.pitch) % 12
            if was in (0, 7) and below.pitch % 12 != root:
                penalty += np.where((pitches != mine.pitch) & ((pitches - root) % 12 == was), cfg.parallel_penalty, 0.0)
        return penalty

    @staticmethod
    def _dominant(p: _Progress, c: Constraints) -> set[int]:
        """The pitch classes a voice may strike on the cadence's dominant: its seventh only while its third,
        the leading tone, sounds. A dominant seventh may leave out its fifth, never its third: the checker
        hears E-B-D over an A minor cadence's E without G# as a seventh in no chord. v12 wrote it so in 3
        of the 22 scene drafts of benchmarks/guidance.py, 7 of their 17 strong-beat clashes; with the
        seventh waiting for the third, none (10 clashes). Pulling the third in as well (a bias of 2 while
        no voice sounds it) fixed one cadence alone, and with the wait added a clash elsewhere."""
        chord = DOMINANT_SEVENTH[c.mode]
        third = LEADING_TONE[c.mode]
        if any(v.pitch % 12 == third for v in p.ringing if v.slot not in c.drums):
            return chord
        return chord - {(DOMINANT[c.mode] + 10) % 12}

    def _cadence_complete(self, p: _Progress, c: Constraints) -> bool:
        return len(p.slots_here) == c.slots and p.grammar.last == "Duration"

    def _advance(self, p: _Progress, tid: int) -> None:
        kind = self.grammar.kind[tid]
        self.grammar.advance(p.grammar, tid)
        if kind in ("Position", "Bar"):
            p.slots_here = []
        if kind == "Bar" and p.grammar.bars > 1:
            p.bar_start += p.bar_length
        elif kind == "TimeSig":
            p.bar_length = p.grammar.bar_positions
        elif kind == "Program":
            p.slots_here.append(p.grammar.slot)
        elif kind == "Tempo":
            p.need_tempo = False
        elif kind == "Pitch":
            p.pitch = int(self.pitch_of[tid])
        elif kind == "Duration":
            now, slot = p.now, p.grammar.slot
            if p.heard_from is None:
                p.heard_from = now
            silent_from = p.silent_from
            if silent_from is not None and now - silent_from >= self.res:
                p.silence += now - silent_from
            length = max(1, int(round(self.duration_of[tid] * self.res)))
            note = _Voice(slot, p.pitch, now, now + length, p.last.get(slot))
            p.last[slot] = replace(note, previous=None)  # one note per slot, not a chain back to the first
            p.sounding = [v for v in p.sounding if v.end >= now] + [note]
            sounded = max(0, note.end - max(now, p.ended.get(slot, now)))  # a line's overlapping notes once
            p.played_by[slot] = p.played_by.get(slot, 0) + sounded
            p.ended[slot] = note.end
            last_bar = p.grammar.bars + (note.end - 1 - p.bar_start) // max(p.bar_length, 1)
            p.bars_heard.setdefault(slot, set()).update(range(p.grammar.bars, last_bar + 1))
            low, high = p.compass.get(slot, (p.pitch, p.pitch))
            p.compass[slot] = (min(low, p.pitch), max(high, p.pitch))
            total, notes = p.pitch_sum.get(slot, (0, 0))
            p.pitch_sum[slot] = (total + p.pitch, notes + 1)
            p.pitch_classes[p.pitch % 12] += 1
            p.lengths[self._length_classes(p.grammar.time_signature)[self.duration_index[tid]]] += 1

    def _context_of(self, music: list[int]) -> _Progress:
        """What the music in view hands the new bars: each slot's lowest and highest pitch (a continued
        line keeps its primer's register); how many of its notes fall on each pitch class and how long it
        has been silent (the chromatic and rest budgets); where each slot's last note ends and how long the
        lines have played (the entry bias); that note itself (the first new notes move from it, for the
        parallels), and where it reaches the bar line the new music starts on, for clashes and silence too.
        Positions count from that bar line. The music is replayed through `_advance`, the same
        bookkeeping the new notes get, from its first bar line."""
        p = _Progress()
        for tid in music[music.index(self.bar):] if self.bar in music else []:
            self._advance(p, tid)
        seam = p.bar_start + p.bar_length
        last = {v.slot: v for v in p.sounding}  # oldest first, so each slot's latest note wins
        held = [_Voice(k, v.pitch, v.start - seam, v.end - seam, None) for k, v in sorted(last.items()) if v.end >= seam]
        latest = {k: _Voice(k, v.pitch, v.start - seam, v.end - seam, None) for k, v in p.last.items()}
        return _Progress(compass=p.compass, pitch_sum=p.pitch_sum, sounding=held, last=latest, pitch_classes=p.pitch_classes,
                         lengths=p.lengths, silence=p.silence, played_by=p.played_by,
                         heard_from=None if p.heard_from is None else p.heard_from - seam,
                         ended={k: end - seam for k, end in p.ended.items()})

    @staticmethod
    def _ambitus(c: Constraints, seed: int) -> dict[int, int]:
        """Each line's ambitus: drawn from the style's spans, or the one `ambitus` for all. One limit for
        every line, the span three training lines in four stay within, was a ceiling the drafts filled:
        folk tunes spanned 17 semitones in half of 40 drafts, where the training tunes' median is 14 and
        one in ten spans 9 or less (from 21 or more). A draw per line gives the drafts the tunes' spread.
        The bass draws from the basses' spans: drawn with the voices above, a chorale bass spanned 14.8
        semitones where Bach's span 17.7 (and the upper voices 12-13), and the chorales' whole range
        fell 12% short. Its own generator, so the notes' draws stay what the seed made them."""
        if c.spans:
            rng = np.random.default_rng(seed)
            bass = c.bass_slot if c.bass_spans and c.slots > 1 else None
            return {k: int(rng.choice(c.bass_spans if k == bass else c.spans)) for k in range(c.slots)}
        return dict.fromkeys(range(c.slots), c.ambitus) if c.ambitus is not None else {}

    # -- decoding loop ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, fixed: list[int], music: list[int], constraints: Constraints,
                 cfg: SamplingConfig | None = None, seed: int = 0, max_tokens: int = 20000) -> list[int]:
        """New tokens after `fixed + music`: exactly `constraints.bars` bars, then EOS.

        `fixed` (the control header, or the FIM prefix/suffix block) is always kept in view; `music`
        is the stream being extended and slides, a bar at a time, when the context is full.
        """
        return self.generate_batch(fixed, music, constraints, cfg, seeds=(seed,), max_tokens=max_tokens)[0]

    @torch.no_grad()
    def generate_batch(self, fixed: list[int], music: list[int], constraints: Constraints,
                       cfg: SamplingConfig | None = None, seeds=(0,), max_tokens: int = 20000) -> list[list[int]]:
        """Several candidates at once, one per seed, from one prompt: a batch of rows advancing in
        lockstep through one batched KV cache (a finished row feeds PAD until the others end).

        When the context fills, each unfinished row carries on alone with its own sliding window, so
        row k is exactly what a batch of one with that seed (`generate`) gives.
        """
        cfg = cfg or SamplingConfig()
        context = self.model.cfg.context
        if len(fixed) >= context // 2:
            raise DecodeError(f"the fixed prompt ({len(fixed)} tokens) leaves too little room in a {context}-token context")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one token at a time: a second thread only adds sync cost (7-45x slower measured)
        try:
            self.model.eval()
            gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
            music = self._trim(list(music), context - len(fixed) - 1)
            start = self._context_of(music)
            start.need_tempo = constraints.tempo is not None
            progress = [copy.deepcopy(start) for _ in seeds]
            for p, s in zip(progress, seeds, strict=True):
                p.ambitus = self._ambitus(constraints, int(s))
            news: list[list[int]] = [[] for _ in seeds]
            prompt = fixed + music
            rows = len(seeds)
            cache = self.model.new_cache(rows) if cfg.use_cache else None
            batch = torch.tensor([prompt] * rows)
            logits = self.model(batch, cache)[:, -1]  # (B, V)
            running = list(range(rows))
            steps = 0
            while running:
                step = torch.full((rows, 1), self.tok.vocab["PAD_None"], dtype=torch.long)
                for b in list(running):
                    tid = self._pick(logits[b], progress[b], constraints, cfg, gens[b])
                    news[b].append(tid)
                    step[b, 0] = tid
                    if tid == self.eos:
                        running.remove(b)
                steps += 1
                if not running:
                    break
                if steps >= max_tokens:
                    raise DecodeError(f"generation did not finish within {max_tokens} tokens")
                if len(prompt) + steps >= context:  # lockstep rows share a length: hand each over
                    for b in running:
                        news[b] = self._run(fixed, music + news[b], constraints, cfg, gens[b], progress[b],
                                            news[b], max_tokens, context // 2)
                    break
                if cache is not None:
                    logits = self.model(step, cache)[:, -1]
                else:
                    batch = torch.cat([batch, step], dim=1)
                    logits = self.model(batch)[:, -1]
            return news
        finally:
            torch.set_num_threads(threads)

    def _pick(self, logits: torch.Tensor, progress: _Progress, c: Constraints, cfg: SamplingConfig,
              gen: torch.Generator) -> int:
        """One token: masks → biases → temperature → top-k → top-p → seeded draw; advances the state."""
        allowed, offsets = self._allowed(progress, c, cfg)
        if not allowed.any():
            raise DecodeError(f"no token satisfies the constraints after {progress.grammar.last} (bug)")
        lg = sampling.mask(logits, torch.from_numpy(allowed))
        lg = sampling.bias(lg, torch.from_numpy(offsets))
        lg = sampling.temperature(lg, cfg.temperature)
        lg = sampling.top_k(lg, cfg.top_k)
        lg = sampling.top_p(lg, cfg.top_p)
        tid = sampling.draw(lg, gen)
        self._advance(progress, tid)
        return tid

    def _run(self, fixed, music, constraints, cfg, gen, progress, new, max_tokens, room) -> list[int]:
        """The one-row loop: continue `new` (already part of `music`) until EOS, sliding as needed."""
        context = self.model.cfg.context
        music = self._trim(list(music), room)
        cache, logits = self._prefill(fixed + music, cfg)
        new = list(new)
        while len(new) < max_tokens:
            tid = self._pick(logits, progress, constraints, cfg, gen)
            new.append(tid)
            if tid == self.eos:
                return new
            music.append(tid)
            if len(fixed) + len(music) >= context:
                music = self._trim(music, context // 2)
                cache, logits = self._prefill(fixed + music, cfg)
            elif cache is not None:
                logits = self.model(torch.tensor([[tid]]), cache)[0, -1]
            else:
                logits = self.model(torch.tensor([fixed + music]))[0, -1]
        raise DecodeError(f"generation did not finish within {max_tokens} tokens")

    def _prefill(self, ids: list[int], cfg: SamplingConfig):
        cache = self.model.new_cache(1) if cfg.use_cache else None
        logits = self.model(torch.tensor([ids]), cache)[0, -1]
        return cache, logits

    def _trim(self, music: list[int], room: int) -> list[int]:
        """The longest tail of `music` that starts at a Bar and fits `room` tokens."""
        if len(music) <= room:
            return music
        if room <= 0:
            return []
        bars = [i for i, t in enumerate(music) if t == self.bar and len(music) - i <= room]
        return music[bars[0]:] if bars else music[-room:]

    def head(self, music: list[int], room: int) -> list[int]:
        """The longest head of `music` that ends after a whole note (or bar) and fits `room` tokens."""
        if len(music) <= room:
            return music
        ends = [i + 1 for i in range(min(room, len(music))) if self.grammar.kind[music[i]] in ("Duration", "TimeSig")]
        return music[: ends[-1]] if ends else []

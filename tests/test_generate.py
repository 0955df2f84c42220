"""Constrained generation: every sampled sequence is valid REMI and honours the request's hard constraints.

A random-init model is the harshest sampler for these tests: it puts mass on every token the masks
leave open, so a hole in a mask shows up within a few hundred sequences. The trained tiny model is
used where seeds and the cache must give byte-identical output.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from musedraft.errors import DecodeError
from musedraft.generate import Constraints, Generator, SamplingConfig
from musedraft.model import ModelConfig, MusicTransformer
from musedraft.tokenizer import Controls, Tokenizer

METRES = ["4/4", "3/4", "2/4", "6/8", "2/2", "3/8", "5/4", "12/8"]
RANGES = [(67, 84), (55, 74), (48, 67), (36, 60)]  # soprano-, alto-, tenor-, bass-like slots
REGISTERS = ["soprano", "alto", "tenor", "bass"]
# The cadence in the normalised keys (C major, A minor), written out here rather than imported so a
# wrong table in generate.py cannot agree with itself.
TONIC = {"major": 0, "minor": 9}
TONIC_TRIAD = {"major": {0, 4, 7}, "minor": {9, 0, 4}}
DOMINANT = {"major": 7, "minor": 4}
DOMINANT_SEVENTH = {"major": {7, 11, 2, 5}, "minor": {4, 8, 11, 2}}
LEADING_TONE = {"major": 11, "minor": 8}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Single-token decoding is latency-bound: with two OpenMP threads on a busy 2-core machine every
    step waits on the other thread (measured ~8x slower), so these tests decode on one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer()


def random_generator(tok: Tokenizer, context: int = 128, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    model = MusicTransformer(ModelConfig(vocab_size=tok.vocab.size, context=context, n_layer=1, n_head=2, d_model=32))
    return Generator(model.eval(), tok)


@pytest.fixture(scope="module")
def gen(tok) -> Generator:
    return random_generator(tok)


def header_for(tok: Tokenizer, c: Constraints) -> list[int]:
    return tok.header_ids(Controls("chorale", c.mode, REGISTERS[: c.slots]))


def random_constraints(rng: np.random.Generator, bars: int = 2, max_slots: int = 2) -> Constraints:
    slots = int(rng.integers(1, max_slots + 1))
    return Constraints(bars=bars, time_signature=str(rng.choice(METRES)),
                       pitch_ranges=[RANGES[k] for k in sorted(rng.choice(4, slots, replace=False))],
                       mode=str(rng.choice(["major", "minor"])), tempo=[None, 60.0, 133.0][int(rng.integers(3))],
                       cadence=bool(rng.integers(2)))


def check_constraints(tok: Tokenizer, new: list[int], c: Constraints) -> None:
    """Walk generated ids and assert every hard constraint of `c` (the spec of Generator.generate)."""
    v = tok.vocab
    kinds = [v.type_of(i) for i in new]
    assert new[-1] == tok.eos and kinds.count("EOS") == 1
    assert kinds.count("Bar") == c.bars
    assert {v.value_of(i) for i, k in zip(new, kinds, strict=True) if k == "TimeSig"} == {c.time_signature}
    tempos = [v.value_of(i) for i, k in zip(new, kinds, strict=True) if k == "Tempo"]
    if c.tempo is None:
        assert tempos == []
    else:
        # The tempo is forced at the first onset position (a model may leave the opening bar empty).
        assert len(tempos) == ("Position" in kinds)
        if tempos:
            assert abs(float(tempos[0]) - c.tempo) <= 2.5  # the nearest 5-BPM bin
            assert kinds.index("Tempo") == kinds.index("Position") + 1
    bar, position, slots_here, notes = 0, -1, [], []  # notes: (bar, position, slot, pitch, duration beats)
    slot = -1
    for tid, kind in zip(new, kinds, strict=True):
        if kind == "Bar":
            bar, slots_here = bar + 1, []
        elif kind == "Position":
            position, slots_here = int(v.value_of(tid)), []
        elif kind == "Program":
            slot = int(v.value_of(tid))
            assert slot < c.slots, "a slot the request does not have"
            assert not slots_here or slot > max(slots_here), "two notes of one slot at one position"
            slots_here.append(slot)
        elif kind == "Pitch":
            pitch = int(v.value_of(tid))
            lo, hi = c.pitch_ranges[slot]
            assert lo <= pitch <= hi, f"pitch {pitch} outside slot {slot}'s range {lo}-{hi}"
        elif kind == "Duration":
            b, p, r = (int(x) for x in v.value_of(tid).split("."))
            notes.append((bar, position, slot, pitch, b + p / r))
    if c.cadence:
        bar_length = int(tok.grammar.bar_positions[v[f"TimeSig_{c.time_signature}"]])
        bar_beats = bar_length / v.config.beat_res
        final = [n for n in notes if n[0] == c.bars]
        assert [n[2] for n in final] == list(range(c.slots)), "the final chord has one note per slot, in slot order"
        assert all(n[1] == 0 for n in final), "the final chord starts on the downbeat"
        assert all(n[4] >= bar_beats / 2 for n in final), "the final chord lasts at least half the bar"
        for _, _, s, pitch, _ in final:
            chord = {TONIC[c.mode]} if s == c.bass_slot else TONIC_TRIAD[c.mode]
            assert pitch % 12 in chord, f"slot {s} ends on pitch class {pitch % 12}, not in {chord}"
        if c.bars >= 2:
            half = bar_beats / 2 * v.config.beat_res
            for b, pos, s, pitch, _ in notes:
                if b == c.bars - 1 and pos >= half:
                    chord = {DOMINANT[c.mode]} if s == c.bass_slot else DOMINANT_SEVENTH[c.mode]
                    assert pitch % 12 in chord, "the penultimate half bar is on the dominant"
            _seventh_over_third(tok, new, c, bar_length, half)


def _seventh_over_third(tok: Tokenizer, new: list[int], c: Constraints, bar_length: int, half: float) -> None:
    """On the cadence's dominant a voice strikes the seventh only while a note written before it sounds the
    third (the leading tone): without it the harmony checker hears the seventh as a clash."""
    notes = _notes_of(tok, new)
    dominant_from = (c.bars - 2) * bar_length + half
    seventh = (DOMINANT[c.mode] + 10) % 12
    for j, (start, _, slot, pitch) in enumerate(notes):
        if dominant_from <= start < (c.bars - 1) * bar_length and pitch % 12 == seventh:
            thirds = [n for n in notes[:j] if n[0] <= start < n[1] and n[3] % 12 == LEADING_TONE[c.mode]]
            assert thirds, f"slot {slot} strikes the dominant's seventh at {start} with no third sounding"


def test_grammar_always_holds(tok, gen):
    """1,000 sampled sequences (random model, varied metres/slots/tempo/cadence): every one decodes
    and has exactly the requested bars."""
    rng = np.random.default_rng(0)
    cfgs = [SamplingConfig(), SamplingConfig(temperature=1.5, top_p=1.0, clash_penalty=0, parallel_penalty=0),
            SamplingConfig(top_k=5, offbeat_penalty=2.0)]
    for i in range(1000):
        c = random_constraints(rng)
        header = header_for(tok, c)
        new = gen.generate(header, [], c, cfgs[i % 3], seed=i)
        assert sum(t == tok.bar for t in new) == 2
        score = tok.decode(header + new)
        assert sum(len(t.notes) for t in score.tracks) == sum(tok.vocab.type_of(t) == "Pitch" for t in new)


def test_hard_constraints_hold_in_every_sequence(tok, gen):
    """Bar count, metre, tempo, slots, ranges, one note per slot per onset, and the V → I cadence."""
    rng = np.random.default_rng(1)
    for i in range(150):
        c = random_constraints(rng, bars=int(rng.integers(1, 5)), max_slots=4)
        c.cadence = i % 3 != 0
        new = gen.generate(header_for(tok, c), [], c, seed=i)
        check_constraints(tok, new, c)


def _notes_of(tok: Tokenizer, new: list[int]) -> list[tuple[int, int, int, int]]:
    """(start, end, slot, pitch) in grid positions from the start of the new music."""
    v, res = tok.vocab, tok.vocab.config.beat_res
    notes, bar_start, bar_length, position = [], 0, 0, 0
    for tid in new:
        kind = v.type_of(tid)
        if kind == "Bar":
            bar_start, position = bar_start + bar_length, 0
        elif kind == "TimeSig":
            bar_length = int(tok.grammar.bar_positions[tid])
        elif kind == "Position":
            position = int(v.value_of(tid))
        elif kind == "Program":
            slot = int(v.value_of(tid))
        elif kind == "Pitch":
            pitch = int(v.value_of(tid))
        elif kind == "Duration":
            b, p, r = (int(x) for x in v.value_of(tid).split("."))
            start = bar_start + position
            notes.append((start, start + max(1, round((b + p / r) * res)), slot, pitch))
    return notes


def _parallels(notes: list[tuple[int, int, int, int]]) -> list[tuple[tuple, tuple]]:
    """Pairs of notes (start, end, slot, pitch), the upper slot's first, that move in parallel fifths
    or octaves, struck at the same onset, from each line's previous note, across a rest too, where those two
    sounded together: what the harmony checker hears."""
    before = {}  # note → the note its voice struck before it, rest or no rest
    for slot in {n[2] for n in notes}:
        line = [n for n in notes if n[2] == slot]
        before.update(dict(zip(line[1:], line, strict=False)))
    found = []
    for a in notes:
        for b in notes:
            if a[2] < b[2] and a[0] == b[0] and a in before and b in before:
                a1, b1 = before[a], before[b]
                if max(a1[0], b1[0]) >= min(a1[1], b1[1]):
                    continue  # the two previous notes never sounded together: no interval moved
                moved = a1[3] != a[3] and b1[3] != b[3]
                was, now = abs(a1[3] - b1[3]) % 12, abs(a[3] - b[3]) % 12
                if moved and was == now and now in (0, 7):
                    found.append((a, b))
    return found


def test_voice_leading_guidance_keeps_voices_consonant_and_out_of_parallels(tok, gen):
    """With overwhelming penalties, a random model writes no parallel fifths or octaves between voices
    that strike together (from each line's previous note, across a rest too, where those two sounded
    together: what the harmony checker hears), and a clash (second, seventh, tritone) with a voice already sounding only
    where every pitch would clash (a random model also stacks notes inside one slot, which can leave
    no consonant pitch); without them the same model writes plenty of both."""
    rng = np.random.default_rng(5)

    def faults(cfg: SamplingConfig) -> tuple[int, int]:
        clashes = parallels = 0
        for i in range(60):
            c = Constraints(bars=4, time_signature=str(rng.choice(["4/4", "3/4"])), pitch_ranges=RANGES, cadence=False)
            notes = _notes_of(tok, gen.generate(header_for(tok, c), [], c, cfg, seed=i))
            for a in notes:
                for b in notes:
                    if a[2] < b[2] and a[0] < b[1] and b[0] < a[1]:
                        clashes += abs(a[3] - b[3]) % 12 in (1, 2, 6, 10, 11)
            parallels += len(_parallels(notes))
        return clashes, parallels

    guided = faults(SamplingConfig(clash_penalty=1e4, parallel_penalty=1e4))
    free = faults(SamplingConfig(clash_penalty=0, parallel_penalty=0))
    assert free[0] > 500 and free[1] > 0
    assert guided[0] < 0.05 * free[0] and guided[1] == 0


def test_ordered_voices_keep_out_of_each_others_way(tok, gen):
    """Where voices keep their order (chorale writing), a line is held back from sounding above the line
    written above it or below the one written below it: with an overwhelming crossing penalty a random
    model's four lines never cross; without the order they cross often."""
    def crossings(ordered: bool) -> int:
        found = 0
        for i in range(40):
            c = Constraints(bars=3, time_signature="4/4", pitch_ranges=RANGES, cadence=False, ordered=ordered)
            cfg = SamplingConfig(clash_penalty=0, parallel_penalty=0, crossing_penalty=1e4)
            notes = _notes_of(tok, gen.generate(header_for(tok, c), [], c, cfg, seed=i))
            found += sum(a[2] < b[2] and a[0] < b[1] and b[0] < a[1] and b[3] > a[3] for a in notes for b in notes)
        return found

    free = crossings(False)
    assert free > 100
    assert crossings(True) == 0


def test_an_offbeat_leap_into_a_clash_costs_as_much_as_a_clash_on_the_beat(tok, gen):
    """Off the beat the clash penalty is halved, so that passing and neighbour notes (reached by step)
    stay possible; a pitch the line leaps to gets the full penalty, since a dissonance reached by leap
    seldom is one. With it a random model leaps into fewer off-beat clashes."""
    res = tok.vocab.config.beat_res

    def offbeat_clashes(cfg: SamplingConfig) -> float:
        leapt: list[bool] = []  # per off-beat note reached by leap: whether it clashes
        for i in range(40):
            c = Constraints(bars=3, time_signature="4/4", pitch_ranges=RANGES, cadence=False)
            notes = _notes_of(tok, gen.generate(header_for(tok, c), [], c, cfg, seed=i))
            for slot in range(len(RANGES)):
                line = [n for n in notes if n[2] == slot]
                for before, a in zip(line, line[1:], strict=False):
                    if a[0] % (2 * res) == 0:
                        continue  # beats 1 and 3 of 4/4 are strong: the full penalty either way
                    earlier = [b for b in notes if b[2] != slot and b[0] <= a[0] < b[1] and (b[0], b[2]) < (a[0], a[2])]
                    if abs(a[3] - before[3]) > 2:
                        leapt.append(any(abs(a[3] - b[3]) % 12 in (1, 2, 6, 10, 11) for b in earlier))
        return float(np.mean(leapt))

    leap_on = offbeat_clashes(SamplingConfig(clash_penalty=3.0, parallel_penalty=0, beat_clash=False))
    leap_off = offbeat_clashes(SamplingConfig(clash_penalty=3.0, parallel_penalty=0, beat_clash=False, leap_clash=False))
    assert leap_on < 0.5 * leap_off  # measured: 0.011 against 0.171


@pytest.mark.parametrize(("time_signature", "beat", "between"), [("4/4", 1.0, 1.5), ("3/4", 2.0, 0.5), ("9/8", 3.0, 1.0)])
def test_a_clash_on_any_beat_costs_the_full_penalty_and_only_notes_between_beats_pass(tok, gen, time_signature,
                                                                                     beat, between):
    """A chorale changes chord on every beat, so a dissonance struck there is seldom a passing note:
    the full clash penalty applies on each felt beat (the dotted quarter of 9/8), not only on the
    strong ones; between the beats the halved penalty stays. Here the soprano steps from C5 against
    the alto's held C4, on a weak beat and between two (`beat`, `between`: the time signature's beats
    from the bar's start, eighths in 9/8)."""
    from musedraft.generate import _Progress  # noqa: PLC0415

    v, res = tok.vocab, tok.vocab.config.beat_res  # grid positions per beat of the time signature

    def penalties(at: float, cfg: SamplingConfig) -> list[float]:
        p = _Progress()
        for tid in (tok.bar, v[f"TimeSig_{time_signature}"], v["Position_0"], v["Program_1"], v["Pitch_60"],
                    v["Duration_4.0.4"], v["Program_0"], v["Pitch_72"], v["Duration_0.4.8"],
                    v[f"Position_{round(at * res)}"], v["Program_0"]):
            gen._advance(p, tid)
        return list(gen._voice_leading(p, np.array([71, 74, 76]), cfg))  # B4, D5 clash; E5 does not

    cfg = SamplingConfig(clash_penalty=4.0, parallel_penalty=0)
    assert penalties(beat, cfg) == [4.0, 4.0, 0.0]
    assert penalties(beat, replace(cfg, beat_clash=False)) == [2.0, 2.0, 0.0]
    assert penalties(between, cfg) == penalties(between, replace(cfg, beat_clash=False)) == [2.0, 2.0, 0.0]


def test_voices_above_a_cadence_keep_out_of_parallels_with_its_bass(tok, gen):
    """In the last two bars the bass, written last at each onset, must strike the chord's root: it has
    no pitch left that steps out of a parallel, so the voices above are held to the move it will make.
    With an overwhelming penalty a random model's cadences have no parallels; without the penalty they
    have them against the bass."""
    def cadence_parallels(cfg: SamplingConfig) -> tuple[int, int]:
        found = against_bass = 0
        for i in range(40):
            c = Constraints(bars=3, time_signature="4/4", pitch_ranges=RANGES, cadence=True)
            notes = _notes_of(tok, gen.generate(header_for(tok, c), [], c, cfg, seed=i))
            bass = max(n[2] for n in notes)
            late = [(a, b) for a, b in _parallels(notes) if a[0] >= 4 * tok.vocab.config.beat_res]  # bars 2 and 3
            found += len(late)
            against_bass += sum(b[2] == bass for _, b in late)
        return found, against_bass

    assert cadence_parallels(SamplingConfig(clash_penalty=0, parallel_penalty=1e4)) == (0, 0)
    assert cadence_parallels(SamplingConfig(clash_penalty=0, parallel_penalty=0))[1] > 0


def test_a_timpani_is_held_to_no_parallels_and_is_not_the_bass(tok, gen):
    """A timpani strikes roots and fifths under the music, doubling the bass in octaves, and a piano's
    lines are one track of chords; the harmony checker holds neither to parallels (harmony.scan: a drum,
    no line), so neither does the generator: no parallel penalty to or from their slots, their clashes
    still cost, and a timpani is not the bass a cadence puts the root in."""
    from musedraft.generate import _Progress  # noqa: PLC0415

    v, res = tok.vocab, tok.vocab.config.beat_res
    p = _Progress()
    for tid in (tok.bar, v["TimeSig_4/4"], v["Position_0"], v["Program_0"], v["Pitch_48"], v["Duration_1.0.8"],
                v["Program_1"], v["Pitch_36"], v["Duration_1.0.8"], v[f"Position_{res}"],
                v["Program_0"], v["Pitch_43"], v["Duration_1.0.8"], v["Program_1"]):
        gen._advance(p, tid)  # beat 2: slot 0 went C3 -> G2; slot 1 (C2 on beat 1) is being written
    cfg = SamplingConfig(clash_penalty=4.0, parallel_penalty=5.0)
    pitches = np.array([31, 33, 40])  # G1 (octaves with slot 0, from C2 under C3), A1 (a clash), E2
    assert list(gen._voice_leading(p, pitches, cfg)) == [5.0, 4.0, 0.0]
    for ranges, drums, tracks in (([(36, 60), (20, 50)], (1,), None),  # the timpani writes
                                  ([(36, 60), (20, 50)], (0,), None),  # the other line is one
                                  ([(36, 60), (20, 50), (48, 72)], (), [0, 1, 0])):  # a piano's two lines
        chordal = Constraints(bars=2, time_signature="4/4", pitch_ranges=ranges, drums=drums, tracks=tracks).chordal
        assert list(gen._voice_leading(p, pitches, cfg, chordal=chordal)) == [0.0, 4.0, 0.0]
    ranges = [(36, 60), (28, 55), (40, 57)]  # cello, contrabass, timpani: the lowest voice is the bass
    assert Constraints(bars=2, time_signature="4/4", pitch_ranges=ranges[:2] + [(20, 50)]).bass_slot == 2
    assert Constraints(bars=2, time_signature="4/4", pitch_ranges=ranges[:2] + [(20, 50)], drums=(2,)).bass_slot == 1
    assert Constraints(bars=2, time_signature="4/4", pitch_ranges=[(20, 50)], drums=(0,)).bass_slot == 0  # alone


def test_entry_bias_brings_silent_voices_in(tok, gen):
    """A silent slot's Program token gets the bias at each onset: voices rest less, so more of them
    sound at each onset than without it (same random model, same seeds)."""
    def sounding_per_onset(cfg: SamplingConfig) -> float:
        counts = []
        for i in range(30):
            c = Constraints(bars=2, time_signature="4/4", pitch_ranges=RANGES, cadence=False)
            notes = _notes_of(tok, gen.generate(header_for(tok, c), [], c, cfg, seed=i))
            for t in sorted({n[0] for n in notes}):
                counts.append(len({n[2] for n in notes if n[0] <= t < n[1]}))
        return float(np.mean(counts))

    assert sounding_per_onset(SamplingConfig(entry_bias=4.0)) > sounding_per_onset(SamplingConfig(entry_bias=0.0)) + 0.3


def test_entry_bias_waits_for_a_voice_that_has_rested(tok, gen):
    """A voice whose note has just ended is between two notes, not resting: the bias pulls in only
    slots silent for `entry_rest` beats (or never heard yet)."""
    from musedraft.generate import _Progress  # noqa: PLC0415

    v, res = tok.vocab, tok.vocab.config.beat_res
    p = _Progress()
    for tid in (tok.bar, v["TimeSig_4/4"], v["Position_0"], v["Program_0"], v["Pitch_72"], v["Duration_1.0.8"],
                v["Program_1"], v["Pitch_60"], v["Duration_2.0.8"], v[f"Position_{res}"]):
        gen._advance(p, tid)  # beat 2: the soprano's crotchet has just ended, the alto's minim sounds on
    c = Constraints(bars=2, time_signature="4/4", pitch_ranges=RANGES, cadence=False)

    def bias(cfg: SamplingConfig) -> list[float]:
        return list(gen._allowed(p, c, cfg)[1][gen.program_ids[:4]])

    assert bias(SamplingConfig(entry_bias=2.0, entry_rest=1.0)) == [0.0, 0.0, 2.0, 2.0]
    assert bias(SamplingConfig(entry_bias=2.0, entry_rest=0.0)) == [2.0, 0.0, 2.0, 2.0]


def test_entry_bias_stops_once_the_lines_have_played_the_styles_share(tok, gen):
    """The bias pulls resting lines in only while the lines in view have sounded less of the time than
    the style's lines do: past that, more entries only make a busier draft than the style."""
    from musedraft.generate import _Progress  # noqa: PLC0415

    v, res = tok.vocab, tok.vocab.config.beat_res
    p = _Progress()
    for tid in (tok.bar, v["TimeSig_4/4"], v["Position_0"], v["Program_0"], v["Pitch_72"], v["Duration_2.0.8"],
                v["Program_1"], v["Pitch_60"], v["Duration_4.0.4"], v[f"Position_{3 * res}"]):
        gen._advance(p, tid)  # beat 4 of 4 slots: the soprano sang 2 beats, the alto sounds on: 5 of 12 slot-beats
    assert p.played_share(4) == pytest.approx(5 / 12)

    def bias(sounding: float | None, cfg: SamplingConfig) -> list[float]:
        c = Constraints(bars=2, time_signature="4/4", pitch_ranges=RANGES, cadence=False, sounding=sounding)
        return list(gen._allowed(p, c, cfg)[1][gen.program_ids[:4]])

    assert bias(None, SamplingConfig()) == [2.0, 0.0, 2.0, 2.0]  # no habit: every resting line is pulled in
    assert bias(0.5, SamplingConfig()) == [2.0, 0.0, 2.0, 2.0]  # 5/12 played, the style plays half the time
    assert bias(0.4, SamplingConfig()) == [0.0, 0.0, 0.0, 0.0]  # the style's share is reached
    assert bias(0.4, SamplingConfig(voice_budget=False)) == [2.0, 0.0, 2.0, 2.0]



def test_a_quiet_instrument_resting_two_bars_is_pulled_in_whatever_the_budget_and_harder_each_bar(tok, gen):
    """The voice budget counts all lines together: with the others busy, one instrument could sit a
    whole draft out. An instrument silent `tacet_bars` bars that has played less than half the style's
    share gets the entry bias anyway, and `tacet_pull` more for each further bar; one that has played
    its share may rest (a piano's inner voice, while its other lines play), and the lines that sang
    recently keep the budget's answer."""
    from musedraft.generate import _Progress  # noqa: PLC0415

    v, res = tok.vocab, tok.vocab.config.beat_res
    p = _Progress()
    tenor = (v["Program_2"], v["Pitch_55"], v["Duration_4.0.4"])
    for bar in range(4):  # four bars of 4/4: soprano and alto sing whole notes, the tenor bar 1 only, the bass never
        for tid in (tok.bar, v["TimeSig_4/4"], v["Position_0"], v["Program_0"], v["Pitch_72"], v["Duration_4.0.4"],
                    v["Program_1"], v["Pitch_60"], v["Duration_4.0.4"], *(tenor if bar == 0 else ())):
            gen._advance(p, tid)
    gen._advance(p, v[f"Position_{2 * res}"])  # bar 4, beat 3: 3.5 bars in; tenor and bass have rested 2.5 and 3.5

    def bias(cfg: SamplingConfig, tracks: tuple[int, ...] | None = (0, 1, 2, 3)) -> list[float]:
        c = Constraints(bars=16, time_signature="4/4", pitch_ranges=RANGES, cadence=False, sounding=0.4,
                        tracks=None if tracks is None else list(tracks))
        return list(gen._allowed(p, c, cfg)[1][gen.program_ids[:4]])

    assert p.played_share(4) >= 0.4 and p.line_share(2) == pytest.approx(1 / 3.5)  # budget met; the tenor sang 0.29
    assert bias(SamplingConfig(tacet_bars=0)) == [0.0, 0.0, 0.0, 0.0]
    assert bias(SamplingConfig(tacet_bars=2, tacet_pull=2.0)) == [0.0, 0.0, 0.0, 5.0]  # the bass: 2 + 2 x 1.5 bars
    assert bias(SamplingConfig(tacet_bars=4)) == [0.0, 0.0, 0.0, 0.0]  # not yet four bars
    assert bias(SamplingConfig(), tracks=(0, 1, 2, 2)) == [0.0, 0.0, 0.0, 0.0]  # one instrument: it played in bar 1
    assert bias(SamplingConfig(), tracks=None) == [0.0, 0.0, 0.0, 0.0]  # a primer's lines rest as written


def test_an_instrument_is_pulled_in_while_the_bars_left_barely_let_it_sound_in_half_the_draft(tok, gen):
    """The tacet pull counts the share of the time an instrument has played; a listener counts the bars
    it is heard in. With one bar to spare before it could no longer sound in half the draft's bars, an
    instrument gets the entry bias and `tacet_pull` once more, with none to spare twice more, however
    briefly it has rested and whatever it has played."""
    from musedraft.generate import _Progress  # noqa: PLC0415

    v = tok.vocab
    p = _Progress()
    tenor = (v["Program_2"], v["Pitch_55"], v["Duration_4.0.4"])
    for bar in range(4):  # as above: soprano and alto in every bar, the tenor in bar 1, the bass never
        for tid in (tok.bar, v["TimeSig_4/4"], v["Position_0"], v["Program_0"], v["Pitch_72"], v["Duration_4.0.4"],
                    v["Program_1"], v["Pitch_60"], v["Duration_4.0.4"], *(tenor if bar == 0 else ())):
            gen._advance(p, tid)
    gen._advance(p, v[f"Position_{2 * tok.vocab.config.beat_res}"])
    assert p.bars_heard == {0: {1, 2, 3, 4}, 1: {1, 2, 3, 4}, 2: {1}}

    def bias(bars: int, tracks: tuple[int, ...] = (0, 1, 2, 3), deadline: bool = True) -> list[float]:
        c = Constraints(bars=bars, time_signature="4/4", pitch_ranges=RANGES, cadence=False, sounding=0.4,
                        tracks=list(tracks))
        cfg = SamplingConfig(tacet_bars=4, tacet_pull=2.0, tacet_deadline=deadline)
        return list(gen._allowed(p, c, cfg)[1][gen.program_ids[:4]])

    assert bias(16) == [0.0, 0.0, 0.0, 0.0]  # time enough, and not yet four bars of rest
    assert bias(8) == [0.0, 0.0, 0.0, 4.0]  # the bass owes 4 bars and has 5 left; the tenor owes 3 of 5
    assert bias(7) == [0.0, 0.0, 4.0, 6.0]  # the bass owes 4 of 4 left, the tenor 3 of 4
    assert bias(7, tracks=(0, 1, 2, 2)) == [0.0, 0.0, 4.0, 4.0]  # one instrument, heard in bar 1: owes 3 of 4
    assert bias(7, deadline=False) == [0.0, 0.0, 0.0, 0.0]

def silent_beats(notes: list[tuple[int, int, int, int]], res: int) -> int:
    """Beats (from the first note to the last note's end) in which nothing sounds."""
    first, last = min(n[0] for n in notes), max(n[1] for n in notes)
    return sum(not any(n[0] < b + res and n[1] > b for n in notes) for b in range(first, last, res))


def silences_under_a_rest_budget(tok: Tokenizer, gen: Generator, rests: float | None, drafts: int,
                                 pull: float = 0.0) -> list[int]:
    """Silent beats of each of `drafts` 4-bar, two-line drafts of a random model under an overwhelming
    gap penalty: whatever silence there is, the rest budget let through (the rest pull asking for it)."""
    c = Constraints(bars=4, time_signature="4/4", pitch_ranges=RANGES[:2], cadence=False, rests=rests)
    cfg = SamplingConfig(gap_penalty=1e4, entry_bias=0.0, rest_pull=pull)
    return [silent_beats(_notes_of(tok, gen.generate(header_for(tok, c), [], c, cfg, seed=i)), tok.vocab.config.beat_res)
            for i in range(drafts)]


def test_ambitus_penalty_keeps_each_line_inside_its_style_span(tok, gen):
    """With an overwhelming penalty every line's new notes stay within the ambitus; without one the
    random model's lines wander over their whole (17-24 semitone) ranges."""

    def widest(c: Constraints, cfg: SamplingConfig) -> int:
        spans = []
        for i in range(20):
            notes = _notes_of(tok, gen.generate(header_for(tok, c), [], c, cfg, seed=i))
            for slot in range(c.slots):
                pitches = [n[3] for n in notes if n[2] == slot]
                spans.append(max(pitches) - min(pitches) if pitches else 0)
        return max(spans)

    c = Constraints(bars=4, time_signature="4/4", pitch_ranges=RANGES, cadence=False, ambitus=7)
    assert widest(c, SamplingConfig(ambitus_penalty=1e4)) <= 7
    assert widest(c, SamplingConfig(ambitus_penalty=0)) > 12
    c.ambitus = None  # no habit: no limit
    assert widest(c, SamplingConfig(ambitus_penalty=1e4)) > 12
    c.spans = (7,)  # the style's spans, when it has them, take the one ambitus's place
    assert widest(c, SamplingConfig(ambitus_penalty=1e4)) <= 7


def test_each_line_draws_its_ambitus_from_the_styles_spans(tok, gen):
    """Lines draw their own limits from the spans, the same for a seed whatever else is in the batch,
    so the drafts spread as the style's lines do instead of filling one ceiling; under an overwhelming
    penalty each line stays inside what it drew."""
    c = Constraints(bars=4, time_signature="4/4", pitch_ranges=RANGES, cadence=False, ambitus=30, spans=(4, 9, 16))
    drawn = [Generator._ambitus(c, seed) for seed in range(20)]
    assert drawn[3] == Generator._ambitus(c, 3) and set(drawn[3]) == set(range(c.slots))
    assert {a for d in drawn for a in d.values()} == {4, 9, 16}
    assert len({tuple(d.values()) for d in drawn}) > 1
    c.bass_spans = (20,)  # the bass draws from the basses' spans, the lines above it from the rest
    assert all(d[c.bass_slot] == 20 and set(d.values()) - {20} <= {4, 9, 16}
               for d in (Generator._ambitus(c, seed) for seed in range(20)))
    c.bass_spans = None
    cfg = SamplingConfig(ambitus_penalty=1e4)
    rows = gen.generate_batch(header_for(tok, c), [], c, cfg, seeds=(5, 6, 7))
    for seed, row in zip((5, 6, 7), rows, strict=True):
        assert row == gen.generate(header_for(tok, c), [], c, cfg, seed=seed)
        notes = _notes_of(tok, row)
        for slot, limit in Generator._ambitus(c, seed).items():
            pitches = [n[3] for n in notes if n[2] == slot]
            assert not pitches or max(pitches) - min(pitches) <= limit


def test_long_note_penalty_keeps_notes_within_the_styles_longest(tok, gen):
    """With an overwhelming penalty no note outlasts the longest usual note, except the closing chord
    (a cadence may ring); without one the random model writes long notes freely."""

    def lengths(c: Constraints, cfg: SamplingConfig, closing: bool) -> list[float]:
        out = []
        for i in range(20):
            notes = _notes_of(tok, gen.generate(header_for(tok, c), [], c, cfg, seed=i))
            last_bar = max(n[0] for n in notes) // (4 * tok.vocab.config.beat_res)
            out += [(n[1] - n[0]) / tok.vocab.config.beat_res for n in notes
                    if closing or n[0] // (4 * tok.vocab.config.beat_res) < last_bar]
        return out

    c = Constraints(bars=3, time_signature="4/4", pitch_ranges=RANGES[:2], cadence=False, longest_note=1.0)
    assert max(lengths(c, SamplingConfig(long_note_penalty=1e4), closing=True)) <= 1.0
    assert max(lengths(c, SamplingConfig(long_note_penalty=0), closing=True)) > 2.0
    c.cadence = True  # the closing chord lasts at least half a bar whatever the habit
    assert max(lengths(c, SamplingConfig(long_note_penalty=1e4), closing=False)) <= 1.0


def test_ambitus_counts_from_the_primer(tok, gen):
    """A continued line keeps its primer's register: with the primer spanning G4-D5 (7 semitones) and
    an ambitus of 7, every new note stays between them."""
    v = tok.vocab
    primer = [tok.bar, v["TimeSig_4/4"]]
    for beat, (top, bottom) in enumerate([(67, 48), (74, 55), (71, 52), (69, 50)]):
        primer += [v[f"Position_{beat * v.config.beat_res}"], v["Program_0"], v[f"Pitch_{top}"], v["Duration_1.0.8"],
                   v["Program_1"], v[f"Pitch_{bottom}"], v["Duration_1.0.8"]]
    c = Constraints(bars=3, time_signature="4/4", pitch_ranges=RANGES[:2], cadence=False, ambitus=7)

    def new_pitches(cfg: SamplingConfig, slot: int) -> set[int]:
        found = set()
        for i in range(10):
            notes = _notes_of(tok, gen.generate(header_for(tok, c), primer, c, cfg, seed=i))
            found |= {n[3] for n in notes if n[2] == slot}
        return found

    assert new_pitches(SamplingConfig(ambitus_penalty=1e4), 0) <= set(range(67, 75))
    assert new_pitches(SamplingConfig(ambitus_penalty=1e4), 1) <= set(range(48, 56))
    assert not new_pitches(SamplingConfig(ambitus_penalty=0), 0) <= set(range(67, 75))


def test_guidance_hears_the_primer_at_the_seam(tok, gen):
    """The primer's last notes reach the bar line the continuation starts on: the first new onset is
    checked against them for parallels (the octave C5/C4 moving to D5/D4) and for silence."""
    from musedraft.generate import _Progress  # noqa: PLC0415

    v, res = tok.vocab, tok.vocab.config.beat_res
    primer = [tok.bar, v["TimeSig_4/4"], v["Position_0"], v["Program_0"], v["Pitch_72"], v["Duration_4.0.4"],
              v["Program_1"], v["Pitch_60"], v["Duration_4.0.4"]]
    context = gen._context_of(primer)
    assert context.compass == {0: (72, 72), 1: (60, 60)}
    held = context.sounding
    assert [(h.slot, h.pitch, h.start, h.end) for h in held] == [(0, 72, -4 * res, 0), (1, 60, -4 * res, 0)]
    assert list(np.flatnonzero(context.pitch_classes)) == [0]
    assert [(k, h.pitch) for k, h in sorted(context.last.items())] == [(0, 72), (1, 60)]
    p = _Progress(compass=context.compass, sounding=list(held), last=dict(context.last))
    for tid in (tok.bar, v["TimeSig_4/4"], v["Position_0"], v["Program_0"], v["Pitch_74"], v["Duration_1.0.8"],
                v["Program_1"]):
        gen._advance(p, tid)
    pitches = np.array([62, 64])
    assert list(gen._voice_leading(p, pitches, SamplingConfig(clash_penalty=0, parallel_penalty=5.0))) == [5.0, 0.0]

    c = Constraints(bars=2, time_signature="4/4", pitch_ranges=RANGES[:2], cadence=False)

    def late(cfg: SamplingConfig) -> int:
        """Continuations silent for the first beat or longer."""
        return sum(not any(n[0] < res for n in _notes_of(tok, gen.generate(header_for(tok, c), primer, c, cfg, seed=i)))
                   for i in range(40))

    assert late(SamplingConfig(gap_penalty=0, entry_bias=0)) > 10
    assert late(SamplingConfig(gap_penalty=1e4, entry_bias=0)) == 0


def test_gap_penalty_keeps_the_music_from_stopping(tok, gen):
    """A random model leaves every voice silent for whole beats; the gap penalty makes it rarer (same
    seeds). A fresh piece always sounds on its first downbeat."""
    res = tok.vocab.config.beat_res

    def gaps(cfg: SamplingConfig) -> int:
        total = 0
        for i in range(60):
            c = Constraints(bars=4, time_signature="4/4", pitch_ranges=RANGES[:2], cadence=False, tempo=120.0,
                            tonic_start=True)
            notes = _notes_of(tok, gen.generate(header_for(tok, c), [], c, cfg, seed=i))
            assert min(n[0] for n in notes) == 0
            total += silent_beats(notes, res)
        return total

    free = gaps(SamplingConfig(gap_penalty=0.0, entry_bias=0.0))
    guided = gaps(SamplingConfig(gap_penalty=8.0, entry_bias=0.0))
    assert free >= 5 and guided <= free // 4


def test_chromatic_budget_lets_the_styles_share_of_borrowed_notes_through(tok, gen):
    """Under an overwhelming key penalty a random model writes no note outside C major; with a style
    that puts a tenth of its notes on each of C#, Eb, F#, G# and Bb it writes them, each within its
    share, except E flat: C minor's third would change the mode the request promised."""
    from musedraft.generate import SCALES  # noqa: PLC0415

    borrowed = tuple(0.1 if pc not in SCALES["major"] else 0.07 for pc in range(12))

    def pitch_classes(profile: tuple[float, ...] | None) -> np.ndarray:
        counts = np.zeros(12, dtype=int)
        for i in range(20):
            c = Constraints(bars=6, time_signature="4/4", pitch_ranges=RANGES[:2], cadence=False, borrowed=profile)
            new = gen.generate(header_for(tok, c), [], c, SamplingConfig(key_penalty=1e4), seed=i)
            draft = np.bincount([n[3] % 12 for n in _notes_of(tok, new)], minlength=12)
            assert (draft <= np.array(profile or np.zeros(12)) * draft.sum() + 1e-9)[[1, 3, 6, 8, 10]].all()
            counts += draft
        return counts

    assert pitch_classes(None)[[1, 3, 6, 8, 10]].sum() == 0
    counts = pitch_classes(borrowed)
    assert (counts[[1, 6, 8, 10]] >= 3).all() and counts[3] == 0


def test_register_pull_costs_only_leaps_further_from_a_drifted_lines_centre(tok, gen):
    """A soprano centred on G#4 (68) that has sung D5 and E5 (mean 75, 7 semitones up): every semitone
    above the centre costs, a step back below it is free. Within the slack nothing costs."""
    from musedraft.generate import _Progress  # noqa: PLC0415

    v = tok.vocab

    def pull(sung: list[int], centres, cfg: SamplingConfig) -> list[float]:
        p, res = _Progress(), v.config.beat_res
        music = [tok.bar, v["TimeSig_4/4"]]
        for beat, pitch in enumerate(sung):
            music += [v[f"Position_{beat * res}"], v["Program_0"], v[f"Pitch_{pitch}"], v["Duration_1.0.8"]]
        for tid in music + [v[f"Position_{len(sung) * res}"], v["Program_0"]]:  # the soprano's next note
            gen._advance(p, tid)
        c = Constraints(bars=2, time_signature="4/4", pitch_ranges=RANGES, cadence=False, centres=centres)
        return [round(float(x), 6) for x in gen._register_pull(p, c, cfg, np.array([60, 68, 72, 80]))]

    centres = [68, 60, 52, 45]
    assert pull([74, 76], centres, SamplingConfig()) == [0.0, 0.0, 1.2, 3.6]  # 0.3 a semitone above 68
    assert pull([57, 59], centres, SamplingConfig()) == [2.4, 0.0, 0.0, 0.0]  # drifted down: below costs
    assert pull([70, 71], centres, SamplingConfig()) == [0.0] * 4  # 2.5 up: within the 4-semitone slack
    assert pull([], centres, SamplingConfig()) == [0.0] * 4  # nothing sung yet


def test_register_pull_keeps_a_random_lines_mean_near_its_centre(tok, gen):
    """A random model's line wanders over its whole range (48-84, mean near 66); drawn to a centre of
    60 it stays within a few semitones of it, and without centres the pull does nothing."""

    def mean_pitch(centres, cfg: SamplingConfig) -> float:
        pitches = []
        for i in range(10):
            c = Constraints(bars=4, time_signature="4/4", pitch_ranges=[(48, 84)], cadence=False, centres=centres)
            pitches += [n[3] for n in _notes_of(tok, gen.generate(header_for(tok, c), [], c, cfg, seed=i))]
        return float(np.mean(pitches))

    drawn = SamplingConfig(register_penalty=3.0, register_slack=2.0)
    assert abs(mean_pitch([60], drawn) - 60) < 4
    assert mean_pitch([60], SamplingConfig(register_penalty=0)) > 63
    assert mean_pitch(None, drawn) > 63


def test_length_budget_costs_only_the_lengths_the_music_has_used_beyond_its_share(tok, gen):
    """Three eighths against a style writing half its notes as eighths and half as quarters: one more
    eighth would make 4 of 4 (over its half), a quarter 1 of 4 (within), a half note 1 of 4 (the style
    has none). In 6/8 the same Duration_1.0.8 is one beat of the metre: an eighth, not a quarter."""
    v, res = tok.vocab, tok.vocab.config.beat_res
    eighth, quarter, half = v["Duration_0.4.8"], v["Duration_1.0.8"], v["Duration_2.0.8"]
    shares = (0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0)  # sixteenths, eighths, quarters, dotted quarters, halves, ...
    music = [tok.bar, v["TimeSig_4/4"]]
    for k in range(3):
        music += [v[f"Position_{k * res // 2}"], v["Program_0"], v["Pitch_72"], eighth]
    p = gen._context_of(music)  # the primer's notes count, as they do for the chromatic budget
    assert list(p.lengths) == [0, 3, 0, 0, 0, 0, 0]
    for tid in (tok.bar, v["TimeSig_4/4"], v["Position_0"], v["Program_0"], v["Pitch_72"]):
        gen._advance(p, tid)

    def cost(lengths, cfg: SamplingConfig) -> list[float]:
        c = Constraints(bars=2, time_signature="4/4", pitch_ranges=RANGES, cadence=False, lengths=lengths)
        return list(-gen._allowed(p, c, cfg)[1][[eighth, quarter, half]] + 0.0)

    assert cost(shares, SamplingConfig(long_note_penalty=0)) == [1.0, 0.0, 1.0]
    assert cost(shares, SamplingConfig(long_note_penalty=0, length_penalty=0)) == [0.0, 0.0, 0.0]
    assert cost(None, SamplingConfig(long_note_penalty=0)) == [0.0, 0.0, 0.0]  # no habit: no budget
    assert gen._length_classes("6/8")[gen.duration_index[quarter]] == 1  # an eighth in 6/8
    assert gen._length_classes("4/4")[gen.duration_index[quarter]] == 2


def test_length_budget_holds_a_random_model_to_the_styles_note_lengths(tok, gen):
    """A random model writes every length; under an overwhelming length penalty and a style writing
    only quarters, every note is a quarter."""

    def lengths(profile, cfg: SamplingConfig) -> list[float]:
        out = []
        for i in range(10):
            c = Constraints(bars=3, time_signature="4/4", pitch_ranges=RANGES[:2], cadence=False, lengths=profile)
            notes = _notes_of(tok, gen.generate(header_for(tok, c), [], c, cfg, seed=i))
            out += [(n[1] - n[0]) / tok.vocab.config.beat_res for n in notes]
        return out

    quarters = (0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    written = lengths(quarters, SamplingConfig(length_penalty=1e4))
    assert len(written) > 20 and all(0.75 < q <= 1.25 for q in written)
    assert sum(not 0.75 < q <= 1.25 for q in lengths(quarters, SamplingConfig(length_penalty=0))) > 10


def test_rest_budget_lets_the_styles_share_of_silence_through(tok, gen):
    """A rest is free while the silence so far plus its own stays within the style's share of the
    whole piece (the music in view once the new bars are written); beyond it the gap penalty applies.
    Under an overwhelming gap penalty a random model then rests only within the budget (never without one)."""
    from musedraft.generate import _Progress, _Voice  # noqa: PLC0415

    res = tok.vocab.config.beat_res
    c = Constraints(bars=4, time_signature="4/4", pitch_ranges=RANGES[:2], rests=0.25)  # 16 beats may rest 4
    p = _Progress(bar_start=8 * res, bar_length=4 * res, sounding=[_Voice(0, 60, 8 * res, 9 * res, None)],
                  heard_from=0, silence=3 * res)  # three beats silent so far, a note on beat 1 of bar 3

    def cost(p):
        offsets = -gen._gap_offsets(p, c, SamplingConfig(gap_penalty=1.0, rest_pull=0.0))  # the budget alone
        return offsets[gen.position_ids[: 4 * res]], offsets[gen.bar]

    # a rest of g beats is free while 3 + g <= 4: one beat (onset on beat 3), not two (beat 4)
    assert cost(p)[0][2 * res] == 0 and cost(p)[0][3 * res] == 2.0
    p.silence = 2 * res  # two beats silent so far: a rest to beat 4 fits, one to the bar line (three beats) does not
    assert cost(p)[0][3 * res] == 0 and cost(p)[1] == 3.0
    p.heard_from = 4 * res  # the first note a bar later: the piece is 12 beats, 3 of them may rest
    assert cost(p)[0][2 * res] == 0 and cost(p)[0][3 * res] == 2.0

    assert sum(silences_under_a_rest_budget(tok, gen, None, 60)) == 0
    silent = silences_under_a_rest_budget(tok, gen, 0.25, 60)
    assert sum(silent) > 0 and max(silent) <= 0.25 * 16  # each 16-beat draft rests at most 4 beats


def test_rest_budget_lets_a_style_that_rests_rest_one_beat(tok, gen):
    """Silence comes in whole beats: a share worth less than one beat of the piece (1% of 16 beats)
    still lets one beat through, or a chorale (0.94%) could never rest in under 27 bars. A style
    that never rests gets no such beat."""
    from musedraft.generate import _Progress, _Voice  # noqa: PLC0415

    res = tok.vocab.config.beat_res
    p = _Progress(bar_start=0, bar_length=4 * res, sounding=[_Voice(0, 60, 0, res, None)], heard_from=0)

    def cost(rests: float) -> np.ndarray:
        c = Constraints(bars=4, time_signature="4/4", pitch_ranges=RANGES[:2], rests=rests)
        return -gen._gap_offsets(p, c, SamplingConfig(gap_penalty=1.0, rest_pull=0.0))[gen.position_ids[: 4 * res]]

    assert cost(0.01)[2 * res] == 0 and cost(0.01)[3 * res] == 2.0  # one beat free (onset on beat 3), two not
    assert cost(0.0)[2 * res] == 1.0

    silent = silences_under_a_rest_budget(tok, gen, 0.01, 40)
    assert sum(silent) > 0 and max(silent) <= 1
    assert sum(silences_under_a_rest_budget(tok, gen, 0.0, 40)) == 0


def test_rest_pull_asks_for_the_silence_the_piece_still_owes_its_style(tok, gen):
    """A rest of a beat or more gets rest_pull times the beats of the style's share the piece still
    owes, at most one: in full with a beat or more owed, half with half a beat, nothing once it is
    spent or in the closing bar. A random model under it rests more, and still within the budget."""
    from musedraft.generate import _Progress, _Voice  # noqa: PLC0415

    res = tok.vocab.config.beat_res
    c = Constraints(bars=4, time_signature="4/4", pitch_ranges=RANGES[:2], rests=0.25)  # 16 beats owe 4 silent
    p = _Progress(bar_start=8 * res, bar_length=4 * res, sounding=[_Voice(0, 60, 8 * res, 9 * res, None)],
                  heard_from=0, silence=2 * res)  # two beats silent so far, a note on beat 1 of bar 3
    p.grammar.bars = 3

    def pull(p) -> tuple[np.ndarray, float]:
        offsets = gen._gap_offsets(p, c, SamplingConfig(gap_penalty=0.0, rest_pull=2.0))
        return offsets[gen.position_ids[: 4 * res]], float(offsets[gen.bar])

    positions, bar = pull(p)
    assert (positions[: 2 * res] == 0).all()  # onsets before beat 3 leave less than a beat silent
    assert positions[2 * res] == 2.0 and positions[3 * res] == 2.0 and bar == 2.0
    p.silence = 7 * res // 2  # half a beat owed
    assert pull(p)[0][2 * res] == 1.0 and pull(p)[1] == 1.0
    p.silence = 4 * res  # the share is spent
    assert not pull(p)[0].any() and pull(p)[1] == 0
    p.silence, p.grammar.bars = 0, 4  # the closing bar
    assert not pull(p)[0].any() and pull(p)[1] == 0

    spared = silences_under_a_rest_budget(tok, gen, 0.25, 60)
    asked = silences_under_a_rest_budget(tok, gen, 0.25, 60, pull=3.0)
    assert sum(asked) > sum(spared) and max(asked) <= 0.25 * 16
    assert sum(silences_under_a_rest_budget(tok, gen, None, 60, pull=3.0)) == 0  # no habit, no pull


def test_gap_offsets_grow_with_the_silence(tok, gen):
    """Nothing for a rest under a beat (under a bar for a single line), then a step and a beat-by-beat rise."""
    from musedraft.generate import _Progress, _Voice  # noqa: PLC0415

    res = tok.vocab.config.beat_res
    p = _Progress(bar_start=0, bar_length=4 * res, sounding=[_Voice(0, 60, 0, res, None)])  # a note on beat 1
    cfg = SamplingConfig(gap_penalty=1.0)
    two = gen._gap_offsets(p, Constraints(bars=2, time_signature="4/4", pitch_ranges=RANGES[:2]), cfg)
    cost = -two[gen.position_ids[: 4 * res]]
    assert (cost[: 2 * res] == 0).all()  # onsets up to beat 3 leave less than a beat of silence
    assert cost[2 * res] == 1.0 and cost[3 * res] == 2.0 and -two[gen.bar] == 3.0
    one = gen._gap_offsets(p, Constraints(bars=2, time_signature="4/4", pitch_ranges=RANGES[:1]), cfg)
    assert (one[gen.position_ids[: 4 * res]] == 0).all() and one[gen.bar] == 0  # a single line may rest a bar


def test_context_sliding_keeps_grammar_and_bar_count(tok):
    """A 48-token context forces the window to slide (trim at a bar, prefill again) many times."""
    small = random_generator(tok, context=48)
    rng = np.random.default_rng(2)
    longest = 0
    for i in range(20):
        c = random_constraints(rng, bars=6, max_slots=3)
        header = header_for(tok, c)
        new = small.generate(header, [], c, seed=i)
        check_constraints(tok, new, c)
        tok.decode(header + new)
        longest = max(longest, len(header) + len(new))
    assert longest > 2 * 48


@pytest.mark.parametrize("context", [128, 40])
def test_cached_generation_equals_uncached_generation(tok, context):
    """The KV-cached loop and the plain reference loop pick the same tokens for the same seed."""
    g = random_generator(tok, context=context, seed=3)
    rng = np.random.default_rng(3)
    for i in range(8):
        c = random_constraints(rng, bars=3, max_slots=3)
        header = header_for(tok, c)
        cached = g.generate(header, [], c, SamplingConfig(use_cache=True), seed=i)
        plain = g.generate(header, [], c, SamplingConfig(use_cache=False), seed=i)
        assert cached == plain


def test_seed_reproducibility(tok, tiny_composer):
    g = tiny_composer.generator
    c = Constraints(bars=4, time_signature="3/4", pitch_ranges=RANGES[:3], mode="minor", tempo=90.0)
    header = tiny_composer.tokenizer.header_ids(Controls("chorale", "minor", REGISTERS[:3]))
    runs = [g.generate(header, [], c, seed=s) for s in (11, 11, 12)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_continuation_starts_a_new_bar_after_the_primer(tok, gen):
    c = Constraints(bars=2, time_signature="4/4", pitch_ranges=RANGES[:2])
    v = tok.vocab
    primer = [tok.bar, v["TimeSig_4/4"], v["Position_0"], v["Program_0"], v["Pitch_72"], v["Duration_4.0.4"],
              v["Program_1"], v["Pitch_60"], v["Duration_4.0.4"]]
    header = header_for(tok, c)
    new = gen.generate(header, primer, c, seed=0)
    assert new[0] == tok.bar
    check_constraints(tok, new, c)
    assert len(tok.decode(header + primer + new).tracks) == 2


def test_fixed_prompt_too_long_for_the_context_raises_decode_error(tok, gen):
    c = Constraints(bars=1, time_signature="4/4", pitch_ranges=RANGES[:1])
    with pytest.raises(DecodeError, match="fixed prompt"):
        gen.generate([tok.bos] * 64, [], c)


def test_tempo_id_picks_the_nearest_bin(gen, tok):
    for bpm in (40, 80, 97.5, 121, 250, 300):
        value = float(tok.vocab.value_of(gen.tempo_id(bpm)))
        assert abs(value - min(max(bpm, 40), 250)) <= 2.5


def test_tonic_bias_leans_on_the_triad_only_while_it_has_no_more_than_its_share(tok, gen):
    """The style gives C, E and G half the notes of its pieces in major: after C E G D the triad has 3
    of 4 notes, over its share, so the bias rests; after C D F A it has 1 of 4 and leans again. Without
    the habit (or with tonic_budget off) it always leans; on the next bar's downbeat it leans whatever
    the budget (a key is heard from its strong beats), unless tonic_downbeat is off."""
    from musedraft.generate import _Progress  # noqa: PLC0415

    v = tok.vocab
    profile = tuple(0.5 / 3 if pc in (0, 4, 7) else 0.5 / 9 for pc in range(12))

    def wanted(sung: list[int], borrowed, cfg: SamplingConfig, downbeat: bool = False) -> bool:
        p, res = _Progress(), v.config.beat_res
        music = [tok.bar, v["TimeSig_4/4"]]
        for beat, pitch in enumerate(sung):
            music += [v[f"Position_{beat * res}"], v["Program_0"], v[f"Pitch_{pitch}"], v["Duration_1.0.8"]]
        if downbeat:  # the second bar's first onset, its pitch still to choose
            music += [tok.bar, v["TimeSig_4/4"], v["Position_0"], v["Program_0"]]
        for tid in music:
            gen._advance(p, tid)
        c = Constraints(bars=2, time_signature="4/4", pitch_ranges=RANGES, cadence=False, borrowed=borrowed)
        return gen._tonic_wanted(p, c, cfg)

    assert wanted([], profile, SamplingConfig())
    assert not wanted([72, 76, 79, 74], profile, SamplingConfig())
    assert wanted([72, 74, 77, 81], profile, SamplingConfig())
    assert wanted([72, 76, 79, 74], None, SamplingConfig())
    assert wanted([72, 76, 79, 74], profile, SamplingConfig(tonic_budget=False))
    assert wanted([72, 76, 79, 74], profile, SamplingConfig(), downbeat=True)
    assert not wanted([72, 76, 79, 74], profile, SamplingConfig(tonic_downbeat=False), downbeat=True)


def test_a_budgeted_tonic_bias_keeps_the_triad_near_the_styles_share(tok, gen):
    """A random model (a third of its notes on C, E and G) under an overwhelming tonic bias writes
    nothing else; with a style that gives the triad 60% of its notes the bias rests whenever the triad
    has its share, so the music keeps about 60%."""
    profile = tuple(0.2 if pc in (0, 4, 7) else 0.4 / 9 for pc in range(12))

    def triad_share(cfg: SamplingConfig) -> float:
        counts = np.zeros(12, dtype=int)
        for i in range(10):
            c = Constraints(bars=4, time_signature="4/4", pitch_ranges=RANGES[:2], cadence=False, borrowed=profile)
            new = gen.generate(header_for(tok, c), [], c, cfg, seed=i)
            counts += np.bincount([n[3] % 12 for n in _notes_of(tok, new)], minlength=12)
        return counts[[0, 4, 7]].sum() / counts.sum()

    assert triad_share(SamplingConfig(tonic_bias=0.0, key_penalty=0.0)) < 0.45
    assert triad_share(SamplingConfig(tonic_bias=20.0, key_penalty=0.0, tonic_budget=False)) > 0.95
    assert 0.55 <= triad_share(SamplingConfig(tonic_bias=20.0, key_penalty=0.0)) <= 0.7


def test_balance_penalty_holds_each_scale_note_near_the_styles_share(tok, gen):
    """A random model spreads its notes over whatever its ranges hold; with a style that gives C, D and
    E almost every note of its pieces, an overwhelming balance penalty on scale notes past their share
    moves the music onto them: the other scale notes get only what the penalty leaves when C, D and E
    are all at their shares (notes outside the scale keep their own budget, the key penalty's)."""
    profile = tuple({0: 0.3, 2: 0.3, 4: 0.3}.get(pc, 0.1 / 9) for pc in range(12))

    def shares(cfg: SamplingConfig) -> np.ndarray:
        counts = np.zeros(12, dtype=int)
        for i in range(10):
            c = Constraints(bars=4, time_signature="4/4", pitch_ranges=RANGES[:2], cadence=False, borrowed=profile)
            new = gen.generate(header_for(tok, c), [], c, cfg, seed=i)
            counts += np.bincount([n[3] % 12 for n in _notes_of(tok, new)], minlength=12)
        return counts / counts.sum()

    free = shares(SamplingConfig(key_penalty=20.0, tonic_bias=0.0, balance_penalty=0.0))
    held = shares(SamplingConfig(key_penalty=20.0, tonic_bias=0.0, balance_penalty=20.0))
    assert free[[0, 2, 4]].sum() < 0.5 and held[[0, 2, 4]].sum() > 0.7
    assert (np.abs(held[[0, 2, 4]] - 0.3) < 0.08).all()

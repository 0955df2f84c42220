"""Tokenizer: scores ↔ ids keep every note, the decoder refuses what the grammar refuses, keys parse.

Round trips run two ways: hypothesis scores on the vocabulary's grid (every onset, pitch, duration
and track must come back), and the real chorales of the tiny corpus (four parts sharing one program
must stay four tracks: the merge pitfall the track slots exist for).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from symusic import Score, TimeSignature
from tests.conftest import make_score

from musedraft.errors import DecodeError, RequestError
from musedraft.tokenizer import Controls, Tokenizer, normalising_shift, parse_key, transpose

TPQ = 480
T32 = TPQ // 8  # a 32nd note: the vocabulary's grid in x/4 metres
# Durations the vocabulary holds, in 32nds: 1/8-beat steps up to 4 beats, 1/4-beat steps to 12 beats.
DURATIONS_32 = list(range(1, 33)) + list(range(34, 97, 2))
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer()


def notes_by_track(score: Score) -> Counter:
    """Multiset of (track index, onset, duration, pitch) at tpq 480."""
    s = score.resample(TPQ) if score.ticks_per_quarter != TPQ else score
    return Counter((k, n.time, n.duration, n.pitch) for k, t in enumerate(s.tracks) for n in t.notes)


def decoded_notes(score: Score) -> Counter:
    """Same multiset for a decoded score, keyed by slot (the decoded track's program)."""
    s = score.resample(TPQ)
    return Counter((int(t.program), n.time, n.duration, n.pitch) for t in s.tracks for n in t.notes)


@st.composite
def grid_scores(draw) -> Score:
    """1-8 non-empty tracks on the 32nd grid in 4/4 or 3/4; each track monophonic or chordal.

    (onset, pitch) is unique within a track: MidiTok drops notes equal in both.
    """
    ts = draw(st.sampled_from([(4, 4), (3, 4)]))
    slots = ts[0] * 8 * draw(st.integers(1, 3))  # 32nd positions in 1-3 bars
    tracks = []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):  # chordal: any onsets, chords allowed, overlaps allowed
            keys = draw(st.lists(st.tuples(st.integers(0, slots - 1), st.integers(21, 108)),
                                 min_size=1, max_size=10, unique=True))
            notes = [(p, on / 8, draw(st.sampled_from(DURATIONS_32)) / 8) for on, p in keys]
        else:  # monophonic: one note at a time, each ending by the next onset
            onsets = sorted(draw(st.lists(st.integers(0, slots - 1), min_size=1, max_size=10, unique=True)))
            notes = []
            for a, b in zip(onsets, onsets[1:] + [onsets[-1] + 96], strict=True):
                d = min(draw(st.sampled_from(DURATIONS_32)), b - a)
                d -= d % 2 if d > 32 else 0  # beyond 4 beats the grid is 1/4 beat
                notes.append((draw(st.integers(21, 108)), a / 8, d / 8))
        tracks.append(notes)
    programs = draw(st.lists(st.sampled_from([0, 0, 40, 52]), min_size=len(tracks), max_size=len(tracks)))
    return make_score(*tracks, time_signature=ts, tempo=draw(st.floats(40, 250)), programs=programs)


@SETTINGS
@given(score=grid_scores(), style=st.sampled_from(["chorale", "folk"]), mode=st.sampled_from(["major", "minor"]))
def test_round_trip_keeps_every_note_onset_pitch_duration_and_track(tok, score, style, mode):
    controls = Controls.of_score(score, style, mode)
    ids = tok.encode(score, controls)
    assert ids[0] == tok.bos and ids[-1] == tok.eos
    decoded = tok.decode(ids)
    assert decoded_notes(decoded) == notes_by_track(score)
    assert sorted(int(t.program) for t in decoded.tracks) == list(range(len(score.tracks)))
    ts = decoded.time_signatures[0]
    assert (ts.numerator, ts.denominator) == (score.time_signatures[0].numerator, score.time_signatures[0].denominator)


def test_header_layout_is_bos_style_mode_then_one_register_per_track(tok):
    score = make_score([(72, 0, 1)], [(60, 0, 1)], [(40, 0, 1)])
    ids = tok.encode(score, Controls.of_score(score, "chorale", "minor"))
    head = [tok.vocab.tokens[i] for i in ids[:6]]
    assert head[:3] == ["BOS_None", "Style_chorale", "Mode_minor"]
    assert [h.split("_")[0] for h in head[3:]] == ["Track"] * 3
    assert head[3] != head[5]  # a soprano line and a bass line are in different registers
    assert tok.vocab.tokens[ids[6]] == "Bar_None"


def test_header_refuses_unknown_style_mode_and_track_count(tok):
    with pytest.raises(RequestError, match="style"):
        tok.header_ids(Controls("jazz", "major", ["alto"]))
    with pytest.raises(RequestError, match="Mode"):
        tok.header_ids(Controls("folk", "dorian", ["alto"]))
    with pytest.raises(RequestError, match="instruments"):
        tok.header_ids(Controls("folk", "major", ["alto"] * 9))


# --- real corpus pieces -------------------------------------------------------------------------


def corpus_midis(cache: Path) -> list[Path]:
    files = sorted((cache / "corpus" / "midi" / "bach").glob("*.mid"))
    assert len(files) >= 40
    return files


def test_corpus_chorales_round_trip_exactly(tok, tiny_corpus):
    """Every chorale note comes back on its onset, pitch and part; durations too, except that the
    vocabulary's longest note is 12 beats (a few final fermatas are written longer)."""
    longest = 12 * TPQ
    for path in corpus_midis(tiny_corpus):
        score = Score(str(path)).resample(TPQ)
        want = Counter((k, time, min(dur, longest), pitch) for k, time, dur, pitch in notes_by_track(score).elements())
        got = decoded_notes(tok.decode(tok.encode(score, Controls.of_score(score, "chorale", "major"))))
        assert got == want, path.name


def test_parts_sharing_a_program_stay_separate_tracks(tok, tiny_corpus):
    """music21 gives the four voices one program; in one REMI stream they would merge into one track."""
    path = next(p for p in corpus_midis(tiny_corpus) if len(Score(str(p)).tracks) == 4)
    score = Score(str(path))
    for track in score.tracks:
        track.program = 0
    decoded = tok.decode(tok.encode(score, Controls.of_score(score, "chorale", "major")))
    assert len(decoded.tracks) == 4
    assert [len(t.notes) for t in sorted(decoded.tracks, key=lambda t: t.program)] == [len(t.notes) for t in score.tracks]


# --- decoder robustness ---------------------------------------------------------------------------


def _random_walk(tok: Tokenizer, choices: list[int]) -> list[int]:
    """A grammatical stream steered by `choices` (each picks among the allowed tokens)."""
    g = tok.grammar
    state, ids = g.start(), []
    for c in choices:
        allowed = np.flatnonzero(g.allowed(state))
        if not len(allowed):
            break
        tid = int(allowed[c % len(allowed)])
        g.advance(state, tid)
        ids.append(tid)
    return ids


def _decode_or_decode_error(tok: Tokenizer, ids) -> None:
    """Decode must return a Score or raise DecodeError; a Score it returns holds one note per Pitch
    token (MidiTok silently drops the notes of a broken sequence; the grammar must refuse those)."""
    try:
        score = tok.decode(ids)
    except DecodeError:
        return
    assert isinstance(score, Score)
    pitches = sum(tok.vocab.type_of(int(i)) == "Pitch" for i in ids)
    assert sum(len(t.notes) for t in score.tracks) == pitches


@settings(max_examples=300, deadline=None)
@given(ids=st.lists(st.integers(-3, 410), max_size=60))
def test_decode_of_arbitrary_ids_is_a_score_or_a_decode_error(tok, ids):
    _decode_or_decode_error(tok, ids)


@settings(max_examples=150, deadline=None)
@given(choices=st.lists(st.integers(0, 10_000), min_size=1, max_size=80),
       edits=st.lists(st.tuples(st.integers(0, 200), st.integers(-2, 405)), max_size=3),
       header=st.booleans())
def test_decode_of_corrupted_grammatical_streams_is_a_score_or_a_decode_error(tok, choices, edits, header):
    """Mostly valid streams with a few ids replaced: the errors hypothesis finds deep in a sequence."""
    ids = _random_walk(tok, choices)
    for where, new in edits:
        if ids:
            ids[where % len(ids)] = new
    if header:
        ids = [tok.bos, tok.vocab["Style_folk"], tok.vocab["Mode_major"], tok.vocab["Track_alto"], *ids]
    _decode_or_decode_error(tok, ids)


def test_decode_names_the_broken_rule(tok):
    v = tok.vocab
    bar, ts = v["Bar_None"], v["TimeSig_4/4"]
    with pytest.raises(DecodeError, match="no Bar"):
        tok.decode([])
    with pytest.raises(DecodeError, match="0..401"):
        tok.decode([bar, ts, 9999])
    with pytest.raises(DecodeError, match="cannot follow"):
        tok.decode([bar, v["Pitch_60"]])
    with pytest.raises(DecodeError, match="out of order"):
        tok.decode([bar, ts, v["Position_8"], v["Program_0"], v["Pitch_60"], v["Duration_1.0.8"], v["Position_4"]])
    with pytest.raises(DecodeError, match="beyond a 3/4 bar"):
        tok.decode([bar, v["TimeSig_3/4"], v["Position_24"]])
    with pytest.raises(DecodeError, match="middle of a note"):
        tok.decode([bar, ts, v["Position_0"], v["Program_0"], v["Pitch_60"]])
    with pytest.raises(DecodeError, match="after EOS"):
        tok.decode([bar, ts, tok.eos, bar, ts])
    with pytest.raises(DecodeError, match="header"):
        tok.decode([v["Pitch_60"], bar, ts])


# --- keys and time signatures -------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["H major", "C dorian", "", "   ", "Cx major", "Cmm", "m", "Cmajor", "Am minor", "C min",
                                 "C major please", "D minor key"])
def test_bad_key_raises_request_error(key):
    with pytest.raises(RequestError, match="Unknown key"):
        parse_key(key)


@pytest.mark.parametrize("key", ["C major", "G major", "D major", "A major", "E major", "B major", "F# major",
                                 "Db major", "Ab major", "Eb major", "Bb major", "F major",
                                 "A minor", "E minor", "B minor", "F# minor", "C# minor", "G# minor",
                                 "Eb minor", "Bb minor", "F minor", "C minor", "G minor", "D minor"])
def test_normalising_shift_moves_every_key_to_c_major_or_a_minor(key):
    pc, mode = parse_key(key)
    shift = normalising_shift(pc, mode)
    assert -6 <= shift <= 5
    assert (pc + shift) % 12 == (0 if mode == "major" else 9)
    score = transpose(make_score([(60 + pc, 0, 1)]), shift)
    assert score.tracks[0].notes[0].pitch % 12 == (0 if mode == "major" else 9)


def test_transpose_folds_notes_back_into_range_by_octaves():
    score = make_score([(105, 0, 1), (22, 1, 1)])
    up = transpose(score, 5, 21, 108)
    assert [n.pitch for n in up.tracks[0].notes] == [98, 27]
    down = transpose(score, -5, 21, 108)
    assert [n.pitch for n in down.tracks[0].notes] == [100, 29]
    assert [n.pitch for n in score.tracks[0].notes] == [105, 22]  # a copy, the input is untouched


@pytest.mark.parametrize("ts", [(11, 8), (5, 16), (13, 4), (3, 1)])
def test_unsupported_time_signature_raises_instead_of_becoming_4_4(tok, ts):
    score = make_score([(60, 0, 1)], time_signature=ts)
    with pytest.raises(RequestError, match=f"{ts[0]}/{ts[1]}"):
        tok.encode(score, Controls.of_score(score, "folk", "major"))


def test_unsupported_time_signature_change_mid_piece_raises(tok):
    score = make_score([(60, 0, 1), (62, 8, 1)])
    score.time_signatures.append(TimeSignature(4 * TPQ * 2, 11, 8))
    with pytest.raises(RequestError, match="11/8"):
        tok.stream_ids(score)


@pytest.mark.parametrize("ts", [(4, 4), (3, 4), (2, 4), (6, 8), (5, 4), (12, 8)])
def test_supported_time_signatures_are_kept(tok, ts):
    score = make_score([(60, 0, 1), (62, 1, 1), (64, 2 * 4 * ts[0] / ts[1], 1)], time_signature=ts)
    decoded = tok.decode(tok.encode(score, Controls.of_score(score, "folk", "major")))
    assert {(t.numerator, t.denominator) for t in decoded.time_signatures} == {ts}
    assert decoded_notes(decoded) == notes_by_track(score)

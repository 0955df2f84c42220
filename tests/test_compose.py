"""compose / continue_midi / regenerate end to end on the tiny trained model: the request is honoured
exactly (bars, metre, tempo, key, instruments and their ranges, cadence, loop length, seed), and the
music a user hands in is kept."""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter
from itertools import pairwise

import mido
import pytest
import torch
from symusic import KeySignature, Note, Score, TimeSignature, Track
from tests.conftest import make_score

from musedraft.composer import _lines, compose, compose_candidates, continue_midi, regenerate
from musedraft.errors import RequestError
from musedraft.export import midi_bytes
from musedraft.generate import Constraints, SamplingConfig
from musedraft.harmony import HarmonyConfig, check
from musedraft.instruments import get_instrument
from musedraft.score import bar_count, most_at_once, tempo_bpm, ticks_per_bar, time_signature
from musedraft.tokenizer import Controls, parse_key

TPQ = 480
TRIADS = {"major": (0, 4, 7), "minor": (0, 3, 7)}  # above the tonic
REQUESTS = [
    dict(style="chorale", key="F# minor", tempo=97.5, time_signature="3/4",
         instruments=["soprano", "alto", "tenor", "bass voice"], bars=5, seed=1),
    dict(style="classical", key="Bb major", tempo=132, time_signature="6/8",
         instruments=["cello", "violin", "violin"], bars=3, seed=2),
    dict(style="folk", key="E major", tempo=60, time_signature="2/4", instruments=["flute"], bars=1, seed=3),
    dict(style="romantic", key="C minor", tempo=75, time_signature="4/4", instruments=["clarinet", "piano"],
         bars=4, seed=4),
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Token-by-token decoding on one thread (two spin-waiting OpenMP threads are ~8x slower on a
    busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def drafts(tiny_composer):
    return [(req, compose(**req, repair=False, model=tiny_composer)) for req in REQUESTS]


def notes_of(score: Score) -> list[tuple]:
    return [(k, n.time, n.duration, n.pitch) for k, t in enumerate(score.tracks) for n in t.notes]


def test_exact_bar_count(drafts):
    for req, draft in drafts:
        tpb = ticks_per_bar(draft.score)
        assert bar_count(draft.score) == req["bars"], req
        assert draft.score.end() <= req["bars"] * tpb
        assert draft.request["bars"] == req["bars"]


def test_time_signature_tempo_and_key_are_exact_in_the_midi(drafts):
    for req, draft in drafts:
        num, den = (int(x) for x in req["time_signature"].split("/"))
        assert time_signature(draft.score) == (num, den)
        assert abs(tempo_bpm(draft.score) - req["tempo"]) < 1e-3
        mid = mido.MidiFile(file=io.BytesIO(midi_bytes(draft.score, key=draft.key)))
        metas = [m for track in mid.tracks for m in track if m.is_meta]
        assert [(m.numerator, m.denominator) for m in metas if m.type == "time_signature"] == [(num, den)]
        assert [m.tempo for m in metas if m.type == "set_tempo"] == [mido.bpm2tempo(req["tempo"])]
        tonic, mode = req["key"].split()
        assert {m.key for m in metas if m.type == "key_signature"} == {tonic + ("m" if mode == "minor" else "")}


def test_only_requested_instruments_play_each_within_its_range(drafts):
    for req, draft in drafts:
        insts = [get_instrument(name) for name in req["instruments"]]
        tracks = draft.score.tracks
        assert [t.program for t in tracks] == [i.program for i in insts]
        assert not any(t.is_drum for t in tracks)
        for inst, track in zip(insts, tracks, strict=True):
            assert len(track.notes), f"{inst.name} is silent"
            assert all(inst.low <= n.pitch <= inst.high for n in track.notes), inst.name
    names = [t.name for t in drafts[1][1].score.tracks]
    assert names == ["Cello", "Violin 1", "Violin 2"]


def test_each_instrument_plays_one_line_and_a_piano_up_to_four(drafts):
    for _, draft in drafts:
        for track in draft.score.tracks:
            if track.name == "Piano":  # melody, two inner voices and bass in one track
                assert 2 <= most_at_once(track) <= 4
                continue
            notes = sorted((n.time, n.end) for n in track.notes)
            assert all(a[1] <= b[0] for a, b in pairwise(notes)), track.name


def test_keyboards_give_up_inner_voices_when_the_eight_slots_run_short():
    def lines(names):
        return [(i.name, i.low, i.high) for group in _lines([get_instrument(n) for n in names], 8)[0] for i in group]

    assert lines(["piano", "violin"]) == [("piano", 60, 91), ("piano", 55, 79), ("piano", 48, 72), ("piano", 28, 62),
                                          ("violin", 55, 100)]
    assert lines(["piano"] + ["violin"] * 5)[:3] == [  # 4 + 5 > 8: the upper inner voice goes first
        ("piano", 60, 91), ("piano", 48, 72), ("piano", 28, 62)]
    assert lines(["harp", "piano", "organ", "flute"]) == [  # 3 + 3 + 3 + 1 > 8: melody and bass each
        ("harp", 60, 96), ("harp", 24, 60), ("piano", 60, 91), ("piano", 28, 62), ("organ", 60, 91),
        ("organ", 36, 62), ("flute", 60, 96)]
    assert len(lines(["piano"] + ["violin"] * 7)) == 8  # the piano plays one line
    with pytest.raises(RequestError, match="Between 1 and 8 instruments"):
        _lines([get_instrument("violin")] * 9, 8)


def test_instruments_by_general_midi_name_and_an_electric_piano_plays_like_a_piano():
    # A DAW's instrument list gives GM names; game cues lean on the electric piano, bells and banjo.
    assert get_instrument("Tubular Bells") == get_instrument("bells") == get_instrument(14)
    assert get_instrument("banjo").program == 105 and get_instrument("Lead 1 (square)").program == 80
    rhodes = _lines([get_instrument("Electric Piano 1")], 8)[0][0]
    assert [(i.program, i.low, i.high) for i in rhodes] == [(4, 60, 91), (4, 55, 79), (4, 48, 72), (4, 28, 62)]
    with pytest.raises(RequestError, match="General MIDI name"):
        get_instrument("kazoo")


@pytest.mark.parametrize("name", ["drums", "Drum Kit", "percussion"])
def test_asking_for_drums_says_why_there_are_none_and_what_to_use(name):
    """A game maker's first request is often drums: the answer says there is no kit (the corpus has no
    percussion) and names the pitched drums that do work, not a list of 60 other instruments."""
    with pytest.raises(RequestError, match="no drum kit") as caught:
        get_instrument(name)
    assert "timpani" in str(caught.value) and "Taiko Drum" in str(caught.value)
    assert get_instrument("Taiko Drum").program == 116 and get_instrument("timpani").program == 47


def test_final_chord_is_the_tonic_triad_with_the_bass_on_the_tonic(drafts):
    for req, draft in drafts:
        tonic, mode = parse_key(req["key"])
        last_bar = (req["bars"] - 1) * ticks_per_bar(draft.score)
        final = []
        for track in draft.score.tracks:
            sounding = sorted(n.pitch for n in track.notes if n.time <= last_bar < n.end)
            assert sounding, f"{track.name} does not sound on the last downbeat"
            assert len(sounding) == 1 or track.name == "Piano"
            assert {(p - tonic) % 12 for p in sounding} <= set(TRIADS[mode]), req["key"]
            final.append(sounding[0])  # a piano's lowest note is its left hand
        bass = min(range(len(final)), key=lambda k: get_instrument(req["instruments"][k]).middle)
        assert final[bass] % 12 == tonic, f"the bass ends on {final[bass]}, not the tonic of {req['key']}"


def test_seed_reproducibility(tiny_composer):
    req = dict(style="chorale", key="D major", instruments=["violin", "cello"], bars=3, repair=False,
               model=tiny_composer)
    a, b, c = (compose(**req, seed=s).score.dumps_midi() for s in (7, 7, 8))
    assert a == b
    assert a != c


def test_loop_gives_exactly_the_requested_bars(tiny_composer):
    draft = compose("classical", instruments=["violin", "viola", "cello"], bars=6, loop=True, seed=5,
                    repair=False, model=tiny_composer)
    tpb = ticks_per_bar(draft.score)
    assert draft.loop and draft.loop_end_tick() == 6 * tpb
    assert draft.score.end() <= 6 * tpb  # nothing rings past the loop point
    assert bar_count(draft.score) <= 6
    mid = mido.MidiFile(file=io.BytesIO(midi_bytes(draft.score, key=draft.key, markers=draft.markers())))
    now, markers = 0, {}
    for m in mid.tracks[0]:
        now += m.time
        if m.type == "marker":
            markers[m.text] = now
    assert markers == {"loopStart": 0, "loopEnd": 6 * tpb}


def test_a_loop_is_repaired_as_it_is_heard_going_round(tiny_composer):
    # seed 3 clashes in its last bar against what comes next when it plays round (no fault as a piece)
    request = dict(instruments=["violin", "viola", "cello"], bars=6, loop=True, seed=3, model=tiny_composer)
    config = HarmonyConfig.for_style("classical")
    raw = compose("classical", repair=False, **request)
    assert {f.bar for f in check(raw.score, config, loop=True)} - {f.bar for f in check(raw.score, config, loop=False)} == {6}
    # the draft's score says where it comes round (loop markers, as its MIDI file), so check() hears it unasked
    assert check(raw.score, config) == check(raw.score, config, loop=True)
    assert [(int(m.time), m.text) for m in raw.score.markers] == [(0, "loopStart"), (6 * ticks_per_bar(raw.score), "loopEnd")]
    draft = compose("classical", **request)
    assert check(draft.score, config, loop=True) == [] and draft.repair["findings_after"] == []
    assert any(e["bar"] == 6 for e in draft.repair["edits"])


# --- the user's music is kept -------------------------------------------------------------------


def chorale_primer(tiny_corpus) -> Score:
    path = sorted((tiny_corpus / "corpus" / "midi" / "bach").glob("*.mid"))[1]
    score = Score(str(path))
    score.key_signatures.append(KeySignature(0, -1, 0))  # F major: no key analysis needed
    return score


def as_written(score: Score) -> Counter:
    return Counter(notes_of(score.resample(TPQ)))


def test_continue_midi_keeps_the_primer_and_adds_exactly_n_bars(tiny_composer, tiny_corpus):
    primer = chorale_primer(tiny_corpus)
    primer_bars = bar_count(primer)
    draft = continue_midi(primer, bars=2, model=tiny_composer, repair=False, seed=2)
    assert bar_count(draft.score) == primer_bars + 2
    assert [(t.name, t.program) for t in draft.score.tracks] == [(t.name, t.program) for t in primer.tracks]
    end = primer_bars * ticks_per_bar(primer)
    kept = Counter(x for x in notes_of(draft.score) if x[1] < end)
    assert kept == as_written(primer)
    assert any(x[1] >= end for x in notes_of(draft.score))



def test_continue_midi_gives_back_an_off_grid_primer_as_played(tiny_composer):
    """The model reads a primer on its 32nd-note grid, in notes of at most 12 beats; the user's notes
    come back as played: triplets, a humanised onset, a 16-beat pedal and their velocities."""
    primer = make_score([(67, 0, 1 / 3), (69, 1 / 3, 1 / 3), (71, 2 / 3, 1 / 3), (72, 1.03, 0.97), (74, 2, 2), (72, 12, 4)],
                        [(48, 0, 16)], programs=[73, 42], names=["Flute", "Cello"])
    for k, track in enumerate(primer.tracks):
        for i, note in enumerate(track.notes):
            note.velocity = 50 + 9 * i + k
    primer.key_signatures.append(KeySignature(0, 0, 0))
    draft = continue_midi(primer, bars=1, model=tiny_composer, repair=True, seed=1)
    end = 4 * ticks_per_bar(primer)
    given = [(k, n.time, n.duration, n.pitch, n.velocity) for k, t in enumerate(primer.tracks) for n in t.notes]
    kept = [(k, n.time, n.duration, n.pitch, n.velocity) for k, t in enumerate(draft.score.tracks) for n in t.notes
            if n.time < end]
    assert sorted(kept) == sorted(given)
    assert any(n.time >= end for t in draft.score.tracks for n in t.notes)


def test_regenerate_replaces_a_note_the_tokenizer_put_in_its_bars(tiny_composer):
    """A note played just before bar 2 (tick 1915) is read on the grid at its downbeat, so it belongs to bar 2:
    regenerating bars 2-3 rewrites it rather than keeping it beside the new notes; bars 1 and 4 come back as played."""
    source = make_score([(67, 0, 1), (69, 1, 1), (71, 2, 1), (72, 1915 / TPQ, 1), (74, 5, 1), (71, 8, 4), (67, 12, 4)],
                        [(48, 0, 4), (53, 4, 4), (55, 8, 4), (48, 12, 4)], programs=[73, 42], names=["Flute", "Cello"])
    source.key_signatures.append(KeySignature(0, 0, 0))
    new = regenerate(source, bars=(2, 3), model=tiny_composer, repair=False, seed=1)
    bar = ticks_per_bar(source)
    flute = [(n.time, n.pitch) for n in new.score.tracks[0].notes]
    assert (1915, 72) not in flute
    assert [x for x in flute if not bar <= x[0] < 3 * bar] == [(0, 67), (480, 69), (960, 71), (5760, 67)]


def test_continue_midi_leaves_the_primer_as_written_velocities_drums_and_all(tiny_composer, tiny_corpus):
    """The primer is the user's music: the repair edits only the new bars (it used to correct Bach's
    own notes in 3 of 5 chorale primers), the primer's velocities survive (the tokens carry none, and
    every note came back at 84 or 72), and a drum track comes back as it was (it was dropped) and goes on."""
    primer = chorale_primer(tiny_corpus).resample(TPQ)
    for k, track in enumerate(primer.tracks):
        for i, note in enumerate(track.notes):
            note.velocity = 40 + (7 * i + k) % 60
    end = bar_count(primer) * ticks_per_bar(primer)
    drums = Track(name="Kit", program=0, is_drum=True)
    for t in range(0, end, primer.ticks_per_quarter):
        drums.notes.append(Note(t, primer.ticks_per_quarter // 2, 36 + 2 * (t // primer.ticks_per_quarter % 2), 90))
    primer.tracks.append(drums)
    for seed in range(3):
        draft = continue_midi(primer, bars=2, model=tiny_composer, repair=True, seed=seed)
        assert not [e for e in draft.repair["edits"] if e["time"] < end]
        kept = Counter(x for x in notes_of(draft.score) if x[1] < end)
        assert kept == as_written(primer)
        velocities = {(k, n.time, n.pitch): n.velocity for k, t in enumerate(primer.tracks) for n in t.notes}
        assert all(velocities[(k, n.time, n.pitch)] == n.velocity
                   for k, t in enumerate(draft.score.tracks[:-1]) for n in t.notes if n.time < end)
        last = draft.score.tracks[-1]
        assert (last.name, last.is_drum, [(n.time, n.pitch) for n in last.notes if n.time < end]) == \
            ("Kit", True, [(n.time, n.pitch) for n in drums.notes])
        bar = ticks_per_bar(primer)  # the groove goes on: a bar of it, then the closing downbeat
        assert [(n.time - end, n.pitch) for n in last.notes if n.time >= end] == \
            [(n.time - end + bar, n.pitch) for n in drums.notes if n.time >= end - bar] + [(bar, 36)]


def test_regenerate_keeps_the_other_bars_velocities_and_repairs_only_its_own(tiny_composer, tiny_corpus):
    source = chorale_primer(tiny_corpus).resample(TPQ)
    for track in source.tracks:
        for i, note in enumerate(track.notes):
            note.velocity = 30 + i % 50
    bar = ticks_per_bar(source)
    new = regenerate(source, bars=(2, 3), model=tiny_composer, repair=True, seed=4)
    assert all(bar <= e["time"] < 3 * bar for e in new.repair["edits"])
    given = {(k, n.time, n.pitch): n.velocity for k, t in enumerate(source.tracks) for n in t.notes}
    outside = [(k, n) for k, t in enumerate(new.score.tracks) for n in t.notes if not bar <= n.time < 3 * bar]
    assert outside and all(given[(k, n.time, n.pitch)] == n.velocity for k, n in outside)

def test_a_primer_that_modulates_goes_on_in_the_key_it_reached(tiny_composer, tiny_corpus, tmp_path):
    """A chorale in F major that turns to C major at bar 3 is continued in C major, closing on C's
    tonic chord, and its key change stays in the files; regenerating bar 2 writes it in F major. The
    key used to be the first signature's, and the draft's files carried that one key throughout."""
    primer = chorale_primer(tiny_corpus).resample(TPQ)
    bar = ticks_per_bar(primer)
    primer.key_signatures.append(KeySignature(2 * bar, 0, 0))
    draft = continue_midi(primer, bars=2, model=tiny_composer, repair=True, seed=2)
    assert draft.key == "C major"
    last = (bar_count(draft.score) - 1) * bar
    sounding = [n.pitch for t in draft.score.tracks for n in t.notes if n.time <= last < n.end]
    assert sounding and {p % 12 for p in sounding} <= {0, 4, 7} and min(sounding) % 12 == 0
    draft.save(tmp_path / "out", audio=False)
    midi = mido.MidiFile(tmp_path / "out" / "draft.mid")
    assert [(m.key, t) for m, t in _meta(midi.tracks[0], "key_signature")] == [("F", 0), ("C", 2 * bar)]
    xml = (tmp_path / "out" / "draft.musicxml").read_text()
    assert xml.index("<fifths>-1</fifths>") < xml.index("<fifths>0</fifths>")
    assert regenerate(primer, bars=(2, 2), model=tiny_composer, repair=False, seed=2).key == "F major"


def test_a_pickup_as_a_notation_program_exports_it_is_continued(tiny_composer):
    """MuseScore 3 exports a tune with an upbeat as a 1/4 bar, then 4/4: that read as a change of metre,
    and continue_midi and regenerate refused the file. The upbeat now ends a full first bar, as the
    corpus's MIDI has it: the tune comes back three beats later, in 4/4 from the start."""
    tune = make_score([(62, 0, 1), (67, 1, 1), (69, 2, 1), (71, 3, 1), (67, 4, 1), (74, 5, 2), (71, 7, 2)],
                      names=["Flute"], programs=[73])
    tune.time_signatures.append(TimeSignature(TPQ, 4, 4))
    tune.time_signatures[0].numerator = 1
    tune.key_signatures.append(KeySignature(0, 1, 0))
    draft = continue_midi(tune, bars=1, model=tiny_composer, repair=True, seed=1)
    assert [(ts.time, ts.numerator, ts.denominator) for ts in draft.score.time_signatures] == [(0, 4, 4)]
    assert [(ks.time, ks.key) for ks in draft.score.key_signatures] == [(0, 1)] and draft.key == "G major"
    notes = [(n.time, n.pitch) for n in draft.score.tracks[0].notes]
    assert notes[:7] == [(3 * TPQ + n.time, n.pitch) for n in tune.tracks[0].notes]
    assert bar_count(draft.score) == 4 and any(t >= 3 * 4 * TPQ for t, _ in notes)
    new = regenerate(tune, bars=(2, 2), model=tiny_composer, repair=False, seed=1)
    assert [(n.time, n.pitch) for n in new.score.tracks[0].notes][0] == (3 * TPQ, 62)


def test_unnamed_tracks_come_back_named_for_their_instruments(tiny_composer):
    """A type-0 file or a DAW export often names no track: they came back as 'Track 1', 'Track 2'."""
    primer = make_score([(72, 0, 2), (74, 2, 2)], [(60, 0, 4)], [(40, 0, 4)], programs=[40, 40, 32], names=["", "", ""])
    primer.key_signatures.append(KeySignature(0, 0, 0))
    draft = continue_midi(primer, bars=1, model=tiny_composer, repair=False, seed=1)
    assert [t.name for t in draft.score.tracks] == ["Violin 1", "Violin 2", "Acoustic Bass"]


def test_a_piece_that_changes_metre_is_continued_and_rewritten_one_metre_at_a_time(tiny_composer):
    """Four bars of 4/4, then two of 3/4 (a 13th of the corpus's pieces change metre): continue_midi and
    regenerate refused such a file. The model reads one metre at a time, so the piece goes on from its
    last stretch, in 3/4, and bars are rewritten within their own stretch; the rest comes back as written."""
    piece = make_score([(72 + i % 5, i, 1) for i in range(16)] + [(74, 16 + 3 * b, 2) for b in range(2)],
                       [(48, 4 * b, 4) for b in range(4)] + [(43, 16 + 3 * b, 3) for b in range(2)],
                       programs=[40, 42], names=["Violin", "Cello"])
    piece.time_signatures.append(TimeSignature(16 * TPQ, 3, 4))
    piece.key_signatures.append(KeySignature(0, 0, 0))
    change, end = 16 * TPQ, 22 * TPQ
    draft = continue_midi(piece, bars=2, model=tiny_composer, repair=True, seed=3)
    assert [(ts.time, ts.numerator) for ts in draft.score.time_signatures] == [(0, 4), (change, 3)]
    assert (draft.request["bars"], draft.request["time_signature"]) == (8, "3/4")
    assert Counter(x for x in notes_of(draft.score) if x[1] < end) == Counter(notes_of(piece))
    new = [x for x in notes_of(draft.score) if x[1] >= end]
    assert new and max(x[1] + x[2] for x in new) <= end + 2 * 3 * TPQ
    assert all(e["time"] >= end for e in draft.repair["edits"])
    for bars, (low, high) in (((2, 3), (4 * TPQ, 12 * TPQ)), ((5, 5), (change, change + 3 * TPQ))):
        again = regenerate(piece, bars=bars, model=tiny_composer, repair=True, seed=3)
        assert [(ts.time, ts.numerator) for ts in again.score.time_signatures] == [(0, 4), (change, 3)]
        kept, given = ([x for x in notes_of(s) if not low <= x[1] < high] for s in (again.score, piece))
        assert Counter(kept) == Counter(given), bars
        assert all(low <= e["time"] < high for e in again.repair["edits"]) and again.request["bars"] == 6


def test_a_final_chord_held_through_a_bar_of_its_own_is_continued_after(tiny_composer):
    """A primer whose last chord is struck in bar 2 and held through bar 3 is three bars long: the new bars
    began in bar 3, under the held chord (the tokens hold the bars where notes are struck). A release a
    little late, 10 ticks into bar 3, is no bar of its own."""
    bar = 4 * TPQ
    for held, first_new in ((2 * bar, 3 * bar), (bar + 10, 2 * bar)):
        primer = make_score([(67, 0, 2), (69, 2, 2), (72, 4, held / TPQ)], [(48, 0, 4), (43, 4, held / TPQ)])
        primer.key_signatures.append(KeySignature(0, 0, 0))
        draft = continue_midi(primer, bars=1, model=tiny_composer, repair=False, seed=1)
        new = [x for x in notes_of(draft.score) if x not in notes_of(primer)]
        assert new and min(x[1] for x in new) >= first_new and bar_count(draft.score) == first_new // bar + 1, held


def _meta(track, kind: str) -> list:
    """(message, absolute tick) of the messages of one kind in a mido track."""
    tick, out = 0, []
    for message in track:
        tick += message.time
        if message.type == kind:
            out.append((message, tick))
    return out


def test_a_user_s_sections_controllers_and_bends_come_back(tiny_composer, tiny_corpus):
    """Besides its notes, a user's file keeps its section markers, its controllers (volume, the
    sustain pedal) and, outside the bars rewritten, its pitch bends, the wheel centred over the new
    notes and set back after them. All of these were dropped; a saved loop's loop markers are the
    result's to set, not carried over (regenerated with loop=False, it is no loop)."""
    from symusic import ControlChange, PitchBend, TextMeta  # noqa: PLC0415

    source = chorale_primer(tiny_corpus).resample(TPQ)
    bar = ticks_per_bar(source)
    end = bar_count(source) * bar
    for tick, text in ((0, "A"), (2 * bar, "B"), (0, "loopStart"), (end, "loopEnd")):
        source.markers.append(TextMeta(tick, text))
    top = source.tracks[0]
    for tick, number, value in ((0, 7, 90), (0, 64, 127), (bar - 10, 64, 0)):
        top.controls.append(ControlChange(tick, number, value))
    top.pitch_bends.append(PitchBend(bar // 2, 1200))
    top.pitch_bends.append(PitchBend(2 * bar + bar // 2, -300))
    new = regenerate(source, bars=(2, 3), model=tiny_composer, repair=True, seed=1, loop=False)
    assert [(int(m.time), m.text) for m in new.score.markers] == [(0, "A"), (2 * bar, "B")]
    assert not new.loop and not new.markers()
    kept = new.score.tracks[0]
    assert [(c.time, c.number, c.value) for c in kept.controls] == [(0, 7, 90), (0, 64, 127), (bar - 10, 64, 0)]
    assert [(b.time, b.value) for b in kept.pitch_bends] == [(bar // 2, 1200), (bar, 0), (3 * bar, -300)]
    cont = continue_midi(source, bars=1, model=tiny_composer, repair=False, seed=1)
    assert [(b.time, b.value) for b in cont.score.tracks[0].pitch_bends] == \
        [(bar // 2, 1200), (2 * bar + bar // 2, -300), (end, 0)]
    assert [m.text for m in cont.score.markers] == ["A", "B"]


def test_a_primer_listing_its_bass_first_is_continued_as_if_listed_top_first(tiny_composer, tiny_corpus):
    """The model reads slot 0 as the top part (the shipped model scores held-out chorales at 2.3 nats a
    note top first, 7.0 reversed), so the lines go in top first whatever the file's order, and come back
    out in the file's order."""
    primer = chorale_primer(tiny_corpus)
    bass_first = primer.copy()
    bass_first.tracks = list(reversed(list(bass_first.tracks)))
    for make in (lambda p: continue_midi(p, bars=2, model=tiny_composer, repair=False, seed=4),
                 lambda p: regenerate(p, bars=(2, 3), model=tiny_composer, repair=False, seed=4)):
        top, bottom = make(primer).score, make(bass_first).score
        assert [t.name for t in bottom.tracks] == [t.name for t in reversed(list(top.tracks))]
        assert {t.name: notes_of_track(t) for t in bottom.tracks} == {t.name: notes_of_track(t) for t in top.tracks}


def notes_of_track(track: Track) -> list[tuple]:
    return [(n.time, n.duration, n.pitch) for n in track.notes]


def test_continue_midi_keeps_chords_in_the_primer(tiny_composer):
    """A piano primer plays triads; continuing it must not thin them to one note per onset."""
    piano = [(p, b, 1) for b in range(8) for p in (60, 64, 67)]
    bass = [(36 + (b % 2) * 7, b, 1) for b in range(8)]
    primer = make_score(piano, bass, programs=[0, 32], names=["Piano", "Bass"])
    primer.key_signatures.append(KeySignature(0, 0, 0))
    draft = continue_midi(primer, bars=1, model=tiny_composer, repair=False)
    kept = Counter(x for x in notes_of(draft.score) if x[1] < 8 * TPQ)
    assert kept == Counter(notes_of(primer))


def test_continuing_a_piano_draft_goes_on_in_chords(tiny_composer):
    """compose() writes a piano in four lines; continue_midi() splits its chords back into lines, so
    the new bars are not one thin line and the primer's notes are all kept."""
    draft = compose("romantic", key="G major", instruments=["piano"], bars=2, seed=3, repair=False,
                    model=tiny_composer)
    more = continue_midi(draft, bars=2, seed=4, repair=False, model=tiny_composer)
    end = 2 * ticks_per_bar(draft.score)
    assert Counter(x for x in notes_of(more.score) if x[1] < end) == Counter(notes_of(draft.score))
    assert [t.name for t in more.score.tracks] == ["Piano"]
    new = Track()
    new.notes.extend(n for n in more.score.tracks[0].notes if n.time >= end)
    assert 2 <= most_at_once(new) <= 4


def _generation_calls(composer, monkeypatch, record) -> list:
    """A list that each generation call appends `record(fixed ids, constraints)` to."""
    seen = []
    generate_batch = composer.generator.generate_batch

    def spy(fixed, music, constraints, cfg=None, seeds=(0,), **kw):
        seen.append(record(fixed, constraints))
        return generate_batch(fixed, music, constraints, cfg, seeds=seeds, **kw)

    monkeypatch.setattr(composer.generator, "generate_batch", spy)
    return seen


def test_register_pull_draws_a_fresh_piece_to_its_instruments_not_a_primer(tiny_composer, monkeypatch):
    """compose() gives the generator each line's instrument centre, moved into the normalised key as
    its pitch range is; continue_midi() gives none, since a primer's lines centre where the user wrote them."""
    from musedraft.instruments import get_instrument  # noqa: PLC0415
    from musedraft.tokenizer import normalising_shift, parse_key  # noqa: PLC0415

    seen = _generation_calls(tiny_composer, monkeypatch, lambda fixed, constraints: constraints.centres)
    draft = compose("chorale", key="G major", instruments=["soprano", "bass voice"], bars=2, seed=1, repair=False,
                    model=tiny_composer)
    continue_midi(draft, bars=1, seed=2, repair=False, model=tiny_composer)
    shift = normalising_shift(*parse_key("G major"))
    assert seen == [[get_instrument("soprano").middle + shift, get_instrument("bass voice").middle + shift], None]


def test_the_generator_knows_which_line_a_timpani_plays_in_a_fresh_piece_and_a_primer(tiny_composer, monkeypatch):
    """compose(), continue_midi() and regenerate() tell the generator the timpani's line (it is held to no
    parallels, and is not the bass), wherever the lines' order puts it."""
    seen = _generation_calls(tiny_composer, monkeypatch, lambda fixed, constraints: constraints.drums)
    draft = compose("classical", instruments=["timpani", "violin", "contrabass"], bars=2, seed=1, repair=False,
                    model=tiny_composer)
    continue_midi(draft, bars=1, seed=2, repair=False, model=tiny_composer)
    regenerate(draft, bars=(2, 2), seed=3, repair=False, model=tiny_composer)
    assert seen == [(1,), (1,), (1,)]  # lines top first: the violin, the timpani (its middle above the contrabass's)


def test_the_generator_knows_a_keyboard_s_lines_in_a_fresh_piece_and_a_primer(tiny_composer, monkeypatch):
    """A piano's lines are one track of chords, which the harmony checker holds to no parallels or
    crossings: compose(), continue_midi() and regenerate() all tell the generator which lines those are
    (every line but the cello's). Only a fresh piece pulls in an instrument sitting it out; a primer's
    lines rest as the user wrote them."""
    seen = _generation_calls(tiny_composer, monkeypatch, lambda fixed, constraints: (
        constraints.slots - len(constraints.chordal), len(constraints.chordal), constraints.tacet))
    draft = compose("romantic", instruments=["piano", "cello"], bars=2, seed=1, repair=False, model=tiny_composer)
    continue_midi(draft, bars=1, seed=2, repair=False, model=tiny_composer)
    regenerate(draft, bars=(2, 2), seed=3, repair=False, model=tiny_composer)
    assert [(voices, tacet) for voices, _, tacet in seen] == [(1, True), (1, False), (1, False)]
    assert all(2 <= piano_lines <= 4 for _, piano_lines, _ in seen)


def _centres_and_registers(composer, monkeypatch) -> list:
    """A list that each generation call appends (the centres it was given, the header's register tokens) to."""
    def record(fixed, constraints):
        tokens = [composer.tokenizer.vocab.tokens[i] for i in fixed]
        return constraints.centres, [t for t in tokens if t.startswith("Track_")]

    return _generation_calls(composer, monkeypatch, record)


def test_a_style_centres_each_line_where_its_parts_for_that_instrument_sit(tiny_composer, monkeypatch):
    """With the style's habits, a line centres where the style's parts for its instrument do, and the
    header names its register from there: a tenor centred on D4 is named in an alto's band. Slots go top
    first by those centres; an instrument the style has no centre for keeps its middle."""
    from musedraft.habits import StyleHabits  # noqa: PLC0415
    from musedraft.instruments import get_instrument  # noqa: PLC0415

    seen = _centres_and_registers(tiny_composer, monkeypatch)
    habits = {"madrigal": StyleHabits(ambitus=14, pieces=45, lines=225, centres={"soprano": 72.0, "tenor": 62.0})}
    monkeypatch.setattr(tiny_composer, "habits", habits)
    compose("madrigal", key="C major", instruments=["bass voice", "tenor", "soprano"], bars=1, seed=1, repair=False,
            model=tiny_composer)
    assert seen[0] == ([72.0, 62.0, get_instrument("bass voice").middle], ["Track_soprano", "Track_alto", "Track_bass"])
    monkeypatch.setattr(tiny_composer, "habits", {})
    compose("madrigal", key="C major", instruments=["bass voice", "tenor", "soprano"], bars=1, seed=1, repair=False,
            model=tiny_composer)
    assert seen[1] == ([68, 56, 47], ["Track_soprano", "Track_tenor", "Track_bass"])


def test_a_quartet_s_violins_centre_by_rank(tiny_composer, monkeypatch):
    """Two violins asked for take the style's first- and second-violin centres in the order asked, so
    in D major the header names one a soprano's register and the other an alto's, where one pooled
    centre named both soprano; a lone violin takes the pooled centre."""
    from musedraft.habits import StyleHabits  # noqa: PLC0415
    from musedraft.instruments import get_instrument  # noqa: PLC0415
    from musedraft.tokenizer import normalising_shift, parse_key  # noqa: PLC0415

    seen = _centres_and_registers(tiny_composer, monkeypatch)
    habits = {"classical": StyleHabits(ambitus=14, pieces=50, lines=200, centres={"violin": 71.0, "viola": 60.0, "cello": 51.0},
                                       ranks={"violin": [76.0, 67.0]})}
    monkeypatch.setattr(tiny_composer, "habits", habits)
    for instruments in (["violin", "violin", "viola", "cello"], ["viola", "violin", "cello", "violin"], ["violin", "viola", "cello"]):
        compose("classical", key="D major", instruments=instruments, bars=1, seed=1, repair=False, model=tiny_composer)
    shift = normalising_shift(*parse_key("D major"))
    assert shift == -2 and get_instrument("violin").low < 67.0
    assert seen[0] == ([74.0, 65.0, 58.0, 49.0], ["Track_soprano", "Track_alto", "Track_tenor", "Track_bass"])
    assert seen[1] == seen[0]  # slots go top first whatever order the request lists the parts in
    assert seen[2] == ([69.0, 58.0, 49.0], ["Track_soprano", "Track_tenor", "Track_bass"])


@pytest.mark.parametrize(("key", "register"), [("C major", "soprano"), ("F major", "alto"), ("G major", "soprano"), ("D minor", "alto")])
def test_header_names_each_line_s_register_in_the_key_the_model_reads(tiny_composer, monkeypatch, key, register):
    """Training sets a line's register token from its median in the C major / A minor frame; compose()
    must name its lines the same way. A soprano centres on G#4 (68): in F major that is 63 in the
    model's frame, an alto's band (it used to say soprano in every key)."""
    seen = []
    generate_batch = tiny_composer.generator.generate_batch

    def spy(fixed, music, constraints, cfg=None, seeds=(0,), **kw):
        seen.append([tiny_composer.tokenizer.vocab.tokens[i] for i in fixed])
        return generate_batch(fixed, music, constraints, cfg, seeds=seeds, **kw)

    monkeypatch.setattr(tiny_composer.generator, "generate_batch", spy)
    compose("chorale", key=key, instruments=["soprano"], bars=1, seed=1, repair=False, model=tiny_composer)
    assert [t for t in seen[0] if t.startswith("Track_")] == [f"Track_{register}"]


def test_regenerate_keeps_bars_outside_the_range(tiny_composer):
    draft = compose("chorale", key="G major", instruments=["soprano", "alto", "bass voice"], bars=6, seed=6,
                    repair=False, model=tiny_composer)
    tpb = ticks_per_bar(draft.score)
    first, last = 2 * tpb, 4 * tpb  # bars 3-4, zero-based ticks
    new = regenerate(draft, bars=(3, 4), model=tiny_composer, repair=False, seed=1)
    assert bar_count(new.score) == 6

    def before(score):  # onset, pitch, and length up to the regenerated bars (a new note may cut it there)
        return [(k, t, min(t + d, first), p) for k, t, d, p in notes_of(score) if t < first]

    def after(score):
        return [x for x in notes_of(score) if x[1] >= last]

    def middle(score):
        return [x for x in notes_of(score) if first <= x[1] < last]

    assert before(new.score) == before(draft.score)
    assert after(new.score) == after(draft.score)
    assert middle(new.score) != middle(draft.score)
    assert [t.program for t in new.score.tracks] == [t.program for t in draft.score.tracks]


def test_regenerate_final_bars_writes_a_new_cadence(tiny_composer):
    draft = compose("chorale", key="A minor", instruments=["violin", "cello"], bars=4, seed=3, repair=False,
                    model=tiny_composer)
    tpb = ticks_per_bar(draft.score)
    new = regenerate(draft, bars=(3, 4), model=tiny_composer, repair=False, seed=4)
    assert bar_count(new.score) == 4
    keep = [(k, t, min(t + d, 2 * tpb), p) for k, t, d, p in notes_of(draft.score) if t < 2 * tpb]
    assert [(k, t, min(t + d, 2 * tpb), p) for k, t, d, p in notes_of(new.score) if t < 2 * tpb] == keep
    final = [n.pitch % 12 for t in new.score.tracks for n in t.notes if n.time == 3 * tpb]
    assert len(final) == 2 and set(final) <= {9, 0, 4} and final[1] == 9


def test_regenerating_a_loop_s_last_bars_leads_back_into_its_opening(tiny_composer, monkeypatch, tmp_path):
    """A loop's final bars lead into its opening, not to a cadence: the generator writes them with the
    opening after them (fill-in-the-middle) and no cadence, and the result is still a loop, exactly its
    bars long, whether the source is the Draft or its saved MIDI; loop=False makes it a piece that ends."""
    fim = tiny_composer.tokenizer.vocab["FIM_SUF"]
    seen = _generation_calls(tiny_composer, monkeypatch, lambda fixed, constraints: (fim in fixed, constraints.cadence))
    draft = compose("classical", instruments=["violin", "cello"], bars=4, loop=True, seed=2, repair=False,
                    model=tiny_composer)
    tpb = ticks_per_bar(draft.score)
    draft.save(tmp_path, audio=False)
    seen.clear()
    for source in (draft, tmp_path / "draft.mid"):
        new = regenerate(source, bars=(3, 4), seed=2, model=tiny_composer)
        assert new.loop and new.loop_end_tick() == 4 * tpb and new.score.end() <= 4 * tpb
        assert new.markers() == [(0, "loopStart"), (4 * tpb, "loopEnd")]
    ended = regenerate(draft, bars=(3, 4), seed=2, model=tiny_composer, loop=False)
    assert not ended.loop and ended.markers() == []
    assert seen == [(True, False), (True, False), (False, True)]


def test_regenerate_next_to_dense_music_fits_the_context(tiny_composer):
    """Sixteenth notes in four parts: the bars around the regenerated one outgrow half the tiny
    model's context, so the prompt must be cut to fit rather than refused."""
    parts = [[(p + (k % 2) * 2, k / 4, 0.25) for k in range(4 * 4 * 3)] for p in (72, 64, 55, 48)]
    score = make_score(*parts, programs=[40, 40, 41, 42], names=["Violin 1", "Violin 2", "Viola", "Cello"])
    score.key_signatures.append(KeySignature(0, 0, 0))
    for bars in [(1, 1), (2, 2)]:
        new = regenerate(score, bars=bars, model=tiny_composer, repair=False)
        assert bar_count(new.score) == 3


# --- requests that cannot be met ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    dict(key="H major"), dict(time_signature="11/8"), dict(time_signature="three four"), dict(bars=0),
    dict(bars=2.5), dict(style="jazz"), dict(loop=True, bars=3), dict(tempo=5), dict(instruments=["kazoo"]),
    dict(instruments=["violin"] * 9),
])
def test_impossible_requests_raise_request_error(tiny_composer, bad):
    req = dict(style="chorale", bars=2, instruments=["violin"], repair=False, model=tiny_composer) | bad
    with pytest.raises(RequestError):
        compose(**req)


def test_a_style_is_taken_in_any_case_as_a_scene_is(tiny_composer):
    req = dict(bars=2, instruments=["violin"], repair=False, model=tiny_composer)
    assert compose(" Chorale", **req).request["style"] == "chorale"  # it was an unknown style
    primer = make_score([(60, 0, 4), (62, 4, 4)])
    primer.key_signatures.append(KeySignature(0, 0, 0))
    assert continue_midi(primer, bars=1, style="FOLK", model=tiny_composer, repair=False).request["style"] == "folk"


def test_continue_and_regenerate_refuse_bad_bar_numbers(tiny_composer):
    primer = make_score([(60, 0, 4), (62, 4, 4)])
    primer.key_signatures.append(KeySignature(0, 0, 0))
    with pytest.raises(RequestError):
        continue_midi(primer, bars=0, model=tiny_composer)
    for bars in [(0, 1), (2, 1), (1, 3)]:
        with pytest.raises(RequestError, match="bars"):
            regenerate(primer, bars=bars, model=tiny_composer)


def test_repair_records_its_edits_and_keeps_the_request(tiny_composer):
    req = REQUESTS[0]
    draft = compose(**req, repair=True, model=tiny_composer)
    report = draft.repair
    assert set(report) >= {"edits", "findings_before", "findings_after", "notes"}
    assert len(report["findings_after"]) <= len(report["findings_before"])
    assert "repair" in draft.timings
    assert bar_count(draft.score) == req["bars"]
    insts = [get_instrument(n) for n in req["instruments"]]
    assert [t.program for t in draft.score.tracks] == [i.program for i in insts]
    for inst, track in zip(insts, draft.score.tracks, strict=True):
        assert all(inst.low <= n.pitch <= inst.high for n in track.notes), inst.name


@pytest.mark.parametrize("first", ["musedraft.load_model", "musedraft.continue_midi",
                                   "__import__('musedraft.composer')"])
def test_package_compose_stays_callable_whatever_is_used_first(first):
    """`musedraft.compose(...)` is the API; importing the musedraft.composer submodule (which any other
    API name does) must not replace it with the module. Fresh interpreter: import order matters."""
    code = f"import musedraft; {first}; assert callable(musedraft.compose), type(musedraft.compose)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1]


def test_batched_candidates_equal_single_composes_seed_for_seed(tiny_composer):
    """compose_candidates generates the candidates as one batch; each must be exactly the draft
    compose() gives for its seed, so a user can re-create any auditioned candidate alone."""
    batch = compose_candidates(3, "chorale", bars=3, seed=4, repair=False, model=tiny_composer)
    assert [d.seed for d in batch] == [4, 5, 6]
    for draft in batch:
        alone = compose("chorale", bars=3, seed=draft.seed, repair=False, model=tiny_composer)
        assert draft.score.dumps_midi() == alone.score.dumps_midi()
    assert len({d.score.dumps_midi() for d in batch}) == 3


def test_batched_generation_survives_the_context_filling_up(tiny_composer):
    """Rows advance in lockstep until the context is full, then each slides on its own: every row still
    gets exactly its bars and decodes, and equals the one-row generation with the same seed."""
    gen, tok = tiny_composer.generator, tiny_composer.tokenizer
    header = tok.header_ids(Controls("chorale", "major", ["soprano", "bass"]))
    c = Constraints(bars=12, time_signature="4/4", pitch_ranges=[(60, 81), (40, 64)], tempo=120.0)
    rows = gen.generate_batch(header, [], c, SamplingConfig(), seeds=(1, 2))
    for seed, row in zip((1, 2), rows, strict=True):
        assert row == gen.generate(header, [], c, SamplingConfig(), seed=seed)
        assert int((tok.bar_starts(row) >= 0).sum()) == 12
        tok.decode(header + row)

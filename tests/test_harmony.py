"""Harmony check: each rule on small hand-written examples (what it must flag and what good music
does on purpose that it must not), the public API, keys, metre and the music21 equivalences."""

from __future__ import annotations

import doctest
import importlib
import json

import numpy as np
import pytest
from music21 import corpus
from music21.analysis import discrete
from symusic import Score, TimeSignature

from musedraft.errors import InvalidMidiError
from musedraft.harmony import RULES, Finding, HarmonyConfig, check, format_findings, key_of_score
from musedraft.harmony.keys import best_keys, pc_histograms
from musedraft.harmony.meter import BEAT, OFFBEAT, STRONG, Meter
from musedraft.harmony.testing import chorale, context_of, note_at, voices


def rules_of(score: Score, config: HarmonyConfig | None = None) -> list[tuple[str, int, float, str]]:
    return [(f.rule, f.bar, f.beat, f.pitch_name) for f in check(score, config)]


# --- parallels --------------------------------------------------------------------------------

def test_textbook_parallel_fifths_are_flagged_on_the_lower_voice():
    found = check(voices("D5:2 E5:2", "G4:2 A4:2"))
    assert [(f.rule, f.bar, f.beat, f.track_name, f.pitch_name) for f in found] == [
        ("parallel-fifths", 1, 3.0, "alto", "A4")]
    assert "parallel fifths" in found[0].message and "D5→E5" in found[0].message


def test_parallel_octaves_and_unisons_are_flagged():
    assert [f.rule for f in check(voices("C5:2 D5:2", "C4:2 D4:2"))] == ["parallel-octaves"]
    assert [f.rule for f in check(voices("C5:2 D5:2", "C5:2 D5:2"))] == ["parallel-octaves"]


def test_fifth_to_octave_by_contrary_motion_is_clean():
    assert check(voices("G4:2 C5:2", "C4:2 C3:2")) == []


def test_contrary_fifths_only_in_strict_counterpoint():
    score = voices("C#5:2 F#4:2", "F#3:2 B3:2")
    assert check(score) == []
    assert [f.rule for f in check(score, HarmonyConfig(contrary_parallels=True))] == ["parallel-fifths"]


def test_contrary_octaves_only_in_strict_counterpoint():
    # music21's parallelUnison() also takes antiparallel motion and a double octave for a unison
    for upper, lower in (("D5:2 A5:2", "D3:2 A2:2"), ("C5:2 C6:2", "C4:2 C3:2")):
        assert check(voices(upper, lower)) == []
        assert [f.rule for f in check(voices(upper, lower), HarmonyConfig(contrary_parallels=True))] == \
            ["parallel-octaves"]


def test_a_timpani_is_not_a_voice_nor_the_bass():
    """A timpani strikes the roots under the music: with a trumpet in octaves, or sounding above the
    cello for a beat, it makes no parallel and no crossing, and the bass is the cello's note. A bassoon
    on the same notes does both."""
    def score(program: int, name: str):
        return voices("D5:2 G4:2", "B3:2 E2:2", "D3:2 G2:2", names=["Trumpet", "Cello", name], programs=[56, 42, program])

    assert check(score(47, "Timpani")) == []
    assert sorted(f.rule for f in check(score(70, "Bassoon"))) == ["parallel-octaves", "voice-crossing"]
    ctx = context_of(score(47, "Timpani"))
    assert [int(ctx.pitch[ctx.bass(k)]) for k in range(len(ctx.onsets))] == [59, 40]  # B3 and E2, not the timpani's D3
    assert context_of(voices("D3:2 A2:2", names=["Timpani"], programs=[47])).bass(0) == 0  # alone it is the bass


def test_a_run_of_octaves_is_a_doubling_not_a_fault():
    assert check(voices("C5 D5 E5 F5", "C4 D4 E4 F4")) == []
    assert [f.rule for f in check(voices("C5 D5 E5 F5", "C4 D4 E4 F4"), HarmonyConfig(doubling_run=9))] == \
        ["parallel-octaves"] * 3


# --- vertical clashes -------------------------------------------------------------------------

def test_prepared_suspension_that_resolves_by_step_is_not_flagged():
    # C5 held from the C chord over the G bass (a 4-3 / 11-10 suspension), falling to B4
    assert check(voices("C5:3 B4", "G4:2 G4:2", "E4:2 D4:2", "C3:2 G2:2")) == []


def test_the_same_dissonance_struck_and_left_by_leap_is_a_strong_beat_clash():
    found = check(voices("E5:2 C5 E5", "G4:2 G4:2", "E4:2 D4:2", "C3:2 G2:2"))
    strong = [f for f in found if f.rule == "clash"]
    assert [(f.bar, f.beat, f.track_name, f.pitch_name, f.severity) for f in strong] == [
        (1, 3.0, "soprano", "C5", "error")]
    assert "on a strong beat" in strong[0].message and "tenor D4" in strong[0].message


def test_passing_tone_on_a_weak_beat_is_not_flagged():
    assert check(voices("C5 D5 E5:2", "G4:4", "E4:4", "C3:4")) == []


def test_neighbour_tone_is_not_flagged():
    assert check(voices("E5 F5 E5:2", "G4:4", "C4:4", "C3:4")) == []


def test_appoggiatura_on_the_downbeat_is_not_flagged():
    # a leap up into D5 over a held C chord, resolved down by step to C5
    assert check(voices("G4:4 D5 C5:3", "E4:8", "C4:8", "C3:8")) == []


def test_a_long_dissonance_struck_with_a_new_chord_is_a_slip():
    # the same D5, but every voice strikes a new chord with it: a quarter-note "appoggiatura" there
    # is what a wrong note looks like (Bach's accented dissonances at chord changes are short)
    found = check(voices("G4:4 D5 C5:3", "E4:4 G4:4", "C4:4 E4:4", "C3:4 C3:4"))
    assert [(f.rule, f.bar, f.pitch_name) for f in found] == [("clash", 2, "D5")]


def test_unresolved_weak_beat_dissonance_is_a_warning():
    found = check(voices("G4 D5 A5:2", "G4:4", "E4:4", "C3:4"))
    assert [(f.rule, f.severity, f.beat, f.pitch_name) for f in found] == [("weak-clash", "warning", 2.0, "D5")]


def test_dominant_seventh_with_a_falling_seventh_is_not_flagged():
    # V7-I in C: F4 passes in as the seventh of G7 and falls to E4
    assert check(voices("G4:2 F4 E4", "D4:2 D4 C4", "B3:2 B3 C4", "G2:2 G2 C3")) == []


def test_seventh_leapt_into_and_away_upward_is_flagged():
    found = check(voices("D4:2 F4 A4:2", "B3:4 C4:2", "G3:4 E3:2", "G2:4 C3:2"))
    assert [(f.rule, f.bar, f.beat, f.pitch_name) for f in found][0] == ("clash", 1, 3.0, "F4")


def test_complete_six_four_chord_is_consonant_enough():
    # cadential 6/4 over G resolving to V
    assert check(voices("E5:2 D5:2", "C5:2 B4:2", "G4:2 G4:2", "G3:2 G3:2")) == []


def test_a_fourth_between_upper_voices_is_consonant():
    assert check(voices("C5:4", "G4:4", "E4:4", "C3:4")) == []


# --- out of key -------------------------------------------------------------------------------

C_MAJOR = ("E5 D5 C5 D5 E5 F5 E5 D5 C5:4", "C5 B4 A4 B4 C5 C5 C5 B4 G4:4",
           "G4 G4 E4 G4 G4 A4 G4 G4 E4:4", "C4 G3 A3 G3 C4 F3 C4 G3 C3:4")


def test_clean_c_major_phrase_is_clean():
    assert check(voices(*C_MAJOR)) == []


def test_chromatic_neighbour_is_not_out_of_key():
    lines = list(C_MAJOR)
    lines[1] = "C5 B4 A4 B4 C5 C5 C5 B4 G4:2 F#4 G4"  # G4-F#4-G4 under a held C chord
    assert [f for f in check(voices(*lines)) if f.rule == "out-of-key"] == []


def test_chromatic_note_outside_any_applied_chord_is_out_of_key():
    lines = list(C_MAJOR)
    lines[2] = "G4 G4 E4 G4 G4 A4 Ab4 D4 E4:4"  # G#4 over C-E: no chord it belongs to, leapt away from
    found = check(voices(*lines))
    assert [(f.rule, f.bar, f.beat, f.pitch_name, f.key) for f in found] == [("out-of-key", 2, 3.0, "G#4", "C major")]
    assert "outside C major" in found[0].message and "applied chord" in found[0].message


def test_a_clashing_chromatic_note_is_both_a_clash_and_out_of_key():
    lines = list(C_MAJOR)
    lines[2] = "G4 G4 E4 G4 G4 A4 F#4 C4 E4:4"  # F#4 against the G4 and C4 of a C chord
    rules = {(f.rule, f.pitch_name) for f in check(voices(*lines)) if f.bar == 2 and f.beat == 3.0}
    assert rules == {("clash", "F#4"), ("out-of-key", "F#4")}


def test_applied_dominant_is_not_out_of_key():
    # D major (V/V) with F#4 in the alto, resolving to G major
    score = voices("E5 D5 C5 A4 B4:4", "C5 B4 A4 F#4 G4:4", "G4 G4 E4 D4 D4:4", "C4 G3 A3 D3 G3:4")
    assert [f for f in check(score) if f.rule == "out-of-key"] == []


# --- crossing and range ----------------------------------------------------------------------

def test_voice_crossing_is_reported_in_chorale_style_only():
    score = voices("C5:2 E4:2", "G4:2 G4:2", "E4:2 C4:2", "C3:2 C3:2")
    crossing = [f for f in check(score) if f.rule == "voice-crossing"]
    assert [(f.bar, f.beat, f.track_name, f.severity) for f in crossing] == [(1, 3.0, "alto", "info")]
    assert "crosses above soprano" in crossing[0].message
    assert not [f for f in check(score, HarmonyConfig.for_style("romantic")) if f.rule == "voice-crossing"]


def test_note_outside_the_instrument_range_is_flagged():
    score = voices("G4 D4 G4:2", "B3:4", programs=[40, 42], names=["violin", "cello"])  # violin's lowest is G3
    score.tracks[0].notes[1].pitch = 50  # D3
    found = [f for f in check(score) if f.rule == "out-of-range"]
    assert [(f.track_name, f.pitch_name) for f in found] == [("violin", "D3")]
    assert "below the violin's range" in found[0].message


def test_a_fifth_voice_is_read_by_no_register_its_name_does_not_give():
    """Monteverdi's Quinto is a second soprano in some madrigals and a tenor in others: read as a tenor,
    a Quinto singing A4-E5 was out of range in 21 of madrigal 3.17's first 24 bars. A part named Tenor
    that sings there still is."""
    def out_of_range(name: str) -> list[str]:
        score = voices("A4 C5 E5 C5", "C4:4", programs=[52, 52], names=[name, "bass"])
        return [f.pitch_name for f in check(score) if f.rule == "out-of-range"]

    assert out_of_range("Quinto") == []
    assert out_of_range("Tenor") == ["C5", "E5", "C5"]


# --- config and API ---------------------------------------------------------------------------

def test_rules_switch_off_and_change_severity():
    score = voices("D5:2 E5:2", "G4:2 A4:2")
    assert check(score, HarmonyConfig().without("parallel-fifths")) == []
    assert check(score, HarmonyConfig(severity={"parallel-fifths": "warning"}))[0].severity == "warning"
    with pytest.raises(ValueError, match="Unknown harmony rule"):
        HarmonyConfig(enabled={"fifths": False})
    with pytest.raises(ValueError, match="Severity"):
        HarmonyConfig(severity={"clash": "fatal"})
    assert set(RULES) == {"clash", "weak-clash", "out-of-key", "parallel-fifths", "parallel-octaves",
                          "voice-crossing", "out-of-range"}


def test_check_reads_a_midi_path_and_refuses_garbage(tmp_path):
    path = tmp_path / "fifths.mid"
    voices("D5:2 E5:2", "G4:2 A4:2").dump_midi(str(path))
    assert [f.rule for f in check(path)] == ["parallel-fifths"]
    assert [f.rule for f in check(str(path))] == ["parallel-fifths"]
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi at all")
    with pytest.raises(InvalidMidiError):
        check(bad)


def test_findings_serialise_and_format():
    found = check(voices("D5:2 E5:2", "G4:2 A4:2"))
    data = json.loads(json.dumps([f.to_dict() for f in found]))
    assert data[0]["rule"] == "parallel-fifths" and data[0]["bar"] == 1 and data[0]["other_track"] == 0
    assert isinstance(found[0], Finding)
    text = format_findings(found)
    assert text.splitlines()[-1] == "1 finding: 1 error" and "parallel-fifths" in text


def test_pitch_names_are_spelled_in_the_key():
    # in Bb major the alto's pitch 63 is Eb4, in E major the same pitch is D#4
    flat = context_of(voices("D5 C5 Bb4:2", "F4 Eb4 D4:2", "Bb3 A3 F3:2", "Bb2 F2 Bb2:2"))
    sharp = context_of(voices("G#4 F#4 E4:2", "B3 D#4 E4:2", "E3 B2 G#3:2", "E2 B2 E2:2"))
    assert flat.spell(note_at(flat, "alto", 1)) == "Eb4" and sharp.spell(note_at(sharp, "alto", 1)) == "D#4"


def test_pickup_bars_keep_strong_beats_where_bach_put_them():
    score = chorale("bwv66.6")  # begins with a one-beat pickup
    first = min(n.time for t in score.tracks for n in t.notes)
    assert first == 3 * 480  # beat 4 of a padded first bar


# --- keys and metre ---------------------------------------------------------------------------

@pytest.mark.parametrize("bwv", ["bwv66.6", "bwv26.6", "bwv437"])
def test_whole_piece_key_matches_music21_krumhansl(bwv):
    m21 = corpus.parse(f"bach/{bwv}")
    theirs = discrete.KrumhanslSchmuckler().getSolution(m21)
    ours = key_of_score(chorale(bwv))
    assert ours.split()[1] == theirs.mode
    assert ours.split()[0].replace("b", "-").lower() == theirs.tonic.name.lower()


def test_local_keys_follow_a_modulation():
    bars = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    pitches = np.array([60, 64, 67, 65, 67, 71, 74, 66, 69, 72])
    assert best_keys(pc_histograms(bars, pitches, np.ones(10), 2)).tolist() == [0, 7]  # C major, then G major


def test_metre_strengths_in_three_four_and_six_eight():
    s = Score(480)
    s.time_signatures.append(TimeSignature(0, 3, 4))
    assert Meter(s).strength(np.array([0, 480, 960, 1200])).tolist() == [STRONG, BEAT, BEAT, OFFBEAT]
    s = Score(480)
    s.time_signatures.append(TimeSignature(0, 6, 8))
    assert Meter(s).strength(np.array([0, 240, 720, 1440])).tolist() == [STRONG, OFFBEAT, BEAT, STRONG]
    s = Score(480)
    s.time_signatures.append(TimeSignature(0, 4, 4))
    s.time_signatures.append(TimeSignature(1920, 3, 4))
    bars, beats = Meter(s).bar_beat(np.array([1920, 3360, 3840]))
    assert bars.tolist() == [2, 3, 3] and beats.tolist() == [1.0, 1.0, 2.0]


@pytest.mark.parametrize("name", ["theory", "keys", "meter", "nct", "clash", "rules", "config", "findings",
                                  "testing", "check", "scan", "repair"])
def test_module_doctests_pass(name):
    """The theory predicates' doctests (named notes, like music21's voiceLeading) are tests too."""
    result = doctest.testmod(importlib.import_module(f"musedraft.harmony.{name}"))
    assert result.failed == 0

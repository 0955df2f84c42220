"""Harmony check, the tightenings that catch wrong notes disguised as good ones: each rule on a
hand-written slip it must flag, beside the Bach-like passage it must leave alone."""

from __future__ import annotations

from musedraft.harmony import check
from musedraft.harmony.testing import voices


def findings(*lines: str) -> list[tuple[str, int, float, str, str]]:
    return [(f.rule, f.bar, f.beat, f.track_name, f.pitch_name) for f in check(voices(*lines))]


# --- chord sevenths ---------------------------------------------------------------------------

def test_seventh_left_hanging_before_a_rest_is_flagged():
    assert findings("G4:2 F4 E4", "D4:2 D4 C4", "B3:2 B3 C4", "G2:2 G2 C3") == []  # V7-I, F4 falls
    assert findings("G4:2 F4 r", "D4:2 D4 r", "B3:2 B3 r", "G2:2 G2 r") == [("clash", 1, 3.0, "soprano", "F4")]


def test_seventh_struck_again_moves_on_by_step():
    # F4 prepared in the D minor chord and struck again as the seventh of G7: falling to E4 is the
    # textbook; leaping away to A4 leaves it unresolved
    assert findings("F4:2 F4 E4", "D4:2 D4 C4", "A3:2 B3 C4", "D3:2 G2 C3") == []
    assert findings("F4:2 F4 A4", "D4:2 D4 C4", "A3:2 B3 C4", "D3:2 G2 F3") == [("clash", 1, 3.0, "soprano", "F4")]


def test_repeated_seventh_resolves_where_the_line_moves_on():
    assert findings("G4:2 F4 F4 E4:2", "D4:2 D4 D4 C4:2", "B3:2 B3 B3 C4:2", "G2:2 G2 G2 C3:2") == []
    found = findings("G4:2 F4 F4 A4:2", "D4:2 D4 D4 C4:2", "B3:2 B3 B3 C4:2", "G2:2 G2 G2 F3:2")
    assert ("clash", 1, 3.0, "soprano", "F4") in found


def test_chromatic_major_seventh_chord_is_a_clash():
    # after a C major bar: IV4/2 (F-A-C-E over the held E) is diatonic; Db-F-Ab-C in C major is a
    # misreading of a clash, however well its seventh is prepared and resolved
    before = ("E5 D5 C5 D5 C5:2 ", "C5 B4 A4 B4 G4:2 ", "G4 G4 E4 G4 C4:2 ", "C4 G3 A3 G3 E3:2 ")
    diatonic = ("C5 B4 C5:2", "A4 G4 G4:2", "F4 F4 E4:2", "E3 D3 C3:2")
    chromatic = ("C5 B4 C5:2", "Ab4 G4 G4:2", "F4 F4 E4:2", "Db3 G2 C3:2")
    assert findings(*(a + b for a, b in zip(before, diatonic, strict=True))) == []
    found = findings(*(a + b for a, b in zip(before, chromatic, strict=True)))
    assert [(rule, bar, beat) for rule, bar, beat, *_ in found if rule == "clash"] == [("clash", 2, 3.0)]


# --- leading tones ----------------------------------------------------------------------------

def test_leading_tone_leapt_into_rises_to_the_tonic():
    # vii°6 in C: B4 leapt into from E5; rising to C5 it leads, falling away to G4 it does not
    assert findings("E5:2 B4 C5", "G4:2 F4 E4", "G3:2 D4 C4", "C3:2 D3 E3") == []
    found = check(voices("E5:2 B4 G4", "G4:2 F4 E4", "G3:2 D4 C4", "C3:2 D3 E3"))
    assert [(f.rule, f.bar, f.beat) for f in found] == [("clash", 1, 3.0)]
    assert "B4" in (found[0].pitch_name, found[0].message.split(" against ")[1].split()[1])


def test_leading_tone_stepped_into_does_not_leap_upward():
    assert findings("C5:2 B4 A4", "G4:2 F4 E4", "G3:2 D4 C4", "C3:2 D3 E3") == []  # B4 may fall by step
    assert [f[:3] for f in findings("C5:2 B4 E5", "G4:2 F4 E4", "G3:2 D4 C4", "C3:2 D3 E3")] == [("clash", 1, 3.0)]


def test_leading_tone_in_the_bass_does_not_leap():
    # vii° with B2 in the bass: up to C3 it resolves, a leap to E3 leaves the tritone hanging
    assert findings("E5:2 D5 C5", "G4:2 F4 E4", "E4:2 D4 C4", "C3:2 B2 C3") == []
    found = check(voices("E5:2 D5 C5", "G4:2 F4 E4", "E4:2 D4 C4", "C3:2 B2 E3"))
    assert [(f.rule, f.bar, f.beat, f.other_pitch) for f in found] == [("clash", 1, 3.0, 47)]  # against B2


def test_chromatic_leading_tone_moves_the_way_it_is_written():
    # G#4 leapt into over C-E: a raised note leads up (to A4); falling back to G4 it is out of key
    lines = ["E5 D5 C5 D5 E5 F5 E5 D5 C5:4", "C5 B4 A4 B4 C5 C5 C5 B4 G4:4", "", "C4 G3 A3 G3 C4 F3 C4 G3 C3:4"]
    lines[2] = "G4 G4 E4 G4 G4 E4 G#4 A4 E4:4"
    assert [f for f in check(voices(*lines)) if f.rule == "out-of-key"] == []
    lines[2] = "G4 G4 E4 G4 G4 E4 G#4 G4 E4:4"
    found = [f for f in check(voices(*lines)) if f.rule == "out-of-key"]
    assert [(f.bar, f.beat, f.pitch_name) for f in found] == [(2, 3.0, "G#4")]


# --- six-four chords --------------------------------------------------------------------------

def test_struck_six_four_carries_no_non_chord_tone():
    # on the downbeat F5 passes quickly over C/E (fine); over C/G the 6/4 is no chord to lean on
    assert findings("E5:2 F5:0.5 G5:1.5", "C5:4", "G4:4", "C3:2 E3:2") == []
    assert findings("E5:2 F5:0.5 G5:1.5", "C5:4", "G4:4", "C3:2 G3:2") == [("clash", 1, 3.0, "soprano", "F5")]


def test_dominant_seventh_without_its_leading_tone_over_its_fifth_is_a_clash():
    # V4/3 with B3 is a chord; D-F-G over D (no B) is a clash between G and F
    assert findings("E5:2 F5 E5", "G4:2 G4 G4", "C4:2 B3 C4", "C3:2 D3 C3") == []
    found = findings("E5:2 F5 E5", "G4:2 G4 G4", "C4:2 D4 C4", "C3:2 D3 C3")
    assert where(found) == {("clash", 1, 3.0)}


# --- non-chord tones --------------------------------------------------------------------------

def test_chromatic_passing_tone_struck_with_a_new_chord_is_a_slip():
    # every voice strikes on beat 2: a diatonic passing D5 may go with it, a chromatic Eb5 may not
    assert findings("E5 D5 C5:2", "G4 G4 G4:2", "C4 C4 E4:2", "C3 E3 C3:2") == []
    assert [f[:3] for f in findings("E5 Eb5 D5:2", "G4 G4 G4:2", "C4 C4 B3:2", "C3 E3 G2:2")] == [("weak-clash", 1, 2.0)]


def test_chromatic_neighbour_struck_with_a_new_chord_is_a_slip():
    assert findings("E5:1.5 D5:0.5 E5:2", "G4:1.5 A4:0.5 G4:2", "C4:1.5 E4:0.5 E4:2", "C3:4") == []
    assert [f[:3] for f in findings("E5:1.5 D#5:0.5 E5:2", "G4:1.5 A4:0.5 G4:2", "C4:1.5 E4:0.5 E4:2", "C3:4")] == [
        ("weak-clash", 1, 2.5)]


def test_anticipation_is_stepped_into():
    # E5 anticipating the G chord's D5 by step is Bach's cadence; leaping onto B4 early is a slip
    assert findings("E5:1.5 D5:0.5 D5:2", "G4:2 G4:2", "C4:2 B3:2", "C3:2 G2:2") == []
    assert findings("E5:1.5 B4:0.5 B4:2", "G4:2 G4:2", "C4:2 D4:2", "C3:2 G2:2") == [
        ("weak-clash", 1, 2.5, "soprano", "B4")]


def test_off_the_beat_a_note_struck_again_is_no_suspension():
    # C5 held over the G bass and falling to B4 is a suspension; struck again off the beat, a clash
    assert findings("C5:2 B4:2", "G4:1.5 G4:0.5 G4:2", "E4:1.5 D4:0.5 D4:2", "C3:1.5 G2:0.5 G2:2") == []
    assert findings("C5:1.5 C5:0.5 B4:2", "G4:1.5 G4:0.5 G4:2", "E4:1.5 D4:0.5 D4:2", "C3:1.5 G2:0.5 G2:2") == [
        ("weak-clash", 1, 2.5, "soprano", "C5")]


def test_appoggiatura_resolves_to_the_next_degree_not_a_chromatic_inflection():
    bar1 = ("A4 B4 C#5 B4 ", "E4 E4 E4 E4 ", "C#4 B3 A3 G#3 ", "A2 G#2 A2 E3 ")  # A major
    good = ("A4:1.5 D5:0.5 C#5:2", "E4:4", "C#4:4", "A2:4")  # leapt onto D5, leaning down to C#5
    bad = ("E5:1.5 C5:0.5 C#5:2", "E4:4", "C#4:4", "A2:4")  # leapt onto C5, then C#5: C5 was wrong
    assert findings(*(a + b for a, b in zip(bar1, good, strict=True))) == []
    found = findings(*(a + b for a, b in zip(bar1, bad, strict=True)))
    assert ("weak-clash", 2, 2.5, "soprano", "C5") in found


def test_retardation_may_rise_a_whole_tone():
    # A3 held from the F chord over the G bass (a ninth), rising to B3
    assert findings("C5:2 D5:2", "A4 G4 G4:2", "A3:2 B3:2", "F2 G2 G2:2") == []


def test_off_the_beat_a_chord_struck_by_every_voice_has_no_passing_tone():
    assert findings("C5:1.5 D5:0.5 E5:2", "G4:4", "E4:4", "C3:4") == []  # D5 passes over a held chord
    assert findings("C5:1.5 D5:0.5 E5:2", "G4:1.5 E4:0.5 G4:2", "E4:1.5 C4:0.5 C4:2", "C3:1.5 E3:0.5 C3:2") == [
        ("weak-clash", 1, 2.5, "soprano", "D5")]


def test_off_the_beat_a_voice_striking_with_a_repeated_note_is_consonant_with_it():
    assert findings("C5:1.5 E5:0.5 E5:2", "G4:4", "E4:4", "C3:1.5 C3:0.5 C3:2") == []
    assert findings("C5:1.5 D5:0.5 E5:2", "G4:4", "E4:4", "C3:1.5 C3:0.5 C3:2") == [
        ("weak-clash", 1, 2.5, "soprano", "D5")]


# --- issue #3, second round: melodic and cross-voice evidence ------------------------------------

_C_MAJOR_BAR = ("E5 D5 C5:2 ", "C5 B4 A4:2 ", "G4 G4 E4:2 ", "C3 G2 A2:2 ")  # sets the key: C major


def after_c_major(*bar2: str) -> list[tuple[str, int, float, str, str]]:
    return findings(*(a + b for a, b in zip(_C_MAJOR_BAR, bar2, strict=True)))


def where(found: list[tuple[str, int, float, str, str]]) -> set[tuple[str, int, float]]:
    """Rule, bar and beat of each finding: where a slip is heard, whichever of its notes is blamed."""
    return {f[:3] for f in found}


def test_chromatic_leading_tone_of_a_diminished_triad_rises():
    # vii°6/V (F#-A-C): F#4 rising to G4 leads; falling back to E4 it was never a leading tone
    assert after_c_major("E5:2 C5 B4", "G4:2 F#4 G4", "C4:2 C4 D4", "C3:2 A2 G2") == []
    found = after_c_major("E5:2 C5 B4", "G4:2 F#4 E4", "C4:2 C4 G3", "C3:2 A2 E3")
    assert where(found) == {("clash", 2, 3.0)}


def test_non_chord_tone_in_a_cross_relation_is_no_ornament():
    # D5 passes over the C chord; with D#4 struck in the tenor right after, the line says D and
    # the next chord says D#: the passing tone is a wrong note (or the D# is)
    assert after_c_major("E5:1.5 D5:0.5 C5:2", "G4:2 A4:2", "C4:2 E4:2", "C3:2 A2:2") == []
    found = after_c_major("E5:1.5 D5:0.5 C5:2", "G4:2 A4:2", "C4:2 D#4:2", "C3:2 A2:2")
    assert ("weak-clash", 2, 2.5, "soprano", "D5") in found


def test_chromatic_note_in_a_cross_relation_moves_on_by_a_semitone():
    # F#4 of V7/V right after the bass's F3: rising to G4 it is a chromatic leading tone; leaping
    # down to D4 it contradicts the F3 for nothing
    assert after_c_major("C5:2 D5 D5", "A4:2 C5 B4", "C4:2 F#4 G4", "F3:2 D3 G2") == []
    assert [f[:3] for f in after_c_major("C5:2 D5 D5", "A4:2 C5 B4", "C4:2 F#4 D4", "F3:2 D3 G2")] == [
        ("clash", 2, 3.0)]


def test_seventh_leapt_into_resolves_at_once():
    # F4 leapt into from A4 as G7's seventh falls to E4; struck and then repeated, it hangs: a slip
    assert after_c_major("E5:2 D5 C5", "A4:2 F4 E4", "C4:2 B3 C4", "C3:2 G2 C3") == []
    assert after_c_major("E5:2 D5 D5", "A4:2 F4 F4", "C4:2 B3 B3", "C3:2 G2 G2") == [
        ("clash", 2, 3.0, "alto", "F4")]


def test_struck_chord_left_as_a_bare_fifth_explains_nothing():
    # every voice strikes on beat 3: C/E with two passing E's is a chord; D5 over them leaves
    # only G-D, and two struck E's cannot both be non-chord tones of a bare fifth
    ending = ("C5:4", "E4:4", "G3:4", "E3:4")
    good = ("E5 B4 C5 B4 ", "G4 F4 E4 D4 ", "C4 G3 G3 G3 ", "C3 D3 E3 F3 ")
    bad = ("E5 B4 D5 B4 ", *good[1:])
    assert after_c_major(*(a + b for a, b in zip(good, ending, strict=True))) == []
    found = after_c_major(*(a + b for a, b in zip(bad, ending, strict=True)))
    assert ("clash", 2, 3.0, "soprano", "D5") in found


def test_major_seventh_chord_seventh_falls_a_whole_step():
    # IV7 in C (F-A-C-E): E5 stepped into from F5 falls to D5; rising back to F5 resolves nothing
    lower = ("C5:2 C5 G4 G4:4", "A4:2 A4 B4 C5:4", "F3:2 F3 G3 C3:4")
    good = [f for f in after_c_major("F5:2 E5 D5 C5:4", *lower) if f[0] in ("clash", "weak-clash")]
    assert good == []
    assert ("clash", 2, 3.0, "soprano", "E5") in after_c_major("F5:2 E5 F5 E5:4", *lower)


def test_chromatic_leading_tone_turning_back_by_its_own_letter_is_a_slip():
    # vii°/V (F#-A-C): E4-F#4-G4 leads; F4-F#4-F4 takes back what the sharp said
    lower = ("C5:2 C5 B4 C5:4", "C4:2 C4 D4 C4:4", "A2:2 A2 G2 C3:4")
    assert after_c_major(lower[0], "E4:2 F#4 G4 E4:4", *lower[1:]) == []
    found = after_c_major(lower[0], "F4:2 F#4 F4 E4:4", *lower[1:])
    assert where(found) == {("clash", 2, 3.0)}


def test_leading_tone_does_not_fall_by_its_own_letter():
    # vii°6 in C (B-D-F over D): B4 rises to C5; falling to Bb4 takes the leading tone back
    lines = ["F5:2 F5 E5", "C5:2 B4 C5", "A4:2 D4 G4", "F3:2 D3 C3"]
    assert after_c_major(*lines) == []
    lines[1] = "C5:2 B4 Bb4"
    assert ("clash", 2, 3.0, "soprano", "F5") in after_c_major(*lines)


def test_off_the_beat_a_struck_chord_left_as_a_bare_third_explains_nothing():
    # beat 2, every voice strikes: B4-F4-D4 over D3 is vii°6; C5 and E4 struck again over the same
    # D-F leave a bare third under two struck non-chord tones
    assert after_c_major("C5 B4 C5:2", "G4 F4 E4:2", "E4 D4 C4:2", "C3 D3 E3:2") == []
    found = after_c_major("C5 C5 C5:2", "G4 F4 E4:2", "E4 E4 C4:2", "C3 D3 E3:2")
    assert where(found) == {("weak-clash", 2, 2.0)}

"""Harmony, layer one: the music-theory questions the checker asks, answered by music21 and cached.

The checker scans thousands of notes with numpy, but every *musical* judgement (is this interval
consonant, what is this chord, how is this pitch spelled in D minor, is this parallel fifths) is
put to music21, once per distinct question: the answers are memoised, so a whole piece costs a few
hundred music21 calls on first sight and none after. Each predicate has a doctest of named notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from music21 import chord, interval, key, note, pitch, scale, voiceLeading
from music21.analysis import discrete

__all__ = [
    "midi",
    "DISSONANT_SEMITONES",
    "dissonance_table",
    "is_dissonant",
    "interval_name",
    "pitch_name",
    "key_name",
    "scale_pcs",
    "alteration",
    "chromatic_semitone",
    "Chordal",
    "TERTIAN",
    "chord_reading",
    "parallel_motion",
    "key_profiles",
]


def midi(name: str) -> int:
    """MIDI number of a named pitch (music21 spelling: 'C#4', 'B-3').

    >>> midi("C4"), midi("F#4"), midi("B-3")
    (60, 66, 58)
    """
    return int(pitch.Pitch(name).midi)


def _dissonant_semitones() -> frozenset[int]:
    # music21's own verdict per interval class (Interval(3) is a minor third, not an augmented
    # second: MIDI has no spelling, and the ear hears the semitone class).
    return frozenset(s for s in range(12) if not interval.Interval(s).isConsonant())


DISSONANT_SEMITONES = _dissonant_semitones()  # {1, 2, 5, 6, 10, 11}: seconds, P4, tritone, sevenths
_FOURTH = 5


def dissonance_table() -> tuple[np.ndarray, np.ndarray]:
    """Two boolean lookups indexed by semitones % 12: dissonant between upper voices, and above the bass.

    music21 counts every perfect fourth as dissonant; tonal practice does so only when the fourth
    stands over the bass (a 6/4 sound). Between upper voices (C5 over G4 in a C major chord) it is
    consonant, so the upper table clears it.
    """
    above_bass = np.zeros(12, dtype=bool)
    above_bass[list(DISSONANT_SEMITONES)] = True
    upper = above_bass.copy()
    upper[_FOURTH] = False
    return upper, above_bass


def is_dissonant(low: int, high: int, above_bass: bool = False) -> bool:
    """Whether two MIDI pitches clash when sounded together.

    >>> is_dissonant(midi("C4"), midi("D4")), is_dissonant(midi("B3"), midi("C5"))   # second, ninth
    (True, True)
    >>> is_dissonant(midi("C4"), midi("E-4")), is_dissonant(midi("C4"), midi("G5"))  # third, twelfth
    (False, False)
    >>> is_dissonant(midi("G4"), midi("C5")), is_dissonant(midi("G3"), midi("C4"), above_bass=True)
    (False, True)
    """
    upper, bass = dissonance_table()
    return bool((bass if above_bass else upper)[abs(high - low) % 12])


@lru_cache(maxsize=4096)
def interval_name(low_name: str, high_name: str) -> str:
    """music21's name for the interval between two spelled pitches, in words.

    >>> interval_name("F#4", "G4"), interval_name("C4", "D5"), interval_name("B3", "F4")
    ('minor second', 'major ninth', 'diminished fifth')
    """
    return interval.Interval(pitch.Pitch(_m21(low_name)), pitch.Pitch(_m21(high_name))).niceName.lower()


# Scale degrees as intervals above the tonic. A chromatic degree has two spellings (raised degree
# below, lowered degree above); the first listed is the usual one (raised 1, 4, 5 for applied
# leading tones, lowered 3, 7 for mixture in major; Neapolitan, Picardy, raised 4 in minor), and the
# other wins when it needs fewer accidentals (D, not C##, in F# major). music21 does the spelling.
_DEGREE = {
    "major": (("P1",), ("A1", "m2"), ("M2",), ("m3", "A2"), ("M3",), ("P4",), ("A4", "d5"), ("P5",),
              ("A5", "m6"), ("M6",), ("m7", "A6"), ("M7",)),
    "minor": (("P1",), ("m2", "A1"), ("M2",), ("m3",), ("M3", "d4"), ("P4",), ("A4", "d5"), ("P5",),
              ("m6",), ("M6",), ("m7",), ("M7",)),
}


@lru_cache(maxsize=24)
def key_name(tonic: int, mode: str) -> str:
    """Conventional name of a key from its tonic pitch class (the spelling with fewer accidentals).

    >>> key_name(6, "minor"), key_name(3, "major"), key_name(10, "minor")
    ('F# minor', 'Eb major', 'Bb minor')
    """
    valid = discrete.KrumhanslSchmuckler.keysValidMajor if mode == "major" else discrete.KrumhanslSchmuckler.keysValidMinor
    options = [n for n in valid if pitch.Pitch(n).pitchClass == tonic]
    best = min(options, key=lambda n: abs(key.Key(n, mode).sharps))
    return f"{_display(best)} {mode}"


@lru_cache(maxsize=24 * 128)
def pitch_name(midi_pitch: int, tonic: int, mode: str) -> str:
    """A MIDI pitch named as it would be written in the given key.

    >>> pitch_name(midi("F#4"), 0, "major"), pitch_name(70, 0, "major"), pitch_name(63, 4, "major")
    ('F#4', 'Bb4', 'D#4')
    >>> pitch_name(61, 2, "minor"), pitch_name(58, 2, "minor")   # D minor: leading tone, flat sixth
    ('C#4', 'Bb3')
    >>> pitch_name(50, 6, "major"), pitch_name(68, 0, "major")   # D, not C##, in F# major; G# in C
    ('D3', 'G#4')
    >>> pitch_name(0, 0, "major"), pitch_name(1, 0, "major")     # the lowest octave is -1
    ('C-1', 'C#-1')
    """
    tonic_pitch = pitch.Pitch(_m21(key_name(tonic, mode).split()[0]) + "4")
    options = [interval.Interval(name).transposePitch(tonic_pitch) for name in _DEGREE[mode][(midi_pitch - tonic) % 12]]
    spelled = options[-1] if abs(options[-1].alter) < abs(options[0].alter) else options[0]
    spelled.octave += (midi_pitch - int(spelled.midi)) // 12
    return f"{_display(spelled.name)}{spelled.octave}"  # not nameWithOctave: its octave -1 would read as a flat


@lru_cache(maxsize=24)
def scale_pcs(tonic: int, mode: str) -> frozenset[int]:
    """Pitch classes that belong to a key: the major scale, or in minor the natural, harmonic and
    melodic forms together (the raised sixth and seventh are the minor mode's own notes).

    >>> sorted(scale_pcs(7, "major")), sorted(scale_pcs(9, "minor"))
    ([0, 2, 4, 6, 7, 9, 11], [0, 2, 4, 5, 6, 7, 8, 9, 11])
    """
    tonic_pitch = pitch.Pitch(tonic)
    if mode == "major":
        scales = [scale.MajorScale(tonic_pitch)]
    else:
        scales = [scale.MinorScale(tonic_pitch), scale.HarmonicMinorScale(tonic_pitch), scale.MelodicMinorScale(tonic_pitch)]
    return frozenset(p.pitchClass for s in scales for p in s.getPitches())


@lru_cache(maxsize=24 * 12)
def alteration(pc: int, tonic: int, mode: str) -> int:
    """+1 if a pitch class is written as a raised note in the key (C# in C major), -1 if lowered
    (Eb in C major), 0 if it is on the key signature: a raised note leans up, a lowered one down.

    >>> alteration(1, 0, "major"), alteration(3, 0, "major"), alteration(7, 0, "major")
    (1, -1, 0)
    >>> alteration(2, 6, "major"), alteration(4, 2, "minor")   # D in F# major, E in D minor
    (-1, 0)
    """
    spelled = pitch.Pitch(_m21(pitch_name(60 + pc, tonic, mode)))
    signature = key.Key(_m21(key_name(tonic, mode).split()[0]), mode).accidentalByStep(spelled.step)
    alter = spelled.alter - (signature.alter if signature is not None else 0)
    return (alter > 0) - (alter < 0)


@lru_cache(maxsize=24 * 144)
def chromatic_semitone(pc_a: int, pc_b: int, tonic: int, mode: str) -> bool:
    """Whether two pitch classes, written as the key writes them, are one letter a semitone apart
    (F and F#): music21's augmented unison, the interval of a cross-relation. F# and G, a minor
    second, are two letters.

    >>> chromatic_semitone(5, 6, 0, "major"), chromatic_semitone(6, 7, 0, "major")   # F-F#, F#-G in C
    (True, False)
    >>> chromatic_semitone(11, 10, 0, "major"), chromatic_semitone(8, 7, 9, "minor")  # B-Bb in C, G#-G in A minor
    (True, True)
    """
    if (pc_a - pc_b) % 12 not in (1, 11):
        return False
    a, b = (pitch.Pitch(_m21(pitch_name(60 + pc, tonic, mode))) for pc in (pc_a, pc_b))
    return interval.Interval(a, b).generic.simpleUndirected == 1


@dataclass(frozen=True)
class Chordal:
    """What music21 makes of a set of pitch classes sounding together."""

    name: str  # music21 common name: 'major triad', 'dominant seventh chord', 'Perfect Fifth'...
    root: int  # pitch class of the root
    seventh: int | None  # pitch class of the chord seventh, the member that must be prepared/resolved
    size: int  # distinct pitch classes


# Sonorities a tonal reading may stand on: tertian chords (complete or with a member left out, as
# four-part writing often does) and consonant dyads. Clusters and quartal sets are not readings.
TERTIAN = frozenset({
    "major triad", "minor triad", "diminished triad", "augmented triad",
    "dominant seventh chord", "minor seventh chord", "major seventh chord",
    "half-diminished seventh chord", "diminished seventh chord",
    "incomplete dominant-seventh chord",  # V7 without its fifth, everyday in four parts (music21 also
    # names V7 without its third so: clash.plausibility_cost ranks that one far lower)
})
_DYADS = {"note", "Minor Third", "Major Third", "Minor Sixth", "Major Sixth", "Perfect Fifth", "Perfect Fourth"}


@lru_cache(maxsize=8192)
def chord_reading(pcs: frozenset[int]) -> Chordal | None:
    """The chord a pitch-class set spells, or None when it is no tonal sonority.

    >>> chord_reading(frozenset({midi("G3") % 12, midi("B3") % 12, midi("F4") % 12}))
    Chordal(name='incomplete dominant-seventh chord', root=7, seventh=5, size=3)
    >>> chord_reading(frozenset({midi("C4") % 12, midi("E4") % 12, midi("G4") % 12})).name
    'major triad'
    >>> chord_reading(frozenset({midi("C4") % 12, midi("D4") % 12})) is None   # a second
    True
    >>> chord_reading(frozenset({midi("C#4") % 12, midi("G4") % 12, midi("A#4") % 12}))  # G-Bb-Db, misspelled
    Chordal(name='diminished triad', root=7, seventh=None, size=3)
    """
    if not pcs:
        return None
    ordered = sorted(pcs)
    if len(ordered) == 1:
        return Chordal("note", ordered[0], None, 1)
    if len(ordered) == 2:
        # A dyad of pitch classes has no order: name the interval from the lower class and take
        # the root as music21 would for a well-spelled third or fifth (the upper note of a sixth
        # or a fourth, which are those inverted).
        low, high = ordered
        name = interval.Interval(high - low).niceName
        return _chordal(name, high if high - low in (5, 8, 9) else low, None, 2)
    # Built from Pitch objects, not ints: music21 respells int chords by brute force (milliseconds).
    name = chord.Chord([pitch.Pitch(p) for p in ordered]).commonName
    if name.startswith("enharmonic"):
        name = name.split(" to ", 1)[1]
    if name not in TERTIAN:
        return None
    # music21 names the set by its pitch classes but finds roots through spelling, and MIDI has
    # none: try each note as the root, spelled from C, and keep the one music21 agrees with.
    for root in ordered:
        c = chord.Chord([pitch.Pitch((p - root) % 12) for p in ordered])
        if c.commonName == name and c.root().pitchClass == 0:
            seventh = c.seventh if "seventh" in name else None
            return _chordal(name, root, None if seventh is None else (seventh.pitchClass + root) % 12, len(ordered))
    # Default spellings cannot stack a diminished chord in thirds (C-Eb-F#): the same search with
    # the flat-side spellings of the diminished intervals above C.
    for root in ordered:
        c = chord.Chord([pitch.Pitch(_DIMINISHED_FROM_C.get((p - root) % 12, (p - root) % 12)) for p in ordered])
        if c.commonName == name and c.root().pitchClass == 0:
            seventh = c.seventh if "seventh" in name else None
            return _chordal(name, root, None if seventh is None else (seventh.pitchClass + root) % 12, len(ordered))
    return None


_DIMINISHED_FROM_C = {3: "E-", 6: "G-", 9: "B--", 10: "B-"}  # minor third, diminished fifth and seventh, minor seventh


def _chordal(name: str, root: int, seventh: int | None, size: int) -> Chordal | None:
    if name not in TERTIAN and name not in _DYADS:
        return None
    return Chordal(name, int(root), None if seventh is None else int(seventh), size)


@lru_cache(maxsize=16384)
def parallel_motion(upper: tuple[str, str], lower: tuple[str, str], contrary: bool = False) -> str | None:
    """'fifths' or 'octaves' when two voices move in parallel perfect intervals (octave
    displacement included); with `contrary`, also fifths or octaves reached by contrary motion,
    which strict counterpoint forbids and Bach allows at cadences.

    Each voice is (first, second) spelled pitch with octave; music21's VoiceLeadingQuartet decides.

    >>> parallel_motion(("D5", "E5"), ("G4", "A4")), parallel_motion(("C5", "D5"), ("C3", "D3"))
    ('fifths', 'octaves')
    >>> parallel_motion(("C#5", "F#4"), ("F#3", "B3")), parallel_motion(("C#5", "F#4"), ("F#3", "B3"), contrary=True)
    (None, 'fifths')
    >>> parallel_motion(("G4", "A4"), ("C4", "F4")) is None   # fifth to third
    True
    >>> parallel_motion(("D5", "A5"), ("D3", "A2")), parallel_motion(("D4", "E4"), ("D4", "E4"))  # contrary; unisons
    (None, 'octaves')
    """
    q = voiceLeading.VoiceLeadingQuartet(*(note.Note(_m21(n)) for n in (*upper, *lower)))
    fifth = q.parallelFifth() if contrary else q.parallelMotion("P5", allowOctaveDisplacement=True)
    if fifth:
        return "fifths"
    # Not parallelUnison(): music21 counts antiparallel motion as parallel there, and a double octave
    # as a unison, so D5 -> A5 over D3 -> A2 (contrary) read as parallel octaves.
    octave = q.parallelUnisonOrOctave() if contrary else (
        q.parallelMotion("P1") or q.parallelMotion("P8", allowOctaveDisplacement=True))
    return "octaves" if octave else None


@lru_cache(maxsize=1)
def key_profiles() -> tuple[np.ndarray, np.ndarray]:
    """Krumhansl-Schmuckler major and minor key profiles as music21 ships them (index 0 = tonic)."""
    ks = discrete.KrumhanslSchmuckler()
    return np.array(ks.getWeights("major"), dtype=float), np.array(ks.getWeights("minor"), dtype=float)


def _display(m21_name: str) -> str:
    """music21 writes flats as '-'; musicians read 'Bb4'."""
    return m21_name.replace("-", "b")


def _m21(display_name: str) -> str:
    """'Bb4' → 'B-4' (the letter keeps its case; only the flat sign after it changes)."""
    return display_name[0] + display_name[1:].replace("b", "-")

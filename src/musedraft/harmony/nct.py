"""Harmony, non-chord tones: how a note that does not belong to the chord is treated, judged from
its own voice — where it came from, where it goes, whether it was held over, how long it lasts.

The textbook treatments (passing, neighbour, suspension, appoggiatura, escape, anticipation, pedal)
and the rules for chord sevenths are predicates over a Context; `clash.judge` decides which notes
they must excuse.
"""

from __future__ import annotations

from musedraft.harmony.meter import OFFBEAT, STRONG
from musedraft.harmony.scan import Context
from musedraft.harmony.theory import TERTIAN, chord_reading, chromatic_semitone

__all__ = ["motion", "nct_role", "seventh_ok", "leading_tone_ok", "sixfour_ok", "lone_attack", "chord_change",
           "cross_relation", "resolution", "DOMINANT_SEVENTHS"]

DOMINANT_SEVENTHS = {"dominant seventh chord", "incomplete dominant-seventh chord"}
_CLASHING = frozenset({1, 2, 10, 11})  # a resolution may land on a tritone: the next chord's dominant seventh
_STRONG_ROLES = {"suspension", "retardation", "appoggiatura", "pedal"}
_ACCENTED_ROLES = {"passing", "neighbour"}


def motion(ctx: Context, x: int) -> tuple[int | None, int | None]:
    """Semitones into and out of note x along its voice (None at a rest or an end)."""
    p, q = ctx.prev[x], ctx.next[x]
    a_in = int(ctx.pitch[x] - ctx.pitch[p]) if p >= 0 else None
    a_out = int(ctx.pitch[q] - ctx.pitch[x]) if q >= 0 else None
    return a_in, a_out


def _step(a: int | None) -> bool:
    return a is not None and 1 <= abs(a) <= 2


def _leap(a: int | None) -> bool:
    return a is not None and abs(a) >= 3


def _prepared(ctx: Context, x: int, t: int) -> bool:
    """Sounding already before t: held over, or struck again on the same pitch (a tie written as two notes)."""
    p = ctx.prev[x]
    return bool(ctx.start[x] < t or (p >= 0 and ctx.pitch[p] == ctx.pitch[x]))


def resolution(ctx: Context, x: int) -> int | None:
    """Where the line goes after x: the next note, or for a short ornament the note after it."""
    q = ctx.next[x]
    if q < 0:
        return None
    d = int(ctx.pitch[q] - ctx.pitch[x])
    r = ctx.next[q]
    if abs(d) > 2 and r >= 0 and ctx.end[q] - ctx.start[q] <= ctx.beat_ticks // 2 and 1 <= abs(ctx.pitch[r] - ctx.pitch[x]) <= 2:
        return int(ctx.pitch[r])  # Bach's decorated resolutions: a short note in between
    return int(ctx.pitch[q])


_RESOLVING = {"suspension", "retardation", "passing", "neighbour", "appoggiatura"}


def nct_role(ctx: Context, x: int, k: int, against: int | None = None) -> str | None:
    """How non-chord tone x is treated at onset k, or None if it is not treated at all.

    Names follow the textbooks: a held note that falls by step is a suspension (one that rises, a
    retardation); a note between two steps in one direction is passing, turning back a neighbour;
    a leap into a note resolved by a step the other way (to the next degree, not C to C#) an
    appoggiatura; off the beat also escape tones and anticipations (stepped into). With
    `against` (the note it clashes with), the note it resolves to must be consonant with that note:
    a dissonance that "resolves" into another clash was never resolved.

    >>> from musedraft.harmony.testing import context_of, note_at, onset_at, voices
    >>> ctx = context_of(voices("C5 D5 E5:2", "G4:4", "E4:4", "C3:4"))   # D5 between C5 and E5
    >>> nct_role(ctx, note_at(ctx, "soprano", 1), onset_at(ctx, 1))
    'passing'
    >>> ctx = context_of(voices("C5:3 B4", "G4:2 G4:2", "E4:2 D4:2", "C3:2 G2:2"))  # C5 held over G2
    >>> nct_role(ctx, note_at(ctx, "soprano", 2), onset_at(ctx, 2))
    'suspension'
    >>> ctx = context_of(voices("E5:2 C5 E5", "G4:2 G4:2", "E4:2 D4:2", "C3:2 G2:2"))  # C5 struck, left by leap
    >>> nct_role(ctx, note_at(ctx, "soprano", 2), onset_at(ctx, 2)) is None
    True
    """
    t = int(ctx.onsets[k])
    a_in, a_out = motion(ctx, x)
    res = resolution(ctx, x)
    fall = None if res is None else res - int(ctx.pitch[x])
    strong = ctx.strength[k] == STRONG
    role = None
    chorale = ctx.config.strict_chord_changes
    # Held over, or struck again (in chorale writing only on a beat: off it, a repeated note).
    if _prepared(ctx, x, t) and not (chorale and ctx.start[x] == t and ctx.strength[k] == OFFBEAT):
        if fall is not None and -2 <= fall <= -1:
            role = "suspension"
        elif fall is not None and 1 <= fall <= 2:
            role = "retardation"
        elif (((ctx.start[x] < t and ctx.end[x] - ctx.start[x] >= 2 * ctx.beat_ticks) or (a_in == 0 and a_out == 0))
              and (ctx.pitch[x] == min(ctx.pitch[i] for i in ctx.sounding[k])
                   or ctx.pitch[x] == max(ctx.pitch[i] for i in ctx.sounding[k]))):
            role = "pedal"  # the bass (or the top) holding, or repeating, a note while the harmony moves
    if role is None and _step(a_in) and _step(a_out):
        if (a_in > 0) == (a_out > 0):
            role = "passing"
        elif a_out == -a_in:
            role = "neighbour"  # it returns to the note it left
    if role is None and _leap(a_in) and _step(a_out) and (a_in > 0) != (a_out > 0):
        role = "appoggiatura"
    if role is None and not strong:
        if _step(a_in) and _leap(a_out) and (a_in > 0) != (a_out > 0):
            role = "escape"
        elif (a_out == 0 and (_step(a_in) or not chorale) and ctx.start[x] == t
              and ctx.strength[k] == OFFBEAT and ctx.end[x] - ctx.start[x] <= ctx.beat_ticks // 2):
            role = "anticipation"  # a short note off the beat that the next beat repeats
    if role == "appoggiatura" and abs(fall) == 1 and _inflection(ctx, x, res):
        return None  # leapt onto C, then C#: an inflection, not a lean into the next degree
    if role is not None and strong and role not in _STRONG_ROLES:
        if not (ctx.config.accented_passing_tones and role in _ACCENTED_ROLES):
            return None
    if role is not None and ctx.start[x] == t and role != "suspension" and chorale and chord_change(ctx, k):
        # Where (nearly) every voice strikes a new chord, a non-chord tone among them is a passing
        # note (on the downbeat only a quick one) or a short appoggiatura — or a wrong note. A
        # chromatic one only passes, and quickly.
        short = ctx.end[x] - ctx.start[x] <= ctx.beat_ticks // 2
        diatonic = ctx.in_key(x)
        if not (role == "passing" and (short or (not strong and diatonic))) and not (
                role in ("neighbour", "appoggiatura") and short and diatonic):
            return None
    if role in _RESOLVING and against is not None and res is not None:
        if (abs(res - int(ctx.pitch[against])) % 12 in _CLASHING
                and abs(res - _voice_pitch_at(ctx, against, ctx.start[ctx.next[x]])) % 12 in _CLASHING):
            return None  # consonant neither with the note it clashed with nor with where that voice went
    return role


def _inflection(ctx: Context, x: int, to_pitch: int) -> bool:
    """Whether x moves to `to_pitch` by a chromatic semitone (the same letter, C to C#) in its key."""
    key = ctx.key_of(x)
    return key.spell(ctx.pitch[x])[0] == key.spell(to_pitch)[0]


def chord_change(ctx: Context, k: int) -> bool:
    """At least three voices strike together at onset k, and at most one holds over."""
    t = ctx.onsets[k]
    attacks = sum(ctx.start[i] == t for i in ctx.sounding[k])
    return attacks >= 3 and attacks >= len(ctx.sounding[k]) - 1


def _voice_pitch_at(ctx: Context, y: int, t: int) -> int:
    """The pitch y's voice sounds at tick t: y itself, or the note y moved on to."""
    q = ctx.next[y]
    if ctx.end[y] <= t and q >= 0 and ctx.start[q] <= t:
        return int(ctx.pitch[q])
    return int(ctx.pitch[y])


def seventh_ok(ctx: Context, x: int, k: int, chord_name: str = "dominant seventh chord") -> bool:
    """Whether a chord seventh (or a diminished triad's fifth) is handled as tonal music handles it:
    held over from the chord before it is free; struck again (an octave leap included) it moves on
    by step or holds; otherwise it falls by step — at once when it was leapt into; stepped into, or
    after a rest, where the line moves on — and is not left hanging before a rest. Those are chorale habits
    (`config.strict_sevenths`, which also has the seventh of any chord but the dominant stepped
    into); instrumental styles resolve a seventh in another voice or after an arpeggio. In
    diminished chords, where every member leans somewhere, a step either way will do.

    >>> from musedraft.harmony.testing import context_of, note_at, onset_at, voices
    >>> ctx = context_of(voices("G4:2 F4 E4", "D4:2 D4 C4", "B3:2 B3 C4", "G2:2 G2 C3"))  # 8-7 over G, to E
    >>> seventh_ok(ctx, note_at(ctx, "soprano", 2), onset_at(ctx, 2))
    True
    >>> ctx = context_of(voices("D4:2 F4 A4", "B3:4", "G3:4", "G2:4"))  # leapt into, leapt away upward
    >>> seventh_ok(ctx, note_at(ctx, "soprano", 2), onset_at(ctx, 2))
    False
    """
    a_in, _ = motion(ctx, x)
    if ctx.start[x] < ctx.onsets[k]:
        return True
    strict = ctx.config.strict_sevenths
    res = resolution(ctx, x)
    d = None if res is None else res - int(ctx.pitch[x])
    if chord_name == "major seventh chord" and strict and d is not None and d != -2:
        return False  # the seventh of I7 or IV7 falls a whole step (B to A over C): no other way
    if a_in is not None and a_in % 12 == 0:
        return d is None or abs(d) <= 2 or not strict
    if d == 0 and strict:  # held on, or struck again: it resolves where the line moves on
        if _leap(a_in) and chord_name not in ("diminished seventh chord", "diminished triad"):
            return False  # a seventh leapt into resolves at once: struck twice first, it is a slip
        d = _after_repeats(ctx, x)
    if d is None:
        return not strict  # left hanging before a rest or the end (another instrument may resolve it)
    if chord_name == "diminished seventh chord" or (chord_name == "diminished triad" and ctx.config.dim_fifth_free):
        return abs(d) <= 2
    if chord_name not in DOMINANT_SEVENTHS and strict and not (a_in is None or _step(a_in)):
        return False  # other sevenths are prepared or stepped into (or enter after a rest)
    return -2 <= d <= 0


def _after_repeats(ctx: Context, x: int) -> int | None:
    """Semitones from x to the first different pitch its line moves on to (None: it never moves)."""
    q = ctx.next[x]
    while q >= 0 and ctx.pitch[q] == ctx.pitch[x]:
        q = ctx.next[q]
    return None if q < 0 else int(ctx.pitch[q] - ctx.pitch[x])


def leading_tone_ok(ctx: Context, x: int, bass: bool = False) -> bool:
    """Whether a leading tone moves as one: leapt into, it rises to its tonic by step; stepped
    into, it may also fall or hold, but it does not leap upward, and in the bass it does not leap;
    a chromatic one (the leading tone of an applied chord, outside the local key) rises a semitone,
    at once or after repeating, unless it only turns back to the note it came from (chorale voice
    leading, `config.strict_sevenths`; arpeggiated figures leap from it freely).

    >>> from musedraft.harmony.testing import context_of, note_at, voices
    >>> ctx = context_of(voices("D5:2 B4 C5", "F4:4", "D4:4", "G3:4"))   # leapt onto B4, up to C5
    >>> leading_tone_ok(ctx, note_at(ctx, "soprano", 2))
    True
    >>> ctx = context_of(voices("D5:2 B4 G4", "F4:4", "D4:4", "G3:4"))   # leapt onto B4, then away
    >>> leading_tone_ok(ctx, note_at(ctx, "soprano", 2))
    False
    >>> lower = ("C5 B4 A4:2 E4 D4 C4:2", "G4 G4 E4:2 C4 C4 C4:2", "C3 G2 A2:2 C3 D3 C3:2")  # C major
    >>> ctx = context_of(voices("E5 D5 C5:2 G4 F#4 G4:2", *lower))   # F#4 leads to G4
    >>> leading_tone_ok(ctx, note_at(ctx, "soprano", 5))
    True
    >>> ctx = context_of(voices("E5 D5 C5:2 G4 F#4 E4:2", *lower))   # F#4 falls away
    >>> leading_tone_ok(ctx, note_at(ctx, "soprano", 5))
    False
    """
    a_in, _ = motion(ctx, x)
    res = resolution(ctx, x)
    if res is None or not ctx.config.strict_sevenths:
        return True
    d = res - int(ctx.pitch[x])
    if int(ctx.pitch[x] % 12) not in ctx.key_of(x).pcs and (a_in != -d or _inflection(ctx, x, res)):
        return (d if d != 0 else _after_repeats(ctx, x)) in (1, None)  # an applied chord's leading tone
    if d == -1 and _inflection(ctx, x, res):
        return False  # B falling to Bb takes back the leading tone: one of the two is wrong
    if _leap(a_in):
        return 1 <= d <= 2
    return -2 <= d <= 2 if bass else d <= 2


def sixfour_ok(ctx: Context, upper: int, bass: int, k: int) -> bool:
    """A fourth over the bass (a 6/4 sound) is prepared, or moves on by step or holds (cadential,
    pedal 6/4), or the bass itself passes (passing 6/4)."""
    a_in, a_out = motion(ctx, upper)
    return (a_in == 0 or ctx.start[upper] < ctx.onsets[k] or a_out is None or abs(a_out) <= 2
            or nct_role(ctx, bass, k) in ("passing", "neighbour", "pedal"))


def lone_attack(ctx: Context, k: int) -> frozenset[int]:
    """Pitch classes that must be non-chord tones at onset k: off the beat, or where one voice
    moves alone against held notes, the moving voices decorate the held harmony — unless they
    complete it into a chord (an arpeggio, a seventh added on the way).

    >>> from musedraft.harmony.testing import context_of, onset_at, voices
    >>> ctx = context_of(voices("E5 F5 E5:2", "G4:4", "C4:4", "C3:4"))   # F5 over a held C chord
    >>> sorted(lone_attack(ctx, onset_at(ctx, 1)))
    [5]
    >>> ctx = context_of(voices("G4 F4 E4:2", "D4:4", "B3:4", "G2:4"))   # F4 makes G-B-D into G7
    >>> sorted(lone_attack(ctx, onset_at(ctx, 1)))
    []
    """
    if ctx.strength[k] == STRONG:
        return frozenset()
    t = ctx.onsets[k]
    attacks = [i for i in ctx.sounding[k] if ctx.start[i] == t]
    held = frozenset(int(ctx.pitch[i] % 12) for i in ctx.sounding[k] if ctx.start[i] != t)
    if len(ctx.sounding[k]) - len(attacks) < 2 or not (len(attacks) == 1 or ctx.strength[k] == OFFBEAT):
        return frozenset()
    moving = frozenset(int(ctx.pitch[i] % 12) for i in attacks) - held
    if _tertian(held | moving):
        return frozenset()
    return frozenset(pc for pc in moving if not _tertian(held | {pc}))


def _tertian(pcs: frozenset[int]) -> bool:
    info = chord_reading(pcs)
    return info is not None and info.name in TERTIAN


def cross_relation(ctx: Context, x: int, k: int) -> bool:
    """Whether another voice sounds note x's letter with the other accidental (F against F#) at
    the onset just before or just after k — a cross-relation, spelled in the local key by music21 —
    or holds it through one of them into x (then F and F# even sound together).

    >>> from musedraft.harmony.testing import context_of, note_at, onset_at, voices
    >>> ctx = context_of(voices("A4 G4 F#4 G4", "F4 D4 D4:2", "C4 B3 A3 B3", "F3 G3 D3 G2"))  # F4, then F#4
    >>> cross_relation(ctx, note_at(ctx, "soprano", 2), onset_at(ctx, 2))
    False
    >>> ctx = context_of(voices("A4 G4 F#4 G4", "F4 D4 D4:2", "C4 B3 A3 B3", "F3 F3 D3 G2"))  # the bass F3 just before
    >>> cross_relation(ctx, note_at(ctx, "soprano", 2), onset_at(ctx, 2))
    True
    """
    key = ctx.keys[k]
    pc = int(ctx.pitch[x] % 12)
    for near in (k - 1, k + 1):
        if 0 <= near < len(ctx.onsets):
            for i in ctx.sounding[near]:
                if ctx.track[i] != ctx.track[x] and chromatic_semitone(pc, int(ctx.pitch[i] % 12), key.tonic, key.mode):
                    return True
    return False

"""Harmony, vertical clashes: which dissonances are slips and which are what good music does on purpose.

At each onset where a new dissonance sounds, we look for a reading of the vertical: a chord
(music21 names it) after setting aside up to `max_removed` pitch classes as non-chord tones, such
that every new dissonance is accounted for — a non-chord tone with a proper treatment (passing,
neighbour, suspension, appoggiatura...) or a chord seventh that is prepared or stepped into and
resolves. A vertical with such a reading is clean. Otherwise the reading that leaves the fewest
dissonances unexplained names the culprits: one `Fault` per offending note.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

from musedraft.harmony.meter import OFFBEAT, STRONG
from musedraft.harmony.scan import Context
from musedraft.harmony.theory import TERTIAN, Chordal, chord_reading

__all__ = ["Fault", "Verdict", "motion", "nct_role", "seventh_ok", "lone_attack", "readings", "judge", "vertical_faults"]

# harshest first: which partner a clash report names when a note clashes with several
_HARSHNESS = {1: 0, 11: 1, 6: 2, 2: 3, 10: 4, 5: 5}
_DOMINANT_SEVENTHS = {"dominant seventh chord", "incomplete dominant-seventh chord"}
_CLASHING = frozenset({1, 2, 6, 10, 11})  # interval classes a resolution must not land on
_STRONG_ROLES = {"suspension", "retardation", "appoggiatura", "pedal"}
_ACCENTED_ROLES = {"passing", "neighbour"}


@dataclass(frozen=True)
class Fault:
    """A finding before it is dressed in words: indices into the Context, not names."""

    rule: str
    note: int  # the offending note
    onset: int  # onset index where the fault sounds
    other: int | None = None  # the note it clashes with / moves in parallel with
    detail: tuple = ()  # rule-specific facts the message needs

    @property
    def key(self) -> tuple[str, int, int]:
        return self.rule, self.note, self.onset


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


def _resolution(ctx: Context, x: int) -> int | None:
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

    Names follow the textbooks: a held note that falls by step is a suspension; a note between two
    steps in one direction is passing, turning back a neighbour; a leap into a note resolved by a
    step the other way an appoggiatura; off the beat also escape tones and anticipations. With
    `against` (the note it clashes with), the note it resolves to must be consonant with that note:
    a dissonance that "resolves" into another clash was never resolved.
    """
    t = int(ctx.onsets[k])
    a_in, a_out = motion(ctx, x)
    res = _resolution(ctx, x)
    fall = None if res is None else res - int(ctx.pitch[x])
    strong = ctx.strength[k] == STRONG
    role = None
    if _prepared(ctx, x, t):
        if fall is not None and -2 <= fall <= -1:
            role = "suspension"
        elif fall == 1:
            role = "retardation"
        elif (ctx.start[x] < t and ctx.end[x] - ctx.start[x] >= 2 * ctx.beat_ticks
              and (ctx.pitch[x] == min(ctx.pitch[i] for i in ctx.sounding[k])
                   or ctx.pitch[x] == max(ctx.pitch[i] for i in ctx.sounding[k]))):
            role = "pedal"  # a long note held in the bass (or the top) while the harmony moves
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
        elif (a_out == 0 and ctx.start[x] == t and ctx.strength[k] == OFFBEAT
              and ctx.end[x] - ctx.start[x] <= ctx.beat_ticks // 2):
            role = "anticipation"  # a short note off the beat that the next beat repeats
    if role is not None and strong and role not in _STRONG_ROLES:
        if not (ctx.config.accented_passing_tones and role in _ACCENTED_ROLES):
            return None
    if role is not None and ctx.start[x] == t and role != "suspension" and _chord_change(ctx, k):
        # Where (nearly) every voice strikes a new chord, a non-chord tone among them is a passing
        # note (on the downbeat only a quick one) or a short appoggiatura — or a wrong note.
        short = ctx.end[x] - ctx.start[x] <= ctx.beat_ticks // 2
        if not (role == "passing" and (short or not strong)) and not (role in ("neighbour", "appoggiatura") and short):
            return None
    if role in _RESOLVING and against is not None and res is not None:
        if (abs(res - int(ctx.pitch[against])) % 12 in _CLASHING
                and abs(res - _voice_pitch_at(ctx, against, ctx.start[ctx.next[x]])) % 12 in _CLASHING):
            return None  # consonant neither with the note it clashed with nor with where that voice went
    return role


def _chord_change(ctx: Context, k: int) -> bool:
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
    prepared — held over or struck again from the chord before, an octave leap included — it is
    free; otherwise it falls by step or holds, and (with `config.strict_sevenths`) the seventh of
    any chord but the dominant must also pass between two steps. In diminished chords, where every
    member leans somewhere, a step either way will do.
    """
    a_in, _ = motion(ctx, x)
    if ctx.start[x] < ctx.onsets[k] or (a_in is not None and a_in % 12 == 0):
        return True
    res = _resolution(ctx, x)
    if res is None:
        return True  # the piece ends on it
    d = res - int(ctx.pitch[x])
    if chord_name == "diminished seventh chord" or (chord_name == "diminished triad" and ctx.config.dim_fifth_free):
        return abs(d) <= 2
    if chord_name not in _DOMINANT_SEVENTHS and ctx.config.strict_sevenths and not (
            _step(a_in) and (a_in > 0) == (d > 0) and not _chord_change(ctx, k)):
        return False  # other sevenths are prepared, or pass between two steps
    return -2 <= d <= 0


def _sixfour_ok(ctx: Context, upper: int, bass: int, k: int) -> bool:
    """A fourth over the bass (a 6/4 sound) moves on by step or holds (cadential, pedal 6/4), or
    the bass itself passes (passing 6/4)."""
    _, a_out = motion(ctx, upper)
    return a_out is None or abs(a_out) <= 2 or nct_role(ctx, bass, k) in ("passing", "neighbour", "pedal")


def lone_attack(ctx: Context, k: int) -> frozenset[int]:
    """Pitch classes that must be non-chord tones at onset k: off the beat, or where one voice
    moves alone against held notes, the moving voices decorate the held harmony — unless they
    complete it into a chord (an arpeggio, a seventh added on the way)."""
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


class _Vertical:
    """One onset's notes and the judgements about them, cached while readings are tried."""

    def __init__(self, ctx: Context, k: int, pairs: list[tuple[int, int]]):
        self.ctx, self.k, self.pairs = ctx, k, pairs
        self.t = int(ctx.onsets[k])
        self.notes = ctx.sounding[k]
        self.pc = {i: int(ctx.pitch[i] % 12) for i in self.notes}
        self.bass_note = ctx.bass(k)
        self.bass = int(ctx.pitch[self.bass_note])
        self.top = ctx.top(k)
        self._role: dict[tuple[int, int], bool] = {}

    def treated(self, x: int, against: int) -> bool:
        if (x, against) not in self._role:
            self._role[x, against] = nct_role(self.ctx, x, self.k, against) is not None
        return self._role[x, against]

    def explained(self, x: int, y: int, q: frozenset[int], info: Chordal) -> bool:
        ctx = self.ctx
        x_in, y_in = self.pc[x] in q, self.pc[y] in q
        if not x_in and not y_in:  # two non-chord tones against each other: both need a treatment
            return self.treated(x, y) and self.treated(y, x)
        if not x_in or not y_in:  # a non-chord tone against a chord tone
            return self.treated(y, x) if x_in else self.treated(x, y)
        if info.seventh is not None and info.seventh in (self.pc[x], self.pc[y]):
            return seventh_ok(ctx, x if self.pc[x] == info.seventh else y, self.k, info.name)
        if info.name == "diminished triad":
            return self.diminished_ok(info)
        lo, hi = (x, y) if ctx.pitch[x] <= ctx.pitch[y] else (y, x)
        if lo == self.bass_note and (ctx.pitch[hi] - ctx.pitch[lo]) % 12 == 5 and "seventh" not in info.name:
            complete = info.size == 3 and info.name in ("major triad", "minor triad")
            return complete or _sixfour_ok(ctx, hi, lo, self.k)  # a full 6/4 chord is a chord
        return True  # the tritone of a diminished triad, a fourth inside a seventh chord

    def diminished_ok(self, info: Chordal) -> bool:
        """A diminished triad is a leading-tone chord (MIDI cannot tell it from an incomplete
        diminished seventh, so any of the four positions may be the leading tone): one of them
        leads to a note of the key, and its fifth moves by step or holds."""
        ctx = self.ctx
        leads = range(4) if ctx.config.dim_any_root else range(1)
        key = ctx.keys[self.k].pcs | (ctx.home.pcs if ctx.config.home_key_too else frozenset())
        if not any((info.root + 3 * i + 1) % 12 in key for i in leads):
            return False
        return all(seventh_ok(ctx, i, self.k, info.name) for i in self.notes if self.pc[i] == (info.root + 6) % 12)

    def blame(self, x: int, y: int, q: frozenset[int], info: Chordal) -> int:
        """Which note of an unexplained pair is the slip."""
        ctx = self.ctx
        x_in, y_in = self.pc[x] in q, self.pc[y] in q
        if x_in != y_in:
            return y if x_in else x
        if x_in and info.seventh is not None and info.seventh in (self.pc[x], self.pc[y]):
            return x if self.pc[x] == info.seventh else y
        if x_in and info.name == "diminished triad" and (info.root + 6) % 12 in (self.pc[x], self.pc[y]):
            return x if self.pc[x] == (info.root + 6) % 12 else y
        if x_in:  # a 6/4 fourth: the upper note
            return x if ctx.pitch[x] > ctx.pitch[y] else y
        key_pcs = ctx.keys[self.k].pcs
        return min((x, y), key=lambda i: (ctx.start[i] != self.t, self.pc[i] in key_pcs, i == self.top, -ctx.track[i]))


_TRIADS = {"major triad", "minor triad", "diminished triad", "augmented triad"}


def _completes(q: frozenset[int], info: Chordal, x: int) -> bool:
    """Whether pitch class x belongs to the chord q stands for (then it cannot be a non-chord tone):
    it completes an incomplete chord or a dyad, or adds the seventh to a triad on the same root."""
    full = chord_reading(q | {x})
    if full is None or full.size <= info.size or full.name not in TERTIAN:
        return False
    return info.name not in _TRIADS or full.root == info.root


def readings(pcs: frozenset[int], max_removed: int, forced: frozenset[int] = frozenset()):
    """Candidate chord readings, fewest non-chord tones first. `forced` pitch classes are non-chord
    tones in every reading (a lone voice moving off the strong beat does not change the harmony)."""
    free = sorted(pcs - forced)
    for r in range(0, min(max_removed, len(free) - 1) + 1):
        for removed in combinations(free, r):
            out = forced.union(removed)
            q = pcs - out
            info = chord_reading(q) if q else None
            if info is not None and not any(_completes(q, info, x) for x in out):
                yield r, q, info


@dataclass(frozen=True)
class Verdict:
    """How one onset's dissonances read: the chord heard there and the pairs it leaves unexplained."""

    q: frozenset[int]  # pitch classes of the chord reading (empty: no reading at all)
    info: Chordal | None
    bad: tuple[tuple[int, int], ...]  # unexplained dissonant pairs; empty means the onset is clean
    culprit_of: dict  # unexplained pair → the note blamed for it


# How unusual each kind of reading is, in non-chord tones' worth: a plain triad is what a listener
# hears first; a seventh chord, a bare dyad or a chromatic chord needs more persuading.
_QUALITY_COST = {
    "major triad": 0.0, "minor triad": 0.0, "dominant seventh chord": 0.25, "diminished seventh chord": 0.25,
    "incomplete dominant-seventh chord": 0.5, "minor seventh chord": 0.5, "half-diminished seventh chord": 0.5,
    "diminished triad": 0.5, "major seventh chord": 0.75, "augmented triad": 1.0,
    "Perfect Fifth": 0.75, "Major Third": 0.75, "Minor Third": 0.75, "Major Sixth": 0.75, "Minor Sixth": 0.75,
    "Perfect Fourth": 1.0, "note": 1.25,
}


def plausibility_cost(r: int, q: frozenset[int], info: Chordal, key: frozenset[int], bass_pc: int) -> float:
    """How far-fetched a reading is: its non-chord tones, its chord type, chromatic members, and a
    bass that is not the root.

    >>> c_major, g7 = frozenset({0, 2, 4, 5, 7, 9, 11}), chord_reading(frozenset({7, 11, 2, 5}))
    >>> plausibility_cost(0, frozenset({0, 4, 7}), chord_reading(frozenset({0, 4, 7})), c_major, 0)
    0.0
    >>> plausibility_cost(0, frozenset({7, 11, 2, 5}), g7, c_major, 11)   # V6/5: a seventh, inverted
    0.5
    """
    cost = r + _QUALITY_COST.get(info.name, 1.0) + 0.5 * sum(p not in key for p in q)
    if info.size >= 3 and bass_pc != info.root:
        cost += 0.5 if bass_pc == (info.root + 7) % 12 else 0.25  # 6/4 over the fifth, else an inversion
    return cost


@lru_cache(maxsize=65536)
def _ranked(pcs: frozenset[int], forced: frozenset[int], max_removed: int, key: frozenset[int],
            bass_pc: int) -> tuple[tuple[float, frozenset[int], Chordal], ...]:
    """Readings of a pitch-class set, most plausible first (the same sets recur all through a piece)."""
    scored = [(plausibility_cost(r, q, info, key, bass_pc), sorted(q), q, info)
              for r, q, info in readings(pcs, max_removed, forced)]
    scored.sort(key=lambda c: (c[0], c[1]))
    return tuple((cost, q, info) for cost, _, q, info in scored)


def judge(ctx: Context, k: int, pairs: list[tuple[int, int]]) -> Verdict:
    """Find a plausible reading of onset k that explains every new dissonance, or the one that best
    names the culprits. Readings are tried from the most to the least plausible, up to
    `config.reading_slack` beyond the best: a far-fetched chord does not excuse a clash."""
    v = _Vertical(ctx, k, pairs)
    pcs = frozenset(v.pc.values())
    scored = _ranked(pcs, lone_attack(ctx, k), ctx.config.max_removed, ctx.keys[k].pcs, v.bass % 12)
    best = None
    for cost, q, info in scored:
        if cost > scored[0][0] + ctx.config.reading_slack:
            break
        bad = [(x, y) for x, y in pairs if not v.explained(x, y, q, info)]
        if not bad:
            return Verdict(q, info, (), {})
        culprits = {v.blame(x, y, q, info) for x, y in bad}
        rank = (len(culprits), len(bad), cost, sum(ctx.start[c] != v.t for c in culprits),
                sum(c == v.top for c in culprits), sorted(q))
        if best is None or rank < best[0]:
            best = (rank, q, info, bad)
    if best is None:  # no reading at all (a cluster): every new dissonance is unexplained
        return Verdict(frozenset(), None, tuple(pairs),
                       {(x, y): v.blame(x, y, frozenset(), Chordal("", 0, None, 0)) for x, y in pairs})
    _, q, info, bad = best
    return Verdict(q, info, tuple(bad), {(x, y): v.blame(x, y, q, info) for x, y in bad})


def vertical_faults(ctx: Context, k: int, pairs: list[tuple[int, int]]) -> list[Fault]:
    """Faults at onset k, given the new dissonant pairs there (see scan.new_dissonant_pairs)."""
    if not pairs:
        return []
    verdict = judge(ctx, k, pairs)
    rule = "clash" if ctx.strength[k] == STRONG else "weak-clash"
    faults = []
    for c in sorted(set(verdict.culprit_of.values())):
        partners = [y if x == c else x for (x, y), who in verdict.culprit_of.items() if who == c]
        other = min(partners, key=lambda o: (_HARSHNESS.get(int(abs(ctx.pitch[o] - ctx.pitch[c]) % 12), 9),
                                             abs(int(ctx.track[o]) - int(ctx.track[c])), o))
        faults.append(Fault(rule, c, k, other, (int(ctx.strength[k]),)))
    return faults

"""Harmony, vertical clashes: which dissonances are slips and which are what good music does on purpose.

At each onset where a new dissonance sounds, we look for a reading of the vertical: a chord
(music21 names it) after setting aside up to `max_removed` pitch classes as non-chord tones, such
that every new dissonance is accounted for — a non-chord tone with a proper treatment (passing,
neighbour, suspension, appoggiatura...) or a chord seventh that is prepared or stepped into and
resolves. Readings are tried from the most plausible (a root-position triad) to the far-fetched.
A vertical with a plausible reading is clean; otherwise the reading that leaves the fewest notes
unexplained names the culprits: one `Fault` per offending note.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

from musedraft.harmony.meter import BEAT, OFFBEAT, STRONG
from musedraft.harmony.nct import (
    chord_change,
    cross_relation,
    leading_tone_ok,
    lone_attack,
    motion,
    nct_role,
    resolution,
    seventh_ok,
    sixfour_ok,
)
from musedraft.harmony.scan import Context, Fault
from musedraft.harmony.theory import TERTIAN, Chordal, chord_reading

__all__ = ["Verdict", "readings", "plausibility_cost", "heard_readings", "judge", "vertical_faults"]

_HARSHNESS = {1: 0, 11: 1, 6: 2, 2: 3, 10: 4, 5: 5}  # which partner a report names: harshest first


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
        # in chorale-like writing, (nearly) every voice strikes a new chord here (`changes`), and a
        # chord is struck on a strong beat or on such a beat (instrumental styles ornament their
        # 6/4 chords freely)
        self.changes = ctx.config.strict_chord_changes and chord_change(ctx, k)
        self.struck = ctx.config.strict_chord_changes and (
            ctx.strength[k] == STRONG or (ctx.strength[k] == BEAT and self.changes))
        self._role: dict[tuple[int, int], bool] = {}
        self._cross: dict[int, bool] = {}

    def treated(self, x: int, against: int) -> bool:
        """Whether non-chord tone x has a treatment against `against`; in chorale writing, none
        excuses an ornament that sounds its letter against the other accidental in another voice
        just before or after (a cross-relation): the line and the harmony disagree about the note."""
        if (x, against) not in self._role:
            role = nct_role(self.ctx, x, self.k, against)
            self._role[x, against] = role is not None and (
                role == "pedal" or not self.ctx.config.strict_chord_changes or not self.cross(x))
        return self._role[x, against]

    def cross(self, x: int) -> bool:
        if x not in self._cross:
            self._cross[x] = cross_relation(self.ctx, x, self.k)
        return self._cross[x]

    def chromatic_cross(self, x: int) -> bool:
        """A chromatic note struck in a cross-relation with another voice is only a chromatic line
        (or a leading tone) moving on by a semitone; leaping or stepping a tone away, it is a slip."""
        ctx = self.ctx
        if ctx.start[x] != self.t or ctx.in_key(x) or not self.cross(x):
            return False
        res = resolution(ctx, x)
        return res is not None and abs(res - int(ctx.pitch[x])) != 1

    def bare(self, q: frozenset[int], info: Chordal) -> bool:
        """Where three or more voices strike a new chord, a bare fifth (or one note) left over after
        setting aside two or more struck notes as non-chord tones is no chord: it explains nothing.
        Off the strong beat neither is a bare third or sixth; on it, a double suspension or
        appoggiatura (the cadential 6/4 leaning on V) leaves exactly that."""
        bare = info.name in _BARE or (info.name in _THIRDS and self.ctx.strength[self.k] != STRONG)
        if not bare or not self.changes:
            return False
        return sum(self.pc[i] not in q and self.ctx.start[i] == self.t for i in self.notes) >= 2

    def explained(self, x: int, y: int, q: frozenset[int], info: Chordal) -> bool:
        """Whether reading q accounts for the dissonance between x and y."""
        ctx = self.ctx
        if info.name == "major seventh chord" and not (q <= ctx.keys[self.k].pcs or q <= ctx.home.pcs):
            return False  # I7, IV7 (III7, VI7 in minor) are diatonic: a chromatic one is a misread clash
        if self.bare(q, info) or (ctx.config.strict_chord_changes and (self.chromatic_cross(x) or self.chromatic_cross(y))):
            return False
        x_in, y_in = self.pc[x] in q, self.pc[y] in q
        if self.struck and (self.bass - info.root) % 12 == 7 and info.size >= 2 and not (
                x_in and y_in and _leading_tone_kept(q, info)):
            return False  # a 6/4 struck as a chord is one only when complete: nothing leans on it
        if ctx.strength[self.k] == OFFBEAT and not self.offbeat_ok(x, y, x_in, y_in):
            return False
        if not x_in and not y_in:  # two non-chord tones against each other: both need a treatment
            return self.treated(x, y) and self.treated(y, x)
        if not x_in or not y_in:  # a non-chord tone against a chord tone
            return self.treated(y, x) if x_in else self.treated(x, y)
        if info.name == "diminished seventh chord":  # its "seventh" is any member: none is singled out
            key = ctx.keys[self.k].pcs | (ctx.home.pcs if ctx.config.home_key_too else frozenset())
            return any((info.root + 3 * i + 1) % 12 in key for i in range(4))
        if info.seventh is not None and info.seventh in (self.pc[x], self.pc[y]):
            return seventh_ok(ctx, x if self.pc[x] == info.seventh else y, self.k, info.name)
        if info.name == "diminished triad":
            return self.diminished_ok(info)
        lo, hi = (x, y) if ctx.pitch[x] <= ctx.pitch[y] else (y, x)
        if lo == self.bass_note and (ctx.pitch[hi] - ctx.pitch[lo]) % 12 == 5 and "seventh" not in info.name:
            complete = info.size == 3 and info.name in ("major triad", "minor triad")
            return complete or sixfour_ok(ctx, hi, lo, self.k)  # a full 6/4 chord is a chord
        return True  # the tritone of a diminished triad, a fourth inside a seventh chord

    def offbeat_ok(self, x: int, y: int, x_in: bool, y_in: bool) -> bool:
        """Off the beat (in chorale-like writing: `config.strict_chord_changes`), a chord struck by
        every voice carries no non-chord tone, and a chord tone struck again (a repeated note) is no
        new harmony that a voice striking with it may clash against."""
        ctx = self.ctx
        if not ctx.config.strict_chord_changes:
            return True
        if not (x_in and y_in) and len(self.notes) >= 3 and all(ctx.start[i] == self.t for i in self.notes):
            return False
        if ctx.start[x] != self.t or ctx.start[y] != self.t:
            return True
        return not any(is_in and motion(ctx, z)[0] == 0 for z, is_in in ((x, x_in), (y, y_in)))

    def diminished_ok(self, info: Chordal) -> bool:
        """A diminished triad is a leading-tone chord (MIDI cannot tell it from an incomplete
        diminished seventh, so any of the four positions may be the leading tone): one of them
        leads to a note of the key, and its fifth moves by step or holds."""
        ctx = self.ctx
        leads = range(4) if ctx.config.dim_any_root else range(1)
        key = ctx.keys[self.k].pcs | (ctx.home.pcs if ctx.config.home_key_too else frozenset())
        if not any((info.root + 3 * i + 1) % 12 in key for i in leads):
            return False
        fifths = [i for i in self.notes if self.pc[i] == (info.root + 6) % 12]
        if not any(seventh_ok(ctx, i, self.k, info.name) for i in fifths):  # one voice resolves a doubled fifth
            return False
        roots = [i for i in self.notes if self.pc[i] == info.root and ctx.start[i] == self.t]
        return all(leading_tone_ok(ctx, i, bass=i == self.bass_note) for i in roots)

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


def _leading_tone_kept(q: frozenset[int], info: Chordal) -> bool:
    """A dominant seventh may leave out its fifth, never its third (the leading tone)."""
    return info.name != "incomplete dominant-seventh chord" or (info.root + 4) % 12 in q


_BARE = {"Perfect Fifth", "Perfect Fourth", "note"}  # no third: nothing says which chord it is
_THIRDS = {"Major Third", "Minor Third", "Major Sixth", "Minor Sixth"}
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
    tones in every reading (a lone voice moving off the strong beat does not change the harmony).

    >>> [(sorted(q), info.name) for r, q, info in readings(frozenset({0, 2, 4, 7}), 1)]  # C, D, E, G
    [([0, 4, 7], 'major triad')]
    """
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
# hears first; a seventh chord, a bare dyad or a chromatic chord needs more persuading, and an
# augmented triad (all but absent from chorales) or a dominant seventh without its leading tone more still.
_QUALITY_COST = {
    "major triad": 0.0, "minor triad": 0.0, "dominant seventh chord": 0.25, "diminished seventh chord": 0.25,
    "incomplete dominant-seventh chord": 0.5, "minor seventh chord": 0.5, "half-diminished seventh chord": 0.5,
    "diminished triad": 0.5, "major seventh chord": 0.75, "augmented triad": 1.5,
    "Perfect Fifth": 0.75, "Major Third": 0.75, "Minor Third": 0.75, "Major Sixth": 0.75, "Minor Sixth": 0.75,
    "Perfect Fourth": 0.75, "note": 1.25,  # a fourth is a fifth upside down: pitch classes have no order
}


def plausibility_cost(r: int, q: frozenset[int], info: Chordal, key: frozenset[int], bass_pc: int) -> float:
    """How far-fetched a reading is: its non-chord tones, its chord type, chromatic members, a
    dominant seventh that leaves out its leading tone, and a bass that is not the root.

    >>> c_major, g7 = frozenset({0, 2, 4, 5, 7, 9, 11}), chord_reading(frozenset({7, 11, 2, 5}))
    >>> plausibility_cost(0, frozenset({0, 4, 7}), chord_reading(frozenset({0, 4, 7})), c_major, 0)
    0.0
    >>> plausibility_cost(0, frozenset({7, 11, 2, 5}), g7, c_major, 11)   # V6/5: a seventh, inverted
    0.5
    >>> plausibility_cost(0, frozenset({7, 2, 5}), chord_reading(frozenset({7, 2, 5})), c_major, 7)  # G-D-F: no B
    1.5
    """
    cost = r + _QUALITY_COST.get(info.name, 1.0) + 0.5 * sum(p not in key for p in q)
    if not _leading_tone_kept(q, info):
        cost += 1.0
    if info.size >= 2 and bass_pc != info.root:
        cost += 0.5 if info.size >= 3 and bass_pc == (info.root + 7) % 12 else 0.25  # 6/4, else an inversion
    return cost


@lru_cache(maxsize=65536)
def _ranked(pcs: frozenset[int], forced: frozenset[int], max_removed: int, key: frozenset[int],
            bass_pc: int) -> tuple[tuple[float, frozenset[int], Chordal], ...]:
    """Readings of a pitch-class set, most plausible first (the same sets recur all through a piece)."""
    scored = [(plausibility_cost(r, q, info, key, bass_pc), sorted(q), q, info)
              for r, q, info in readings(pcs, max_removed, forced)]
    scored.sort(key=lambda c: (c[0], c[1]))
    return tuple((cost, q, info) for cost, _, q, info in scored)


def heard_readings(ctx: Context, k: int, slack: float | None = None) -> list[tuple[float, frozenset[int], Chordal]]:
    """The readings of onset k a listener could hear: the most plausible, and those within
    `slack` (default `config.reading_slack`) of it."""
    pcs = frozenset(int(ctx.pitch[i] % 12) for i in ctx.sounding[k])
    scored = _ranked(pcs, lone_attack(ctx, k), ctx.config.max_removed, ctx.keys[k].pcs, int(ctx.pitch[ctx.bass(k)] % 12))
    limit = ctx.config.reading_slack if slack is None else slack
    return [r for r in scored if r[0] <= scored[0][0] + limit] if scored else []


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
        rank = (len(culprits), cost, len(bad), sum(ctx.start[c] != v.t for c in culprits),
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

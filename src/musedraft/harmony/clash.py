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
from itertools import combinations

from musedraft.harmony.meter import STRONG
from musedraft.harmony.scan import Context
from musedraft.harmony.theory import Chordal, chord_reading

__all__ = ["Fault", "motion", "nct_role", "seventh_ok", "vertical_faults"]

# harshest first: which partner a clash report names when a note clashes with several
_HARSHNESS = {1: 0, 11: 1, 6: 2, 2: 3, 10: 4, 5: 5}
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


def _falls_by_step(ctx: Context, x: int) -> bool:
    """The line falls a step after x, directly or after one short ornament (Bach's decorated resolutions)."""
    q = ctx.next[x]
    if q < 0:
        return False
    d = ctx.pitch[q] - ctx.pitch[x]
    if -2 <= d <= -1:
        return True
    r = ctx.next[q]
    short = ctx.end[q] - ctx.start[q] <= ctx.beat_ticks // 2
    return bool(short and r >= 0 and -2 <= ctx.pitch[r] - ctx.pitch[x] <= -1)


def nct_role(ctx: Context, x: int, k: int) -> str | None:
    """How non-chord tone x is treated at onset k, or None if it is not treated at all.

    Names follow the textbooks: a held note that falls by step is a suspension; a note between two
    steps in one direction is passing, turning back a neighbour; a leap into a note resolved by a
    step the other way an appoggiatura; off the beat also escape tones and anticipations.
    """
    t = int(ctx.onsets[k])
    a_in, a_out = motion(ctx, x)
    strong = ctx.strength[k] == STRONG
    role = None
    if _prepared(ctx, x, t):
        if _falls_by_step(ctx, x):
            role = "suspension"
        elif a_out == 1:
            role = "retardation"
        elif (ctx.end[x] - ctx.start[x] >= 2 * ctx.beat_ticks
              and (ctx.pitch[x] == min(ctx.pitch[i] for i in ctx.sounding[k])
                   or ctx.pitch[x] == max(ctx.pitch[i] for i in ctx.sounding[k]))):
            role = "pedal"
    if role is None and _step(a_in) and _step(a_out):
        role = "passing" if (a_in > 0) == (a_out > 0) else "neighbour"
    if role is None and _leap(a_in) and _step(a_out) and (a_in > 0) != (a_out > 0):
        role = "appoggiatura"
    if role is None and not strong:
        if _step(a_in) and _leap(a_out) and (a_in > 0) != (a_out > 0):
            role = "escape"
        elif a_out == 0 and ctx.start[x] == t:
            role = "anticipation"
    if role is not None and strong and role not in _STRONG_ROLES:
        if not (ctx.config.accented_passing_tones and role in _ACCENTED_ROLES):
            return None
    return role


def seventh_ok(ctx: Context, x: int, k: int) -> bool:
    """A chord seventh is prepared or stepped into, and does not leap away."""
    a_in, a_out = motion(ctx, x)
    approached = _prepared(ctx, x, int(ctx.onsets[k])) or _step(a_in)
    resolved = a_out is None or abs(a_out) <= 2
    return approached and resolved


def _sixfour_ok(ctx: Context, upper: int, bass: int, k: int) -> bool:
    """A fourth over the bass (a 6/4 sound) moves on by step or holds (cadential, pedal 6/4), or
    the bass itself passes (passing 6/4)."""
    _, a_out = motion(ctx, upper)
    return a_out is None or abs(a_out) <= 2 or nct_role(ctx, bass, k) in ("passing", "neighbour", "pedal")


class _Vertical:
    """One onset's notes and the judgements about them, cached while readings are tried."""

    def __init__(self, ctx: Context, k: int, pairs: list[tuple[int, int]]):
        self.ctx, self.k, self.pairs = ctx, k, pairs
        self.t = int(ctx.onsets[k])
        self.notes = ctx.sounding[k]
        self.pc = {i: int(ctx.pitch[i] % 12) for i in self.notes}
        self.bass = min(int(ctx.pitch[i]) for i in self.notes)
        self.top = ctx.top(k)
        self._role: dict[int, bool] = {}

    def treated(self, x: int) -> bool:
        if x not in self._role:
            self._role[x] = nct_role(self.ctx, x, self.k) is not None
        return self._role[x]

    def explained(self, x: int, y: int, q: frozenset[int], info: Chordal) -> bool:
        ctx = self.ctx
        x_in, y_in = self.pc[x] in q, self.pc[y] in q
        if (not x_in and self.treated(x)) or (not y_in and self.treated(y)):
            return True
        if not (x_in and y_in):
            return False
        if info.seventh is not None and info.seventh in (self.pc[x], self.pc[y]):
            return seventh_ok(ctx, x if self.pc[x] == info.seventh else y, self.k)
        lo, hi = (x, y) if ctx.pitch[x] <= ctx.pitch[y] else (y, x)
        if ctx.pitch[lo] == self.bass and (ctx.pitch[hi] - ctx.pitch[lo]) % 12 == 5 and "seventh" not in info.name:
            return _sixfour_ok(ctx, hi, lo, self.k)
        return True  # the tritone of a diminished triad, a fourth inside a seventh chord

    def blame(self, x: int, y: int, q: frozenset[int], info: Chordal) -> int:
        """Which note of an unexplained pair is the slip."""
        ctx = self.ctx
        x_in, y_in = self.pc[x] in q, self.pc[y] in q
        if x_in != y_in:
            return y if x_in else x
        if x_in and info.seventh is not None and info.seventh in (self.pc[x], self.pc[y]):
            return x if self.pc[x] == info.seventh else y
        if x_in:  # a 6/4 fourth: the upper note
            return x if ctx.pitch[x] > ctx.pitch[y] else y
        key_pcs = ctx.keys[self.k].pcs
        return min((x, y), key=lambda i: (ctx.start[i] != self.t, self.pc[i] in key_pcs, i == self.top, -ctx.track[i]))


def _readings(pcs: frozenset[int], max_removed: int):
    """Candidate chord readings, fewest non-chord tones first."""
    ordered = sorted(pcs)
    for r in range(0, min(max_removed, len(ordered) - 1) + 1):
        for removed in combinations(ordered, r):
            q = pcs.difference(removed)
            info = chord_reading(q)
            if info is not None:
                yield r, q, info


def vertical_faults(ctx: Context, k: int, pairs: list[tuple[int, int]]) -> list[Fault]:
    """Faults at onset k, given the new dissonant pairs there (see scan.new_dissonant_pairs)."""
    if not pairs:
        return []
    v = _Vertical(ctx, k, pairs)
    pcs = frozenset(v.pc.values())
    best = None
    for r, q, info in _readings(pcs, ctx.config.max_removed):
        bad = [(x, y) for x, y in pairs if not v.explained(x, y, q, info)]
        if not bad:
            return []
        culprits = {v.blame(x, y, q, info) for x, y in bad}
        rank = (len(bad), r, sum(ctx.start[c] != v.t for c in culprits), sum(c == v.top for c in culprits),
                info.root != v.bass % 12, -len(q), sorted(q))
        if best is None or rank < best[0]:
            best = (rank, q, info, bad)
    if best is None:  # no reading at all (a cluster): every new dissonance is unexplained
        q, info, bad = frozenset(), None, pairs
        culprit_of = {(x, y): v.blame(x, y, q, Chordal("", 0, None, 0)) for x, y in bad}
    else:
        _, q, info, bad = best
        culprit_of = {(x, y): v.blame(x, y, q, info) for x, y in bad}
    rule = "clash" if ctx.strength[k] == STRONG else "weak-clash"
    faults = []
    for c in sorted(set(culprit_of.values())):
        partners = [y if x == c else x for (x, y), who in culprit_of.items() if who == c]
        other = min(partners, key=lambda o: (_HARSHNESS.get(int(abs(ctx.pitch[o] - ctx.pitch[c]) % 12), 9),
                                             abs(int(ctx.track[o]) - int(ctx.track[c])), o))
        faults.append(Fault(rule, c, k, other, (int(ctx.strength[k]),)))
    return faults

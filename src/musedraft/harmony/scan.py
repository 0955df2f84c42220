"""Harmony, scan: a score as arrays the rules read — notes, their lines, the verticals they form.

Built once per check with numpy from the symusic tracks: which notes sound at every onset (the
verticals), each note's previous and next note in its own voice (the line it moves in), the metric
strength of every onset and the local key of every bar. Repair changes `pitch` in place and the
rules re-read it, so everything here that depends on pitch is computed on demand, not stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from symusic import Score

from musedraft.harmony.config import HarmonyConfig
from musedraft.harmony.keys import Key, local_keys, pc_histograms
from musedraft.harmony.meter import Meter
from musedraft.harmony.theory import dissonance_table
from musedraft.instruments import Instrument, instrument_of_track

__all__ = ["Context", "Fault", "build_context", "tick_score", "new_dissonant_pairs", "pairs_at"]


def tick_score(score: Score) -> Score:
    """The score in ticks (symusic scores can also count quarters or seconds)."""
    return score if "tick" in str(score.ttype).lower() else score.to("tick")


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


@dataclass
class Context:
    """Everything the rules need about one score, as arrays indexed by note or by onset."""

    score: Score
    config: HarmonyConfig
    meter: Meter
    # per note, sorted by (start, track, pitch); `pos` is the note's index inside its track
    start: np.ndarray
    end: np.ndarray  # legato overlaps inside a single-line track are trimmed
    track: np.ndarray
    pos: np.ndarray
    pitch: np.ndarray  # repair writes here
    alive: np.ndarray  # False once repair drops a note
    prev: np.ndarray  # previous note in the same voice, -1 at a rest or the start
    next: np.ndarray
    # per onset (distinct start times)
    onsets: np.ndarray
    sounding: list[list[int]]  # notes sounding at each onset, attack or held
    strength: np.ndarray  # meter.STRONG / BEAT / OFFBEAT
    bar: np.ndarray  # 1-based
    beat: np.ndarray  # 1-based
    keys: list[Key]  # local key at each onset
    # per note again
    first: np.ndarray  # onset index of the note's attack
    last: np.ndarray  # onset index of the last vertical it sounds in
    # per track
    names: list[str]
    instruments: list[Instrument | None]
    is_line: np.ndarray  # the track is one voice (never two notes at once): voice-leading rules apply
    beat_ticks: int
    bar_keys: list[Key]  # local key of each bar (kept fixed while repair works)
    home: Key  # key of the whole piece
    voice_notes: list[np.ndarray]  # per track: its sounding notes in time order
    onset_list: list[int]  # `onsets` as Python ints, for bisect
    start_list: list[int]  # `start` and `end` as Python ints: plain loops read them fastest
    end_list: list[int]

    @cached_property
    def drum(self) -> np.ndarray:
        """Per track: a timpani. It strikes the harmony's roots and fifths under the music, so it is not
        a voice for the voice-leading rules and not the bass a fourth is judged against (in bwv190.7 its
        D3, read as the bass, made a trumpet's G5 above it a weak-beat clash, and the timpani and trumpets
        moving together parallel octaves); its clashes still count."""
        return np.array([i is not None and i.strikes_roots for i in self.instruments], dtype=bool)

    @cached_property
    def drum_tracks(self) -> frozenset[int]:
        return frozenset(np.flatnonzero(self.drum).tolist())

    @cached_property
    def voice_list(self) -> list[tuple[list[int], list[int]]]:
        """Per track: its notes and their start ticks, as lists (for bisect)."""
        return [(v.tolist(), self.start[v].tolist()) for v in self.voice_notes]

    def in_key(self, x: int) -> bool:
        """Whether note x belongs to its local key (or, with `config.home_key_too`, the piece's key)."""
        pc = int(self.pitch[x] % 12)
        return pc in self.key_of(x).pcs or (self.config.home_key_too and pc in self.home.pcs)

    def key_of(self, note: int) -> Key:
        return self.keys[self.first[note]]

    def spell(self, note: int, pitch: int | None = None) -> str:
        return self.key_of(note).spell(self.pitch[note] if pitch is None else pitch)

    def bass(self, k: int) -> int:
        """The bass note at onset k: the lowest voice (see score.voice_order) when every sounding track is a
        single voice (a tenor dipping under the bass does not make a 6/4), else the lowest pitch; a
        timpani's only when nothing else sounds (`drum`)."""
        notes = self.sounding[k]
        if self.drum_tracks:  # repair asks this hundreds of times: no filtering where there is no timpani
            notes = [i for i in notes if self.track[i] not in self.drum_tracks] or notes
        if all(self.is_line[self.track[i]] for i in notes):
            return max(notes, key=lambda i: (self.track[i], -self.pitch[i]))
        return min(notes, key=lambda i: (self.pitch[i], -self.track[i]))

    def top(self, k: int) -> int:
        """The highest note sounding at onset k (the melody, which repair moves last)."""
        return max(self.sounding[k], key=lambda i: (self.pitch[i], -self.track[i]))


def _notes(score: Score) -> dict[str, np.ndarray]:
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("start", "end", "track", "pos", "pitch")}
    for t, tr in enumerate(score.tracks):
        if tr.is_drum or not len(tr.notes):
            continue
        a = tr.notes.numpy()
        keep = a["duration"] > 0
        idx = np.flatnonzero(keep)
        cols["start"].append(a["time"][keep].astype(np.int64))
        cols["end"].append((a["time"] + a["duration"])[keep].astype(np.int64))
        cols["track"].append(np.full(len(idx), t, dtype=np.int64))
        cols["pos"].append(idx.astype(np.int64))
        cols["pitch"].append(a["pitch"][keep].astype(np.int64))
    out = {k: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64)) for k, v in cols.items()}
    order = np.lexsort((out["pitch"], out["track"], out["start"]))
    return {k: v[order] for k, v in out.items()}


def _lines(start, end, pitch, track, alive, gap: int, n_tracks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """prev/next note in each voice, trimmed ends, and which tracks are single lines.

    A single-line track links each note to the one before it when no longer rest than `gap` lies
    between. In a chordal track (piano), each note links to the nearest pitch of the previous chord.
    """
    n = len(start)
    prev = np.full(n, -1, dtype=np.int64)
    nxt = np.full(n, -1, dtype=np.int64)
    end = end.copy()
    is_line = np.zeros(n_tracks, dtype=bool)
    for t in range(n_tracks):
        idx = np.flatnonzero((track == t) & alive)
        if not len(idx):
            continue
        s, e = start[idx], end[idx]
        if len(idx) == 1 or (np.all(np.diff(s) > 0) and np.all(e[:-1] <= s[1:] + gap)):
            is_line[t] = True
            end[idx[:-1]] = np.minimum(e[:-1], s[1:])  # a legato overlap is one voice, not a chord
            linked = s[1:] - end[idx[:-1]] <= gap
            prev[idx[1:][linked]] = idx[:-1][linked]
            nxt[idx[:-1][linked]] = idx[1:][linked]
            continue
        groups = np.split(idx, np.flatnonzero(np.diff(s)) + 1)
        for before, group in zip(groups, groups[1:], strict=False):
            cand = before[np.abs(end[before] - start[group[0]]) <= gap]
            if not len(cand):
                continue
            for i in group:
                j = cand[np.argmin(np.abs(pitch[cand] - pitch[i]))]
                prev[i] = j
            for j in cand:
                nxt[j] = group[np.argmin(np.abs(pitch[group] - pitch[j]))]
    return prev, nxt, end, is_line


def build_context(score: Score, config: HarmonyConfig, *, bar_keys: tuple[list[Key], Key] | None = None,
                  drop: np.ndarray | None = None, pitch: np.ndarray | None = None) -> Context:
    """Scan `score`. Repair passes the pitches and dropped notes it has so far, and the keys it holds fixed."""
    score = tick_score(score)
    meter = Meter(score)
    cols = _notes(score)
    start, end, track = cols["start"], cols["end"], cols["track"]
    pitch = cols["pitch"].copy() if pitch is None else pitch.copy()
    alive = np.ones(len(start), dtype=bool) if drop is None else ~drop
    beat_ticks = meter.beat_ticks(0)
    prev, nxt, end, is_line = _lines(start, end, pitch, track, alive, beat_ticks // 2, len(score.tracks))
    live = np.flatnonzero(alive)
    onsets = np.unique(start[live])
    first = np.searchsorted(onsets, start)
    last = np.searchsorted(onsets, end, side="left") - 1
    # notes sounding at each onset: expand each note over the onsets it spans, then group by onset
    counts = np.where(alive, last - first + 1, 0)
    ks = np.repeat(first, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    ns = np.repeat(np.arange(len(start)), counts)
    order = np.lexsort((ns, ks))
    ks, ns = ks[order], ns[order]
    cuts = np.searchsorted(ks, np.arange(1, len(onsets)))
    sounding = [g.tolist() for g in np.split(ns, cuts)] if len(onsets) else []
    bar, beat = meter.bar_beat(onsets)
    if bar_keys is None:
        n_bars = int(bar.max()) if len(bar) else 1
        note_bar = meter.bar_index(start[live])
        hist = pc_histograms(note_bar, pitch[live], (end[live] - start[live]) / score.ticks_per_quarter, n_bars)
        bar_keys = (local_keys(hist, config.key_window_bars), local_keys(hist.sum(axis=0, keepdims=True), 1)[0])
    bar_keys, home = bar_keys
    keys = [bar_keys[min(b - 1, len(bar_keys) - 1)] for b in bar.tolist()]
    instruments = [None if tr.is_drum else instrument_of_track(tr.name, int(tr.program)) for tr in score.tracks]
    names = [(tr.name or "").strip() or f"track {i + 1}" for i, tr in enumerate(score.tracks)]
    return Context(score, config, meter, start, end, track, cols["pos"], pitch, alive, prev, nxt, onsets, sounding,
                   meter.strength(onsets), bar, beat, keys, first, last, names, instruments, is_line, beat_ticks, bar_keys, home,
                   [np.flatnonzero((track == t) & alive) for t in range(len(score.tracks))], onsets.tolist(),
                   start.tolist(), end.tolist())


def pairs_at(ctx: Context, k: int) -> list[tuple[int, int]]:
    """new_dissonant_pairs for one onset, in plain Python (repair asks this hundreds of times for
    verticals of four or five notes, where numpy's call overhead is the whole cost)."""
    notes = ctx.sounding[k]
    t = ctx.onsets[k]
    bass = ctx.bass(k)
    upper_tab, bass_tab = _tables()
    out = []
    for a in range(len(notes)):
        i = notes[a]
        for j in notes[a + 1:]:
            if ctx.start[i] != t and ctx.start[j] != t:
                continue
            pi, pj = int(ctx.pitch[i]), int(ctx.pitch[j])
            over_bass = (i == bass and pi <= pj) or (j == bass and pj <= pi)
            if (bass_tab if over_bass else upper_tab)[abs(pi - pj) % 12]:
                out.append((i, j) if i < j else (j, i))
    return sorted(out)


def _tables() -> tuple[list[bool], list[bool]]:
    if not _TABLES:
        _TABLES.extend(t.tolist() for t in dissonance_table())
    return _TABLES[0], _TABLES[1]


_TABLES: list[list[bool]] = []


def new_dissonant_pairs(ctx: Context, onset_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(onset, i, j) for every dissonant pair that begins at an onset (at least one note attacks there).

    Vectorised over a padded (onsets x voices) matrix: the only Python here is the matrix build.
    """
    ids = np.arange(len(ctx.onsets)) if onset_ids is None else np.asarray(onset_ids, dtype=np.int64)
    rows = [ctx.sounding[k] for k in ids.tolist()]
    width = max((len(r) for r in rows), default=0)
    if width < 2:
        return (np.zeros(0, dtype=np.int64),) * 3
    mat = np.full((len(rows), width), -1, dtype=np.int64)
    for r, notes in enumerate(rows):
        mat[r, : len(notes)] = notes
    valid = mat >= 0
    safe = np.maximum(mat, 0)
    pit = np.where(valid, ctx.pitch[safe], 10_000)
    trk = np.where(valid, ctx.track[safe], -1)
    drum = valid & ctx.drum[np.maximum(trk, 0)]
    voiced = valid & ~(drum & (valid & ~drum).any(axis=1, keepdims=True))  # see Context.bass: a timpani only when alone
    all_line = np.where(voiced, ctx.is_line[np.maximum(trk, 0)], True).all(axis=1)
    by_voice = np.argmax(np.where(voiced, trk * 256 + (255 - pit), -1), axis=1)
    col = np.where(all_line, by_voice, np.argmin(np.where(voiced, pit, 10_000), axis=1))
    bass = mat[np.arange(len(rows)), col]
    t = ctx.onsets[ids]
    upper_tab, bass_tab = dissonance_table()
    out_k, out_i, out_j = [], [], []
    for a in range(width):
        for b in range(a + 1, width):
            ok = valid[:, a] & valid[:, b]
            if not ok.any():
                continue
            i, j = mat[:, a], mat[:, b]
            pi, pj = pit[:, a], pit[:, b]
            d = np.abs(pi - pj) % 12
            over_bass = ((i == bass) & (pi <= pj)) | ((j == bass) & (pj <= pi))  # a fourth above the bass is a 6/4
            diss = np.where(over_bass, bass_tab[d], upper_tab[d])
            new = (ctx.start[np.maximum(i, 0)] == t) | (ctx.start[np.maximum(j, 0)] == t)
            hit = ok & diss & new
            out_k.append(ids[hit])
            out_i.append(i[hit])
            out_j.append(j[hit])
    if not out_k:
        return (np.zeros(0, dtype=np.int64),) * 3
    k, i, j = (np.concatenate(x) for x in (out_k, out_i, out_j))
    order = np.lexsort((j, i, k))
    return k[order], i[order], j[order]

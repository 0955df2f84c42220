"""Scores ↔ token ids: the control header, key normalisation, and REMI+ through MidiTok.

Two design choices live here (docs/data.md explains them):
- Track slots. REMI+ tells tracks apart by `Program` token only, and music21 gives most corpus
  parts program 0, so four voices would merge into one. We hand MidiTok a copy of the score whose
  track *i* has program *i*: `Program_i` then means "slot i" and every part stays its own track.
  The real instruments live outside the stream (the request, or the piece's metadata), and the
  header tells the model only the register of each slot.
- Key normalisation. Every piece is transposed to C major or A minor before encoding, and a
  request in any key is generated there and transposed back, so the requested key is hit exactly
  and the model's capacity is not spent learning twelve copies of every pattern.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np
from symusic import Score

from musedraft.errors import DecodeError, RequestError
from musedraft.export import split_key
from musedraft.grammar import Grammar
from musedraft.instruments import register_of
from musedraft.vocab import MODES, Vocab

__all__ = ["Controls", "Tokenizer", "normalising_shift", "transpose", "parse_key"]

_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def parse_key(key: str) -> tuple[int, str]:
    """'D major' / 'f# minor' / 'Bb' / 'Am' → (tonic pitch class, mode), by `export.split_key`'s grammar.

    >>> parse_key("D major"), parse_key("f# minor"), parse_key("Bb"), parse_key("Ebm")
    ((2, 'major'), (6, 'minor'), (10, 'major'), (3, 'minor'))
    """
    letter, alter, mode = split_key(key)
    return (_PC[letter] + alter) % 12, mode


def normalising_shift(key_pc: int, mode: str) -> int:
    """Semitones that move a key to C major / A minor, the smaller way round (-6..5).

    >>> normalising_shift(2, "major"), normalising_shift(6, "minor"), normalising_shift(7, "major")
    (-2, 3, 5)
    """
    target = 0 if mode == "major" else 9
    return (target - key_pc + 6) % 12 - 6


def transpose(score: Score, semitones: int, low: int = 0, high: int = 127) -> Score:
    """A transposed copy; notes pushed outside [low, high] move by octaves back inside."""
    out = score.copy()
    for track in out.tracks:
        if track.is_drum:
            continue
        for note in track.notes:
            p = note.pitch + semitones
            while p < low:
                p += 12
            while p > high:
                p -= 12
            note.pitch = p
    return out


@dataclass
class Controls:
    """What the header tells the model: style, mode, and the register of each track slot."""

    style: str
    mode: str
    registers: list[str]

    @classmethod
    def of_score(cls, score: Score, style: str, mode: str) -> Controls:
        regs = []
        for track in score.tracks:
            pitches = [n.pitch for n in track.notes]
            regs.append(register_of(statistics.median(pitches)) if pitches else "alto")
        return cls(style, mode, regs)


class Tokenizer:
    """Encode a (key-normalised) score with its controls to ids, and decode ids back to a score."""

    def __init__(self, vocab: Vocab | None = None):
        self.vocab = vocab or Vocab()
        self.grammar = Grammar(self.vocab)
        self.bos, self.eos, self.bar = self.vocab["BOS_None"], self.vocab["EOS_None"], self.vocab["Bar_None"]

    def header_ids(self, controls: Controls) -> list[int]:
        cfg = self.vocab.config
        if controls.style not in cfg.styles:
            raise RequestError(f"Unknown style {controls.style!r}; choose one of {', '.join(cfg.styles)}.")
        if controls.mode not in MODES:
            raise RequestError(f"Mode must be 'major' or 'minor', not {controls.mode!r}.")
        if not 1 <= len(controls.registers) <= cfg.max_tracks:
            raise RequestError(f"Between 1 and {cfg.max_tracks} instruments, not {len(controls.registers)}.")
        return ([self.bos, self.vocab[f"Style_{controls.style}"], self.vocab[f"Mode_{controls.mode}"]]
                + [self.vocab[f"Track_{r}"] for r in controls.registers])

    def slot_score(self, score: Score) -> Score:
        """The score as MidiTok should see it: pitched tracks only, track i on program i, in range."""
        out = score.copy()
        tracks = [t for t in out.tracks if not t.is_drum and len(t.notes)][: self.vocab.config.max_tracks]
        low, high = self.vocab.config.pitch_range
        for i, track in enumerate(tracks):
            track.program = i
            track.notes.filter(lambda n: low <= n.pitch <= high, inplace=True)
        out.tracks = tracks
        return out

    def unsupported_time_signature(self, score: Score) -> str | None:
        """The first time signature the vocabulary lacks (MidiTok would silently make it 4/4)."""
        known = self.vocab.config.time_signatures
        for ts in score.time_signatures:
            if ts.numerator not in known.get(ts.denominator, ()):
                return f"{ts.numerator}/{ts.denominator}"
        return None

    def stream_ids(self, score: Score) -> list[int]:
        """The REMI+ music stream of a score (no header, no EOS)."""
        bad = self.unsupported_time_signature(score)
        if bad:
            raise RequestError(f"Time signature {bad} is not in the vocabulary; supported: "
                               + ", ".join(f"{n}/{d}" for d, ns in self.vocab.config.time_signatures.items() for n in ns))
        seq = self.vocab.remi.encode(self.slot_score(score))
        return list(seq.ids)

    def encode(self, score: Score, controls: Controls, eos: bool = True) -> np.ndarray:
        ids = self.header_ids(controls) + self.stream_ids(score) + ([self.eos] if eos else [])
        return np.asarray(ids, dtype=np.int64)

    def split_header(self, ids) -> tuple[list[int], list[int]]:
        """(header ids, stream ids): the header is everything before the first Bar."""
        ids = [int(i) for i in ids]
        try:
            first_bar = ids.index(self.bar)
        except ValueError:
            raise DecodeError("the sequence has no Bar token, so no music") from None
        header = ids[:first_bar]
        for tid in header:
            if not 0 <= tid < self.vocab.size or self.vocab.type_of(tid) not in ("BOS", "Style", "Mode", "Track", "PAD"):
                raise DecodeError(f"unexpected token id {tid} in the control header")
        return header, ids[first_bar:]

    def decode(self, ids) -> Score:
        """Token ids (header optional, EOS optional) → Score whose track programs are slot numbers.

        Raises DecodeError for anything the grammar refuses; never passes broken input to MidiTok.
        """
        ids = [int(i) for i in ids]
        if any(not 0 <= i < self.vocab.size for i in ids):
            raise DecodeError(f"token ids must lie in 0..{self.vocab.size - 1}")
        _, stream = self.split_header(ids)
        self.grammar.validate(stream)
        stream = [i for i in stream if i != self.eos]
        try:
            score = self.vocab.remi.decode(stream)
        except Exception as exc:  # noqa: BLE001  (MidiTok should not fail on grammatical input; if it does, say so)
            raise DecodeError(f"MidiTok could not decode a grammatical sequence: {exc}") from None
        return score

    def bar_starts(self, stream) -> np.ndarray:
        """Indices of the Bar tokens in a stream."""
        return np.flatnonzero(np.asarray(stream) == self.bar)

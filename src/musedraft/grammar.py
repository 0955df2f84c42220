"""The REMI grammar as a table of legal successions, plus the bar/position arithmetic it needs.

Used twice: the sampler masks every token the grammar forbids (so every generated sequence is valid
REMI), and the decoder walks the same table to refuse broken sequences with a `DecodeError` instead
of handing MidiTok something it would silently mangle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musedraft.errors import DecodeError
from musedraft.vocab import Vocab

__all__ = ["FOLLOWS", "Grammar", "GrammarState"]

# What may come after each token type in the music stream (after the control header).
FOLLOWS: dict[str, tuple[str, ...]] = {
    "START": ("Bar",),
    "Bar": ("TimeSig",),
    "TimeSig": ("Position", "Bar", "EOS"),
    "Position": ("Tempo", "Program"),
    "Tempo": ("Program", "Position", "Bar", "EOS"),  # a tempo change may stand alone at a position
    "Program": ("Pitch",),
    "Pitch": ("Duration",),
    "Duration": ("Program", "Position", "Bar", "EOS"),
    "EOS": (),
}


@dataclass
class GrammarState:
    last: str = "START"  # type of the last stream token
    bars: int = 0  # Bar tokens seen
    position: int = -1  # last Position in the current bar (-1: none yet)
    bar_positions: int = 0  # positions in the current bar, from its TimeSig
    slot: int = -1  # track slot of the note being written
    time_signature: str = ""  # e.g. '3/4', of the current bar
    done: bool = False


class Grammar:
    """Precomputed per-id type and value arrays so each mask is a few numpy ORs."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        v = vocab.size
        self.kind = np.array([vocab.type_of(i) for i in range(v)], dtype=object)
        self.type_mask = {k: self.kind == k for k in set(self.kind)}
        self.value = np.full(v, -1, dtype=np.int64)  # position index, pitch, slot
        self.bar_positions = np.zeros(v, dtype=np.int64)  # for TimeSig ids
        res = vocab.config.beat_res
        for i in range(v):
            k = self.kind[i]
            if k in ("Position", "Pitch", "Program"):
                self.value[i] = int(vocab.value_of(i))
            elif k == "TimeSig":
                # MidiTok counts positions per *beat of the time signature* (an eighth in 6/8,
                # a half note in 4/2), not per quarter note.
                num, _ = map(int, vocab.value_of(i).split("/"))
                self.bar_positions[i] = num * res
        self.positions = np.flatnonzero(self.type_mask["Position"])  # ids in position order
        self.eos = vocab["EOS_None"]

    def start(self) -> GrammarState:
        return GrammarState()

    def allowed(self, state: GrammarState) -> np.ndarray:
        """Boolean mask over the vocabulary of every token the grammar allows next."""
        mask = np.zeros(self.vocab.size, dtype=bool)
        for kind in FOLLOWS[state.last]:
            if kind == "Position":
                first = state.position + 1
                mask[self.positions[first:state.bar_positions]] = True
            elif kind == "EOS":
                mask[self.eos] = state.bars > 0
            else:
                mask |= self.type_mask[kind]
        return mask

    def advance(self, state: GrammarState, token_id: int) -> GrammarState:
        """Apply one token to the state, or raise DecodeError naming the broken rule."""
        kind = self.kind[token_id]
        if kind not in FOLLOWS[state.last]:
            raise DecodeError(f"token {self.vocab.tokens[token_id]} cannot follow a {state.last} token")
        if kind == "Bar":
            state.bars += 1
            state.position = -1
        elif kind == "TimeSig":
            state.bar_positions = int(self.bar_positions[token_id])
            state.time_signature = self.vocab.value_of(token_id)
        elif kind == "Position":
            pos = int(self.value[token_id])
            if pos <= state.position or pos >= state.bar_positions:
                raise DecodeError(
                    f"Position_{pos} is out of order or beyond a {state.time_signature} bar in bar {state.bars}")
            state.position = pos
        elif kind == "Program":
            state.slot = int(self.value[token_id])
        elif kind == "EOS":
            state.done = True
        state.last = kind
        return state

    def validate(self, stream_ids) -> GrammarState:
        """Walk a whole music stream (no header); it must end after a complete note or bar."""
        state = self.start()
        for tid in stream_ids:
            if state.done:
                raise DecodeError("tokens after EOS")
            self.advance(state, int(tid))
        if state.last not in ("TimeSig", "Duration", "EOS"):
            raise DecodeError(f"the sequence stops in the middle of a note (after a {state.last} token)")
        return state

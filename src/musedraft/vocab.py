"""The vocabulary: MidiTok's REMI+ events plus our control tokens, laid out as inspectable data.

Ids 0..M-1 are MidiTok's (so its encoder and decoder do the REMI work); ids M.. are ours: the style,
mode and per-track register controls at the head of a sequence, and the fill-in-the-middle markers.
`Program_k` tokens do not carry a GM program: they name *track slot k* (see tokenizer.py), which is
how several parts on the same instrument stay separate tracks in one stream.

Run `python -m musedraft.vocab` to print the layout.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

from musedraft.corpus import STYLES
from musedraft.instruments import REGISTERS

__all__ = ["VocabConfig", "Vocab", "MODES", "FIM_TOKENS"]

MODES = ("major", "minor")
FIM_TOKENS = ("FIM_PRE", "FIM_SUF", "FIM_MID")


@dataclass
class VocabConfig:
    max_tracks: int = 8  # track slots in one stream (Palestrina writes up to 8 voices)
    beat_res: int = 8  # positions per quarter note: 32nd-note grid (no tuplets)
    max_duration_beats: int = 12  # longest note, in quarters (a breve is 8)
    num_tempos: int = 43  # 5-BPM steps over 40-250; the exact tempo goes into the MIDI, not the tokens
    pitch_range: tuple[int, int] = (21, 108)  # piano range, MIDI numbers, inclusive
    time_signatures: dict[int, list[int]] = field(
        default_factory=lambda: {8: [3, 4, 5, 6, 7, 9, 12], 4: [1, 2, 3, 4, 5, 6, 7, 8, 9], 2: [1, 2, 3, 4]}
    )  # denominator → numerators the model knows; others are refused, never silently made 4/4
    styles: tuple[str, ...] = STYLES
    registers: tuple[str, ...] = tuple(name for name, _ in REGISTERS)

    def to_json(self) -> str:
        d = asdict(self)
        d["time_signatures"] = {str(k): v for k, v in self.time_signatures.items()}
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str) -> VocabConfig:
        d = json.loads(text)
        d["time_signatures"] = {int(k): v for k, v in d["time_signatures"].items()}
        d["pitch_range"] = tuple(d["pitch_range"])
        d["styles"] = tuple(d["styles"])
        d["registers"] = tuple(d["registers"])
        return cls(**d)


class Vocab:
    """Token strings ↔ ids for the whole model vocabulary, and the MidiTok tokenizer behind it."""

    def __init__(self, config: VocabConfig | None = None):
        self.config = config or VocabConfig()

    @cached_property
    def remi(self):
        """MidiTok's REMI tokenizer (imports torch through miditok, so built on first use)."""
        from miditok import REMI, TokenizerConfig  # noqa: PLC0415

        c = self.config
        return REMI(TokenizerConfig(
            pitch_range=c.pitch_range,
            beat_res={(0, 4): c.beat_res, (4, c.max_duration_beats): c.beat_res // 2},
            use_velocities=False,
            use_programs=True,
            one_token_stream_for_programs=True,
            programs=list(range(c.max_tracks)),
            use_tempos=True,
            num_tempos=c.num_tempos,
            tempo_range=(40, 250),
            use_time_signatures=True,
            time_signature_range=c.time_signatures,
            special_tokens=["PAD", "BOS", "EOS"],
        ))

    @cached_property
    def controls(self) -> list[str]:
        c = self.config
        return ([f"Style_{s}" for s in c.styles] + [f"Mode_{m}" for m in MODES]
                + [f"Track_{r}" for r in c.registers] + list(FIM_TOKENS))

    @cached_property
    def tokens(self) -> list[str]:
        """Every token string, indexed by id."""
        base = [None] * len(self.remi.vocab)
        for tok, i in self.remi.vocab.items():
            base[i] = tok
        return base + self.controls

    @cached_property
    def ids(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def remi_size(self) -> int:
        return len(self.remi.vocab)

    def __getitem__(self, token: str) -> int:
        return self.ids[token]

    def type_of(self, token_id: int) -> str:
        """'Bar', 'Position', 'Pitch', 'Style', 'FIM_PRE'... (the part before the underscore value)."""
        tok = self.tokens[token_id]
        return tok if tok.startswith("FIM_") else tok.split("_", 1)[0]

    def value_of(self, token_id: int) -> str:
        return self.tokens[token_id].split("_", 1)[1]

    def ids_of_type(self, kind: str) -> list[int]:
        return [i for i in range(self.size) if self.type_of(i) == kind]

    def save(self, folder: str | Path) -> None:
        """Write vocab.json (our layout) and tokenizer.json (MidiTok's) into a checkpoint folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vocab.json").write_text(self.config.to_json())
        self.remi.save(folder / "tokenizer.json")

    @classmethod
    def load(cls, folder: str | Path) -> Vocab:
        return cls(VocabConfig.from_json((Path(folder) / "vocab.json").read_text()))

    def layout(self) -> str:
        """Contiguous id ranges by token type: what `python -m musedraft.vocab` prints."""
        lines, start = [], 0
        for i in range(1, self.size + 1):
            if i == self.size or self.type_of(i) != self.type_of(start):
                first, last = self.tokens[start], self.tokens[i - 1]
                span = first if i - 1 == start else f"{first} .. {last}"
                lines.append(f"{start:5d}-{i - 1:<5d} {self.type_of(start):10s} {i - start:4d}  {span}")
                start = i
        return f"musedraft vocabulary: {self.size} tokens\n" + "\n".join(lines)


if __name__ == "__main__":
    print(Vocab().layout())

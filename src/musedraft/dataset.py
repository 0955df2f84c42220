"""Training data, step two: the converted corpus as token shards, and the windows a model trains on.

Shards are plain .npy files (memory-mappable) per split: every piece's music stream back to back,
its control header, and the offsets of its bars, so a training window can start at any bar.
Pieces are key-normalised here (see tokenizer.py) with the key music21 found when converting.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musedraft.corpus import default_cache_dir, load_table
from musedraft.tokenizer import Controls, Tokenizer, normalising_shift, transpose

__all__ = ["ShardConfig", "build_shards", "Shards", "WindowSampler", "SPLITS"]

SPLITS = ("train", "valid", "test")


@dataclass
class ShardConfig:
    corpus: Path | None = None  # corpus cache (default: <cache>/corpus)
    out: Path | None = None  # shard folder (default: <cache>/tokens)


def build_shards(config: ShardConfig | None = None, tokenizer: Tokenizer | None = None, progress: bool = True) -> dict:
    """Tokenize every converted piece into per-split shards; returns counts and time."""
    from symusic import Score  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    config = config or ShardConfig()
    corpus_dir = Path(config.corpus or default_cache_dir() / "corpus")
    out = Path(config.out or default_cache_dir() / "tokens")
    out.mkdir(parents=True, exist_ok=True)
    tok = tokenizer or Tokenizer()
    rows = load_table(corpus_dir)
    start = time.perf_counter()
    acc = {s: {"tokens": [], "headers": [], "pieces": [], "bars": [], "ids": [], "n_tok": 0, "n_head": 0, "n_bars": 0}
           for s in SPLITS}
    skipped: Counter = Counter()
    notes = Counter()
    for row in tqdm(rows, desc="tokenize", unit="piece", disable=not progress):
        score = Score(str(corpus_dir / row["midi"]))
        if tok.unsupported_time_signature(score):
            skipped["time signature not in vocabulary"] += 1
            continue
        shift = normalising_shift(row["key_pc"], row["mode"])
        score = transpose(score, shift, *tok.vocab.config.pitch_range)
        controls = Controls.of_score(tok.slot_score(score), row["style"], row["mode"])
        header = tok.header_ids(controls)
        stream = tok.stream_ids(score) + [tok.eos]
        bars = tok.bar_starts(stream)
        if len(bars) == 0:
            skipped["no bars"] += 1
            continue
        a = acc[row["split"]]
        a["pieces"].append((a["n_tok"], a["n_tok"] + len(stream), a["n_head"], len(header), a["n_bars"], len(bars)))
        a["tokens"].append(np.asarray(stream, dtype=np.uint16))
        a["headers"].append(np.asarray(header, dtype=np.uint16))
        a["bars"].append(bars + a["n_tok"])
        a["ids"].append(row["id"])
        a["n_tok"] += len(stream)
        a["n_head"] += len(header)
        a["n_bars"] += len(bars)
        notes[row["split"]] += sum(len(t.notes) for t in tok.slot_score(score).tracks)
    summary = {"seconds": round(time.perf_counter() - start, 1), "skipped": dict(skipped), "splits": {}}
    for split, a in acc.items():
        np.save(out / f"{split}_tokens.npy", np.concatenate(a["tokens"]) if a["tokens"] else np.zeros(0, np.uint16))
        np.save(out / f"{split}_headers.npy", np.concatenate(a["headers"]) if a["headers"] else np.zeros(0, np.uint16))
        np.save(out / f"{split}_bars.npy", np.concatenate(a["bars"]).astype(np.int64) if a["bars"] else np.zeros(0, np.int64))
        np.save(out / f"{split}_pieces.npy", np.asarray(a["pieces"], dtype=np.int64).reshape(-1, 6))
        (out / f"{split}_ids.json").write_text(json.dumps(a["ids"]))
        summary["splits"][split] = {"pieces": len(a["ids"]), "tokens": a["n_tok"], "bars": a["n_bars"],
                                    "notes": notes[split]}
    tok.vocab.save(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


class Shards:
    """One split's arrays, memory-mapped."""

    def __init__(self, folder: str | Path, split: str):
        folder = Path(folder)
        load = lambda name: np.load(folder / f"{split}_{name}.npy", mmap_mode="r")  # noqa: E731
        self.tokens, self.headers, self.bars, self.pieces = load("tokens"), load("headers"), load("bars"), load("pieces")
        self.ids = json.loads((folder / f"{split}_ids.json").read_text())

    def __len__(self) -> int:
        return len(self.pieces)

    def header(self, i: int) -> np.ndarray:
        _, _, h0, hn, _, _ = self.pieces[i]
        return np.asarray(self.headers[h0:h0 + hn], dtype=np.int64)

    def stream(self, i: int) -> np.ndarray:
        s0, s1 = self.pieces[i][:2]
        return np.asarray(self.tokens[s0:s1], dtype=np.int64)

    def bar_offsets(self, i: int) -> np.ndarray:
        """Offsets of piece i's Bar tokens, relative to its stream start."""
        s0, _, _, _, b0, bn = self.pieces[i]
        return np.asarray(self.bars[b0:b0 + bn]) - s0


class WindowSampler:
    """Random training windows: header + bars from a random bar on; a share of them in FIM order.

    Fill-in-the-middle layout (prefix-suffix-middle): `header FIM_PRE prefix FIM_SUF suffix
    FIM_MID middle EOS`, each part whole bars, so the model learns to write bars that lead into
    given music — used to regenerate bars and to close a loop onto its own opening.
    """

    def __init__(self, shards: Shards, tokenizer: Tokenizer, context: int, fim_rate: float = 0.5):
        self.s, self.context, self.fim_rate = shards, context, fim_rate
        v = tokenizer.vocab
        self.pad, self.eos = v["PAD_None"], v["EOS_None"]
        self.pre, self.suf, self.mid = v["FIM_PRE"], v["FIM_SUF"], v["FIM_MID"]
        weights = shards.pieces[:, 5].astype(np.float64)  # by bar count, so every bar is equally likely
        self.p = weights / weights.sum()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One window of exactly `context + 1` ids: pieces packed back to back, PAD only at the end.

        Most corpus pieces are folk tunes of a few hundred tokens, so one piece per window would
        leave half of every batch as padding; packing doubles the music a step learns from. Each
        packed piece brings its own BOS header, which is where the model learns a new piece starts.
        """
        out = np.full(self.context + 1, self.pad, dtype=np.int64)
        filled = 0
        while self.context + 1 - filled > 32:  # a window shorter than this is mostly header
            seq = self._window(rng, self.context + 1 - filled)
            out[filled: filled + len(seq)] = seq
            filled += len(seq)
        return out

    def _window(self, rng: np.random.Generator, room: int) -> np.ndarray:
        """Header + bars from a random bar of a random piece (a share in FIM order), at most `room` ids."""
        i = int(rng.choice(len(self.p), p=self.p))
        header, stream, bars = self.s.header(i), self.s.stream(i), self.s.bar_offsets(i)
        b = int(rng.integers(len(bars)))
        left = room - len(header)
        seq = None
        if rng.random() < self.fim_rate and len(bars) - b >= 3 and left > 64:
            seq = self._fim(header, stream, bars[b:], left - 4, rng)
        if seq is None:
            seq = np.concatenate([header, stream[bars[b]: bars[b] + max(left, 0)]])
        return seq[:room]

    def _fim(self, header, stream, bars, room, rng) -> np.ndarray | None:
        """A FIM window of whole bars, or None when three bars do not fit (a cut-off middle would teach
        the model to stop without its EOS)."""
        ends = np.append(bars[1:], len(stream) - 1)  # bar k spans bars[k]:ends[k] (EOS excluded)
        fit = int(np.searchsorted(ends - bars[0], room, side="right"))  # whole bars that fit
        n = min(fit, len(bars))
        if n < 3:
            return None
        a = int(rng.integers(1, n - 1))  # middle starts after at least one prefix bar
        m = int(rng.integers(1, min(8, n - 1 - a) + 1))  # 1-8 middle bars, at least one suffix bar
        pre = stream[bars[0]: bars[a]]
        mid = stream[bars[a]: bars[a + m]]
        suf = stream[bars[a + m]: ends[n - 1]]
        return np.concatenate([header, [self.pre], pre, [self.suf], suf, [self.mid], mid, [self.eos]])

    def batch(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.stack([self.sample(rng) for _ in range(size)])

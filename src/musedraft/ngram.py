"""The baseline the model must beat: an interpolated Kneser-Ney n-gram over the same token ids.

Counting is vectorised: every n-gram is packed into one int64 (9 bits a token), so counts are
`np.unique` over arrays and look-ups are `searchsorted` — the whole corpus counts in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NgramConfig", "KneserNey"]

BITS = 9  # enough for vocabularies up to 512 ids


@dataclass
class NgramConfig:
    order: int = 5  # longest n-gram (context of order-1 tokens)
    discount: float = 0.75  # absolute discount, the usual KN value


def _pack(seqs: np.ndarray, n: int, end: int) -> np.ndarray:
    """Pack the n tokens of `seqs` ending at each index in `end` into one int64 key each."""
    key = np.zeros(len(end), dtype=np.int64)
    for j in range(n):
        key = (key << BITS) | seqs[end - n + 1 + j].astype(np.int64)
    return key


class _Table:
    """Sorted unique keys with counts; `get` looks many keys up at once."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray | None = None):
        if counts is None:
            self.keys, self.counts = np.unique(keys, return_counts=True)
        else:
            order = np.argsort(keys, kind="stable")
            self.keys, self.counts = keys[order], counts[order]

    def get(self, q: np.ndarray) -> np.ndarray:
        if len(self.keys) == 0:
            return np.zeros(len(q), dtype=np.float64)
        i = np.searchsorted(self.keys, q).clip(0, len(self.keys) - 1)
        return np.where(self.keys[i] == q, self.counts[i], 0).astype(np.float64)


def _sum_by(keys: np.ndarray, weights: np.ndarray) -> _Table:
    u, inv = np.unique(keys, return_inverse=True)
    return _Table(u, np.bincount(inv, weights=weights).astype(np.float64))


class KneserNey:
    """Interpolated Kneser-Ney over token id sequences; `nll` scores chosen positions in nats."""

    def __init__(self, vocab_size: int, config: NgramConfig | None = None):
        if vocab_size > 1 << BITS:
            raise ValueError(f"vocabulary of {vocab_size} exceeds the {1 << BITS} ids this packing holds")
        self.V, self.cfg = vocab_size, config or NgramConfig()

    def fit(self, sequences: list[np.ndarray], pad: int = 0) -> KneserNey:
        n = self.cfg.order
        flat, ends = self._flatten(sequences, pad)
        self.full, self.ctx, self.follow = {}, {}, {}
        self.cont, self.cont_ctx, self.cont_follow = {}, {}, {}
        for k in range(1, n + 1):
            grams = _Table(_pack(flat, k, ends))
            self.full[k] = grams
            ctx_keys = grams.keys >> BITS
            self.ctx[k] = _sum_by(ctx_keys, grams.counts)  # c(h)
            self.follow[k] = _Table(ctx_keys)  # N1+(h •): distinct continuations of h
        for k in range(1, n):
            higher = self.full[k + 1].keys & ((1 << (BITS * k)) - 1)  # drop the first token
            cont = _Table(higher)  # N1+(• h w)
            self.cont[k] = cont
            cont_ctx = cont.keys >> BITS
            self.cont_ctx[k] = _sum_by(cont_ctx, cont.counts)
            self.cont_follow[k] = _Table(cont_ctx)
        return self

    @staticmethod
    def _flatten(sequences, pad):
        """Concatenate with order-1 pads before each sequence; return tokens and scored end indices."""
        parts, ends, offset = [], [], 0
        for s in sequences:
            s = np.asarray(s, dtype=np.int64)
            block = np.concatenate([np.full(8, pad, dtype=np.int64), s])
            parts.append(block)
            ends.append(offset + 8 + np.arange(len(s)))
            offset += len(block)
        return np.concatenate(parts), np.concatenate(ends)

    def _prob(self, flat: np.ndarray, ends: np.ndarray) -> np.ndarray:
        d, n = self.cfg.discount, self.cfg.order
        p = np.full(len(ends), 1.0 / self.V)
        for k in range(1, n + 1):
            gram = _pack(flat, k, ends)
            h = gram >> BITS
            if k == n:
                c, ch, nf = self.full[k].get(gram), self.ctx[k].get(h), self.follow[k].get(h)
            else:
                c, ch, nf = self.cont[k].get(gram), self.cont_ctx[k].get(h), self.cont_follow[k].get(h)
            if k == 1:  # unigram continuation probability, interpolated with uniform
                ch = np.full(len(ends), self.cont_ctx[1].counts.sum() if n > 1 else self.ctx[1].counts.sum())
                nf = np.full(len(ends), float(len(self.cont[1].keys) if n > 1 else len(self.full[1].keys)))
            seen = ch > 0
            mix = np.where(seen, (np.maximum(c - d, 0) + d * nf * p) / np.where(seen, ch, 1), p)
            p = mix
        return p

    def nll(self, sequences: list[np.ndarray], score_from: list[int] | None = None, pad: int = 0) -> tuple[float, int]:
        """(total nats, tokens scored) over each sequence from index score_from[i] on."""
        flat, ends = self._flatten(sequences, pad)
        keep = np.concatenate([np.arange(len(s)) >= (score_from[i] if score_from else 0)
                               for i, s in enumerate(sequences)])
        p = self._prob(flat, ends[keep])
        return float(-np.log(p).sum()), int(keep.sum())

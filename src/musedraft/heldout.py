"""Held-out likelihood: the shipped model against a Kneser-Ney n-gram on the same test tokens.

Both score exactly the music-stream tokens of every test piece (the control header is given as
context, never scored), so nats per token and nats per note compare like for like.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from musedraft.dataset import Shards
from musedraft.ngram import KneserNey, NgramConfig

__all__ = ["model_nll", "ngram_nll", "heldout_table"]


@torch.no_grad()
def model_nll(model, shards: Shards, pad: int = 0) -> tuple[float, int]:
    """(total nats, tokens) of the stream tokens of every piece, in context windows that overlap by half.

    Each window is `header + stream[a:a+room]` with `a` on a bar line, and each token is scored
    once, in the window where it has the most left context.
    """
    model.eval()
    context = model.cfg.context
    total, count = 0.0, 0
    for i in range(len(shards)):
        header, stream, bars = shards.header(i), shards.stream(i), shards.bar_offsets(i)
        room = context - len(header)
        done, a = 0, 0
        while done < len(stream):
            window = np.concatenate([header, stream[a:a + room]])
            x = torch.from_numpy(window).long()[None]
            logp = torch.log_softmax(model(x[:, :-1])[0].float(), dim=-1)  # (T-1, V)
            targets = x[0, 1:]
            nll = -logp.gather(1, targets[:, None])[:, 0]
            stream_pos = np.arange(1, len(window)) - len(header) + a  # stream index of each target
            keep = stream_pos >= done
            total += float(nll[torch.from_numpy(keep)].sum())
            count += int(keep.sum())
            done = a + len(window) - len(header)
            if done >= len(stream):
                break
            nxt = bars[(bars > a) & (bars <= a + room // 2)]  # slide half a window, to a bar line
            a = int(nxt[-1]) if len(nxt) else done
    return total, count


def _sequences(shards: Shards) -> tuple[list[np.ndarray], list[int]]:
    seqs, starts = [], []
    for i in range(len(shards)):
        h = shards.header(i)
        seqs.append(np.concatenate([h, shards.stream(i)]))
        starts.append(len(h))
    return seqs, starts


def ngram_nll(shards_dir: str | Path, vocab_size: int, orders=(2, 3, 4, 5, 6)) -> dict:
    """Fit KN n-grams on train, pick the order with the best valid NLL, score test with it."""
    train_seqs, _ = _sequences(Shards(shards_dir, "train"))
    valid_seqs, valid_from = _sequences(Shards(shards_dir, "valid"))
    test_seqs, test_from = _sequences(Shards(shards_dir, "test"))
    best = None
    for order in orders:
        lm = KneserNey(vocab_size, NgramConfig(order=order)).fit(train_seqs)
        v_total, v_n = lm.nll(valid_seqs, valid_from)
        if best is None or v_total / v_n < best[1]:
            best = (order, v_total / v_n, lm)
    order, _, lm = best
    total, n = lm.nll(test_seqs, test_from)
    return {"order": order, "nats": total, "tokens": n}


def heldout_table(checkpoint: str | Path, shards_dir: str | Path) -> dict:
    """Test-split NLL per token and per note for a checkpoint and the best n-gram, in one run."""
    from musedraft.model import load_checkpoint  # noqa: PLC0415
    from musedraft.vocab import Vocab  # noqa: PLC0415

    vocab = Vocab.load(checkpoint)
    model, _ = load_checkpoint(checkpoint)
    test = Shards(shards_dir, "test")
    pitch_ids = np.array(vocab.ids_of_type("Pitch"))
    notes = sum(int(np.isin(test.stream(i), pitch_ids).sum()) for i in range(len(test)))
    t = time.perf_counter()
    m_total, m_n = model_nll(model, test, pad=vocab["PAD_None"])
    m_sec = time.perf_counter() - t
    t = time.perf_counter()
    ng = ngram_nll(shards_dir, vocab.size)
    ng_sec = time.perf_counter() - t
    assert ng["tokens"] == m_n, "model and n-gram must score the same tokens"
    rows = {
        "model": {"nats_per_token": m_total / m_n, "nats_per_note": m_total / notes, "seconds": m_sec,
                  "params": model.num_params()},
        f"kneser-ney {ng['order']}-gram": {"nats_per_token": ng["nats"] / m_n, "nats_per_note": ng["nats"] / notes,
                                          "seconds": ng_sec},
    }
    gain = 1 - (m_total / notes) / (ng["nats"] / notes)
    return {"test_pieces": len(test), "test_tokens": m_n, "test_notes": notes, "rows": rows,
            "model_gain_per_note": gain}

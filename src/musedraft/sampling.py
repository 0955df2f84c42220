"""Sampling as a chain of small pure logits filters, applied in order, then one seeded draw.

Each filter takes logits (V,) and returns new logits; masks set forbidden ids to -inf, biases shift
them. Nothing here keeps state: the generator decides which masks apply at each step.
"""

from __future__ import annotations

import torch

__all__ = ["temperature", "top_k", "top_p", "mask", "bias", "draw"]

NEG_INF = float("-inf")


def temperature(logits: torch.Tensor, t: float) -> torch.Tensor:
    return logits / max(t, 1e-5)


def top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k most likely ids (k <= 0: keep all)."""
    if k <= 0 or k >= logits.numel():
        return logits
    kth = torch.topk(logits, k).values[-1]
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus: keep the smallest set of ids whose probability reaches p (p >= 1: keep all)."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True)
    cum = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
    drop = cum - torch.softmax(sorted_logits, dim=-1) >= p  # keep the id that crosses p
    return logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), NEG_INF)


def mask(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Forbid every id where `allowed` is False (the grammar, instrument, bar-count masks)."""
    return logits.masked_fill(~allowed, NEG_INF)


def bias(logits: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Add a per-id offset (soft preferences: stay in the key, favour on-beat onsets)."""
    return logits + offsets


def draw(logits: torch.Tensor, generator: torch.Generator) -> int:
    """One id from softmax(logits); randomness only through the explicit seeded generator."""
    probs = torch.softmax(logits.float(), dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))

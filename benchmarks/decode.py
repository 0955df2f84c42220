"""Decoding speed with and without the KV cache: 1,024 generated tokens, same model, side by side.

Two loops, each cached and uncached:
  - model only: one forward per new token (the cached step vs re-running the whole sequence), a
    seeded draw from the softmax; measures the transformer alone;
  - Generator: musedraft's real loop (grammar and request masks, biases, temperature/top-p, the
    seeded draw), asked for 512 bars so it is still writing when 1,024 tokens are out.
The model is the shipped checkpoint if there is one (its context must hold 1,024 new tokens), else
a random-init model with the shipped architecture and a 1,100-token context; the weights do not
change the arithmetic, so the speed-up is the cache's.

    .venv/bin/python benchmarks/decode.py [--model FOLDER] [--tokens 1024] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import command, machine, publish, table

from musedraft.composer import DEFAULT_MODEL
from musedraft.errors import DecodeError
from musedraft.generate import Constraints, Generator, SamplingConfig
from musedraft.model import ModelConfig, MusicTransformer, load_checkpoint
from musedraft.tokenizer import Controls, Tokenizer
from musedraft.vocab import Vocab

SHIPPED = ModelConfig(context=512, n_layer=5, n_head=5, d_model=160)  # `musedraft train` defaults


def get_model(folder: str | None, tokens: int, vocab: Vocab) -> tuple[MusicTransformer, str]:
    path = Path(folder) if folder else DEFAULT_MODEL
    if (path / "model.safetensors").is_file():
        model, _ = load_checkpoint(path)
        if model.cfg.context >= tokens + 32:
            return model, f"checkpoint {path.name} ({model.num_params() / 1e6:.2f} M parameters, context {model.cfg.context})"
        base, why = model.cfg, f"checkpoint {path.name} has context {model.cfg.context}; random init with its shape"
    else:
        base, why = SHIPPED, "no shipped checkpoint yet; random init with the shipped shape"
    cfg = ModelConfig(vocab_size=vocab.size, context=max(1100, tokens + 76), n_layer=base.n_layer,
                      n_head=base.n_head, d_model=base.d_model, dropout=0.0)
    torch.manual_seed(0)
    model = MusicTransformer(cfg).eval()
    return model, f"{why}: {model.num_params() / 1e6:.2f} M parameters, context {cfg.context}"


@torch.no_grad()
def model_loop(model: MusicTransformer, prompt: list[int], tokens: int, cached: bool) -> float:
    gen = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    ids = list(prompt)
    cache = model.new_cache(1) if cached else None
    logits = model(torch.tensor([ids]), cache)[0, -1]
    for _ in range(tokens):
        tid = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
        ids.append(tid)
        logits = model(torch.tensor([[tid]]), cache)[0, -1] if cached else model(torch.tensor([ids]))[0, -1]
    return time.perf_counter() - t


def generator_loop(gen: Generator, header: list[int], tokens: int, cached: bool) -> float:
    c = Constraints(bars=512, time_signature="4/4", pitch_ranges=[(67, 84), (55, 74), (48, 67), (36, 60)],
                    tempo=100.0, cadence=False)
    t = time.perf_counter()
    try:
        gen.generate(header, [], c, SamplingConfig(use_cache=cached), seed=0, max_tokens=tokens)
    except DecodeError as exc:  # expected: 512 bars do not fit in `tokens`; it stops at exactly that many
        assert "did not finish" in str(exc), exc
    else:
        raise RuntimeError("the generator finished early; the timing would not cover the requested tokens")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: single-token steps are latency-bound)")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs per row; the fastest counts")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok = Tokenizer()
    model, what = get_model(args.model, args.tokens, tok.vocab)
    header = tok.header_ids(Controls("classical", "major", ["soprano", "alto", "tenor", "bass"]))
    gen = Generator(model, tok)
    head = machine()
    rows = {("model only", True): model_loop, ("model only", False): model_loop,
            ("Generator (masks + sampling)", True): generator_loop, ("Generator (masks + sampling)", False): generator_loop}
    best = {k: float("inf") for k in rows}
    for _ in range(args.repeats):
        for (loop, cached), fn in rows.items():
            subject = model if fn is model_loop else gen
            best[(loop, cached)] = min(best[(loop, cached)], fn(subject, header, args.tokens, cached))
    out_rows, speedups = [], {}
    for loop in ("model only", "Generator (masks + sampling)"):
        on, off = best[(loop, True)], best[(loop, False)]
        speedups[loop] = off / on
        for cached, s in ((True, on), (False, off)):
            out_rows.append([loop, "KV cache" if cached else "no cache (full forward per token)",
                             f"{args.tokens / s:,.0f}", f"{1000 * s / args.tokens:.2f}", f"{s:.2f}",
                             f"{off / s:.1f}x"])
    lines = [
        f"## Decoding speed: KV cache vs none ({args.tokens:,} generated tokens)", "",
        f"`{command()}` — {what}; batch 1, CPU, {args.threads} torch thread(s); best of {args.repeats} "
        f"interleaved runs; {head} (other jobs share the machine).", "",
        table(["loop", "attention", "tokens/s", "ms/token", "seconds", "speed-up"], out_rows), "",
        f"- KV-cache speed-up at {args.tokens:,} tokens: **{speedups['model only']:.1f}x** for the model alone, "
        f"**{speedups['Generator (masks + sampling)']:.1f}x** in the real generation loop.",
        "- Without the cache, step t re-runs all t positions, so the cost grows with the length "
        "(quadratic in total); with it, each step is one position against the cached keys.",
        "- `tests/test_model.py::test_cached_equals_uncached` checks that both give the same logits (1e-4).",
    ]
    publish("decode", "\n".join(lines), args.out)
    print(json.dumps({k: round(v, 2) for k, v in speedups.items()}))


if __name__ == "__main__":
    main()

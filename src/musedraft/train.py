"""Training: AdamW with warm-up and cosine decay over token windows (left-to-right and FIM).

Runs on the CPU, on one CUDA GPU (bf16 autocast) or across processes with torchrun + DDP (gloo on
CPU, nccl on GPU). Checkpoints are safetensors folders; `resume=True` continues from `out/last`.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from musedraft.dataset import Shards, WindowSampler
from musedraft.errors import ModelError
from musedraft.model import ModelConfig, MusicTransformer, load_checkpoint, save_checkpoint
from musedraft.tokenizer import Tokenizer
from musedraft.vocab import Vocab

__all__ = ["TrainConfig", "train", "evaluate_loss"]


@dataclass
class TrainConfig:
    shards: Path = Path("cache/tokens")  # from `musedraft corpus tokenize`
    out: Path = Path("runs/default")  # checkpoints (last/, best/), log.jsonl, loss.png
    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 2000  # optimiser steps; the cosine schedule spans them
    max_minutes: float = 0.0  # stop early (and save) after this wall time; 0 = no limit
    batch_size: int = 16  # windows per step (per process under DDP)
    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # the cosine decays to lr * this
    warmup: int = 100  # linear warm-up steps
    weight_decay: float = 0.1  # on weight matrices only
    grad_clip: float = 1.0
    fim_rate: float = 0.4  # share of windows in fill-in-the-middle order
    eval_every: int = 100  # steps between validation runs
    eval_batches: int = 8  # validation windows = eval_batches * batch_size (fixed seed: comparable)
    seed: int = 0
    device: str = "auto"  # 'cpu', 'cuda' or 'auto'
    cpu_bf16: bool = False  # bf16 autocast on CPUs with AVX512-BF16/AMX (~20% faster here); CUDA always uses bf16
    resume: bool = False
    init: Path | None = None  # start from this checkpoint's weights (fine-tuning: fresh optimiser and schedule)
    progress: bool = True


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def _loss(model, batch: torch.Tensor, pad: int) -> torch.Tensor:
    logits = model(batch[:, :-1])  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), batch[:, 1:].reshape(-1), ignore_index=pad)


@torch.no_grad()
def evaluate_loss(model, sampler: WindowSampler, batches: int, batch_size: int, device, seed: int = 1234) -> float:
    """Mean token loss on a fixed set of validation windows (same seed → same windows)."""
    model.eval()
    rng = np.random.default_rng(seed)
    losses = [_loss(model, torch.from_numpy(sampler.batch(rng, batch_size)).to(device), sampler.pad).item()
              for _ in range(batches)]
    model.train()
    return float(np.mean(losses))


def _save_optimizer(opt: torch.optim.Optimizer, path: Path, step: int, best: float) -> None:
    from safetensors.torch import save_file  # noqa: PLC0415

    tensors = {}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            tensors[f"{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path / "optimizer.safetensors"))
    (path / "trainer.json").write_text(json.dumps({"step": step, "best_valid": best}))


def _load_optimizer(opt: torch.optim.Optimizer, path: Path) -> tuple[int, float]:
    from safetensors.torch import load_file  # noqa: PLC0415

    flat = load_file(str(path / "optimizer.safetensors"))
    sd = opt.state_dict()
    state: dict = {}
    for key, v in flat.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)
    meta = json.loads((path / "trainer.json").read_text())
    return meta["step"], meta["best_valid"]


def _initial_weights(folder: Path, vocab: Vocab) -> MusicTransformer:
    """The checkpoint to fine-tune from; it must speak the shards' vocabulary token for token."""
    model, _ = load_checkpoint(folder)
    theirs = Vocab.load(folder)
    if theirs.tokens != vocab.tokens:
        raise ModelError(f"{folder} was trained with another vocabulary than the shards' "
                         f"({theirs.size} vs {vocab.size} tokens); fine-tune from a matching checkpoint.")
    return model


def train(cfg: TrainConfig) -> dict:
    """Train (or resume) a model; returns the final figures. Under torchrun every rank calls this."""
    from tqdm import tqdm  # noqa: PLC0415

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    if world > 1:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.manual_seed(cfg.seed + rank)
    out = Path(cfg.out)
    vocab = Vocab.load(cfg.shards)
    tok = Tokenizer(vocab)
    start_from = _initial_weights(cfg.init, vocab) if cfg.init else None
    if start_from is not None:
        cfg.model = start_from.cfg  # the architecture is the checkpoint's
    cfg.model.vocab_size = vocab.size
    train_s = WindowSampler(Shards(cfg.shards, "train"), tok, cfg.model.context, cfg.fim_rate)
    valid_s = WindowSampler(Shards(cfg.shards, "valid"), tok, cfg.model.context, cfg.fim_rate)
    model = MusicTransformer(cfg.model).to(device)
    if start_from is not None:
        model.load_state_dict(start_from.state_dict())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    step, best = 0, float("inf")
    if cfg.resume and (out / "last" / "model.safetensors").exists():
        loaded, _ = load_checkpoint(out / "last", device=str(device))
        model.load_state_dict(loaded.state_dict())
        step, best = _load_optimizer(opt, out / "last")
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    rng = np.random.default_rng(cfg.seed * 1000 + rank + step)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" or cfg.cpu_bf16)
    log = out / "log.jsonl"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), default=str, indent=1))
    start = time.perf_counter()
    tokens_seen = 0
    bar = tqdm(total=cfg.steps, initial=step, disable=not cfg.progress or rank != 0, desc="train", unit="step")
    model.train()
    while step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        batch = torch.from_numpy(train_s.batch(rng, cfg.batch_size)).to(device)
        with autocast:
            loss = _loss(ddp_model, batch, train_s.pad)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        tokens_seen += int((batch != train_s.pad).sum()) * world
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        timed_out = cfg.max_minutes and (time.perf_counter() - start) > cfg.max_minutes * 60
        if rank == 0 and (step % cfg.eval_every == 0 or step == cfg.steps or timed_out):
            with autocast:
                valid = evaluate_loss(model, valid_s, cfg.eval_batches, cfg.batch_size, device)
            entry = {"step": step, "train_loss": round(loss.item(), 4), "valid_loss": round(valid, 4),
                     "lr": opt.param_groups[0]["lr"], "minutes": round((time.perf_counter() - start) / 60, 2),
                     "tokens": tokens_seen}
            with open(log, "a") as fh:
                fh.write(json.dumps(entry) + "\n")
            extra = {"train": {"step": step, "valid_loss": valid}}
            save_checkpoint(model, out / "last", vocab, extra)
            _save_optimizer(opt, out / "last", step, min(best, valid))
            if valid < best:
                best = valid
                save_checkpoint(model, out / "best", vocab, extra)
        if world > 1:
            flag = torch.tensor([1.0 if timed_out else 0.0], device=device)
            torch.distributed.all_reduce(flag)
            timed_out = flag.item() > 0
        if timed_out:
            break
    bar.close()
    if rank == 0:
        plot_loss_curve(log, out / "loss.png")
    if world > 1:
        torch.distributed.destroy_process_group()
    return {"steps": step, "best_valid_loss": best, "minutes": round((time.perf_counter() - start) / 60, 2),
            "tokens": tokens_seen, "params": model.num_params()}


def plot_loss_curve(log: Path, png: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = [json.loads(line) for line in Path(log).read_text().splitlines() if line]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in rows], [r["train_loss"] for r in rows], label="train (batch)")
    ax.plot([r["step"] for r in rows], [r["valid_loss"] for r in rows], label="valid")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)

"""The model: a small decoder-only transformer over token ids, with a KV cache for decoding.

It knows nothing of music; vocab size and context come from its config. Checkpoints are a folder:
model.safetensors + config.json + the vocabulary files, so a model never loads with the wrong
vocabulary and loading never unpickles anything.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from musedraft.errors import ModelError

__all__ = ["ModelConfig", "KVCache", "MusicTransformer", "save_checkpoint", "load_checkpoint"]


@dataclass
class ModelConfig:
    vocab_size: int = 512  # token ids; set from the Vocab
    context: int = 1024  # longest sequence the model attends over
    n_layer: int = 6  # transformer blocks
    n_head: int = 8  # attention heads per block
    d_model: int = 256  # embedding width
    dropout: float = 0.1  # training only


class KVCache:
    """Keys and values of every past position, per layer, so each new token costs one step."""

    def __init__(self, n_layer: int, batch: int, n_head: int, context: int, head_dim: int, device, dtype):
        shape = (n_layer, batch, n_head, context, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # positions filled

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = k.size(2)
        self.k[layer, :, :, self.length:self.length + t] = k
        self.v[layer, :, :, self.length:self.length + t] = v
        end = self.length + t
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.n_head, self.dropout = cfg.n_head, cfg.dropout

    def forward(self, x: torch.Tensor, layer: int, cache: KVCache | None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for z in (q, k, v))  # (B, H, T, hd)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        else:
            past = cache.length
            k, v = cache.update(layer, k, v)  # (B, H, past+T, hd)
            # new query i may see every cached key and the new keys up to itself
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(), nn.Linear(4 * cfg.d_model, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, layer: int, cache: KVCache | None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), layer, cache))
        return x + self.drop(self.mlp(self.ln2(x)))


class MusicTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.context, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying: fewer parameters, better small-data fit
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch: int) -> KVCache:
        c = self.cfg
        p = self.tok_emb.weight
        return KVCache(c.n_layer, batch, c.n_head, c.context, c.d_model // c.n_head, p.device, p.dtype)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits (B, T, V) for ids (B, T); with a cache, `idx` holds only the new positions."""
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.cfg.context:
            raise ModelError(f"sequence of {start + T} tokens exceeds the model context of {self.cfg.context}")
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, i, cache)
        if cache is not None:
            cache.length += T
        return self.head(self.ln_f(x))  # (B, T, V)


def save_checkpoint(model: MusicTransformer, folder: str | Path, vocab=None, extra: dict | None = None) -> None:
    """Write model.safetensors + config.json (+ the vocabulary files) into `folder`."""
    from safetensors.torch import save_model  # noqa: PLC0415

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, str(folder / "model.safetensors"))
    meta = {"model": asdict(model.cfg), **(extra or {}), "sha256": _sha256(folder / "model.safetensors")}
    (folder / "config.json").write_text(json.dumps(meta, indent=1))
    if vocab is not None:
        vocab.save(folder)


def _sha256(path: Path) -> str:
    import hashlib  # noqa: PLC0415

    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_checkpoint(folder: str | Path, device: str = "cpu") -> tuple[MusicTransformer, dict]:
    """Load a checkpoint folder; any missing, corrupted or mismatched file is a ModelError."""
    from safetensors import SafetensorError  # noqa: PLC0415
    from safetensors.torch import load_model  # noqa: PLC0415

    folder = Path(folder)
    for name in ("model.safetensors", "config.json"):
        if not (folder / name).is_file():
            raise ModelError(f"{folder} is not a musedraft checkpoint: {name} is missing.")
    try:
        meta = json.loads((folder / "config.json").read_text())
        cfg = ModelConfig(**meta["model"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{folder}/config.json is unreadable: {exc}") from None
    if "sha256" in meta and meta["sha256"] != _sha256(folder / "model.safetensors"):  # a flipped bit loads silently
        raise ModelError(f"{folder}/model.safetensors does not match the checksum in its config.json: the file is "
                         "corrupted or was replaced. Reinstall musedraft, or point to an intact checkpoint.")
    model = MusicTransformer(cfg)
    try:
        load_model(model, str(folder / "model.safetensors"), strict=True, device=device)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise ModelError(f"{folder}/model.safetensors does not match its config or is corrupted: {str(exc)[:300]}") from None
    model.eval()
    return model, meta

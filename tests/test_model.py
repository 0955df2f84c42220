"""Model: KV-cached decoding equals the full forward pass; checkpoints round-trip and fail loudly."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch

from musedraft.composer import Composer
from musedraft.errors import ModelError
from musedraft.model import KVCache, ModelConfig, MusicTransformer, load_checkpoint, save_checkpoint
from musedraft.vocab import Vocab, VocabConfig


@pytest.fixture(scope="module")
def random_model() -> MusicTransformer:
    torch.manual_seed(0)
    return MusicTransformer(ModelConfig(vocab_size=402, context=96, n_layer=3, n_head=4, d_model=64)).eval()


def _incremental_logits(model: MusicTransformer, ids: torch.Tensor, chunks: list[int]) -> torch.Tensor:
    """Logits for every position, fed through a KV cache in chunks of the given sizes."""
    cache = model.new_cache(ids.size(0))
    out, at = [], 0
    for n in chunks:
        out.append(model(ids[:, at:at + n], cache))
        at += n
        assert cache.length == at
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("which", ["tiny_checkpoint", "random_init"])
def test_cached_equals_uncached(which, request, random_model):
    """Prefill, then one token at a time, then a chunk: every logit matches the full forward pass."""
    if which == "tiny_checkpoint":
        model, _ = load_checkpoint(request.getfixturevalue("tiny_checkpoint"))
    else:
        model = random_model
    T = model.cfg.context
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, model.cfg.vocab_size, (2, T), generator=g)
    with torch.no_grad():
        full = model(ids)  # (B, T, V)
        chunks = [T // 4] + [1] * (T // 2) + [7, T - T // 4 - T // 2 - 7]
        cached = _incremental_logits(model, ids, chunks)
    assert cached.shape == full.shape
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)


def test_cache_really_holds_the_past(random_model):
    """Feeding the last token alone with an empty cache must differ: the cache is not a no-op."""
    ids = torch.randint(0, 402, (1, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = random_model(ids)[0, -1]
        cache = random_model.new_cache(1)
        random_model(ids[:, :-1], cache)
        with_past = random_model(ids[:, -1:], cache)[0, -1]
        fresh = random_model.new_cache(1)
        fresh.length = 19  # same position, but nothing cached
        without_past = random_model(ids[:, -1:], fresh)[0, -1]
    torch.testing.assert_close(with_past, full, atol=1e-4, rtol=1e-4)
    assert (without_past - full).abs().max() > 1e-2


def test_sequences_beyond_the_context_raise_model_error(random_model):
    T = random_model.cfg.context
    with pytest.raises(ModelError, match="exceeds the model context"):
        random_model(torch.zeros(1, T + 1, dtype=torch.long))
    cache = random_model.new_cache(1)
    with torch.no_grad():
        random_model(torch.zeros(1, T - 1, dtype=torch.long), cache)
        random_model(torch.zeros(1, 1, dtype=torch.long), cache)
        with pytest.raises(ModelError, match="exceeds the model context"):
            random_model(torch.zeros(1, 1, dtype=torch.long), cache)


def test_kv_cache_shape_follows_the_config(random_model):
    cache = random_model.new_cache(3)
    c = random_model.cfg
    assert isinstance(cache, KVCache)
    assert cache.k.shape == (c.n_layer, 3, c.n_head, c.context, c.d_model // c.n_head) == cache.v.shape


def test_weights_are_tied(random_model):
    assert random_model.head.weight.data_ptr() == random_model.tok_emb.weight.data_ptr()


# --- checkpoints ------------------------------------------------------------------------------------


def test_checkpoint_save_load_round_trip(tmp_path, random_model):
    vocab = Vocab()
    save_checkpoint(random_model, tmp_path / "ck", vocab, extra={"id": "test-model", "train": {"step": 3}})
    loaded, meta = load_checkpoint(tmp_path / "ck")
    assert meta["id"] == "test-model" and meta["train"] == {"step": 3}
    assert loaded.cfg == random_model.cfg and not loaded.training
    want, got = random_model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(want[name], got[name]), name
    assert loaded.head.weight.data_ptr() == loaded.tok_emb.weight.data_ptr()  # still tied after loading
    assert Vocab.load(tmp_path / "ck").tokens == vocab.tokens
    ids = torch.arange(30)[None]
    with torch.no_grad():
        assert torch.equal(loaded(ids), random_model(ids))


def test_loading_never_unpickles(tmp_path, random_model, tiny_checkpoint, monkeypatch):
    """Checkpoints are safetensors + JSON only; loading works with torch.load and pickle disabled."""
    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint load unpickled something")

    save_checkpoint(random_model, tmp_path / "ck", Vocab())
    for folder in (tmp_path / "ck", tiny_checkpoint, tiny_checkpoint.parent / "last"):
        suffixes = {p.suffix for p in folder.iterdir()}
        assert suffixes <= {".safetensors", ".json"}, folder
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    load_checkpoint(tmp_path / "ck")
    load_checkpoint(tiny_checkpoint)


@pytest.fixture()
def checkpoint(tmp_path, random_model):
    folder = tmp_path / "ck"
    save_checkpoint(random_model, folder, Vocab())
    return folder


@pytest.mark.parametrize("checksum", [True, False])
@pytest.mark.parametrize("damage", ["truncated", "garbage header", "empty", "zeroed"])
def test_corrupted_weights_raise_model_error(checkpoint, damage, checksum):
    """Caught by the checksum in config.json, and without one (older checkpoints) by safetensors."""
    if not checksum:
        meta = json.loads((checkpoint / "config.json").read_text())
        del meta["sha256"]
        (checkpoint / "config.json").write_text(json.dumps(meta))
    path = checkpoint / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes({
        "truncated": data[: len(data) // 2],
        "garbage header": b"\xff" * 8 + data[8:],
        "empty": b"",
        "zeroed": bytes(len(data)),
    }[damage])
    with pytest.raises(ModelError, match="model.safetensors"):
        load_checkpoint(checkpoint)


def test_a_flipped_bit_in_a_weight_is_caught_by_the_checksum(checkpoint):
    path = checkpoint / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10  # inside the last tensor: still a valid file, one weight changed
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum"):
        load_checkpoint(checkpoint)


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_missing_file_raises_model_error(checkpoint, missing):
    (checkpoint / missing).unlink()
    with pytest.raises(ModelError, match=missing):
        load_checkpoint(checkpoint)


@pytest.mark.parametrize("config", ["{not json", '{"no_model": {}}', '{"model": {"vocab_size": 402, "wings": 2}}'])
def test_unreadable_config_raises_model_error(checkpoint, config):
    (checkpoint / "config.json").write_text(config)
    with pytest.raises(ModelError, match="config.json"):
        load_checkpoint(checkpoint)


def test_config_that_does_not_match_the_weights_raises_model_error(checkpoint):
    meta = json.loads((checkpoint / "config.json").read_text())
    meta["model"]["vocab_size"] = 400
    (checkpoint / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="does not match"):
        load_checkpoint(checkpoint)


def test_vocabulary_size_mismatch_raises_model_error(tmp_path):
    """Weights for one vocabulary beside the files of another: the Composer refuses the folder."""
    small = Vocab(VocabConfig(max_tracks=4))
    model = MusicTransformer(ModelConfig(vocab_size=Vocab().size, context=32, n_layer=1, n_head=1, d_model=16))
    save_checkpoint(model, tmp_path / "ck", small)
    with pytest.raises(ModelError, match="mixed up"):
        Composer(tmp_path / "ck")


@pytest.mark.parametrize("damage", ["missing", "corrupted"])
def test_missing_or_corrupted_vocabulary_raises_model_error(checkpoint, damage):
    """A checkpoint folder without a readable vocab.json is a broken checkpoint, not a crash."""
    if damage == "missing":
        (checkpoint / "vocab.json").unlink()
    else:
        (checkpoint / "vocab.json").write_text("{")
    with pytest.raises(ModelError):
        Composer(checkpoint)


def test_checkpoint_folder_copies_stay_loadable(tmp_path, tiny_checkpoint):
    """The folder is self-contained: copied anywhere, it loads with its vocabulary."""
    shutil.copytree(tiny_checkpoint, tmp_path / "moved")
    composer = Composer(tmp_path / "moved")
    assert composer.tokenizer.vocab.size == composer.model.cfg.vocab_size

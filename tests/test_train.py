"""Training and evaluation: resume continues the same run, DDP keeps replicas identical, training
windows have the documented layout, and the held-out comparison is like for like."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from musedraft.dataset import Shards, WindowSampler
from musedraft.errors import ModelError
from musedraft.heldout import heldout_table, model_nll
from musedraft.model import ModelConfig, MusicTransformer, load_checkpoint
from musedraft.ngram import KneserNey, NgramConfig
from musedraft.tokenizer import Tokenizer
from musedraft.train import TrainConfig, _lr_at, plot_loss_curve, train

SMALL = dict(context=64, n_layer=1, n_head=2, d_model=32)


def small_config(tiny_corpus: Path, out: Path, **kw) -> TrainConfig:
    base = dict(shards=tiny_corpus / "tokens", out=out, steps=10, batch_size=4, eval_every=5, eval_batches=1,
                warmup=3, lr=3e-3, device="cpu", progress=False, model=ModelConfig(**SMALL))
    return TrainConfig(**(base | kw))


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_resume_continues_the_run(tiny_corpus, tmp_path):
    """Train 10 steps, resume to 20: one log with both halves, the schedule and the optimizer state
    carried on, and the weights picked up where they were (not a fresh model)."""
    out = tmp_path / "run"
    first = train(small_config(tiny_corpus, out))
    assert first["steps"] == 10
    saved, _ = load_checkpoint(out / "last")
    second = train(small_config(tiny_corpus, out, steps=20, eval_every=1, resume=True))
    assert second["steps"] == 20
    log = read_log(out)
    assert [e["step"] for e in log] == [5, 10, *range(11, 21)]
    cfg = small_config(tiny_corpus, out, steps=20)
    for entry in log[2:]:
        assert entry["lr"] == pytest.approx(_lr_at(entry["step"] - 1, cfg))
    assert json.loads((out / "last" / "trainer.json").read_text())["step"] == 20
    adam_steps = {float(v) for k, v in load_file(str(out / "last" / "optimizer.safetensors")).items()
                  if k.endswith(".step")}
    assert adam_steps == {20.0}
    # One step after resuming, validation loss is where step 10 left it, far below a fresh model's.
    assert abs(log[2]["valid_loss"] - log[1]["valid_loss"]) < 0.3  # a fresh model would be ~0.8 higher
    assert log[1]["valid_loss"] < math.log(saved.cfg.vocab_size) - 0.3
    resumed, _ = load_checkpoint(out / "last")
    moved = max((a - b).abs().max().item() for a, b in zip(resumed.parameters(), saved.parameters(), strict=True))
    assert 0 < moved < 0.05  # 10 Adam steps at lr <= 3e-3 from the saved weights, not a re-init
    png = out / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_fine_tuning_starts_from_the_checkpoint_weights(tiny_corpus, tmp_path):
    """--init takes the checkpoint's architecture (whatever the model flags say) and weights, with a
    fresh optimiser and schedule: the first validation is where the checkpoint stood, not a fresh model's."""
    base = tmp_path / "base"
    train(small_config(tiny_corpus, base, steps=20, eval_every=20))
    before = read_log(base)[-1]["valid_loss"]
    tuned = tmp_path / "tuned"
    other = ModelConfig(context=64, n_layer=2, n_head=4, d_model=64)
    result = train(small_config(tiny_corpus, tuned, steps=2, eval_every=1, lr=1e-5, warmup=1, model=other, init=base / "last"))
    start, _ = load_checkpoint(base / "last")
    assert result["params"] == start.num_params()
    assert abs(read_log(tuned)[0]["valid_loss"] - before) < 0.05
    assert read_log(tuned)[0]["lr"] == pytest.approx(1e-5)  # a schedule of its own, from step 0


def test_fine_tuning_refuses_a_checkpoint_of_another_vocabulary(tiny_corpus, tmp_path):
    base = tmp_path / "base"
    train(small_config(tiny_corpus, base, steps=1, eval_every=1))
    vocab = json.loads((base / "last" / "vocab.json").read_text())
    vocab["beat_res"] = 4  # a coarser grid: another vocabulary
    (base / "last" / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(ModelError, match="another vocabulary"):
        train(small_config(tiny_corpus, tmp_path / "tuned", init=base / "last"))


def test_loss_curve_of_an_empty_log_writes_nothing(tmp_path):
    (tmp_path / "log.jsonl").write_text("")
    plot_loss_curve(tmp_path / "log.jsonl", tmp_path / "loss.png")
    assert not (tmp_path / "loss.png").exists()


DDP_ENTRY = textwrap.dedent("""
    import hashlib, os, sys
    import musedraft.train as T

    made = []

    class Recorded(T.MusicTransformer):  # keep a handle on each rank's model to compare replicas
        def __init__(self, cfg):
            super().__init__(cfg)
            made.append(self)

    T.MusicTransformer = Recorded
    from musedraft.cli import main

    main(sys.argv[1:])
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in made[0].parameters())).hexdigest()
    out = sys.argv[sys.argv.index("--out") + 1]
    with open(os.path.join(out, "rank%s.sha256" % os.environ["RANK"]), "w") as fh:
        fh.write(digest)
""")


def test_ddp_two_cpu_processes_keep_identical_replicas(tiny_corpus, tmp_path):
    """torchrun, 2 processes, gloo: ranks draw different windows (and start from different seeds), so
    only DDP's broadcast and gradient all-reduce can leave them with the same weights."""
    entry = tmp_path / "ddp_train.py"
    entry.write_text(DDP_ENTRY)
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", str(entry), "train",
           "--shards", str(tiny_corpus / "tokens"), "--out", str(out), "--steps", "4", "--batch-size", "4",
           "--context", "64", "--layers", "1", "--heads", "2", "--dim", "32", "--device", "cpu"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    digests = [(out / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    log = read_log(out)
    assert [e["step"] for e in log] == [4]
    model, _ = load_checkpoint(out / "last")
    saved = b"".join(p.detach().numpy().tobytes() for p in model.parameters())
    assert hashlib.sha256(saved).hexdigest() == digests[0]  # rank 0 saved the shared weights
    assert (out / "loss.png").is_file()


# --- training windows ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer()


def _find(haystack: np.ndarray, needle: np.ndarray) -> bool:
    n = len(needle)
    return any(np.array_equal(haystack[i:i + n], needle) for i in range(len(haystack) - n + 1))


def segments(window: np.ndarray, tok: Tokenizer) -> list[np.ndarray]:
    """The pieces packed into one window: each starts at its BOS; PAD only after the last."""
    real = window[window != tok.vocab["PAD_None"]]
    assert np.all(window[len(real):] == tok.vocab["PAD_None"]), "padding only after the end"
    starts = np.flatnonzero(real == tok.bos)
    assert starts[0] == 0
    return np.split(real, starts[1:])


def header_length(seg: np.ndarray, tok: Tokenizer) -> int:
    """Check BOS Style Mode Track+ and return its length."""
    types = [tok.vocab.type_of(int(t)) for t in seg]
    assert types[:3] == ["BOS", "Style", "Mode"]
    n = 3
    while n < len(types) and types[n] == "Track":
        n += 1
    assert n > 3, "at least one track register"
    return n


@pytest.mark.parametrize("context", [256, 512])
def test_fim_windows_have_the_prefix_suffix_middle_layout_and_end_with_eos(tiny_corpus, tok, context):
    """Every FIM piece in a (packed) window: header FIM_PRE prefix FIM_SUF suffix FIM_MID middle EOS,
    each part whole bars cut from one piece, the middle whole (EOS present)."""
    shards = Shards(tiny_corpus / "tokens", "train")
    sampler = WindowSampler(shards, tok, context, fim_rate=1.0)
    v = tok.vocab
    pre, suf, mid = v["FIM_PRE"], v["FIM_SUF"], v["FIM_MID"]
    streams = [shards.stream(i) for i in range(len(shards))]
    rng = np.random.default_rng(0)
    fim, cut = 0, []
    for _ in range(60):
        w = sampler.sample(rng)
        assert len(w) == context + 1
        for seg in segments(w, tok):
            h = header_length(seg, tok)
            if pre not in seg:
                continue
            fim += 1
            assert seg[h] == pre
            if mid not in seg or seg[-1] != tok.eos:
                cut.append(len(seg))
                continue
            i_suf, i_mid = (int(np.flatnonzero(seg == t)[0]) for t in (suf, mid))
            prefix, suffix, middle = seg[h + 1:i_suf], seg[i_suf + 1:i_mid], seg[i_mid + 1:-1]
            for part in (prefix, suffix, middle):
                assert len(part) and part[0] == tok.bar, "each part is whole bars"
            assert any(_find(s, np.concatenate([prefix, middle, suffix])) for s in streams)
    assert fim > 30  # windows whose three bars do not fit fall back to left-to-right
    assert not cut, f"{len(cut)} of {fim} FIM pieces were cut off before their EOS (lengths {cut[:5]}...)"


def test_left_to_right_windows_are_whole_headers_then_bars(tiny_corpus, tok):
    shards = Shards(tiny_corpus / "tokens", "train")
    sampler = WindowSampler(shards, tok, 128, fim_rate=0.0)
    rng = np.random.default_rng(1)
    packed = 0
    for w in sampler.batch(rng, 64):
        assert len(w) == 129
        pieces = segments(w, tok)
        packed += len(pieces) > 1
        for seg in pieces:
            h = header_length(seg, tok)
            if h < len(seg):
                assert seg[h] == tok.bar, "music starts on a bar line"
            assert not np.isin(seg, [tok.vocab[t] for t in ("FIM_PRE", "FIM_SUF", "FIM_MID")]).any()
        assert len(w) - np.count_nonzero(w == tok.vocab["PAD_None"]) > 96  # at most 32 ids of padding
    assert packed > 0


# --- held-out evaluation -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_sequences(tiny_corpus):
    shards = Shards(tiny_corpus / "tokens", "train")
    return [np.concatenate([shards.header(i), shards.stream(i)]) for i in range(len(shards))]


@pytest.mark.parametrize("order", [2, 3, 5])
def test_kneser_ney_probabilities_sum_to_one(train_sequences, tok, order):
    lm = KneserNey(tok.vocab.size, NgramConfig(order=order)).fit(train_sequences)
    real = train_sequences[3]
    contexts = [real[:40], real[:7], np.array([tok.bos]), np.array([400, 17, 300, 5, 5, 9])]  # seen ... unseen
    for ctx in contexts:
        nll = [lm.nll([np.append(ctx, w)], score_from=[len(ctx)])[0] for w in range(tok.vocab.size)]
        probs = np.exp(-np.array(nll))
        assert probs.min() > 0
        assert probs.sum() == pytest.approx(1.0, abs=1e-9)
    # and the model has learnt something: the real next token beats uniform
    assert lm.nll([real[:41]], score_from=[40])[0] < math.log(tok.vocab.size)


def test_model_nll_scores_every_stream_token_once(tiny_corpus, tok):
    """A 48-token context slides over each piece many times; each stream token is still scored once."""
    test = Shards(tiny_corpus / "tokens", "test")
    torch.manual_seed(0)
    model = MusicTransformer(ModelConfig(vocab_size=tok.vocab.size, context=48, n_layer=1, n_head=1, d_model=16))
    _, count = model_nll(model, test)
    assert count == sum(len(test.stream(i)) for i in range(len(test)))


def test_model_nll_matches_a_single_full_window(tiny_corpus, tok):
    """When a piece fits the context, the windowed score equals one plain forward pass."""
    test = Shards(tiny_corpus / "tokens", "test")
    header, stream = test.header(0), test.stream(0)
    torch.manual_seed(0)
    model = MusicTransformer(ModelConfig(vocab_size=tok.vocab.size, context=len(header) + len(stream),
                                         n_layer=1, n_head=1, d_model=16)).eval()
    total, count = model_nll(model, test)
    x = torch.from_numpy(np.concatenate([header, stream]))[None]
    with torch.no_grad():
        logp = torch.log_softmax(model(x[:, :-1])[0], -1)
    want = -logp[len(header) - 1:].gather(1, x[0, len(header):, None]).sum().item()
    assert count == len(stream)
    assert total == pytest.approx(want, rel=1e-5)


def test_heldout_table_scores_the_same_tokens_for_model_and_ngram(tiny_checkpoint, tiny_corpus):
    table = heldout_table(tiny_checkpoint, tiny_corpus / "tokens")
    test = Shards(tiny_corpus / "tokens", "test")
    assert table["test_tokens"] == sum(len(test.stream(i)) for i in range(len(test)))
    (model_name, model_row), (ngram_name, ngram_row) = table["rows"].items()
    assert model_name == "model" and ngram_name.startswith("kneser-ney")
    for row in (model_row, ngram_row):
        assert 0 < row["nats_per_token"] < math.log(402) + 1
        assert row["nats_per_note"] == pytest.approx(row["nats_per_token"] * table["test_tokens"] / table["test_notes"])
    assert math.isfinite(table["model_gain_per_note"])

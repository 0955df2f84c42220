"""Shared fixtures: one-line score builders, a few real chorales, and a tiny model trained here.

The tiny model is trained inside the test session (about half a minute on 2 cores) on 24 Bach
chorales, so every test of the generation path runs a real trained transformer end to end.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track


def make_score(*tracks: list[tuple[int, float, float]], tpq: int = 480, time_signature=(4, 4), tempo=100.0,
               programs: list[int] | None = None, names: list[str] | None = None) -> Score:
    """Score from tracks of (pitch, onset in quarters, duration in quarters)."""
    score = Score(tpq)
    score.time_signatures.append(TimeSignature(0, *time_signature))
    score.tempos.append(Tempo(0, tempo))
    for i, notes in enumerate(tracks):
        track = Track(name=(names or [f"Part {k + 1}" for k in range(len(tracks))])[i],
                      program=(programs or [0] * len(tracks))[i])
        for pitch, onset, dur in notes:
            track.notes.append(Note(int(onset * tpq), int(dur * tpq), pitch, 80))
        score.tracks.append(track)
    return score


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """24 real Bach chorales converted and tokenized (cache folder with corpus/ and tokens/)."""
    from musedraft.corpus import CorpusConfig, build_corpus  # noqa: PLC0415  (heavy: only when the fixture is used)
    from musedraft.dataset import ShardConfig, build_shards  # noqa: PLC0415  (heavy: only when the fixture is used)

    cache = tmp_path_factory.mktemp("cache")
    build_corpus(CorpusConfig(cache=cache / "corpus", collections=("bach",), limit=44, workers=1), progress=False)
    build_shards(ShardConfig(corpus=cache / "corpus", out=cache / "tokens"), progress=False)
    return cache


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_corpus) -> Path:
    """A 2-layer model trained for a few hundred windows: small, but really trained."""
    from musedraft.model import ModelConfig  # noqa: PLC0415  (heavy: only when the fixture is used)
    from musedraft.train import TrainConfig, train  # noqa: PLC0415  (heavy: only when the fixture is used)

    out = tiny_corpus / "run"
    train(TrainConfig(shards=tiny_corpus / "tokens", out=out, steps=60, batch_size=8, eval_every=30, eval_batches=2,
                      warmup=10, model=ModelConfig(context=256, n_layer=2, n_head=2, d_model=64), progress=False))
    return out / "best"


@pytest.fixture(scope="session")
def tiny_composer(tiny_checkpoint):
    from musedraft.composer import Composer  # noqa: PLC0415  (heavy: only when the fixture is used)

    return Composer(tiny_checkpoint)

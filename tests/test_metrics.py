"""Metrics: each vectorised metric equals a plain per-note reference, holds its bounds on random
scores, ignores transposition where it should, and is NaN where it is undefined."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from symusic import Note, Score, TimeSignature, Track
from tests.conftest import make_score

from musedraft import evaluate, metrics
from musedraft.corpus import load_table
from musedraft.errors import CorpusError, OutputExistsError
from musedraft.evaluate import (
    evaluate_style,
    evaluation_markdown,
    evaluation_table,
    relative_difference,
    write_evaluation,
)
from musedraft.habits import StyleHabits
from musedraft.instruments import get_instrument
from musedraft.metrics import METRICS
from musedraft.score import first_bars, load_midi, ticks_per_bar

# (pitch, onset in quarters, duration in quarters) on an eighth-note grid, up to 3 parts
notes_st = st.lists(st.tuples(st.integers(36, 90), st.integers(0, 63).map(lambda x: x / 2),
                              st.integers(1, 8).map(lambda x: x / 2)), min_size=1, max_size=40)
score_st = st.lists(notes_st, min_size=1, max_size=3).map(lambda tracks: make_score(*tracks))


def _rows(score: Score) -> list[tuple[int, int, int]]:
    """(start, end, pitch) of every pitched note, the slow way."""
    return [(n.time, n.time + n.duration, n.pitch) for t in score.tracks if not t.is_drum for n in t.notes]


def ref_polyphony(score: Score) -> float:
    rows = _rows(score)
    onsets = sorted({s for s, _, _ in rows})
    return sum(sum(1 for s, e, _ in rows if s <= t < e) for t in onsets) / len(onsets)


def ref_empty_beat_rate(score: Score) -> float:
    rows, tpq = _rows(score), score.ticks_per_quarter
    first, beats = min(s for s, _, _ in rows) // tpq, math.ceil(max(e for _, e, _ in rows) / tpq)
    empty = [not any(s < (b + 1) * tpq and e > b * tpq for s, e, _ in rows) for b in range(first, beats)]
    return sum(empty) / (beats - first)


def ref_groove(score: Score) -> float:
    rows, tpq = _rows(score), score.ticks_per_quarter
    bar = tpq * 4  # the hypothesis scores are 4/4
    n_bars = (max(e for _, e, _ in rows) - 1) // bar + 1
    patterns = [set() for _ in range(n_bars)]
    for s, _, _ in rows:
        patterns[s // bar].add(round((s % bar) / (tpq / 4)))
    dists = [len(a ^ b) / 16 for a, b in zip(patterns, patterns[1:], strict=False)]
    return 1 - sum(dists) / len(dists)


def ref_entropy(score: Score) -> float:
    pcs = [p % 12 for _, _, p in _rows(score)]
    probs = [pcs.count(c) / len(pcs) for c in set(pcs)]
    return -sum(p * math.log2(p) for p in probs)


@settings(max_examples=60, deadline=None)
@given(score_st)
def test_vectorised_metrics_equal_plain_references(score):
    assert metrics.polyphony(score) == pytest.approx(ref_polyphony(score))
    assert metrics.empty_beat_rate(score) == pytest.approx(ref_empty_beat_rate(score))
    assert metrics.pitch_class_entropy(score) == pytest.approx(ref_entropy(score))
    groove = metrics.groove_consistency(score)
    if score.end() > 4 * score.ticks_per_quarter:
        assert groove == pytest.approx(ref_groove(score))
    else:
        assert math.isnan(groove)


@settings(max_examples=60, deadline=None)
@given(score_st)
def test_metrics_stay_in_their_bounds(score):
    values = metrics.compute_all(score)
    assert set(values) == set(METRICS)
    assert 0.0 <= values["pitch_class_entropy"] <= math.log2(12) + 1e-9
    assert 7 / 12 - 1e-9 <= values["scale_consistency"] <= 1.0  # any 12 classes: a scale holds 7
    assert 0.0 <= values["empty_beat_rate"] < 1.0  # the beat of the first note is never empty
    assert values["polyphony"] >= 1.0
    assert values["pitch_range"] >= 0.0 and values["notes_per_bar"] > 0.0
    assert math.isnan(values["groove_consistency"]) or 0.0 <= values["groove_consistency"] <= 1.0


@settings(max_examples=40, deadline=None)
@given(score_st, st.integers(-12, 12))
def test_pitch_metrics_ignore_transposition(score, semitones):
    shifted = score.shift_pitch(semitones)
    for name in ("pitch_class_entropy", "scale_consistency", "pitch_range", "polyphony", "groove_consistency"):
        a, b = METRICS[name](score), METRICS[name](shifted)
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b), name


def test_every_metric_is_nan_without_pitched_notes():
    drums = Score(480)
    track = Track(is_drum=True)
    track.notes.append(Note(0, 480, 36, 90))
    drums.tracks.append(track)
    for empty in (Score(480), drums):
        assert all(math.isnan(v) for v in metrics.compute_all(empty).values())


def test_drum_tracks_are_ignored():
    score = make_score([(60, 0, 1), (64, 1, 1)])
    with_drums = score.copy()
    drums = Track(is_drum=True)
    for q in range(8):
        drums.notes.append(Note(q * 480, 240, 36 + q, 90))
    with_drums.tracks.append(drums)
    assert metrics.compute_all(with_drums) == pytest.approx(metrics.compute_all(score), nan_ok=True)


def test_groove_consistency_uses_the_bar_length_of_the_metre():
    # quarter + half, four times: the same pattern every bar in 3/4, shifting bar to bar in 4/4
    rhythm = [(60 + k % 2, 3 * (k // 2) + (k % 2), 1 + k % 2) for k in range(8)]
    in_three = make_score(rhythm, time_signature=(3, 4))
    in_four = make_score(rhythm, time_signature=(4, 4))
    assert metrics.groove_consistency(in_three) == 1.0
    assert metrics.groove_consistency(in_four) < 1.0


def test_known_values_of_a_four_part_cadence():
    # I - V - I in C, four parts, whole bars: 12 notes, pitch classes C E G B D
    score = make_score([(72, 0, 4), (71, 4, 4), (72, 8, 4)], [(67, 0, 4), (67, 4, 4), (67, 8, 4)],
                       [(64, 0, 4), (62, 4, 4), (64, 8, 4)], [(48, 0, 4), (43, 4, 4), (48, 8, 4)])
    assert metrics.scale_consistency(score) == 1.0
    assert metrics.polyphony(score) == 4.0
    assert metrics.groove_consistency(score) == 1.0
    assert metrics.empty_beat_rate(score) == 0.0
    assert metrics.pitch_range(score) == 72 - 43
    assert metrics.notes_per_bar(score) == 4.0
    counts = np.array([4, 4, 2, 1, 1]) / 12  # C, G, E, B, D
    assert metrics.pitch_class_entropy(score) == pytest.approx(-(counts * np.log2(counts)).sum())


def test_all_metrics_of_a_long_quartet_take_milliseconds():
    rng = np.random.default_rng(0)
    score = Score(480)
    score.time_signatures.append(TimeSignature(0, 4, 4))
    for _ in range(4):  # 4 parts x 256 bars of eighths: 8,192 notes
        track = Track()
        for k in range(256 * 8):
            track.notes.append(Note(k * 240, 240, int(rng.integers(48, 84)), 80))
        score.tracks.append(track)
    metrics.compute_all(score)  # warm up
    t0 = time.perf_counter()
    metrics.compute_all(score)
    assert time.perf_counter() - t0 < 0.5


# --- evaluate: drafts against the held-out pieces of a style ----------------------------------

@pytest.fixture(scope="module")
def chorale_eval(tiny_corpus, tiny_composer):
    return evaluate_style("chorale", 2, tiny_composer, tiny_corpus / "corpus", seed=3)


def test_evaluate_style_measures_the_held_out_pieces_of_the_style(chorale_eval, tiny_corpus):
    held_out = sorted((r for r in load_table(tiny_corpus / "corpus")
                       if r["split"] in ("valid", "test") and r["style"] == "chorale"), key=lambda r: r["id"])
    assert chorale_eval["n_real"] == len(held_out) == 2  # the tiny corpus holds one valid and one test chorale
    rng = np.random.default_rng(3)  # the evaluation's own draws: one length per real piece, in order
    values = {name: [] for name in METRICS}
    for row in held_out:
        bars = int(rng.integers(16, 33))
        real = load_midi(tiny_corpus / "corpus" / row["midi"])
        end = bars * ticks_per_bar(real)
        cut = real.clip(0, end)
        for track in cut.tracks:
            for n in track.notes:
                n.duration = min(n.duration, end - n.time)
        for name, fn in METRICS.items():
            values[name].append(fn(cut))
    assert 32 <= chorale_eval["bars"]["real"] <= 64
    for name in METRICS:
        assert chorale_eval["metrics"][name]["real"] == pytest.approx(np.nanmean(values[name]), nan_ok=True), name


def test_evaluate_style_measures_training_pieces_the_same_way_beside_them(chorale_eval, tiny_corpus):
    train = sorted((r for r in load_table(tiny_corpus / "corpus") if r["split"] == "train" and r["style"] == "chorale"),
                   key=lambda r: r["id"])
    assert chorale_eval["n_train"] == len(train) > 10
    rng = np.random.default_rng(4)  # seed + 1: its own draws, so the held-out pieces and drafts are unchanged
    ranges = [METRICS["pitch_range"](first_bars(load_midi(tiny_corpus / "corpus" / r["midi"]), int(rng.integers(16, 33))))
              for r in train]
    assert chorale_eval["metrics"]["pitch_range"]["train"] == pytest.approx(np.mean(ranges))


def test_drafts_mirror_the_parts_of_the_real_piece(tiny_corpus):
    row = next(r for r in load_table(tiny_corpus / "corpus")
               if [(p["name"], p["program"]) for p in r["parts"]] == [("Soprano", 52), ("Alto", 52), ("Tenor", 52), ("Bass", 52)])
    assert evaluate._instruments(row) == ["soprano", "alto", "tenor", "bass voice"]  # the singers, not four choirs
    assert [get_instrument(p).register for p in evaluate._instruments(row)] == ["soprano", "alto", "tenor", "bass"]
    assert evaluate._instruments({"parts": [{"name": "Violin", "program": 40}] * 12}) == ["violin"] * 8
    staves = [{"name": "Piano", "program": 0}, {"name": "Piano", "program": 0}]  # music21: a part per staff
    assert evaluate._instruments({"parts": [{"name": "Voice", "program": 52}, *staves]}) == ["choir", "piano"]
    sung = [{"name": "Triplum", "program": 52, "median_pitch": 67.0}, {"name": "Voice", "program": 52, "median_pitch": 53.0}]
    assert evaluate._instruments({"parts": sung}) == ["soprano", "tenor"]  # a voice by where its notes centre
    fifth = [{"name": "Canto", "program": 52, "median_pitch": 76.0}, {"name": "Quinto", "program": 52, "median_pitch": 69.0}]
    assert evaluate._instruments({"parts": fifth}) == ["soprano", "soprano"]  # Monteverdi's Quinto: here a second soprano
    low_fifth = [{"name": "Quinto", "program": 52, "median_pitch": 59.0}]  # madrigal 4.19's: nearer an alto's middle (61)
    madrigal = StyleHabits(ambitus=16, pieces=45, lines=225, centres={"alto": 64.0, "tenor": 59.0})
    assert evaluate._instruments({"parts": low_fifth}) == ["alto"]
    assert evaluate._instruments({"parts": low_fifth}, madrigal) == ["tenor"]  # a madrigal's tenor centres there


def test_evaluate_style_compares_every_metric(chorale_eval):
    assert chorale_eval["n_drafts"] == 2 and 32 <= chorale_eval["bars"]["generated"] <= 64
    assert set(chorale_eval["metrics"]) == set(METRICS)
    for m in chorale_eval["metrics"].values():
        assert not math.isnan(m["generated"])
        if not math.isnan(m["relative_difference"]):
            assert m["relative_difference"] == pytest.approx((m["generated"] - m["real"]) / abs(m["real"]))
            assert m["within_target"] == (abs(m["relative_difference"]) <= 0.10)
    harmony = chorale_eval["harmony"]
    if harmony is None:
        assert any("harmony" in n for n in chorale_eval["notes"])
    else:  # repair never adds findings
        assert harmony["generated_after_repair_per_100_bars"] <= harmony["generated_before_repair_per_100_bars"]


def test_evaluate_style_without_held_out_pieces_says_so(tiny_corpus, tiny_composer):
    with pytest.raises(CorpusError, match="no held-out .*'folk'"):
        evaluate_style("folk", 1, tiny_composer, tiny_corpus / "corpus")


_HARMONY = {"real_per_100_bars": 2.0, "generated_before_repair_per_100_bars": 40.0,
            "generated_after_repair_per_100_bars": 5.5}


def _result(style, real, generated, harmony=_HARMONY):
    metrics_ = {}
    for name, r, g in zip(("polyphony", "empty_beat_rate"), real, generated, strict=True):
        rel = relative_difference(g, r)
        metrics_[name] = {"real": r, "generated": g, "relative_difference": rel, "noise": 0.04 if r else math.nan,
                          "within_target": abs(rel) <= 0.1 if not math.isnan(rel) else abs(g - r) < 0.01}
    return {"style": style, "n_drafts": 3, "n_real": 2, "seed": 0, "model_id": "m", "bars": {"generated": 60,
            "real": 50}, "metrics": metrics_, "harmony": harmony, "notes": [], "seconds": 1.0}


def test_evaluation_table_reports_differences_and_the_target():
    result = _result("chorale", (4.0, 0.0), (3.8, 0.2))
    result["metrics"]["polyphony"]["train"] = 3.9
    table = evaluation_table([result])
    assert "| chorale | polyphony | 4.000 | 3.800 | -5.0% | 4.0% | yes | 3.900 |" in table
    assert "| chorale | empty_beat_rate | 0.000 | 0.200 | +0.200 (abs.) | — | **no** |" in table
    assert "| chorale | 2.0 | 40.0 | 5.5 |" in table
    folk = evaluation_table([_result("folk", (1.0, 0.1), (1.5, 0.1))])
    assert "| folk | polyphony | 1.000 | 1.500 | +50.0% | 4.0% | **no** |" in folk
    doc = evaluation_markdown([_result("chorale", (4.0, 0.0), (3.8, 0.2))])
    assert doc.startswith("# Evaluation") and "**1 of 2** style × metric comparisons" in doc
    sparse = _result("madrigal", (4.0, 0.0), (3.0, 0.0))  # polyphony 25% under the held-out pieces...
    sparse["metrics"]["polyphony"]["train"] = 3.2  # ... but within 10% of the training pieces
    assert ("; 0 of the 1 misses are smaller than two standard errors, and 1 lies within 10% of the training "
            "pieces' mean.") in evaluation_markdown([sparse])


def test_write_evaluation_refuses_to_overwrite_before_any_work(tmp_path):
    out = tmp_path / "evaluation.md"
    out.write_text("kept")
    with pytest.raises(OutputExistsError):  # the missing model and corpus would fail later
        write_evaluation(out, ["chorale"], model="/nonexistent", corpus_cache=tmp_path / "none")
    assert out.read_text() == "kept"


def test_write_evaluation_writes_markdown_and_json(tmp_path, tiny_corpus, tiny_composer, monkeypatch):
    canned = _result("chorale", (4.0, 0.0), (3.8, math.nan))
    monkeypatch.setattr(evaluate, "evaluate_style", lambda style, *a, **k: {**canned, "style": style})
    path = write_evaluation(tmp_path / "docs" / "evaluation.md", None, model=tiny_composer,
                                     corpus_cache=tiny_corpus / "corpus", progress=False)
    assert "| chorale | polyphony |" in path.read_text()  # styles default to those with test pieces
    saved = json.loads((tmp_path / "docs" / "evaluation.json").read_text())
    assert [r["style"] for r in saved] == ["chorale"] and saved[0]["metrics"]["empty_beat_rate"]["generated"] is None


def test_the_summary_says_which_misses_are_within_their_noise():
    result = _result("folk", (1.0, 0.1), (1.12, 0.1))  # polyphony misses by 12%; empty-beat rate is on target
    assert "1 of 2** style × metric comparisons are within the 10% target; 0 of the 1 misses" in evaluation_markdown([result])
    result["metrics"]["polyphony"]["noise"] = 0.2  # the drafts vary more than the miss
    assert "; 1 of the 1 misses are smaller than two standard errors, and 0 lie" in evaluation_markdown([result])


def test_the_summary_gives_real_music_against_the_held_out_pieces():
    result = _result("chorale", (4.0, 0.010), (3.8, 0.005))
    assert "training pieces' means" not in evaluation_markdown([result])  # no train column: no ceiling
    result["metrics"]["polyphony"]["train"] = 4.3  # 7.5% above the held-out pieces: within
    result["metrics"]["empty_beat_rate"]["train"] = 0.02  # double: not within
    assert "within 10% of the held-out means for **1 of 2**" in evaluation_markdown([result])
    result["metrics"]["polyphony"]["train"] = 4.5  # 12.5% above
    assert "for **0 of 2**" in evaluation_markdown([result])

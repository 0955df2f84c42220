"""Vocabulary layout and the REMI grammar: the mask the sampler uses is exactly the rule the decoder
checks, and real corpus music passes both."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest

from musedraft.dataset import SPLITS, Shards
from musedraft.errors import DecodeError
from musedraft.grammar import FOLLOWS
from musedraft.tokenizer import Tokenizer
from musedraft.vocab import FIM_TOKENS, Vocab, VocabConfig


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer()


# --- vocabulary ---------------------------------------------------------------------------------


def test_every_token_type_is_one_contiguous_id_range(tok):
    v = tok.vocab
    kinds = [v.type_of(i) for i in range(v.size)]
    starts = [i for i in range(v.size) if i == 0 or kinds[i] != kinds[i - 1]]
    assert len(starts) == len(set(kinds)), "a token type is split over two id ranges"
    assert v.layout().count("\n") == len(starts)  # one printed line per range, after the title


def test_ids_and_tokens_are_a_bijection_with_our_controls_after_miditok(tok):
    v = tok.vocab
    assert len(set(v.tokens)) == v.size
    assert all(v[t] == i for i, t in enumerate(v.tokens))
    assert v.tokens[: v.remi_size] == [t for t, _ in sorted(v.remi.vocab.items(), key=lambda kv: kv[1])]
    assert v.tokens[v.remi_size:] == v.controls
    assert v.tokens[-3:] == list(FIM_TOKENS)


def test_vocabulary_follows_its_config(tok):
    v, c = tok.vocab, tok.vocab.config
    assert len(v.ids_of_type("Program")) == c.max_tracks
    assert [int(v.value_of(i)) for i in v.ids_of_type("Pitch")] == list(range(c.pitch_range[0], c.pitch_range[1] + 1))
    assert len(v.ids_of_type("Tempo")) == c.num_tempos
    assert {v.value_of(i) for i in v.ids_of_type("TimeSig")} == {
        f"{n}/{d}" for d, ns in c.time_signatures.items() for n in ns}
    widest = max(n for ns in c.time_signatures.values() for n in ns)
    assert len(v.ids_of_type("Position")) == widest * c.beat_res
    assert v.tokens[v.ids_of_type("Duration")[-1]] == f"Duration_{c.max_duration_beats}.0.4"
    assert {v.value_of(i) for i in v.ids_of_type("Style")} == set(c.styles)


def test_vocab_save_load_round_trip(tmp_path, tok):
    cfg = VocabConfig(max_tracks=4, num_tempos=32)
    small = Vocab(cfg)
    small.save(tmp_path)
    loaded = Vocab.load(tmp_path)
    assert loaded.config == cfg and loaded.tokens == small.tokens
    assert (tmp_path / "tokenizer.json").is_file()
    assert small.size != tok.vocab.size  # the config really changes the vocabulary


def test_python_m_vocab_prints_the_layout(tok):
    out = subprocess.run([sys.executable, "-m", "musedraft.vocab"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == tok.vocab.layout()
    assert f"{tok.vocab.size} tokens" in out and "FIM_MID" in out


# --- grammar against real music ---------------------------------------------------------------------


def corpus_streams(tiny_corpus):
    for split in SPLITS:
        shards = Shards(tiny_corpus / "tokens", split)
        for i in range(len(shards)):
            yield shards.stream(i)


def test_every_corpus_stream_validates(tok, tiny_corpus):
    streams = list(corpus_streams(tiny_corpus))
    assert len(streams) >= 40
    for stream in streams:
        state = tok.grammar.validate(stream)
        assert state.done and stream[-1] == tok.eos
        assert state.bars == len(tok.bar_starts(stream))


def test_grammar_mask_allows_every_token_of_real_music(tok, tiny_corpus):
    """Teacher-forced: the sampler's mask never forbids the token a real chorale has next."""
    g = tok.grammar
    for stream in corpus_streams(tiny_corpus):
        state = g.start()
        for tid in stream:
            assert g.allowed(state)[tid], f"{tok.vocab.tokens[tid]} masked after {state.last}"
            g.advance(state, int(tid))


def test_grammar_mask_is_exactly_what_advance_accepts(tok):
    """Along random walks, every allowed id advances and every forbidden id raises DecodeError.

    So the sampler can never pick a token the decoder then refuses, and never masks a legal one.
    """
    g, rng = tok.grammar, np.random.default_rng(0)
    checked = set()
    for _ in range(6):
        state = g.start()
        for _ in range(150):
            allowed = g.allowed(state)
            for tid in range(tok.vocab.size):
                trial = copy.copy(state)
                if allowed[tid]:
                    g.advance(trial, tid)
                else:
                    with pytest.raises(DecodeError):
                        g.advance(trial, tid)
            checked.add(state.last)
            choices = np.flatnonzero(allowed)
            if not len(choices):
                break
            # favour notes over bar lines so walks reach deep positions in long bars
            weights = np.where(g.kind[choices] == "Bar", 0.02, 1.0)
            g.advance(state, int(rng.choice(choices, p=weights / weights.sum())))
    assert checked >= set(FOLLOWS) - {"EOS"}


def test_random_walks_that_end_decode_to_their_notes(tok):
    g, rng = tok.grammar, np.random.default_rng(1)
    for _ in range(30):
        state, ids = g.start(), []
        while not state.done:
            choices = np.flatnonzero(g.allowed(state))
            if len(ids) > 120:  # close the piece: prefer EOS, else finish the note
                closing = [c for c in choices if g.kind[c] in ("EOS", "Duration", "Bar", "TimeSig")]
                choices = np.array([tok.eos]) if tok.eos in choices else np.array(closing or choices)
            tid = int(rng.choice(choices))
            g.advance(state, tid)
            ids.append(tid)
        score = tok.decode(ids)
        assert sum(len(t.notes) for t in score.tracks) == sum(g.kind[i] == "Pitch" for i in ids)


def test_positions_count_beats_of_the_time_signature(tok):
    """MidiTok counts positions per beat of the metre: 6/8 has 48 (8 per eighth), 2/2 has 16."""
    g, v = tok.grammar, tok.vocab
    assert {ts: int(g.bar_positions[v[f"TimeSig_{ts}"]]) for ts in ("4/4", "3/4", "6/8", "2/2", "12/8")} == {
        "4/4": 32, "3/4": 24, "6/8": 48, "2/2": 16, "12/8": 96}

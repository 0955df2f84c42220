"""Style habits: measured on the train split only, shipped beside the weights, read by the composer."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from tests.conftest import make_score

from musedraft.cli import main
from musedraft.composer import DEFAULT_MODEL, Composer
from musedraft.corpus import STYLES, load_table
from musedraft.errors import ModelError
from musedraft.habits import HabitsConfig, StyleHabits, load_habits, measure_habits, save_habits
from musedraft.score import load_midi


def test_ambitus_is_the_quantile_of_the_train_lines_spans(tiny_corpus):
    """Whole pieces (excerpts longer than any chorale), so the spans can be recomputed here."""
    corpus = tiny_corpus / "corpus"
    cfg = HabitsConfig(excerpt_bars=(10_000, 10_000), quantile=0.5)
    habits = measure_habits(corpus, cfg)
    train = [r for r in load_table(corpus) if r["split"] == "train"]
    scores = [load_midi(corpus / r["midi"]) for r in train]
    spans = [int(np.ptp([n.pitch for n in t.notes])) for s in scores for t in s.tracks if len(t.notes) >= cfg.min_notes]
    beats = [n.duration / s.ticks_per_quarter * s.time_signatures[0].denominator / 4
             for s in scores for t in s.tracks for n in t.notes]
    assert set(habits) == {"chorale"}
    assert habits["chorale"].pieces == len(train) and habits["chorale"].lines == len(spans)
    assert habits["chorale"].ambitus == int(np.quantile(spans, 0.5))
    by_register = [sorted((t for t in s.tracks if len(t.notes) >= cfg.min_notes),
                          key=lambda t: -np.median([n.pitch for n in t.notes])) for s in scores]
    upper = [int(np.ptp([n.pitch for n in t.notes])) for lines in by_register for t in lines[:-1]]
    bass = [int(np.ptp([n.pitch for n in lines[-1].notes])) for lines in by_register]
    assert habits["chorale"].spans == [round(np.quantile(upper, q)) for q in np.arange(0.05, 1, 0.1)]
    assert habits["chorale"].bass_spans == [round(np.quantile(bass, q)) for q in np.arange(0.05, 1, 0.1)]
    assert habits["chorale"].longest_note == pytest.approx(np.quantile(beats, 0.99), abs=0.005)
    for mode in ("major", "minor"):  # each piece moved to C major / A minor by the key music21 found for it
        moved = [n.pitch - r["key_pc"] + (0 if mode == "major" else 9) for r, s in zip(train, scores, strict=True)
                 if r["mode"] == mode for t in s.tracks for n in t.notes]
        assert habits["chorale"].pitch_classes[mode] == pytest.approx(
            np.bincount(np.array(moved) % 12, minlength=12) / len(moved), abs=5e-5)
    silent = heard = 0  # beats, from each piece's first note, in which nothing sounds
    for s in scores:
        tpq, notes = s.ticks_per_quarter, [n for t in s.tracks for n in t.notes]
        beats = range(min(n.start for n in notes) // tpq, -(-max(n.end for n in notes) // tpq))
        silent += sum(not any(n.start < (b + 1) * tpq and n.end > b * tpq for n in notes) for b in beats)
        heard += len(beats)
    assert habits["chorale"].rests == pytest.approx(silent / heard, abs=5e-5)
    played = span = 0  # ticks each line sounds (its notes' union), against the piece's first note to last end
    for s in scores:
        notes = [n for t in s.tracks for n in t.notes]
        start, end = min(n.start for n in notes), max(n.end for n in notes)
        span += len(s.tracks) * (end - start)
        played += sum(len({tick for n in t.notes for tick in range(n.start, n.end)}) for t in s.tracks)
    assert habits["chorale"].sounding == pytest.approx(played / span, abs=5e-5)
    wider = measure_habits(corpus, HabitsConfig(excerpt_bars=(10_000, 10_000), quantile=0.9))
    assert wider["chorale"].ambitus >= habits["chorale"].ambitus


def test_note_length_shares_per_metre_and_over_every_metre(tiny_corpus):
    """Each note's length in quarters falls in a class; a metre with enough of the style's pieces gets
    its own shares, and every style has them pooled over all its metres."""
    corpus = tiny_corpus / "corpus"
    train = [load_midi(corpus / r["midi"]) for r in load_table(corpus) if r["split"] == "train"]
    metres = {}
    for s in train:
        ts = f"{s.time_signatures[0].numerator}/{s.time_signatures[0].denominator}"
        metres.setdefault(ts, []).append(s)
    least = max(len(group) for group in metres.values())  # the commonest metre alone has its own shares

    def shares(scores) -> list[float]:
        bounds = (0.375, 0.75, 1.25, 1.75, 2.5, 3.5)
        classes = [sum(n.duration / s.ticks_per_quarter > b for b in bounds) for s in scores for t in s.tracks for n in t.notes]
        return list(np.bincount(classes, minlength=7) / len(classes))

    lengths = measure_habits(corpus, HabitsConfig(excerpt_bars=(10_000, 10_000), metre_pieces=least))["chorale"].lengths
    assert set(lengths) == {"*"} | {ts for ts, group in metres.items() if len(group) >= least}
    assert lengths["*"] == pytest.approx(shares(train), abs=5e-5)
    for ts in set(lengths) - {"*"}:
        assert lengths[ts] == pytest.approx(shares(metres[ts]), abs=5e-5)
    habit = StyleHabits(ambitus=12, pieces=1, lines=1, lengths=lengths)
    assert habit.guidance("major", "5/4")["lengths"] == tuple(lengths["*"])  # a metre without its own shares


def test_habits_round_trip_and_a_broken_file_says_how_to_fix_it(tmp_path):
    assert load_habits(tmp_path) == {}  # a checkpoint from before habits samples without them
    habits = {"folk": StyleHabits(ambitus=17, pieces=300, lines=300, longest_note=3.0,
                                  pitch_classes={"major": [1 / 12] * 12}, rests=0.01)}
    save_habits(habits, tmp_path)
    assert load_habits(tmp_path) == habits
    (tmp_path / "habits.json").write_text('{"styles": {"folk": {"ambitus": 17, "pieces": 3, "lines": 3}}}')
    assert load_habits(tmp_path)["folk"].longest_note is None  # a file from before note lengths: no limit
    assert load_habits(tmp_path)["folk"].guidance("minor", "4/4")["borrowed"] is None  # ... or pitch classes: every borrowed note costs
    assert load_habits(tmp_path)["folk"].guidance("major", "4/4")["sounding"] is None  # ... or lines' playing time: the entry bias always
    assert load_habits(tmp_path)["folk"].guidance("major", "6/8")["lengths"] is None  # ... or note lengths: no length budget
    (tmp_path / "habits.json").write_text("{not json")
    with pytest.raises(ModelError, match="musedraft corpus habits"):
        load_habits(tmp_path)


def test_cli_writes_habits_into_a_checkpoint_the_composer_then_reads(tiny_corpus, tiny_checkpoint, tmp_path, capsys):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    (folder / "habits.json").unlink(missing_ok=True)
    assert Composer(folder).habits == {}
    assert main(["corpus", "habits", "--cache", str(tiny_corpus), "--out", str(folder)]) == 0
    assert "ambitus chorale" in capsys.readouterr().out
    assert Composer(folder).habits["chorale"].ambitus == json.loads((folder / "habits.json").read_text())[
        "styles"]["chorale"]["ambitus"]
    assert main(["corpus", "habits", "--cache", str(tiny_corpus), "--out", str(tmp_path / "nothing")]) == 1
    assert "not a checkpoint folder" in capsys.readouterr().err


def test_the_shipped_model_has_habits_for_every_style():
    habits = load_habits(DEFAULT_MODEL)
    assert set(habits) == set(STYLES)
    assert all(7 <= h.ambitus <= 36 and h.pieces >= 15 for h in habits.values())  # romantic has 17 training pieces
    assert all(set(h.pitch_classes) == {"major", "minor"} and 0 <= h.rests < 0.1 for h in habits.values())
    assert all(0.5 < h.sounding <= 1 for h in habits.values())
    assert all(sum(share) == pytest.approx(1, abs=1e-3) for h in habits.values() for share in h.lengths.values())
    assert habits["medieval"].lengths["6/8"][3] > 0.15  # dotted quarters: what a medieval 6/8 voice walks in
    assert all(sum(share) == pytest.approx(1, abs=1e-3) for h in habits.values() for share in h.pitch_classes.values())


def test_each_instrument_centres_where_the_style_s_parts_for_it_do(tiny_corpus):
    """The median of each part's median pitch, by the instrument its track is for; an instrument with
    fewer than min_parts parts has none, and a line keeps its middle where the style has no centre."""
    from musedraft.instruments import get_instrument, instrument_of_track, lines_of  # noqa: PLC0415

    corpus = tiny_corpus / "corpus"
    train = [load_midi(corpus / r["midi"]) for r in load_table(corpus) if r["split"] == "train"]
    medians: dict[str, list[float]] = {}
    for s in train:
        for t in s.tracks:
            if len(t.notes) >= 5:
                medians.setdefault(instrument_of_track(t.name, t.program).name, []).append(
                    float(np.median([n.pitch for n in t.notes])))
    assert {"soprano", "alto", "tenor", "bass voice"} <= set(medians)
    habits = measure_habits(corpus, HabitsConfig(excerpt_bars=(10_000, 10_000)))["chorale"]
    assert habits.centres == {name: pytest.approx(np.median(m), abs=0.05) for name, m in medians.items() if len(m) >= 5}
    assert habits.centres["soprano"] > habits.centres["alto"] > habits.centres["tenor"] > habits.centres["bass voice"]
    assert measure_habits(corpus, HabitsConfig(excerpt_bars=(10_000, 10_000), min_parts=len(train) + 1))["chorale"].centres is None

    habit = StyleHabits(ambitus=12, pieces=45, lines=225, centres={"soprano": 72.5, "bass voice": 30.0, "piano": 70.0})
    soprano, bass, violin = (get_instrument(n) for n in ("soprano", "bass voice", "violin"))
    assert habit.centre(soprano) == 72.5
    assert habit.centre(bass) == bass.low  # moved into the line's range
    assert habit.centre(violin) == violin.middle  # no centre in this style
    assert habit.centre(lines_of(get_instrument("piano"))[0]) == lines_of(get_instrument("piano"))[0].middle  # a keyboard's line keeps its own
    assert StyleHabits(ambitus=12, pieces=1, lines=1).centre(soprano) == soprano.middle  # a file from before centres


def test_several_parts_for_one_instrument_centre_by_rank(tmp_path):
    """In pieces with two violins the top part and the lower one are measured apart (here the first
    violin sits 9 semitones above the second); a lone violin counts in the pooled centre only, and a
    rank with fewer than min_parts parts (a third violin in one piece) has no centre of its own."""
    from musedraft.instruments import get_instrument  # noqa: PLC0415

    rows, firsts, seconds, violins = [], [], [], []
    for k in range(7):
        names = {0: ["Violin III", "Violin I", "Violin II", "Viola"], 6: ["Violin", "Viola"]}.get(
            k, ["Violin I", "Violin II", "Viola", "Violoncello"])
        tops = {"Violin I": 74 + k, "Violin II": 65 + k, "Violin III": 60, "Violin": 70, "Viola": 58, "Violoncello": 50}
        programs = [get_instrument({"Viola": "viola", "Violoncello": "cello"}.get(n, "violin")).program for n in names]
        score = make_score(*([(tops[n] - (i % 3), i, 1) for i in range(8)] for n in names), names=names, programs=programs)
        score.dump_midi(tmp_path / f"q{k}.mid")
        rows.append({"id": f"q{k}", "style": "classical", "split": "train", "midi": f"q{k}.mid", "key_pc": 0, "mode": "major"})
        medians = sorted((tops[n] - 1 for n in names if n.startswith("Violin")), reverse=True)
        violins += medians
        if len(medians) > 1:
            firsts.append(medians[0])
            seconds.append(medians[1])
    (tmp_path / "table.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    habits = measure_habits(tmp_path, HabitsConfig(excerpt_bars=(16, 16)))["classical"]
    assert habits.ranks == {"violin": [np.median(firsts), np.median(seconds)]}  # no cello or viola pairs; one third violin
    assert habits.centres["violin"] == np.median(violins)
    assert habits.ranks["violin"][0] - habits.ranks["violin"][1] == 9

    violin = get_instrument("violin")
    habit = StyleHabits(ambitus=12, pieces=45, lines=225, centres={"violin": 71.0}, ranks={"violin": [76.0, 67.0]})
    assert [habit.centre(violin, rank) for rank in (None, 0, 1, 2)] == [71.0, 76.0, 67.0, 71.0]  # a third violin: pooled
    assert StyleHabits(ambitus=12, pieces=1, lines=1, centres={"violin": 71.0}).centre(violin, 1) == 71.0  # a file from before ranks


def test_a_request_s_lines_for_one_instrument_rank_in_the_order_asked():
    from musedraft.habits import line_centres  # noqa: PLC0415
    from musedraft.instruments import get_instrument  # noqa: PLC0415

    violin, viola, cello = (get_instrument(n) for n in ("violin", "viola", "cello"))
    habit = StyleHabits(ambitus=12, pieces=45, lines=225, centres={"violin": 71.0, "viola": 60.0},
                        ranks={"violin": [76.0, 67.0], "viola": [62.0, 57.0]})
    assert line_centres([violin, violin, viola, cello], habit) == [76.0, 67.0, 60.0, cello.middle]
    assert line_centres([viola, violin, cello, violin], habit) == [60.0, 76.0, cello.middle, 67.0]
    assert line_centres([violin, viola, cello], habit) == [71.0, 60.0, cello.middle]  # one violin: the pooled centre
    assert line_centres([violin, violin], None) == [violin.middle, violin.middle]  # a checkpoint without habits

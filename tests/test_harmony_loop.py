"""Harmony of a loop: the join from the last bar into the first is checked and repaired too, on the
last bar's notes, and a parallel into kept notes is mended where the voices came from."""

from __future__ import annotations

import json

from musedraft.harmony import check, repair
from musedraft.harmony.loop import Join, around
from musedraft.harmony.testing import voices

# Two bars with no fault as a piece; going round, D5/D3 falls to C5/C3: parallel octaves into bar 1.
ROUND = ("C5:2 E5:2 F5:2 D5:2", "C3:2 C3:2 A2:2 D3:2")


def notes(score, before: int | None = None):
    return [[(n.time, n.duration, n.pitch) for n in t.notes if before is None or n.time < before] for t in score.tracks]


def test_a_loop_is_checked_across_its_join_and_the_fault_is_told_in_bar_1():
    score = voices(*ROUND, names=["violin", "cello"], programs=[40, 42])
    assert check(score) == []
    found = check(score, loop=True)
    assert [(f.rule, f.bar, f.beat, f.time, f.track) for f in found] == [("parallel-octaves", 1, 1.0, 0, 1)]
    assert found[0].message.startswith("Bar 1, beat 1: cello and violin move in parallel octaves (D3→C3")


def test_a_loop_is_repaired_on_its_last_bar_and_the_opening_stays():
    score = voices(*ROUND, names=["violin", "cello"], programs=[40, 42])
    bar = 4 * score.ticks_per_quarter
    fixed = repair(score, loop=True)
    assert [f.rule for f in fixed.findings_before] == ["parallel-octaves"]
    assert fixed.findings_after == [] and check(fixed.score, loop=True) == []
    assert [(e.bar, e.beat) for e in fixed.edits] == [(2, 3.0)] and "Bar 1, beat 1" in fixed.edits[0].reason
    assert notes(fixed.score, bar) == notes(score, bar)  # the opening as written
    assert [len(t.notes) for t in fixed.score.tracks] == [len(t.notes) for t in score.tracks]  # no copy left behind
    assert repair(score).edits == []  # as a piece there is nothing to mend


def test_a_loop_whose_opening_alone_may_change_is_mended_there():
    # regenerate(bars=(1, 1)) on a loop keeps its last bar: the octaves into bar 1 are broken in bar 1
    score = voices(*ROUND, names=["violin", "cello"], programs=[40, 42])
    bar = 4 * score.ticks_per_quarter
    fixed = repair(score, bars=(1, 1), loop=True)
    assert [f.rule for f in fixed.findings_before] == ["parallel-octaves"]
    assert fixed.findings_after == [] and check(fixed.score, loop=True) == []
    assert [(e.bar, e.time < bar) for e in fixed.edits] == [(1, True)] and "Bar 1, beat 1" in fixed.edits[0].reason
    assert notes(fixed.score)[0][2:] == notes(score)[0][2:] and notes(fixed.score)[1][2:] == notes(score)[1][2:]
    assert [len(t.notes) for t in fixed.score.tracks] == [len(t.notes) for t in score.tracks]
    assert repair(score, bars=(2, 2), loop=True).edits[0].bar == 2  # the last bar free: mended there, as before


def test_a_loop_in_three_four_after_a_change_of_metre_comes_round_in_its_opening_metre():
    # 3/4 for a bar, then 2/4: the copy of the opening must be read in 3/4 again
    score = voices("C5:3 E5:2", "C3:3 C3:2", names=["violin", "cello"], programs=[40, 42], time_signature=(3, 4))
    from symusic import TimeSignature  # noqa: PLC0415

    score.time_signatures.append(TimeSignature(3 * score.ticks_per_quarter, 2, 4))
    wrapped, join = around(score)
    assert (join.bars, join.end) == (2, 5 * score.ticks_per_quarter)
    assert [(ts.time, ts.numerator) for ts in wrapped.time_signatures] == [(0, 3), (3 * 480, 2), (5 * 480, 3)]
    assert [n.time for n in wrapped.tracks[0].notes] == [0, 3 * 480, 5 * 480, 8 * 480]
    assert [(ts.time, ts.numerator) for ts in join.cut(wrapped).time_signatures] == [(0, 3), (3 * 480, 2)]


def test_a_parallel_into_kept_bars_is_mended_where_the_voices_came_from():
    # regenerate(bars=(1, 2)) keeps bar 3 as written: the octaves into it are broken in bar 2
    score = voices(ROUND[0] + " C5:4", ROUND[1] + " C3:4", names=["violin", "cello"], programs=[40, 42])
    bar = 4 * score.ticks_per_quarter
    assert [f.rule for f in check(score)] == ["parallel-octaves"]
    fixed = repair(score, bars=(1, 2))
    assert [e.bar for e in fixed.edits] == [2] and fixed.findings_after == []
    assert notes(fixed.score)[0][-1] == notes(score)[0][-1] and notes(fixed.score)[1][-1] == notes(score)[1][-1]
    assert notes(fixed.score, bar) == notes(score, bar)


def test_a_file_marked_as_a_loop_is_checked_and_repaired_as_one_unless_told_otherwise(tmp_path):
    # the markers a saved loop draft carries (Draft.markers): loopStart at 0, loopEnd at its end
    from symusic import TextMeta  # noqa: PLC0415

    score = voices(*ROUND, names=["violin", "cello"], programs=[40, 42])
    score.markers.append(TextMeta(0, "loopStart"))
    score.markers.append(TextMeta(8 * score.ticks_per_quarter, "loopEnd"))
    score.dump_midi(str(tmp_path / "bgm.mid"))
    assert [f.rule for f in check(tmp_path / "bgm.mid")] == ["parallel-octaves"]
    assert check(tmp_path / "bgm.mid", loop=False) == []
    fixed = repair(tmp_path / "bgm.mid")
    assert len(fixed.edits) == 1 and fixed.findings_after == [] and len(fixed.score.markers) == 2
    assert repair(tmp_path / "bgm.mid", loop=False).edits == []
    # a loop whose last bar rests comes round after that bar, where its marker says, not after the last note
    score.markers[1] = TextMeta(12 * score.ticks_per_quarter, "loopEnd")
    assert around(score)[1] == Join(bars=3, end=12 * score.ticks_per_quarter)
    score.markers[1] = TextMeta(10 * score.ticks_per_quarter, "loopEnd")  # not at a bar line: the music's end
    assert around(score)[1] == Join(bars=2, end=8 * score.ticks_per_quarter)


def test_the_check_and_repair_commands_take_loop(tmp_path, capsys):
    from musedraft.cli import main  # noqa: PLC0415

    voices(*ROUND, names=["violin", "cello"], programs=[40, 42]).dump_midi(str(tmp_path / "bgm.mid"))
    assert main(["check", str(tmp_path / "bgm.mid"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["check", str(tmp_path / "bgm.mid"), "--loop", "--json"]) == 0
    assert [f["rule"] for f in json.loads(capsys.readouterr().out)] == ["parallel-octaves"]
    assert main(["repair", str(tmp_path / "bgm.mid"), "-o", str(tmp_path / "fixed.mid"), "--loop", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["edits"]) == 1 and report["findings_after"] == []
    assert main(["check", str(tmp_path / "fixed.mid"), "--loop"]) == 0
    assert "No findings" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "bgm.mid"), "--no-loop"]) == 0
    assert "No findings" in capsys.readouterr().out

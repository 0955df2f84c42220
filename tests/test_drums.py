"""A primer's drum kit goes on through a continuation: its groove repeated, the closing bar a downbeat."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from symusic import Note, Track

from musedraft.drums import carry_on, pattern_bars

BAR, GRID = 1920, 60  # 4/4 at 480 ticks a quarter, the tokenizer's 32nd-note grid
KICK, SNARE, HAT, CRASH, TOM = 36, 38, 42, 49, 45


def kit(*bars: list[tuple[float, int]], early: int = 0) -> Track:
    """A drum track from one list of (beat, key) hits per bar; `early` ticks of played (humanised) timing
    on every other hit."""
    track = Track(name="Kit", program=0, is_drum=True)
    for b, hits in enumerate(bars):
        for i, (beat, key) in enumerate(hits):
            track.notes.append(Note(b * BAR + round(beat * 480) - early * (i % 2), 120, key, 100))
    return track


ROCK = [(0, KICK), (0, HAT), (1, SNARE), (1, HAT), (2, KICK), (2, HAT), (3, SNARE), (3, HAT)]
HALF = [(0, KICK), (2, SNARE)]
FILL = [(0, TOM), (1, TOM), (2, TOM), (3, CRASH)]


def hits(track: Track, first_bar: int) -> list[list[tuple[float, int]]]:
    """Per bar from `first_bar` (0-based) on: the (beat, key) hits, as `kit` takes them."""
    out: dict[int, list] = {}
    for n in track.notes:
        if n.time >= first_bar * BAR:
            out.setdefault(n.time // BAR - first_bar, []).append((n.time % BAR / 480, n.pitch))
    return [sorted(out.get(b, [])) for b in range(max(out, default=-1) + 1)]


def test_a_one_bar_groove_repeats_and_the_closing_bar_strikes_its_downbeat():
    primer = kit(ROCK, ROCK, ROCK, ROCK)
    out = carry_on(primer, BAR, 4, 3, GRID)
    assert hits(out, 0)[:4] == hits(primer, 0)  # the primer as written
    assert hits(out, 4) == [sorted(ROCK), sorted(ROCK), [(0, KICK), (0, HAT)]]
    assert max(n.end for n in out.notes) <= 7 * BAR


def test_a_two_bar_groove_keeps_its_order_across_the_seam():
    primer = kit(ROCK, HALF, ROCK, HALF)
    assert pattern_bars(primer, BAR, 4, GRID) == 2
    assert hits(carry_on(primer, BAR, 4, 4, GRID), 4) == [sorted(ROCK), sorted(HALF), sorted(ROCK), [(0, KICK)]]


def test_a_fill_closing_a_four_bar_phrase_comes_back_every_four_bars():
    primer = kit(ROCK, ROCK, ROCK, FILL)
    assert pattern_bars(primer, BAR, 4, GRID) == 4
    assert hits(carry_on(primer, BAR, 4, 9, GRID), 4) == [sorted(ROCK)] * 3 + [sorted(FILL)] + [sorted(ROCK)] * 3 + \
        [sorted(FILL), [(0, KICK), (0, HAT)]]


def test_played_timing_does_not_hide_a_repeat_and_comes_back_as_played():
    primer = kit(ROCK, ROCK, HALF, HALF, early=7)
    assert pattern_bars(primer, BAR, 4, GRID) == 1
    out = carry_on(primer, BAR, 4, 2, GRID)
    assert [n.time for n in out.notes if n.time >= 4 * BAR] == [4 * BAR, 4 * BAR + 2 * 480 - 7, 5 * BAR]


def test_drums_that_stopped_or_that_the_user_wrote_on_are_left_alone():
    stopped = kit(ROCK, ROCK, [], [])
    assert hits(carry_on(stopped, BAR, 4, 4, GRID), 0) == hits(stopped, 0)
    written_on = kit(ROCK, ROCK, ROCK, ROCK, HALF)  # a bar of drums past the primer's 4 pitched bars
    assert hits(carry_on(written_on, BAR, 4, 4, GRID), 0) == hits(written_on, 0)


def test_a_primer_shorter_than_a_phrase_repeats_all_it_has():
    primer = kit(ROCK, HALF, FILL)
    assert pattern_bars(primer, BAR, 3, GRID) == 3
    assert hits(carry_on(primer, BAR, 3, 4, GRID), 3) == [sorted(ROCK), sorted(HALF), sorted(FILL), [(0, KICK), (0, HAT)]]


@given(st.lists(st.lists(st.tuples(st.integers(0, 15), st.sampled_from([KICK, SNARE, HAT, TOM])), max_size=6),
                min_size=1, max_size=9), st.integers(1, 12))
def test_new_hits_fall_inside_the_new_bars_and_each_repeats_a_primer_hit(bars, new_bars):
    primer = kit(*[[(s / 4, key) for s, key in hits_] for hits_ in bars])
    out = carry_on(primer, BAR, len(bars), new_bars, GRID)
    end = len(bars) * BAR
    period = pattern_bars(primer, BAR, len(bars), GRID)
    new = [n for n in out.notes if n.time >= end]
    assert all(n.end <= end + new_bars * BAR for n in new)
    assert all(n.time < end + (new_bars - 1) * BAR or n.time % BAR == 0 for n in new)
    given_ = {((n.time - end) % (period * BAR), n.pitch) for n in primer.notes if n.time >= end - period * BAR}
    assert {((n.time - end) % (period * BAR), n.pitch) for n in new} <= given_

"""The loop seam: a looped draft must have no click, no step and no gap where it wraps around.

We render a short looping piece whose last chord rings loudly into the loop point, fold it with
`make_loop`, play it twice in a row, and measure the seam three ways:

1. click: the sample-to-sample step across the seam, against the distribution of steps
   everywhere else, and the energy above 8 kHz in a 6 ms window on the seam against windows
   elsewhere (a step is broadband; music at this spot is not);
2. level and spectrum: RMS and octave-band energies of the 50 ms windows either side of the
   seam against a FluidSynth render of the piece really played twice (the ground truth of what
   looping should sound like);
3. control: the same measures on a naive cut (no fold) must fail, or the test proves nothing.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from musedraft import audio
from musedraft.errors import SoundFontError
from musedraft.score import seconds_at_tick

try:
    import fluidsynth  # noqa: F401

    audio.find_soundfont()
    MISSING = None if shutil.which("fluidsynth") else "the fluidsynth program is not installed"
except (ImportError, OSError):
    MISSING = "libfluidsynth is not installed (apt-get install fluidsynth)"
except SoundFontError:
    MISSING = "no GM sound font (apt-get install fluid-soundfont-gm)"
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

SR = audio.SAMPLE_RATE
TPQ = 480
BARS, BEATS = 2, 4
WINDOW = int(0.05 * SR)


def song(*tracks, repeats: int = 1) -> Score:
    """(program, [(beat, beats, pitch, velocity)]) tracks, optionally written out `repeats` times."""
    s = Score(TPQ)
    s.tempos.append(Tempo(0, qpm=120.0))
    s.time_signatures.append(TimeSignature(0, BEATS, 4))
    for program, notes in tracks:
        t = Track(name=f"p{program}", program=program)
        for r in range(repeats):
            for beat, beats, pitch, vel in notes:
                t.notes.append(Note(int((beat + r * BARS * BEATS) * TPQ), int(beats * TPQ), pitch, vel))
        s.tracks.append(t)
    return s


# Soft piano pickup on the downbeat, strings enter on beat 2; the last bar is a loud string
# chord held to the loop point, so its release and reverb are what the head must carry.
TRACKS = (
    (0, [(0, 1, 62, 50), (1, 1, 66, 55), (2, 1, 69, 60), (3, 1, 66, 55), (4, 2, 64, 60), (6, 2, 61, 60)]),
    (48, [(1, 3, 50, 80), (4, 4, 57, 115), (4, 4, 61, 115), (4, 4, 64, 115)]),
)


@pytest.fixture(scope="module")
def renders():
    once = audio.render(song(*TRACKS))
    twice = audio.render(song(*TRACKS, repeats=2))  # the ground truth of playing it looped
    length = int(round(seconds_at_tick(song(*TRACKS), BARS * BEATS * TPQ) * SR))
    assert length == 4 * SR
    assert len(once) > length + WINDOW  # the piece really rings past the loop point
    folded = audio.make_loop(once, length)
    naive = np.ascontiguousarray(once[:length])
    return {"folded": folded, "naive": naive, "truth": twice, "length": length}


def played_twice(loop: np.ndarray) -> np.ndarray:
    return np.concatenate([loop, loop])


def seam_step(loop: np.ndarray) -> tuple[float, float]:
    """(step across the seam, 99.9th percentile of every other step), max over channels."""
    steps = np.abs(np.diff(played_twice(loop), axis=0)).max(axis=1)
    seam = len(loop) - 1
    return float(steps[seam]), float(np.percentile(np.delete(steps, seam), 99.9))


def high_band_energy(x: np.ndarray, centre: int, n: int = 256) -> float:
    w = x[centre - n // 2 : centre + n // 2].mean(axis=1) * np.hanning(n)
    spec = np.abs(np.fft.rfft(w)) ** 2
    return float(spec[np.fft.rfftfreq(n, 1 / SR) > 8000].sum())


def clicks(loop: np.ndarray) -> tuple[float, float]:
    """(>8 kHz energy on the seam, the largest such energy anywhere else in the loop)."""
    x, seam = played_twice(loop), len(loop)
    others = [high_band_energy(x, c) for c in range(256, len(x) - 256, 128) if abs(c - seam) > 512]
    return high_band_energy(x, seam), max(others)


def db(v: np.ndarray | float) -> np.ndarray | float:
    return 10 * np.log10(np.asarray(v) + 1e-20)


def octave_bands(w: np.ndarray) -> np.ndarray:
    spec = np.abs(np.fft.rfft(w.mean(axis=1) * np.hanning(len(w)))) ** 2
    freqs = np.fft.rfftfreq(len(w), 1 / SR)
    edges = [100, 200, 400, 800, 1600, 3200, 6400, 12800]
    return db(np.array([spec[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(edges, edges[1:], strict=False)]))


def around_seam(x: np.ndarray, seam: int) -> dict[str, np.ndarray]:
    return {"before": x[seam - WINDOW : seam], "after": x[seam : seam + WINDOW]}


def level_and_bands_error(loop: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Largest |dB| difference from the ground truth in RMS and in any octave band, both windows."""
    seam = len(loop)
    ours, real = around_seam(played_twice(loop), seam), around_seam(truth, seam)
    rms = max(abs(db((ours[k] ** 2).mean()) - db((real[k] ** 2).mean())) for k in ours)
    bands = max(float(np.max(np.abs(octave_bands(ours[k]) - octave_bands(real[k])))) for k in ours)
    return rms, bands


def test_seam_has_no_step(renders):
    seam, typical = seam_step(renders["folded"])
    assert seam <= typical, f"step {seam:.4g} at the seam, 99.9% of steps are below {typical:.4g}"


def test_seam_has_no_click(renders):
    seam, loudest_elsewhere = clicks(renders["folded"])
    assert seam <= loudest_elsewhere


def test_seam_matches_playing_the_piece_twice(renders):
    rms, bands = level_and_bands_error(renders["folded"], renders["truth"])
    # 1 dB in level; 3 dB per octave band (the tail and the new attacks add with their own phases,
    # which a live second pass does not reproduce sample for sample)
    assert rms < 1.0 and bands < 3.0, f"RMS off by {rms:.2f} dB, a band by {bands:.2f} dB"


def test_a_naive_cut_fails_the_same_measures(renders):
    """The control: cutting without folding clicks and drops the level, and the measures see it.

    (The single-sample step of a naive cut depends on where in its cycle the waveform is cut, so
    it is no reliable control; the click energy and the level are.)
    """
    click, loudest_elsewhere = clicks(renders["naive"])
    rms, bands = level_and_bands_error(renders["naive"], renders["truth"])
    assert click > 10 * loudest_elsewhere
    assert rms > 2.0 and bands > 3.0


def test_folded_loop_keeps_all_the_energy(renders):
    once_energy = float((audio.render(song(*TRACKS)).astype(np.float64) ** 2).sum())
    folded = renders["folded"].astype(np.float64)
    # The fold adds the tail onto the head; energy is conserved up to the tail/head cross terms.
    assert float((folded**2).sum()) == pytest.approx(once_energy, rel=0.1)

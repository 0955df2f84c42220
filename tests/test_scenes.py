"""Scene presets: every preset is a request the rest of musedraft can carry out."""

from __future__ import annotations

import subprocess
import sys

import pytest
from symusic import Score, Track

from musedraft.errors import RequestError
from musedraft.export import assign_channels
from musedraft.instruments import get_instrument
from musedraft.presets import SCENES, STYLES, Scene, get_scene, scenes

REQUIRED = ("daily", "sad", "tense", "romantic", "mystery", "solemn", "festive", "battle")


def test_the_issue_moods_are_all_there():
    assert set(REQUIRED) <= set(SCENES)
    assert [s.name for s in scenes()] == list(SCENES)


@pytest.mark.parametrize("scene", scenes(), ids=lambda s: s.name)
def test_every_scene_is_playable(scene: Scene):
    assert scene.style in STYLES
    assert 2 <= len(scene.instruments) <= 5
    programs = [get_instrument(name).program for name in scene.instruments]  # raises on unknown names
    assert all(0 <= p <= 127 for p in programs)
    assert 40 <= scene.tempo[0] <= scene.default_tempo <= scene.tempo[1] <= 200
    num, den = (int(x) for x in scene.time_signature.split("/"))
    assert num in (2, 3, 4, 6) and den in (4, 8)
    assert 0.0 < scene.density <= 1.0 and scene.description


def test_modes_and_tempi_follow_the_mood():
    for name in ("sad", "tense", "mystery", "solemn", "battle"):
        assert SCENES[name].mode == "minor", name
    for name in ("daily", "romantic", "festive"):
        assert SCENES[name].mode == "major", name
    assert SCENES["battle"].tempo[0] > SCENES["sad"].tempo[1]
    assert SCENES["battle"].density > SCENES["daily"].density > SCENES["solemn"].density


def test_scene_instruments_fit_a_general_midi_file():
    for scene in scenes():
        s = Score(480)
        s.tracks.extend(Track(name=n, program=get_instrument(n).program) for n in scene.instruments)
        assert len(set(assign_channels(s))) == len(scene.instruments)


def test_lookup_is_forgiving_and_unknown_names_list_the_choices():
    assert get_scene("Daily Life") is SCENES["daily"] and get_scene("combat") is SCENES["battle"]
    with pytest.raises(RequestError) as caught:
        get_scene("heist")
    assert all(name in str(caught.value) for name in REQUIRED)


def test_a_scene_with_an_untrained_style_is_rejected():
    with pytest.raises(ValueError, match="style"):
        Scene("x", "x", "jazz", "major", (90, 100), "4/4", ("piano", "violin"), 0.5)


def test_every_public_name_stays_the_function_after_all_modules_are_imported():
    """A submodule named like a public function (musedraft.compose, musedraft.scenes) would replace the
    function on the package once imported; no public name may collide with a module."""
    code = ("import importlib, pkgutil, types, musedraft\n"
            "for m in pkgutil.walk_packages(musedraft.__path__, 'musedraft.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = [n for n in musedraft.__all__ if isinstance(getattr(musedraft, n), types.ModuleType) and n != 'errors']\n"
            "assert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1]

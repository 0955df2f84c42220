"""Pack: one TOML → every candidate saved → a static audition page that really plays in Chromium.

The page test drives headless Chromium over its DevTools pipe (--remote-debugging-pipe: JSON
messages ending in NUL on file descriptors 3 and 4), so it needs no Python browser package. It is
skipped only where Chromium is genuinely absent (Debian: `apt-get install chromium`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from musedraft.errors import OutputExistsError, RenderError, RequestError
from musedraft.pack import index_html, load_pack_config, pack
from musedraft.score import load_midi

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


HAVE_FLUIDSYNTH = shutil.which("fluidsynth") is not None or importlib.util.find_spec("fluidsynth") is not None

TINY_PACK = """\
title = "Tiny pack"
[defaults]
bars = 4
candidates = 2
[[scene]]
name = "morning"
mood = "daily"
key = "G major"
[[scene]]
name = "farewell"
title = "Farewell"
mood = "sad"
seeds = [3, 5]
loop = false
"""


# Exec argv[3:] with argv[1] on fd 3 and argv[2] on fd 4 (a shell cannot: dash takes one-digit fds only).
_ON_FDS_3_AND_4 = ("import fcntl, os, sys; r, w = (fcntl.fcntl(int(fd), fcntl.F_DUPFD_CLOEXEC, 10) for fd in sys.argv[1:3]); "
                   "os.dup2(r, 3); os.dup2(w, 4); os.execv(sys.argv[3], sys.argv[3:])")


class Chromium:
    """Headless Chromium driven over --remote-debugging-pipe (commands on fd 3, replies on fd 4)."""

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--remote-debugging-pipe"]

    def __init__(self, exe: str):
        self.profile = tempfile.TemporaryDirectory(prefix="musedraft-chromium-")
        to_chrome, self._write = os.pipe()
        self._read, from_chrome = os.pipe()
        argv = [sys.executable, "-c", _ON_FDS_3_AND_4, str(to_chrome), str(from_chrome), exe, *self.FLAGS,
                f"--user-data-dir={self.profile.name}", "about:blank"]
        self.proc = subprocess.Popen(argv, pass_fds=(to_chrome, from_chrome), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._id = b"", 0

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60.0) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:  # events and other replies are not ours
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Chromium did not answer {method} within {timeout} s")
            if select.select([self._read], [], [], left)[0]:
                chunk = os.read(self._read, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"Chromium exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
                self._buffer += chunk

    def evaluate(self, url: str, expression: str) -> dict:
        """Open `url` in a new tab and return the awaited value of `expression` there."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.navigate", {"url": url}, session)
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"]["value"]

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)
        os.close(self._read)
        self.profile.cleanup()


# Play every <audio> muted for a moment; report what the element says about its file.
AUDITION_JS = r"""
(async () => {
  if (document.readyState !== 'complete') await new Promise(r => addEventListener('load', r));
  const audio = [];
  for (const a of document.querySelectorAll('audio')) {
    a.muted = true;
    const r = {};
    try {
      const late = new Promise((_, no) => setTimeout(() => no(new Error('play() did not settle in 10 s')), 10000));
      await Promise.race([a.play(), late]);
      await new Promise(res => setTimeout(res, 300));
      r.played = a.currentTime;
      a.pause();
    } catch (e) { r.exception = String(e); }
    Object.assign(r, {src: a.currentSrc, readyState: a.readyState, duration: a.duration,
                      error: a.error && a.error.code, loop: a.loop});
    audio.push(r);
  }
  const images = [...document.images].map(i => ({src: i.currentSrc, ok: i.complete && i.naturalWidth > 0}));
  return {audio, images, title: document.title};
})()
"""


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.fixture(scope="module")
def tiny_pack(tmp_path_factory, tiny_composer) -> Path:
    root = tmp_path_factory.mktemp("pack")
    (root / "scenes.toml").write_text(TINY_PACK)
    index = pack(root / "scenes.toml", root / "bgm", model=tiny_composer, repair=True, progress=False,
                 audio=HAVE_FLUIDSYNTH)
    assert index == root / "bgm" / "index.html"
    return root / "bgm"


def test_pack_writes_every_candidate_and_a_manifest(tiny_pack):
    manifest = json.loads((tiny_pack / "pack.json").read_text())
    assert [(d["scene"], d["seed"]) for d in manifest["drafts"]] == [("morning", 0), ("morning", 1),
                                                                     ("farewell", 3), ("farewell", 5)]
    for d in manifest["drafts"]:
        folder = tiny_pack / d["dir"]
        assert load_midi(folder / "draft.mid").tracks  # a real, loadable MIDI file
        assert json.loads((folder / "draft.json").read_text())["seed"] == d["seed"]
        assert d["request"]["bars"] == 4 and d["request"]["scene"] in ("daily", "sad")
        assert (d["loop_points"] is not None) == (d["scene"] == "morning")
        assert d["repair"] is not None
        assert all(not Path(p).is_absolute() and (tiny_pack / p).is_file() for p in d["files"].values())
    assert manifest["drafts"][0]["key"] == "G major"


def test_index_uses_relative_paths_only_and_no_script(tiny_pack):
    page = (tiny_pack / "index.html").read_text()
    refs = _Refs()
    refs.feed(page)
    assert "script" not in refs.tags and "http://" not in page and "https://" not in page
    assert refs.refs, "the page links nothing"
    for ref in refs.refs:
        assert not re.match(r"^[a-z]+:|^/", ref), ref  # no scheme, no absolute path: the folder moves whole
        assert (tiny_pack / ref).is_file(), ref
    for stem in ("draft.mid", "draft.musicxml", "draft.png", "draft.json"):
        assert page.count(f'/{stem}"') == 4
    if HAVE_FLUIDSYNTH:
        assert page.count("<audio ") == 4 and page.count(' loop>') == 2  # only the looping scene loops
    assert page.count("Loop: 0 s →") == 2 and "&lt;loop 0&gt;audio/bgm/morning/seed-0/draft.ogg" in page
    assert "Harmony repair: " in page and "edit" in page


def test_index_html_is_a_pure_function_of_the_manifest(tiny_pack):
    manifest = json.loads((tiny_pack / "pack.json").read_text())
    assert index_html(manifest) == index_html(manifest) == (tiny_pack / "index.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
@pytest.mark.skipif(not HAVE_FLUIDSYNTH, reason="FluidSynth is absent, so the pack has no audio to play")
def test_every_audio_player_loads_and_plays_in_chromium(tiny_pack):
    manifest = json.loads((tiny_pack / "pack.json").read_text())
    browser = Chromium(CHROMIUM)
    try:
        page = browser.evaluate((tiny_pack / "index.html").as_uri(), AUDITION_JS)
    finally:
        browser.close()
    assert page["title"] == "Tiny pack"
    assert len(page["audio"]) == len(manifest["drafts"]) == 4
    for player, draft in zip(page["audio"], manifest["drafts"], strict=True):
        assert "exception" not in player, player
        assert player["error"] is None and player["readyState"] >= 2 and player["duration"] > 0, player
        assert player["played"] > 0, player  # time moved: it really played
        assert player["src"] == (tiny_pack / draft["files"]["ogg"]).as_uri()
        if draft["loop_points"]:  # the OGG is exactly one loop long
            assert player["loop"] and player["duration"] == pytest.approx(draft["loop_points"]["end_seconds"], abs=0.02)
    assert len(page["images"]) == 4 and all(i["ok"] for i in page["images"]), page["images"]


def test_pack_refuses_to_overwrite_before_composing_anything(tiny_pack):
    before = {p: p.stat().st_mtime_ns for p in tiny_pack.rglob("*")}
    config = tiny_pack.parent / "scenes.toml"
    # a missing model would fail at load time: the OutputExistsError must come first
    with pytest.raises(OutputExistsError, match="force"):
        pack(config, tiny_pack, model="/nonexistent/model", progress=False)
    assert {p: p.stat().st_mtime_ns for p in tiny_pack.rglob("*")} == before


def test_pack_without_audio_says_so_on_the_page(tmp_path, tiny_composer):
    (tmp_path / "one.toml").write_text('[[scene]]\nname = "a"\nmood = "mystery"\nbars = 4\ncandidates = 1\n')
    index = pack(tmp_path / "one.toml", tmp_path / "out", model=tiny_composer, audio=False,
                 repair=True, progress=False)
    page = index.read_text()
    assert "<audio" not in page and "No audio: previews were not rendered" in page
    assert sorted(p.name for p in (tmp_path / "out" / "a" / "seed-0").iterdir()) == [
        "draft.json", "draft.mid", "draft.musicxml", "draft.png"]


def test_config_defaults_seeds_and_candidates(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(TINY_PACK)
    config = load_pack_config(path)
    morning, farewell = config.scenes
    assert config.title == "Tiny pack"
    assert morning.seeds == (0, 1) and morning.loop and morning.bars == 4 and morning.key == "G major"
    assert farewell.seeds == (3, 5) and not farewell.loop and farewell.title == "Farewell"


@pytest.mark.parametrize("text, message", [
    ('[[scene]]\nname = "a"\nmood = "daily"\ncolour = "red"\n', "unknown field.*colour"),
    ('[[scene]]\nname = "a"\nmood = "grumpy"\n', "Unknown scene 'grumpy'"),
    ('[[scene]]\nname = "../up"\nmood = "daily"\n', "name '../up' must be"),
    ('[[scene]]\nname = "a"\nmood = "daily"\n[[scene]]\nname = "A"\nmood = "sad"\n', "two scenes are called"),
    ('[[scene]]\nname = "a"\nmood = "daily"\nseeds = [1]\ncandidates = 2\n', "either seeds or candidates"),
    ('[[scene]]\nname = "a"\nmood = "daily"\nseeds = [1, 1]\n', "distinct"),
    ('[[scene]]\nname = "a"\nmood = "daily"\ncandidates = 0\n', "candidates must be"),
    ('[[scene]]\nname = "a"\nmood = "daily"\nbars = "16"\n', "bars must be"),
    ('[[scene]]\nname = "a"\nmood = "daily"\nkey = "H major"\n', "Unknown key"),
    ('[[scene]]\nname = "a"\nmood = "daily"\nloop = "yes"\n', "loop must be"),
    ('[[scene]]\nname = "a"\nmood = "daily"\n[[scene]]\nname = "b"\nmood = "sad"\ntempo = 0\n', r"\(b\): Tempo must be"),
    ('[[scene]]\nname = "a"\nmood = "daily"\ninstruments = ["kazoo"]\n', "Unknown instrument 'kazoo'"),
    ('[[scene]]\nname = "a"\nmood = "daily"\nbars = 2\n', "A loop needs at least 4 bars"),
    ('[[scene]]\nname = "a"\nmood = "daily"\ntemperature = "hot"\n', "temperature must be"),
    ('[[scene]]\nname = "a"\nmood = "daily"\ntime_signature = "300/4"\n', "has no meaning"),
    ('title = "x"\n', "no scenes"),
    ('[[scene]\nname = "a"\n', "not valid TOML"),
])
def test_config_mistakes_are_request_errors_that_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RequestError, match=message):
        load_pack_config(path)


def test_the_shipped_example_pack_file_is_valid():
    config = load_pack_config(Path(__file__).parents[1] / "examples" / "vn_bgm_pack" / "scenes.toml")
    assert [s.name for s in config.scenes] == ["school_morning", "rainy_goodbye", "festival_night", "the_letter"]
    assert config.scenes[2].seeds == (2, 7) and not config.scenes[3].loop


def test_the_renpy_script_plays_files_the_example_pack_writes():
    folder = Path(__file__).parents[1] / "examples" / "vn_bgm_pack"
    config = load_pack_config(folder / "scenes.toml")
    seeds = {s.name: s.seeds for s in config.scenes}
    loops = {s.name: s.loop for s in config.scenes}
    script = (folder / "script.rpy").read_text()
    paths = re.findall(r'"(<loop 0>)?audio/bgm/([A-Za-z0-9_-]+)/seed-(\d+)/draft\.ogg"', script)
    assert len(paths) == len(config.scenes)  # one define per scene
    for loop_prefix, scene, seed in paths:
        assert int(seed) in seeds[scene], (scene, seed)
        assert bool(loop_prefix) == loops[scene], scene  # loop prefix exactly on the looping scenes
    defined = set(re.findall(r"^define audio\.(\w+) =", script, flags=re.M))
    played = set(re.findall(r"^\s+play music (\w+)", script, flags=re.M))
    played |= set(re.findall(r"renpy\.music\.play\(audio\.(\w+)", script))
    assert played == defined == set(seeds)


def test_a_failed_render_still_writes_the_page_and_says_why(tmp_path, tiny_composer):
    (tmp_path / "one.toml").write_text('[[scene]]\nname = "a"\nmood = "tense"\nbars = 4\nseeds = [2]\n')
    with pytest.raises(RenderError, match="no-such-font") as info:
        pack(tmp_path / "one.toml", tmp_path / "out", model=tiny_composer, soundfont=tmp_path / "no-such-font.sf2",
             repair=True, progress=False)
    index = tmp_path / "out" / "index.html"
    assert info.value.paths == {"index": index}
    page = index.read_text()
    assert "<audio" not in page and "No audio:" in page and "no-such-font.sf2" in page
    assert load_midi(tmp_path / "out" / "a" / "seed-2" / "draft.mid").tracks

"""After compose: a whole visual-novel background-music set from one small TOML file.

    scenes.toml ─► validated SceneSpecs ─► compose() × candidates ─► Draft.save(out/<scene>/seed-N/)
                ─► out/pack.json (manifest) ─► out/index.html (static audition page, relative paths)

The page needs no network and no script: audio players, piano rolls, repair summaries, download
links and loop points, so a writer can pick one candidate per scene by ear.
"""

from __future__ import annotations

import html
import json
import os
import re
import string
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from musedraft.errors import OutputExistsError, RenderError, RequestError
from musedraft.files import atomic_path, check_writable

__all__ = ["SceneSpec", "PackConfig", "load_pack_config", "pack", "index_html"]

MAX_CANDIDATES = 32  # per scene; an audition page with more is not auditioned
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # a scene name is a folder name and a Ren'Py identifier part
_SCENE_KEYS = {"name", "mood", "scene", "title", "bars", "seeds", "candidates", "seed", "key", "tempo",
               "time_signature", "instruments", "loop", "temperature"}
_DEFAULT_KEYS = _SCENE_KEYS - {"name", "title", "seeds"}
_TOP_KEYS = {"title", "defaults", "scene"}


@dataclass(frozen=True)
class SceneSpec:
    name: str  # folder name under the pack: out/<name>/seed-N/
    mood: str  # a preset of musedraft.scenes ("daily", "sad"... or an alias)
    seeds: tuple[int, ...]  # one candidate per seed
    bars: int = 16  # exact length; a loop spans exactly these bars
    loop: bool = True  # background music loops unless told otherwise
    title: str = ""  # heading on the audition page (default: the name)
    key: str | None = None  # e.g. "D minor"; default: the preset's mode on C / A
    tempo: float | None = None  # quarter notes per minute; default: the preset's
    time_signature: str | None = None  # e.g. "3/4"; default: the preset's
    instruments: tuple[str | int, ...] | None = None  # names or GM programs; default: the preset's
    temperature: float | None = None  # sampling temperature (None: the generator's default)


@dataclass(frozen=True)
class PackConfig:
    title: str  # page title
    scenes: tuple[SceneSpec, ...]  # in file order
    source: Path | None = field(default=None, compare=False)  # the TOML it came from


def load_pack_config(path: str | os.PathLike) -> PackConfig:
    """Read and validate a pack file; every mistake is a RequestError naming the scene and field.

    The file holds an optional `title`, an optional `[defaults]` table (any scene field but name,
    title and seeds) and one `[[scene]]` table per scene: `name` and `mood` are required; `seeds =
    [3, 8]` or `candidates = 3` (seeds seed, seed+1, ...; default 3 from seed 0) pick the candidates.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RequestError(f"{path}: no such pack file.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"{path}: not valid TOML ({exc}).") from None
    _unknown(data, _TOP_KEYS, f"{path}")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise RequestError(f"{path}: [defaults] must be a table.")
    _unknown(defaults, _DEFAULT_KEYS, f"{path} [defaults]")
    tables = data.get("scene", [])
    if not isinstance(tables, list) or not tables:
        raise RequestError(f"{path}: no scenes; add at least one [[scene]] table with a name and a mood.")
    scenes, seen = [], set()
    for i, table in enumerate(tables):
        if not isinstance(table, dict):
            raise RequestError(f"{path}: scene {i + 1} must be a [[scene]] table.")
        inherited = {k: v for k, v in defaults.items() if not ("seeds" in table and k in ("candidates", "seed"))}
        spec = _scene_spec({**inherited, **table}, f"{path} scene {i + 1}")
        if spec.name.lower() in seen:
            raise RequestError(f"{path}: two scenes are called {spec.name!r}; names must differ (they are folders).")
        seen.add(spec.name.lower())
        scenes.append(spec)
    title = data.get("title", path.stem.replace("_", " ").title())
    return PackConfig(str(title), tuple(scenes), path)


def _unknown(table: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise RequestError(f"{where}: unknown field(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}.")


def _scene_spec(t: dict[str, Any], where: str) -> SceneSpec:
    from musedraft.composer import check_request  # noqa: PLC0415
    from musedraft.presets import get_scene  # noqa: PLC0415

    _unknown(t, _SCENE_KEYS, where)
    name = t.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RequestError(f"{where}: name {name!r} must be 1-64 letters, digits, '-' or '_' (it becomes a folder).")
    where = f"{where} ({name})"
    mood = t.get("mood", t.get("scene"))
    if not isinstance(mood, str):
        raise RequestError(f"{where}: give a mood, one of the presets listed by `musedraft scenes`.")
    get_scene(mood)  # raises RequestError listing the presets
    if "seeds" in t and "candidates" in t:
        raise RequestError(f"{where}: give either seeds or candidates, not both.")
    if "seeds" in t:
        seeds = t["seeds"]
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
            raise RequestError(f"{where}: seeds must be a non-empty list of whole numbers >= 0, e.g. [3, 8].")
        if len(set(seeds)) != len(seeds) or len(seeds) > MAX_CANDIDATES:
            raise RequestError(f"{where}: seeds must be distinct and at most {MAX_CANDIDATES}.")
        seeds = tuple(seeds)
    else:
        n, first = t.get("candidates", 3), t.get("seed", 0)
        if not isinstance(n, int) or not 1 <= n <= MAX_CANDIDATES or not isinstance(first, int) or first < 0:
            raise RequestError(f"{where}: candidates must be 1-{MAX_CANDIDATES} and seed a whole number >= 0.")
        seeds = tuple(range(first, first + n))
    bars = t.get("bars", 16)
    if isinstance(bars, bool) or not isinstance(bars, int) or not 1 <= bars <= 512:
        raise RequestError(f"{where}: bars must be a whole number from 1 to 512, not {bars!r}.")
    instruments = t.get("instruments")
    if instruments is not None and (not isinstance(instruments, list) or not instruments):
        raise RequestError(f"{where}: instruments must be a list such as [\"piano\", \"cello\"].")
    loop = t.get("loop", True)
    if not isinstance(loop, bool):
        raise RequestError(f"{where}: loop must be true or false.")
    try:  # everything compose() would refuse, before any scene is composed
        check_request(scene=mood, key=t.get("key"), tempo=t.get("tempo"), time_signature=t.get("time_signature"),
                      instruments=instruments, bars=bars, seed=seeds[0], loop=loop, temperature=t.get("temperature"))
    except RequestError as exc:
        raise RequestError(f"{where}: {exc}") from None
    return SceneSpec(name=name, mood=mood, seeds=seeds, bars=bars, loop=loop, title=str(t.get("title", "")),
                     key=t.get("key"), tempo=t.get("tempo"), time_signature=t.get("time_signature"),
                     instruments=tuple(instruments) if instruments else None,
                     temperature=float(t["temperature"]) if "temperature" in t else None)


def pack(config_path: str | os.PathLike, out_dir: str | os.PathLike, force: bool = False, model=None, *,
         audio: bool = True, soundfont: str | os.PathLike | None = None, repair: bool = True,
         progress: bool = True) -> Path:
    """Compose every candidate of every scene, save each draft, and write the audition page.

    Args:
        config_path: the pack TOML (see `load_pack_config`).
        out_dir: the pack folder; gets `<scene>/seed-<N>/draft.*`, `pack.json` and `index.html`.
        force: overwrite existing outputs; without it nothing is composed if any output exists.
        model: a `Composer`, a checkpoint folder, or None for `load_model()`'s default.
        audio: render draft.ogg/draft.wav previews (FluidSynth).
        soundfont: the .sf2/.sf3 to render with.
        repair: run the harmony repair on every draft (its edit count goes on the page).
        progress: show a tqdm bar over the candidates.
    Returns:
        The path of `index.html`.
    Raises:
        RequestError: the pack file is invalid. OutputExistsError: outputs exist and not `force`.
        RenderError: audio was asked for and failed; every other file and the page were still
            written (the page shows the error) — rerun with `audio=False` or fix FluidSynth.
    """
    from tqdm import tqdm  # noqa: PLC0415

    from musedraft.composer import Composer, compose, load_model  # noqa: PLC0415

    config = load_pack_config(config_path)
    out = Path(out_dir)
    _check_outputs(config, out, force)
    composer = model if isinstance(model, Composer) else load_model(model)
    entries: list[dict[str, Any]] = []
    total = sum(len(s.seeds) for s in config.scenes)
    with tqdm(total=total, desc="pack", unit="draft", disable=not progress) as bar:
        for spec in config.scenes:
            for seed in spec.seeds:
                bar.set_postfix_str(f"{spec.name} seed {seed}")
                draft = compose(scene=spec.mood, key=spec.key, tempo=spec.tempo, time_signature=spec.time_signature,
                                instruments=list(spec.instruments) if spec.instruments else None, bars=spec.bars,
                                seed=seed, loop=spec.loop, repair=repair, temperature=spec.temperature, model=composer)
                folder = out / spec.name / f"seed-{seed}"
                error = None
                try:
                    files = draft.save(folder, force=force, audio=audio, soundfont=soundfont)
                except RenderError as exc:
                    files, error = exc.paths, str(exc)
                entries.append(_entry(spec, seed, draft, files, out, error))
                bar.update(1)
    manifest = {"musedraft_pack": 1, "title": config.title, "folder": out.resolve().name, "model_id": composer.model_id,
                "scenes": [{**asdict(s), "description": _description(s.mood)} for s in config.scenes],
                "drafts": entries}
    with atomic_path(out / "pack.json", force=force) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    index = out / "index.html"
    with atomic_path(index, force=force) as tmp:
        tmp.write_text(index_html(manifest), encoding="utf-8")
    failed = [e for e in entries if e["audio_error"]]
    if failed:
        exc = RenderError(f"Wrote {index}, but {len(failed)} of {len(entries)} drafts have no audio: "
                          f"{failed[0]['audio_error']} (pass audio=False / --no-audio to skip previews).")
        exc.paths = {"index": index}
        raise exc
    return index


def _check_outputs(config: PackConfig, out: Path, force: bool) -> None:
    """Every output we would write, checked before the first (slow) compose."""
    paths = [out / "index.html", out / "pack.json"]
    for spec in config.scenes:
        paths += [out / spec.name / f"seed-{seed}" / "draft.mid" for seed in spec.seeds]
    for path in paths:
        try:
            check_writable(path, force)
        except OutputExistsError:
            raise OutputExistsError(f"{path} already exists; pass force=True (CLI: --force) to overwrite the pack.") from None


def _description(mood: str) -> str:
    from musedraft.presets import get_scene  # noqa: PLC0415

    return get_scene(mood).description


def _entry(spec: SceneSpec, seed: int, draft, files: dict[str, Path], out: Path, error: str | None) -> dict[str, Any]:
    rel = {kind: path.relative_to(out).as_posix() for kind, path in files.items()}
    report = draft.repair
    repair = None if report is None else {
        "edits": len(report["edits"]), "findings_before": len(report["findings_before"]),
        "findings_after": len(report["findings_after"]), "details": report["edits"][:50]}
    return {"scene": spec.name, "seed": seed, "dir": f"{spec.name}/seed-{seed}", "files": rel,
            "request": draft.request, "key": draft.key, "loop_points": draft.loop_points(), "repair": repair,
            "audio_error": error, "model_id": draft.model_id}


def index_html(manifest: dict[str, Any]) -> str:
    """The audition page for a pack manifest (pure: the same manifest gives the same bytes)."""
    from musedraft import __version__  # noqa: PLC0415

    by_scene: dict[str, list[dict]] = {}
    for entry in manifest["drafts"]:
        by_scene.setdefault(entry["scene"], []).append(entry)
    sections = []
    for scene in manifest["scenes"]:
        cards = "\n".join(_card(e, manifest["folder"]) for e in by_scene.get(scene["name"], []))
        heading = html.escape(scene["title"] or scene["name"])
        sections.append(f'<section id="{html.escape(scene["name"])}">\n<h2>{heading} '
                        f'<span class="muted">— {html.escape(scene["mood"])}, {scene["bars"]} bars'
                        f'{", loop" if scene["loop"] else ""}</span></h2>\n'
                        f'<p class="muted">{html.escape(scene["description"])}</p>\n<div class="grid">\n{cards}\n</div>\n</section>')
    n = len(manifest["drafts"])
    summary = (f"{len(manifest['scenes'])} scenes, {n} candidates, model {html.escape(str(manifest['model_id']))}. "
               "Listen, then take the folder of the one you like.")
    template = string.Template(resources.files("musedraft").joinpath("templates/pack_index.html").read_text("utf-8"))
    return template.substitute(title=html.escape(manifest["title"]), summary=summary,
                               sections="\n".join(sections), version=__version__)


def _href(path: str) -> str:
    return html.escape(quote(path), quote=True)


def _card(e: dict[str, Any], folder: str) -> str:
    files, req = e["files"], e["request"]
    loop_attr = " loop" if e["loop_points"] else ""
    if "ogg" in files:
        player = (f'<audio controls preload="metadata"{loop_attr}>'
                  f'<source src="{_href(files["ogg"])}" type="audio/ogg">'
                  f'<source src="{_href(files["wav"])}" type="audio/wav">'
                  "Your browser cannot play audio.</audio>")
    else:
        player = f'<p class="error">No audio: {html.escape(e["audio_error"] or "previews were not rendered")}</p>'
    roll = f'<img src="{_href(files["png"])}" alt="piano roll of {html.escape(e["dir"])}">' if "png" in files else ""
    labels = {"midi": "MIDI", "musicxml": "MusicXML", "ogg": "OGG", "wav": "WAV", "json": "JSON"}
    links = " ".join(f'<a href="{_href(files[k])}" download>{label}</a>' for k, label in labels.items() if k in files)
    instruments = ", ".join(str(i) for i in req.get("instruments", []))
    rows = (f"<tr><td>key</td><td>{html.escape(e['key'])}</td></tr>"
            f"<tr><td>tempo</td><td>{req.get('tempo'):g} BPM, {html.escape(str(req.get('time_signature')))}</td></tr>"
            f"<tr><td>instruments</td><td>{html.escape(instruments)}</td></tr>")
    return (f'<div class="card" id="{html.escape(e["scene"])}-seed-{e["seed"]}">\n'
            f'<h3>{html.escape(e["scene"])} · seed {e["seed"]}</h3>\n{player}\n{roll}\n'
            f'<p class="downloads">{links}</p>\n<table class="request">{rows}</table>\n'
            f'{_repair_html(e["repair"])}\n{_loop_html(e, folder)}\n</div>')


def _repair_html(repair: dict | None) -> str:
    if repair is None:
        return '<p class="muted">Harmony repair: not run.</p>'
    head = (f"Harmony repair: {repair['edits']} edit{'s' * (repair['edits'] != 1)}, "
            f"findings {repair['findings_before']} → {repair['findings_after']}")
    if not repair["details"]:
        return f"<p>{head}</p>"
    items = "".join(f"<li><code>{html.escape(_edit_text(d))}</code></li>" for d in repair["details"])
    return f"<details><summary>{head}</summary><ul>{items}</ul></details>"


def _edit_text(edit: Any) -> str:
    if isinstance(edit, dict) and {"bar", "beat", "reason"} <= set(edit):  # a harmony.Edit
        return f"bar {edit['bar']}, beat {edit['beat']:g}: {edit['reason']}"
    if isinstance(edit, dict):
        return ", ".join(f"{k}={v}" for k, v in edit.items())
    return str(edit)


def _loop_html(e: dict[str, Any], folder: str) -> str:
    points = e["loop_points"]
    if not points:
        return '<p class="muted">Not a loop: plays once to its cadence.</p>'
    ogg = f"audio/{folder}/{e['dir']}/draft.ogg"
    return (f"<p>Loop: {points['start_seconds']:g} s → {points['end_seconds']:g} s "
            f"(samples {points['start_samples']}–{points['end_samples']} at {points['sample_rate']} Hz; "
            f"OGG tags LOOPSTART/LOOPLENGTH). Ren'Py, with this folder copied into game/audio/: "
            f"<code>play music \"&lt;loop {points['start_seconds']:g}&gt;{html.escape(ogg)}\"</code></p>")

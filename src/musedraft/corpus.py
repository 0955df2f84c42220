"""Training data, step one: the music21 core corpus as MIDI files plus a metadata table.

music21 parses every work (opus files expanded into their tunes); we build each symusic Score
ourselves, one named track per part, because music21's own MIDI writer gives most parts program 0,
uses tpq 10080 and expands repeats (FIELD-NOTES). Results are cached per source file, so a re-run
only converts what is new. The split is by piece, from a hash of its id, so it never changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import statistics
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from musedraft.errors import CorpusError, RequestError

__all__ = [
    "CorpusConfig",
    "STYLES",
    "style_of",
    "split_of",
    "default_cache_dir",
    "build_corpus",
    "load_table",
    "stream_to_score",
]

TPQ = 480

# collection (first folder of the corpus path) → style label the model is conditioned on.
_STYLE_OF_COLLECTION = {
    "bach": "chorale",
    "palestrina": "renaissance",
    "josquin": "renaissance",
    "lusitano": "renaissance",
    "monteverdi": "madrigal",
    "trecento": "medieval",
    "ciconia": "medieval",
    "luca": "medieval",
    "beethoven": "classical",
    "mozart": "classical",
    "haydn": "classical",
    "corelli": "classical",
    "handel": "classical",
    "cpebach": "classical",
    "schubert": "classical",
    "weber": "classical",
    "ryansMammoth": "folk",
    "oneills1850": "folk",
    "essenFolksong": "folk",
    "airdsAirs": "folk",
    "miscFolk": "folk",
    "nottingham-dataset": "folk",
    "liliuokalani": "folk",
}
STYLES = ("chorale", "renaissance", "madrigal", "medieval", "classical", "romantic", "folk")


def check_style(style: str) -> str:
    """The style a request names, in any case ('Chorale', as scenes are taken), or the RequestError
    that lists the styles."""
    name = style.strip().lower() if isinstance(style, str) else style
    if name not in STYLES:
        raise RequestError(f"Unknown style {style!r}; choose one of {', '.join(STYLES)}.")
    return name


# Styles whose voices keep their order, each in its register: chorale writing. Elsewhere voices cross
# freely (Renaissance polyphony, instrumental textures). The harmony checker remarks on crossings only
# here, and the generator keeps the lines apart only here.
ORDERED_STYLES = frozenset({"chorale"})
# Collections that are music21's own test files, not repertoire. Unlisted composers fall to 'romantic', so
# these 15 files (layout and tuplet tests, a chord-symbol catalogue, a triad exercise) made 13 of its 30
# training pieces and one of its six held-out ones: its habits and its evaluation were partly theirs.
_NOT_REPERTOIRE = {"demos": "music21's demo and test files", "theoryExercises": "harmony exercises"}

# Vocal collections: an unnamed instrument is a voice, rendered as choir.
_VOCAL_STYLES = {"chorale", "renaissance", "madrigal", "medieval"}
# First match wins, so a name that holds another's word comes first ("English horn", "flauto dolce",
# "bassoon"). Bach's cantata chorales name their trumpets, timpani, recorders and cornetts; before these
# were listed they fell to the choir program with the voices, so a trumpet's B5 was out of a choir's
# range and the chorale "choir" ranks were trumpets and timpani (78, 72, 69, 48).
_PROGRAM_BY_NAME = [
    (re.compile(r"violin|fiddle", re.I), 40),
    (re.compile(r"viola", re.I), 41),
    (re.compile(r"cello|violoncell|continuo", re.I), 42),  # a continuo's bass is written (and sits) at a cello's pitch
    (re.compile(r"contrabass|double bass|violone", re.I), 43),
    (re.compile(r"recorder|flauto dolce|blockfl", re.I), 74),
    (re.compile(r"flute|flauto", re.I), 73),
    (re.compile(r"english horn|cor anglais|corno inglese|oboe da caccia|taille", re.I), 69),
    (re.compile(r"oboe", re.I), 68),
    (re.compile(r"clarinet|klarinette", re.I), 71),
    (re.compile(r"bassoon|fagott", re.I), 70),
    (re.compile(r"trumpet|tromba|trompet|clarino|cornet|zink", re.I), 56),
    (re.compile(r"trombone|posaune", re.I), 57),
    (re.compile(r"timpani|pauken|tamburi", re.I), 47),
    (re.compile(r"horn|corno", re.I), 60),
    (re.compile(r"piano|klavier|pianoforte|keyboard", re.I), 0),
    (re.compile(r"harpsichord|cembalo", re.I), 6),
    (re.compile(r"organ", re.I), 19),
    (re.compile(r"soprano|alto|tenor|bass|cantus|altus|quintus|sextus|superius|voice|vox|triplum|motetus|gesang", re.I), 52),
]


@dataclass
class CorpusConfig:
    cache: Path = field(default_factory=lambda: default_cache_dir() / "corpus")  # MIDI + table live here
    workers: int = 2  # processes; music21 parsing is CPU-bound and single-threaded
    timeout_s: int = 300  # per source file; a pathological file is recorded as a failure, not a hang
    collections: tuple[str, ...] = ()  # restrict to these collections (tests, demos); () = all
    limit: int = 0  # at most this many source files (0 = all)
    max_tracks: int = 8  # the token stream has 8 track slots; further parts are dropped


def default_cache_dir() -> Path:
    env = os.environ.get("MUSEDRAFT_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir  # noqa: PLC0415

    return Path(user_cache_dir("musedraft"))


def style_of(collection: str) -> str:
    """Style label of a corpus collection; composers we do not list are 'romantic' (Schumann, Chopin...)."""
    return _STYLE_OF_COLLECTION.get(collection, "romantic")


def split_of(piece_id: str) -> str:
    """Deterministic 90/5/5 train/valid/test split by piece (a stable hash, not Python's hash())."""
    bucket = int(hashlib.sha1(piece_id.encode()).hexdigest()[:8], 16) % 100
    return "train" if bucket < 90 else "valid" if bucket < 95 else "test"


def _program_for(part_name: str, m21_program: int | None, style: str) -> int:
    for pattern, program in _PROGRAM_BY_NAME:
        if pattern.search(part_name or ""):
            return program
    if m21_program is not None and m21_program not in (0, 48):  # 0 and 48 are music21's defaults
        return m21_program
    if style in _VOCAL_STYLES:
        return 52
    return 40 if style == "folk" else 0


def stream_to_score(m21_score, style: str = "romantic", max_tracks: int = 8):
    """A music21 Score → (symusic Score at tpq 480, part metadata). One track per part, in score order."""
    import symusic  # noqa: PLC0415
    from music21 import meter, tempo  # noqa: PLC0415

    score = symusic.Score(TPQ)
    parts_meta = []
    # A pickup bar is a short first measure; music21 offsets start at its first note, so without this
    # shift every bar line (and every strong beat) of a piece with an upbeat would sit early.
    first = m21_score.parts[0].getElementsByClass("Measure").first() if len(m21_score.parts) else None
    pickup = float(first.paddingLeft) if first is not None else 0.0
    for part in list(m21_score.parts)[:max_tracks]:
        flat = part.stripTies(inPlace=False).flatten()
        inst = part.getInstrument(returnDefault=False)
        name = (part.partName or (inst.instrumentName if inst else None) or f"Part {len(parts_meta) + 1}").strip()
        program = _program_for(name, inst.midiProgram if inst else None, style)
        track = symusic.Track(name=name, program=program, is_drum=False)
        pitches = []
        for n in flat.notes:
            dur = int(round(float(n.duration.quarterLength) * TPQ))
            if dur <= 0:  # grace notes have no written duration
                continue
            start = int(round((float(n.offset) + pickup) * TPQ))
            for p in n.pitches:
                if 0 <= p.midi <= 127:
                    track.notes.append(symusic.Note(start, dur, int(p.midi), 80))
                    pitches.append(int(p.midi))
        if pitches:
            score.tracks.append(track)
            parts_meta.append({"name": name, "program": program, "notes": len(pitches),
                               "median_pitch": float(statistics.median(pitches))})
    flat_all = m21_score.parts[0].flatten() if len(m21_score.parts) else m21_score.flatten()
    for ts in flat_all.getElementsByClass(meter.TimeSignature):
        at = 0 if ts.offset == 0 else int(round((float(ts.offset) + pickup) * TPQ))
        score.time_signatures.append(symusic.TimeSignature(at, ts.numerator, ts.denominator))
    marks = list(m21_score.flatten().getElementsByClass(tempo.MetronomeMark))
    if marks and marks[0].getQuarterBPM():
        score.tempos.append(symusic.Tempo(0, float(marks[0].getQuarterBPM())))
    return score, parts_meta


class _Timeout(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001
    raise _Timeout


def _convert_file(args: tuple[str, str, str, int, int]) -> list[dict]:
    """Worker: parse one corpus file, write each of its pieces as MIDI, return their metadata rows."""
    path, rel, out_dir, timeout_s, max_tracks = args
    from music21 import converter, stream  # noqa: PLC0415

    warnings.filterwarnings("ignore")
    collection = rel.split("/")[0]
    style = style_of(collection)
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout_s)
    rows: list[dict] = []
    try:
        parsed = converter.parse(path, forceSource=True, storePickle=False)
        works = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        for number, work in enumerate(works):
            piece_id = rel if len(works) == 1 else f"{rel}#{number}"
            rows.append(_convert_work(work, piece_id, rel, collection, style, Path(out_dir), max_tracks))
    except _Timeout:
        rows = [{"source": rel, "error": f"timed out after {timeout_s} s"}]
    except Exception as exc:  # noqa: BLE001  (every failure is recorded with its reason)
        rows.append({"source": rel, "error": f"{type(exc).__name__}: {exc}"[:300]})
    finally:
        signal.alarm(0)
    return rows


def _convert_work(work, piece_id, rel, collection, style, out_dir: Path, max_tracks: int) -> dict:
    try:
        if not hasattr(work, "parts") or not len(work.parts):
            from music21 import stream  # noqa: PLC0415

            wrapped = stream.Score()
            wrapped.insert(0, work)
            work = wrapped
        score, parts = stream_to_score(work, style, max_tracks)
        if not parts:
            return {"id": piece_id, "source": rel, "error": "no pitched notes"}
        key = work.analyze("key")
        num, den = (score.time_signatures[0].numerator, score.time_signatures[0].denominator) if len(score.time_signatures) else (4, 4)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", piece_id)
        midi_rel = f"midi/{collection}/{safe}.mid"
        (out_dir / "midi" / collection).mkdir(parents=True, exist_ok=True)
        score.dump_midi(str(out_dir / midi_rel))
        title = (work.metadata.title if work.metadata and work.metadata.title else "") or ""
        return {
            "id": piece_id, "source": rel, "midi": midi_rel, "collection": collection, "style": style,
            "title": title[:120], "key_tonic": key.tonic.name, "key_pc": key.tonic.pitchClass, "mode": key.mode,
            "time_signature": f"{num}/{den}", "tempo": score.tempos[0].qpm if len(score.tempos) else None,
            "parts": parts, "notes": sum(p["notes"] for p in parts),
            "quarters": score.end() / TPQ, "split": split_of(piece_id),
        }
    except Exception as exc:  # noqa: BLE001
        return {"id": piece_id, "source": rel, "error": f"{type(exc).__name__}: {exc}"[:300]}


def _corpus_files(config: CorpusConfig) -> tuple[list[tuple[str, str]], list[dict]]:
    from music21 import corpus  # noqa: PLC0415

    files, skipped = [], []
    for p in sorted(str(p) for p in corpus.getCorePaths()):
        rel = p.split("/corpus/", 1)[-1]
        collection = rel.split("/")[0]
        if config.collections and collection not in config.collections:
            continue
        if p.endswith(".rntxt"):  # Roman-numeral analyses: harmony sketches, not scores
            skipped.append({"source": rel, "error": "skipped: roman-numeral analysis, not a score"})
            continue
        if collection in _NOT_REPERTOIRE:
            skipped.append({"source": rel, "error": f"skipped: {_NOT_REPERTOIRE[collection]}, not repertoire"})
            continue
        files.append((p, rel))
    if config.limit:
        files = files[: config.limit]
    return files, skipped


def build_corpus(config: CorpusConfig | None = None, progress: bool = True) -> dict:
    """Convert the corpus (reusing the per-file cache), write `table.jsonl`, return a summary."""
    from tqdm import tqdm  # noqa: PLC0415

    config = config or CorpusConfig()
    cache = Path(config.cache)
    rows_dir = cache / "rows"
    rows_dir.mkdir(parents=True, exist_ok=True)
    files, skipped = _corpus_files(config)
    start = time.perf_counter()

    def row_file(rel: str) -> Path:
        return rows_dir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", rel) + ".json")

    todo = [(p, rel) for p, rel in files if not row_file(rel).exists()]
    # Big files first so one slow quartet or folk collection does not finish the run alone.
    todo.sort(key=lambda f: -os.path.getsize(f[0]))
    jobs = [(p, rel, str(cache), config.timeout_s, config.max_tracks) for p, rel in todo]
    if jobs:
        ctx = get_context("fork")
        with ctx.Pool(config.workers, maxtasksperchild=40) as pool:
            for rows in tqdm(pool.imap_unordered(_convert_file, jobs), total=len(jobs), disable=not progress,
                             desc="corpus", unit="file"):
                row_file(rows[0]["source"]).write_text(json.dumps(rows))
    all_rows = []
    for _, rel in files:
        all_rows.extend(json.loads(row_file(rel).read_text()))
    pieces = [r for r in all_rows if "error" not in r]
    failures = [r for r in all_rows if "error" in r]
    with open(cache / "table.jsonl", "w") as fh:
        for r in pieces:
            fh.write(json.dumps(r) + "\n")
    summary = {
        "files": len(files), "skipped_files": len(skipped), "pieces": len(pieces), "failures": len(failures),
        "tracks": sum(len(r["parts"]) for r in pieces), "notes": sum(r["notes"] for r in pieces),
        "by_style": dict(Counter(r["style"] for r in pieces)),
        "by_split": dict(Counter(r["split"] for r in pieces)),
        "converted_now": len(jobs), "seconds": round(time.perf_counter() - start, 1),
        "failure_reasons": dict(Counter(r["error"].split(":")[0] for r in failures).most_common(10)),
        "failed": [(r.get("id") or r["source"], r["error"]) for r in failures],
    }
    (cache / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def load_table(cache: Path | None = None) -> list[dict]:
    """The metadata rows of every converted piece (raises CorpusError if the corpus was never built)."""
    path = Path(cache or CorpusConfig().cache) / "table.jsonl"
    if not path.exists():
        raise CorpusError(f"No corpus at {path.parent}; run `musedraft corpus build` first.")
    return [json.loads(line) for line in path.read_text().splitlines() if line]

"""Harmony benchmark: false alarms on real Bach chorales, recall and repair on injected slips, and
speed against a plain music21 approach — one run, the figures docs/harmony.md quotes.

    .venv/bin/python benchmarks/harmony.py                      # every 4-part chorale in the corpus
    .venv/bin/python benchmarks/harmony.py --limit 60           # a quick look
    .venv/bin/python benchmarks/harmony.py --drafts 22          # also: edits per note on the model's own drafts
    .venv/bin/python benchmarks/harmony.py --midi-dir drafts/   # also: edits per note on these MIDI files

Chorales are parsed from music21's corpus once and cached as MIDI (with pickups padded so bar
lines fall where Bach put them) under $MUSEDRAFT_CACHE/harmony-bench. Prints JSON, and writes the
tables to docs/benchmarks_harmony.md (or --out) for benchmarks/run_all.py to merge.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

from common import ROOT, command, machine, publish, table
from music21 import analysis, corpus, note, voiceLeading
from platformdirs import user_cache_dir
from symusic import Note, Score, Tempo, TimeSignature, Track

from musedraft.harmony import HarmonyConfig, check, repair
from musedraft.harmony.testing import from_music21, inject_errors
from musedraft.harmony.theory import DISSONANT_SEMITONES
from musedraft.notation import to_music21
from musedraft.score import load_midi

STRONG_RULES = ("clash", "out-of-key")


def cache_dir() -> Path:
    return Path(os.environ.get("MUSEDRAFT_CACHE") or user_cache_dir("musedraft")) / "harmony-bench"


def load_chorales(limit: int | None) -> list[tuple[str, Score]]:
    """Every Bach piece in the music21 corpus with exactly four parts, as (name, Score)."""
    out_dir = cache_dir() / "chorales"
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.json"
    names: dict[str, str | None] = json.loads(index.read_text()) if index.exists() else {}
    paths = sorted(str(p) for p in corpus.getComposer("bach") if str(p).endswith((".mxl", ".xml", ".krn")))
    pieces = []
    for path in paths:
        stem = Path(path).stem
        if stem not in names:
            warnings.filterwarnings("ignore")
            m21 = corpus.parse(path, forceSource=True)
            ok = hasattr(m21, "parts") and len(m21.parts) == 4
            names[stem] = f"{stem}.mid" if ok else None
            if ok:
                from_music21(m21).dump_midi(str(out_dir / f"{stem}.mid"))
            index.write_text(json.dumps(names))
        if names[stem]:
            pieces.append((stem, Score(str(out_dir / names[stem]))))
        if limit and len(pieces) >= limit:
            break
    return pieces


def bars_of(score: Score) -> int:
    ts = score.time_signatures[0]
    return max(1, -(-score.end() // (score.ticks_per_quarter * 4 * ts.numerator // ts.denominator)))


def false_alarms(pieces) -> dict:
    """Findings on Bach as he wrote it, and how many notes repair would touch there."""
    counts: Counter = Counter()
    bars = edits = notes = 0
    worst = []
    for name, score in pieces:
        found = check(score)
        counts.update(f.rule for f in found)
        bars += bars_of(score)
        worst.append((sum(f.rule in STRONG_RULES for f in found), name))
        edits += len(repair(score).edits)
        notes += sum(len(t.notes) for t in score.tracks)
    per100 = {rule: round(100 * n / bars, 2) for rule, n in sorted(counts.items())}
    strong = sum(counts[r] for r in STRONG_RULES)
    return {"pieces": len(pieces), "bars": bars, "findings_per_100_bars": per100,
            "clash_or_out_of_key_per_100_bars": round(100 * strong / bars, 2),
            "repair_edits_per_note_pct": round(100 * edits / max(1, notes), 2),
            "worst_pieces": sorted(worst, reverse=True)[:5]}


def _note_at(score: Score, track: int, start: int):
    for n in score.tracks[track].notes:
        if n.time == start:
            return n
    return None


def _dissonant_tracks(score: Score, track: int, start: int, pitch: int) -> set[tuple[int, int]]:
    """(track, interval class) of the other voices that clash with `pitch` at `start`."""
    out = set()
    for t, tr in enumerate(score.tracks):
        if t == track:
            continue
        for n in tr.notes:
            if n.time <= start < n.end and abs(n.pitch - pitch) % 12 in DISSONANT_SEMITONES - {5}:
                out.add((t, abs(n.pitch - pitch) % 12))
    return out


def recall_and_repair(pieces, fraction: float, seed: int) -> dict:
    injected_total = flagged = blamed = 0
    consonant = restored = dropped = no_finding_after = repaired_flagged = 0
    by_rule: Counter = Counter()
    edits = notes = 0
    for n, (_, score) in enumerate(pieces):
        bad, slips = inject_errors(score, fraction, seed=seed + n)
        found = check(bad)
        result = repair(bad)
        edits += len(result.edits)
        notes += sum(len(t.notes) for t in bad.tracks)
        for s in slips:
            injected_total += 1
            subject = [f for f in found if f.track == s.track and f.note_start == s.start]
            partner = [f for f in found if f.other_track == s.track and f.other_start == s.start]
            if not (subject or partner):
                continue
            flagged += 1
            blamed += bool(subject)
            by_rule.update({f.rule for f in subject + partner})
            repaired_flagged += 1
            after = _note_at(result.score, s.track, s.start)
            if after is None:
                dropped += 1
                continue
            restored += after.pitch == s.original
            clashes_now = _dissonant_tracks(result.score, s.track, s.start, after.pitch)
            clashes_orig = _dissonant_tracks(score, s.track, s.start, s.original)
            consonant += clashes_now <= clashes_orig
            no_finding_after += not any((f.track == s.track and f.note_start == s.start)
                                        or (f.other_track == s.track and f.other_start == s.start)
                                        for f in result.findings_after)
    pct = lambda a, b: round(100 * a / max(1, b), 1)  # noqa: E731
    return {
        "injected": injected_total, "flagged_pct": pct(flagged, injected_total),
        "flagged_as_the_offending_note_pct": pct(blamed, injected_total),
        "flagged_by_rule": dict(by_rule.most_common()),
        "repair_consonant_again_pct": pct(consonant, repaired_flagged),
        "repair_no_finding_left_pct": pct(no_finding_after, repaired_flagged),
        "repair_back_at_original_pct": pct(restored, repaired_flagged),
        "repair_dropped": dropped, "edits_per_note_pct": pct(edits, notes),
    }


def speed_piece(pieces, bars: int = 64) -> Score:
    """Four-part chorales in 4/4 laid end to end until `bars` bars, with 5% slips injected."""
    out = Score(480)
    out.time_signatures.append(TimeSignature(0, 4, 4))
    out.tempos.append(Tempo(0, 80))
    for name in ("Soprano", "Alto", "Tenor", "Bass"):
        out.tracks.append(Track(name=name, program=52))
    bar = 480 * 4
    offset = 0
    for _, s in pieces:
        ts = s.time_signatures[0]
        if (ts.numerator, ts.denominator) != (4, 4) or len(s.time_signatures) > 1:
            continue
        length = bars_of(s) * bar
        for t, tr in enumerate(s.tracks):
            for n in tr.notes:
                if offset + n.time < bars * bar:
                    out.tracks[t].notes.append(Note(offset + n.time, min(n.duration, bars * bar - offset - n.time), n.pitch, 80))
        offset += length
        if offset >= bars * bar:
            break
    return inject_errors(out, 0.05, seed=64)[0]


def plain_music21(score: Score) -> dict:
    """The same checks the straightforward music21 way: chordify, then test every chord."""
    t0 = time.perf_counter()
    m21 = to_music21(score)
    t1 = time.perf_counter()
    problems = 0
    chords = m21.chordify().flatten().notes
    key_finder = analysis.discrete.KrumhanslSchmuckler()
    window_keys = {}
    for c in chords:
        measure = c.measureNumber or 0
        window = measure // 4
        if window not in window_keys:
            window_keys[window] = key_finder.getSolution(
                m21.measures(max(0, 4 * window - 1), 4 * window + 4).flatten().notes.stream())
        scale_pcs = {p.pitchClass for p in window_keys[window].getScale("major" if window_keys[window].mode == "major" else "minor").getPitches()}
        if c.beatStrength >= 0.5 and not c.isConsonant():
            problems += 1
        problems += sum(p.pitchClass not in scale_pcs for p in c.pitches)
    parts = [list(p.flatten().notes) for p in m21.parts]
    for a in range(len(parts)):
        for b in range(a + 1, len(parts)):
            lower = {float(n.offset): n for n in parts[b]}
            upper_notes = parts[a]
            for n1, n2 in zip(upper_notes, upper_notes[1:], strict=False):
                l1, l2 = lower.get(float(n1.offset)), lower.get(float(n2.offset))
                if l1 is None or l2 is None or not all(isinstance(x, note.Note) for x in (n1, n2, l1, l2)):
                    continue
                q = voiceLeading.VoiceLeadingQuartet(n1, n2, l1, l2)
                problems += q.parallelFifth() or q.parallelOctave()
    t2 = time.perf_counter()
    return {"to_music21_s": round(t1 - t0, 4), "chordify_and_tests_s": round(t2 - t1, 4),
            "total_s": round(t2 - t0, 4), "verticals": len(chords), "problems": problems}


def _cold(path: Path) -> float:
    """check + repair of a MIDI file in a fresh Python, imports (music21...) included."""
    code = ("import time; t = time.perf_counter(); from musedraft.harmony import check, repair; "
            f"check({str(path)!r}); repair({str(path)!r}); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def speed(pieces, runs: int = 5) -> dict:
    piece = speed_piece(pieces)
    n_notes = sum(len(t.notes) for t in piece.tracks)
    path = cache_dir() / "speed_piece.mid"
    piece.dump_midi(str(path))
    t0 = time.perf_counter()
    check(piece)
    repair(piece)
    first = time.perf_counter() - t0  # caches warmed by other pieces only
    timings = []
    for _ in range(runs):
        t0 = time.perf_counter()
        found = check(piece)
        t1 = time.perf_counter()
        result = repair(piece)
        t2 = time.perf_counter()
        timings.append((t1 - t0, t2 - t1))
    ours = statistics.median(c + r for c, r in timings)
    plain = [plain_music21(piece) for _ in range(max(1, runs // 2))]
    plain_total = statistics.median(p["total_s"] for p in plain)
    plain_tests = statistics.median(p["chordify_and_tests_s"] for p in plain)
    return {
        "piece": f"{bars_of(piece)} bars, {len(piece.tracks)} tracks, {n_notes} notes, 5% slips",
        "findings": len(found), "edits": len(result.edits),
        "ours_check_s": round(statistics.median(c for c, _ in timings), 4),
        "ours_repair_s": round(statistics.median(r for _, r in timings), 4),
        "ours_check_plus_repair_s": round(ours, 4),
        "ours_first_call_on_this_piece_s": round(first, 4),
        "ours_cold_new_process_with_imports_s": round(_cold(path), 3),
        "plain_music21": plain[0] | {"total_s": round(plain_total, 4), "chordify_and_tests_s": round(plain_tests, 4)},
        "speedup_vs_plain_total": round(plain_total / ours, 1),
        "speedup_vs_plain_chordify_and_tests_only": round(plain_tests / ours, 1),
    }


def model_output(midi_dir: Path, config: HarmonyConfig) -> dict:
    files = sorted(midi_dir.rglob("*.mid")) + sorted(midi_dir.rglob("*.midi"))
    edits = notes = 0
    per_file = []
    for path in files:
        score = load_midi(path)
        result = repair(score, config)
        n = sum(len(t.notes) for t in score.tracks if not t.is_drum)
        edits += len(result.edits)
        notes += n
        per_file.append((path.name, len(result.edits), n))
    return {"files": len(files), "notes": notes, "edits": edits,
            "edited_notes_pct": round(100 * edits / max(1, notes), 2), "per_file": per_file[:20]}


def model_drafts(n: int, model: str | None) -> dict:
    """Repair on the model's own output: n drafts as compose() writes them before repair, one per
    scene preset in turn (16 bars, seeds 100...), each repaired with its style's HarmonyConfig."""
    from collections import Counter  # noqa: PLC0415

    from musedraft import compose, load_model  # noqa: PLC0415
    from musedraft.presets import scenes  # noqa: PLC0415

    composer = load_model(model)
    presets = scenes()
    edits = notes = 0
    rules: Counter = Counter()
    for i in range(n):
        scene = presets[i % len(presets)]
        draft = compose(scene=scene.name, bars=16, seed=100 + i, repair=False, model=composer)
        result = repair(draft.score, HarmonyConfig.for_style(scene.style))
        edits += len(result.edits)
        notes += sum(len(t.notes) for t in draft.score.tracks if not t.is_drum)
        rules.update(e.rule for e in result.edits)
    return {"drafts": n, "model": composer.model_id, "notes": notes, "edits": edits,
            "edited_notes_pct": round(100 * edits / max(1, notes), 2), "edits_by_rule": dict(rules.most_common())}


def markdown(report: dict) -> str:
    """The figures as the section docs/benchmarks.md merges."""
    out = ["## Harmony check and repair", "", f"`{command()}` — {machine()}.", ""]
    if "false_alarms" in report:
        fa = report["false_alarms"]
        rows = [[rule, n] for rule, n in fa["findings_per_100_bars"].items()]
        out += [f"False alarms on {fa['pieces']} four-part Bach chorales ({fa['bars']} bars), findings per 100 bars; "
                f"clash + out-of-key **{fa['clash_or_out_of_key_per_100_bars']}** (target < 2); repair would edit "
                f"{fa['repair_edits_per_note_pct']}% of their notes.", "", table(["rule", "per 100 bars"], rows), ""]
    if "recall" in report:
        r = report["recall"]
        out += [f"{r['injected']} injected slips (5% of the notes moved 1-2 semitones into a clash):", "",
                table(["flagged", "as the offending note", "consonant after repair", "back at the original pitch",
                       "dropped"],
                      [[f"{r['flagged_pct']}%", f"{r['flagged_as_the_offending_note_pct']}%",
                        f"{r['repair_consonant_again_pct']}%", f"{r['repair_back_at_original_pct']}%",
                        r["repair_dropped"]]]), ""]
    if "speed" in report:
        sp = report["speed"]
        out += [f"Speed on {sp['piece']}, median of 5 (seconds):", "",
                table(["", "seconds"], [
                    ["check + repair", sp["ours_check_plus_repair_s"]],
                    ["first call on this piece", sp["ours_first_call_on_this_piece_s"]],
                    ["fresh process, imports included", sp["ours_cold_new_process_with_imports_s"]],
                    ["plain music21 (to_music21, chordify, per-chord tests, VoiceLeadingQuartet)",
                     sp["plain_music21"]["total_s"]],
                    ["speed-up", f"{sp['speedup_vs_plain_total']}x"]]), ""]
    if "model_drafts" in report:
        md = report["model_drafts"]
        out += [f"Repair on the model's own output ({md['model']}: {md['drafts']} drafts, one per scene preset in turn, "
                f"16 bars, {md['notes']} notes): **{md['edited_notes_pct']}%** of notes edited (target at most 5%); "
                f"edits by rule: {md['edits_by_rule']}.", ""]
    if "model_output" in report:
        mo = report["model_output"]
        out += [f"Repair on {mo['files']} MIDI files ({mo['notes']} notes): {mo['edited_notes_pct']}% of notes edited.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="use only the first N chorales")
    ap.add_argument("--fraction", type=float, default=0.05, help="share of notes to slip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--drafts", type=int, default=0, help="also compose this many drafts and report repair edits per note")
    ap.add_argument("--model", default=None, help="checkpoint folder for --drafts (default: the shipped model)")
    ap.add_argument("--midi-dir", type=Path, help="also report repair edits per note on these MIDI files")
    ap.add_argument("--style", default=None, help="corpus style for --midi-dir (HarmonyConfig.for_style)")
    ap.add_argument("--skip", nargs="*", default=(), choices=("false", "recall", "speed"))
    ap.add_argument("--json", type=Path, help="write the figures here too")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks_harmony.md", help="markdown section")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    report: dict = {}
    t0 = time.perf_counter()
    pieces = load_chorales(args.limit)
    report["chorales_loaded_s"] = round(time.perf_counter() - t0, 1)
    if "false" not in args.skip:
        report["false_alarms"] = false_alarms(pieces)
        print(json.dumps({"false_alarms": report["false_alarms"]}, indent=1), flush=True)
    if "recall" not in args.skip:
        report["recall"] = recall_and_repair(pieces, args.fraction, args.seed)
        print(json.dumps({"recall": report["recall"]}, indent=1), flush=True)
    if "speed" not in args.skip:
        report["speed"] = speed(pieces)
        print(json.dumps({"speed": report["speed"]}, indent=1), flush=True)
    if args.drafts:
        report["model_drafts"] = model_drafts(args.drafts, args.model)
        print(json.dumps({"model_drafts": report["model_drafts"]}, indent=1), flush=True)
    if args.midi_dir:
        report["model_output"] = model_output(args.midi_dir, HarmonyConfig.for_style(args.style))
        print(json.dumps({"model_output": report["model_output"]}, indent=1), flush=True)
    report["python"] = sys.version.split()[0]
    report["cpu_count"] = os.cpu_count()
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    publish("harmony", markdown(report), str(args.out))
    return report


if __name__ == "__main__":
    main()

"""Are the request's controls honoured? Compose N drafts with varied requests and check each one.

Checks per draft: exact bar count, time signature, tempo, only the requested instruments (each
inside its range, and each sounding in at least half the bars), and music21's key analysis of the
result against the requested key.
Writes docs/benchmarks_controls.md.

    python benchmarks/controls.py --n 50 [--model FOLDER] [--seed S]

--seed draws other requests and draft seeds: a second sample, to tell a change from chance.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from pathlib import Path

import musedraft
from musedraft.instruments import get_instrument
from musedraft.score import bar_count, tempo_bpm, ticks_per_bar, time_signature

KEYS = ["C major", "G major", "D major", "A major", "F major", "Bb major", "Eb major", "E major",
        "A minor", "E minor", "D minor", "G minor", "C minor", "F# minor", "B minor", "C# minor"]
METRES = ["4/4", "3/4", "2/4", "6/8"]
ENSEMBLES = [["violin", "viola", "cello"], ["flute", "clarinet", "bassoon"], ["soprano", "alto", "tenor", "bass voice"],
             ["violin", "violin", "viola", "cello"], ["oboe", "french horn", "cello"], ["flute", "harp"]]
STYLES = ["chorale", "classical", "renaissance", "romantic"]


def music21_key(score) -> str:
    from musedraft.notation import to_music21  # noqa: PLC0415  (music21 only for this check)

    k = to_music21(score).analyze("key")
    return f"{k.tonic.name.replace('-', 'b')} {k.mode}"


def same_key(a: str, b: str) -> bool:
    from musedraft.tokenizer import parse_key  # noqa: PLC0415

    return parse_key(a) == parse_key(b)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--bars", type=int, default=16)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default="docs/benchmarks_controls.md")
    ap.add_argument("--seed", type=int, default=0, help="requests and draft seeds (draft i gets seed + i)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    composer = musedraft.load_model(args.model)
    ok = {"bars": 0, "time signature": 0, "tempo": 0, "instruments": 0, "each instrument heard in half the bars": 0,
          "ranges": 0, "key (music21)": 0}
    misses, seconds = [], 0.0
    asked, heard = Counter(), Counter()  # ensemble -> drafts, and drafts whose key music21 hears
    for i in range(args.n):
        key, ts, inst, style = rng.choice(KEYS), rng.choice(METRES), rng.choice(ENSEMBLES), rng.choice(STYLES)
        tempo = rng.randrange(60, 150)
        t = time.perf_counter()
        d = musedraft.compose(style, key=key, tempo=tempo, time_signature=ts, instruments=inst, bars=args.bars,
                              seed=args.seed + i, repair=True, model=composer)
        seconds += time.perf_counter() - t
        s = d.score
        ok["bars"] += bar_count(s) == args.bars
        ok["time signature"] += "{}/{}".format(*time_signature(s)) == ts
        ok["tempo"] += abs(tempo_bpm(s) - tempo) < 0.01
        ok["instruments"] += [t.program for t in s.tracks] == [get_instrument(n).program for n in inst]
        bar = ticks_per_bar(s)
        ok["each instrument heard in half the bars"] += all(
            2 * len({b for n in t.notes for b in range(n.time // bar, (n.end - 1) // bar + 1)}) >= args.bars
            for t in s.tracks)
        ok["ranges"] += all(get_instrument(n).low <= note.pitch <= get_instrument(n).high
                            for n, t in zip(inst, s.tracks, strict=True) for note in t.notes)
        found = music21_key(s)
        hit = same_key(found, key)
        ok["key (music21)"] += hit
        asked[", ".join(inst)] += 1
        heard[", ".join(inst)] += hit
        if not hit:
            misses.append(f"{key} → {found}")
    lines = [f"## Controls honoured ({args.n} drafts, {args.bars} bars, varied key/metre/tempo/instruments/style)", "",
             "| control | drafts that honour it |", "|---|---|"]
    lines += [f"| {k} | {v}/{args.n} ({100 * v / args.n:.0f}%) |" for k, v in ok.items()]
    lines += ["", "| ensemble | key heard |", "|---|---|"]
    lines += [f"| {e} | {heard[e]}/{n} |" for e, n in sorted(asked.items())]
    lines += ["", f"Mean compose time (generate + repair): {seconds / args.n:.2f} s per draft.",
              f"Key misses: {', '.join(misses) if misses else 'none'}.", "",
              f"Command: `python benchmarks/controls.py --n {args.n}"
              f"{f' --seed {args.seed}' if args.seed else ''}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()

"""Generate many drafts in one go and rank them: every scene × several seeds, one CSV summary.

    python examples/batch_generate.py --scenes daily,sad,tense --seeds 8 --bars 16 --out batch/

The model loads on the first draft and is cached for the rest. The CSV lists, per draft, the harmony edits
the repair made and a few metrics (musedraft.metrics), so you can sort before you listen.
"""

import argparse
import csv
import time
from pathlib import Path

import musedraft
from musedraft.errors import MusedraftError
from musedraft.metrics import groove_consistency, notes_per_bar, pitch_class_entropy, scale_consistency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", default="daily,sad,tense", help="comma-separated presets (`musedraft scenes`)")
    parser.add_argument("--seeds", type=int, default=4, help="drafts per scene (seeds 0..N-1)")
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--loop", action="store_true", help="write loopable background music")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: $MUSEDRAFT_MODEL or the shipped model)")
    parser.add_argument("--out", type=Path, default=Path("batch"))
    parser.add_argument("--force", action="store_true", help="overwrite drafts already in --out")
    parser.add_argument("--no-audio", action="store_true", help="MIDI, MusicXML, PNG and JSON only (much faster)")
    args = parser.parse_args()

    rows = []
    for scene in args.scenes.split(","):
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            draft = musedraft.compose(scene=scene.strip(), bars=args.bars, seed=seed, loop=args.loop, model=args.model)
            folder = args.out / scene.strip() / f"seed-{seed}"
            draft.save(folder, force=args.force, audio=not args.no_audio)
            rows.append({
                "scene": scene.strip(), "seed": seed, "key": draft.key, "folder": folder.as_posix(),
                "notes": sum(len(t.notes) for t in draft.score.tracks),
                "edits": len(draft.repair["edits"]), "findings_after": len(draft.repair["findings_after"]),
                "pitch_class_entropy": round(pitch_class_entropy(draft.score), 3),
                "scale_consistency": round(scale_consistency(draft.score), 3),
                "groove_consistency": round(groove_consistency(draft.score), 3),
                "notes_per_bar": round(notes_per_bar(draft.score), 2),
                "seconds": round(time.perf_counter() - t0, 2),
            })
            print(f"{scene:10s} seed {seed:3d}: {rows[-1]['notes']:4d} notes, {rows[-1]['edits']:3d} edits, "
                  f"{rows[-1]['seconds']:.1f} s")

    summary = args.out / "summary.csv"
    with open(summary, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["scene"], r["findings_after"], -r["scale_consistency"])))
    print(f"wrote {len(rows)} drafts and {summary}")


if __name__ == "__main__":
    try:
        main()
    except MusedraftError as exc:  # a message to act on (a bad file, an existing output), not a traceback
        raise SystemExit(f"error: {exc}") from None

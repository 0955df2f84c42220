"""Continue a theme of your own: musedraft keeps your bars and writes the next ones.

    python examples/continue_a_primer.py my_theme.mid --bars 8 --out continued/
    python examples/continue_a_primer.py               # no file: continues a built-in 2-bar theme

Your tracks keep their names and instruments; the continuation is in your key, tempo and metre
and ends on a cadence. Set MUSEDRAFT_MODEL to use another checkpoint than the shipped one.
"""

import argparse
from pathlib import Path

from symusic import Note, Score, Tempo, TimeSignature, Track

import musedraft
from musedraft.errors import MusedraftError


def built_in_theme() -> Score:
    """Two bars in D major for violin and cello: a rising melody over a walking bass."""
    score = Score(480)
    score.time_signatures.append(TimeSignature(0, 4, 4))
    score.tempos.append(Tempo(0, 96))
    melody = Track(name="Violin", program=40)
    bass = Track(name="Cello", program=42)
    for i, pitch in enumerate([74, 76, 78, 79, 81, 79, 78, 76]):  # D E F# G A G F# E, in quarters
        melody.notes.append(Note(i * 480, 480, pitch, 84))
    for i, pitch in enumerate([50, 57, 55, 45]):  # D A G A, in half notes
        bass.notes.append(Note(i * 960, 960, pitch, 72))
    score.tracks.extend([melody, bass])
    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("primer", nargs="?", type=Path, help="a MIDI file (default: a built-in theme)")
    parser.add_argument("--bars", type=int, default=8, help="bars to add")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("continued"))
    parser.add_argument("--force", action="store_true", help="overwrite drafts already in --out")
    parser.add_argument("--no-audio", action="store_true", help="skip the FluidSynth preview")
    args = parser.parse_args()

    primer = args.primer or built_in_theme()  # a path, MIDI bytes, a Score or a Draft all work
    draft = musedraft.continue_midi(primer, bars=args.bars, seed=args.seed)

    # The draft holds your bars followed by the new ones; draft.repair lists any harmony fixes.
    print(f"{draft.key}, {draft.request['bars']} bars in all, {len(draft.repair['edits'])} harmony edits")
    for kind, path in draft.save(args.out, force=args.force, audio=not args.no_audio).items():
        print(f"{kind:9s} {path}")


if __name__ == "__main__":
    try:
        main()
    except MusedraftError as exc:  # a message to act on (a bad file, an existing output), not a traceback
        raise SystemExit(f"error: {exc}") from None

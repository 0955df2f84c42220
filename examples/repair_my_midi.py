"""Check a MIDI file's harmony, fix what is found with the smallest pitch changes, and save it.

    python examples/repair_my_midi.py song.mid -o song_fixed.mid
    python examples/repair_my_midi.py                  # no file: repairs a built-in flawed example

Rhythm is never changed; each edit says which note moved where and why. Running the repair again
on its own output changes nothing.
"""

import argparse
import json
from pathlib import Path

from symusic import Note, Score, TimeSignature, Track

import musedraft
from musedraft.errors import MusedraftError
from musedraft.export import write_midi
from musedraft.files import atomic_path, check_writable
from musedraft.harmony import format_findings


def flawed_example() -> Score:
    """Four bars in C major with a clash (bar 2) and parallel fifths (bars 3-4)."""
    score = Score(480)
    score.time_signatures.append(TimeSignature(0, 4, 4))
    parts = {  # whole notes, top voice first
        "Soprano": [72, 72, 74, 72],
        "Alto": [67, 66, 67, 67],  # F#4 over the bass F3 in bar 2: a clash
        "Tenor": [64, 64, 62, 64],
        "Bass": [48, 53, 55, 53],  # F3-G3-F3 under the soprano C5-D5-C5: parallel fifths into bars 3 and 4
    }
    for name, pitches in parts.items():
        track = Track(name=name, program=52)
        for bar, pitch in enumerate(pitches):
            track.notes.append(Note(bar * 1920, 1920, pitch, 80))
        score.tracks.append(track)
    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("midi", nargs="?", type=Path, help="the MIDI file to repair (default: a built-in example)")
    parser.add_argument("-o", "--output", type=Path, default=Path("repaired.mid"))
    parser.add_argument("--force", action="store_true", help="overwrite the output and its .json report")
    args = parser.parse_args()
    report = args.output.with_suffix(".json")
    if args.midi and args.output.resolve() == args.midi.resolve():
        parser.error("the output would replace the file being repaired; give another -o")
    for path in (args.output, report):  # before any work, as the musedraft CLI does
        check_writable(path, args.force)

    # load_midi validates untrusted files: a broken one raises InvalidMidiError with the reason
    score = musedraft.load_midi(args.midi) if args.midi else flawed_example()

    print("Before:")
    print(format_findings(musedraft.check(score)))

    result = musedraft.repair(score)  # a new score; the input is untouched
    print(f"\n{len(result.edits)} edits:")
    for edit in result.edits:
        print(f"  bar {edit.bar}, beat {edit.beat:g}: {edit.reason}")
    print("\nAfter:")
    print(format_findings(result.findings_after))

    write_midi(result.score, args.output, force=args.force)  # written atomically: whole or not at all
    with atomic_path(report, force=args.force) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=1))
    print(f"\nwrote {args.output} and {report}")


if __name__ == "__main__":
    try:
        main()
    except MusedraftError as exc:  # a message to act on (a bad file, an existing output), not a traceback
        raise SystemExit(f"error: {exc}") from None

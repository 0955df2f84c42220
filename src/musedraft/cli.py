"""The `musedraft` command: one subcommand per public function; heavy modules load only when run.

Exit codes: 0 success, 1 a musedraft error (the message says what to do), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

EXAMPLES = """examples:
  musedraft compose --scene sad --key "D minor" --bars 32 --loop --out bgm/sad
  musedraft compose --style chorale --instruments soprano,alto,tenor,"bass voice" --bars 16 --seed 3 --out out/
  musedraft continue my_theme.mid --bars 16 --out out/
  musedraft regenerate out/draft.mid --bars 9-12 --seed 5 --out out2/
  musedraft check song.mid --json
  musedraft repair song.mid -o fixed.mid
  musedraft render song.mid -o song.wav
  musedraft scenes
  musedraft pack examples/vn_bgm_pack/scenes.toml --out bgm/
  musedraft evaluate --metrics --drafts 20 --out docs/evaluation.md
"""


def _bars_range(text: str) -> tuple[int, int]:
    """'9-12' (or with an en dash, as a score's text has it), or '9' for bar 9 alone.

    >>> _bars_range("9-12"), _bars_range("9–12"), _bars_range(" 9 ")
    ((9, 12), (9, 12), (9, 9))
    """
    try:
        ends = [int(x) for x in text.replace("–", "-").split("-")]
    except ValueError:
        ends = []
    if len(ends) not in (1, 2):
        raise argparse.ArgumentTypeError(f"bars must look like 9-12 (or 9 for one bar), not {text!r}")
    return ends[0], ends[-1]


def _instruments(text: str) -> list[str | int]:
    return [int(x) if x.strip().isdigit() else x.strip() for x in text.split(",") if x.strip()]


def _add_sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="same seed, same notes (default 0)")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the generator's)")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    p.add_argument("--no-repair", action="store_true", help="skip the harmony repair step")


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="draft", help="folder for draft.mid/.musicxml/.wav/.ogg/.json/.png")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--no-audio", action="store_true", help="write MIDI, MusicXML, JSON and PNG only")
    p.add_argument("--soundfont", default=None, help="a .sf2/.sf3 General MIDI sound font")


def _add_harmony_style(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", default=None,
                   help="judge by this style's rules, as compose() repairs its drafts (a draft's style is in its draft.json); "
                        "default: the chorale's, the strictest")


def _harmony_config(style: str | None):
    from musedraft.corpus import check_style  # noqa: PLC0415
    from musedraft.harmony import HarmonyConfig  # noqa: PLC0415

    return HarmonyConfig.for_style(style if style is None else check_style(style))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="musedraft", description="Draft, check, repair and render multi-track music.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compose", help="compose a new draft", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--style", help="chorale, renaissance, madrigal, medieval, classical, romantic, folk")
    p.add_argument("--scene", help="a visual-novel scene preset (see `musedraft scenes`)")
    p.add_argument("--key", help='e.g. "D major", "F# minor"')
    p.add_argument("--tempo", type=float, help="quarter notes per minute")
    p.add_argument("--time-signature", help='e.g. "3/4"')
    p.add_argument("--instruments", type=_instruments,
                   help="comma-separated names (violin, 'electric piano', 'Tubular Bells': ours or General MIDI's) "
                        "or GM programs 0-127")
    p.add_argument("--bars", type=int, default=16)
    p.add_argument("--loop", action="store_true", help="end so that the piece loops seamlessly")
    p.add_argument("--candidates", type=int, default=1,
                   help="several drafts with seeds seed, seed+1, ... generated as one batch (into OUT/seed-N/)")
    _add_sampling(p)
    _add_output(p)

    p = sub.add_parser("continue", help="continue a MIDI primer",
                       description="Continue a MIDI primer by --bars bars, ending on a cadence. Its pitched tracks "
                                   "go on (up to 8); a drum kit repeats the primer's groove through the new bars.")
    p.add_argument("primer", type=Path)
    p.add_argument("--bars", type=int, default=8)
    p.add_argument("--style", default=None)
    _add_sampling(p)
    _add_output(p)

    p = sub.add_parser("regenerate", help="rewrite a range of bars, keeping what comes before and after")
    p.add_argument("midi", type=Path)
    p.add_argument("--bars", type=_bars_range, required=True, help="first-last, 1-based, e.g. 9-12; or one bar, e.g. 9")
    p.add_argument("--style", default=None)
    p.add_argument("--loop", action=argparse.BooleanOptionalAction, default=None,
                   help="the piece loops (the last bar leads into the first); default: as the file says (a saved loop draft's markers)")
    _add_sampling(p)
    _add_output(p)

    p = sub.add_parser("check", help="list dissonance and voice-leading findings of a MIDI file")
    p.add_argument("midi", type=Path)
    p.add_argument("--json", action="store_true")
    _add_harmony_style(p)
    p.add_argument("--loop", action=argparse.BooleanOptionalAction, default=None,
                   help="the music loops: check the join from its last bar into its first too; default: as the file says (a saved loop draft's markers)")

    p = sub.add_parser("repair", help="fix the findings with the smallest edits")
    p.add_argument("midi", type=Path)
    _add_harmony_style(p)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--force", action="store_true")
    p.add_argument("--json", action="store_true", help="print the edit report as JSON")
    p.add_argument("--bars", type=_bars_range, default=None,
                   help="first-last, 1-based, e.g. 9-16: edit only notes struck in these bars, keep the rest as written")
    p.add_argument("--loop", action=argparse.BooleanOptionalAction, default=None,
                   help="the music loops: mend the join from its last bar into its first too (on the last bar's notes); "
                        "default: as the file says (a saved loop draft's markers)")

    p = sub.add_parser("render", help="render a MIDI file (with at least one pitched part) to audio with FluidSynth")
    p.add_argument("midi", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help=".wav, .ogg or .flac")
    p.add_argument("--soundfont", default=None)
    p.add_argument("--force", action="store_true")

    sub.add_parser("scenes", help="list the visual-novel scene presets")

    p = sub.add_parser("pack", help="compose a visual-novel BGM set from a TOML file, with an audition page")
    p.add_argument("config", type=Path, help="the pack file (see examples/vn_bgm_pack/scenes.toml)")
    p.add_argument("--out", type=Path, default=Path("bgm"), help="pack folder: index.html, pack.json, <scene>/seed-N/")
    p.add_argument("--force", action="store_true", help="overwrite an existing pack")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    p.add_argument("--no-audio", action="store_true", help="skip the OGG/WAV previews")
    p.add_argument("--no-repair", action="store_true", help="skip the harmony repair step")
    p.add_argument("--soundfont", default=None, help="a .sf2/.sf3 General MIDI sound font")

    p = sub.add_parser("corpus", help="build the training corpus from music21's core corpus")
    csub = p.add_subparsers(dest="corpus_command", required=True)
    b = csub.add_parser("build", help="convert the corpus to MIDI + metadata (cached), then tokenize it")
    b.add_argument("--cache", type=Path, default=None, help="cache folder (default: the user cache dir)")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--limit", type=int, default=0, help="at most this many source files")
    b.add_argument("--collections", default="", help="comma-separated corpus folders, e.g. bach,haydn")
    h = csub.add_parser("habits", help="measure each style's habits (line ambitus, note lengths, pitch classes, silent beats) on the train split into a checkpoint")
    h.add_argument("--cache", type=Path, default=None, help="cache folder (default: the user cache dir)")
    h.add_argument("--out", type=Path, required=True, help="checkpoint folder to write habits.json into")

    p = sub.add_parser("train", help="train a model on the token shards")
    p.add_argument("--shards", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path("runs/default"))
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--minutes", type=float, default=0.0, help="stop (and save) after this wall time")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--context", type=int, default=512)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--heads", type=int, default=5)
    p.add_argument("--dim", type=int, default=160)
    p.add_argument("--fim-rate", type=float, default=0.4, help="share of windows in fill-in-the-middle order")
    p.add_argument("--cpu-bf16", action="store_true", help="bf16 autocast on the CPU (AVX512-BF16/AMX)")
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the windows each step draws: a second fine-tune with another seed sees other windows")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--init", type=Path, default=None,
                   help="fine-tune: start from this checkpoint's weights and architecture (fresh optimiser)")

    p = sub.add_parser("evaluate", help="held-out likelihood of a model against a Kneser-Ney n-gram")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    p.add_argument("--shards", type=Path, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--metrics", action="store_true",
                   help="compare drafts with the held-out pieces of each style (musedraft.metrics) and write --out")
    p.add_argument("--styles", default=None, help="comma-separated styles for --metrics (default: all with held-out pieces)")
    p.add_argument("--drafts", type=int, default=20, help="drafts per style for --metrics")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=None, help="cache folder holding corpus/ (default: the user cache dir)")
    p.add_argument("--out", type=Path, default=Path("docs/evaluation.md"), help="report written by --metrics")
    p.add_argument("--force", action="store_true", help="overwrite the report")
    return parser


def _save(draft, folder: Path, args) -> None:
    files = draft.save(folder, force=args.force, audio=not args.no_audio, soundfont=args.soundfont)
    for kind, path in files.items():
        print(f"{kind:9s} {path}")


def _check_out(args, folders: list[Path]) -> None:
    """Refuse an output folder, or a named sound font that is not one, before composing, not after."""
    from musedraft.draft import output_paths  # noqa: PLC0415
    from musedraft.files import check_writable  # noqa: PLC0415

    _check_soundfont(args)
    for folder in folders:
        for path in output_paths(folder, audio=not args.no_audio).values():
            check_writable(path, args.force)


def _cmd_compose(args) -> None:
    import musedraft  # noqa: PLC0415

    out = Path(args.out)
    folders = [out] if args.candidates <= 1 else [out / f"seed-{args.seed + k}" for k in range(args.candidates)]
    _check_out(args, folders)
    drafts = musedraft.compose_candidates(args.candidates, args.style, scene=args.scene, key=args.key,
                                          tempo=args.tempo, time_signature=args.time_signature,
                                          instruments=args.instruments, bars=args.bars, seed=args.seed,
                                          loop=args.loop, repair=not args.no_repair,
                                          temperature=args.temperature, model=args.model)
    for draft, folder in zip(drafts, folders, strict=True):  # draft k has seed args.seed + k
        _save(draft, folder, args)


def _cmd_continue(args) -> None:
    import musedraft  # noqa: PLC0415

    _check_out(args, [Path(args.out)])
    _save(musedraft.continue_midi(args.primer, bars=args.bars, style=args.style, seed=args.seed,
                                  repair=not args.no_repair, temperature=args.temperature, model=args.model),
          Path(args.out), args)


def _cmd_regenerate(args) -> None:
    import musedraft  # noqa: PLC0415

    _check_out(args, [Path(args.out)])
    _save(musedraft.regenerate(args.midi, bars=args.bars, style=args.style, seed=args.seed,
                               repair=not args.no_repair, temperature=args.temperature, model=args.model, loop=args.loop),
          Path(args.out), args)


def _cmd_check(args) -> None:
    from musedraft.harmony import check, format_findings  # noqa: PLC0415

    findings = check(args.midi, _harmony_config(args.style), loop=args.loop)
    print(json.dumps([f.to_dict() for f in findings], indent=1) if args.json else format_findings(findings))


def _cmd_repair(args) -> None:
    from musedraft.export import write_midi  # noqa: PLC0415
    from musedraft.files import check_writable  # noqa: PLC0415
    from musedraft.harmony import repair  # noqa: PLC0415
    from musedraft.score import load_midi  # noqa: PLC0415

    check_writable(args.output, args.force)
    result = repair(load_midi(args.midi), _harmony_config(args.style), bars=args.bars, loop=args.loop)
    write_midi(result.score, args.output, force=args.force)
    if args.json:
        print(json.dumps({"edits": [e.to_dict() for e in result.edits],
                          "findings_after": [f.to_dict() for f in result.findings_after]}, indent=1))
    else:
        print(f"{len(result.edits)} edits, {len(result.findings_before)} findings before, "
              f"{len(result.findings_after)} after; wrote {args.output}")


def _cmd_render(args) -> None:
    from musedraft.audio import render_file  # noqa: PLC0415

    path = render_file(args.midi, args.output, soundfont=args.soundfont, force=args.force)
    print(f"wrote {path}")


def _cmd_scenes(args) -> None:
    from musedraft.presets import scenes  # noqa: PLC0415

    for s in scenes():
        print(f"{s.name:10s} {s.style:11s} {s.mode:5s} {s.tempo[0]}-{s.tempo[1]} BPM {s.time_signature:4s} "
              f"{', '.join(s.instruments)} — {s.description}")


def _cmd_corpus(args) -> None:
    from musedraft.corpus import CorpusConfig, build_corpus, default_cache_dir  # noqa: PLC0415
    from musedraft.dataset import ShardConfig, build_shards  # noqa: PLC0415

    cache = Path(args.cache) if args.cache else default_cache_dir()
    if args.corpus_command == "habits":
        if not (args.out / "config.json").is_file():
            from musedraft.errors import RequestError  # noqa: PLC0415

            raise RequestError(f"{args.out} is not a checkpoint folder (no config.json): pass the folder "
                               "`musedraft train` wrote, e.g. runs/default/best.")
        _write_habits(cache / "corpus", [args.out])
        return
    summary = build_corpus(CorpusConfig(cache=cache / "corpus", workers=args.workers, limit=args.limit,
                                        collections=tuple(c for c in args.collections.split(",") if c)))
    failed = summary.pop("failed")
    print(json.dumps(summary, indent=1))
    for piece, reason in failed[:20]:
        print(f"failed: {piece}: {reason}")
    shards = build_shards(ShardConfig(corpus=cache / "corpus", out=cache / "tokens"))
    print(json.dumps(shards, indent=1))


def _cmd_train(args) -> None:
    from musedraft.corpus import default_cache_dir  # noqa: PLC0415
    from musedraft.model import ModelConfig  # noqa: PLC0415
    from musedraft.train import TrainConfig, train  # noqa: PLC0415

    cfg = TrainConfig(shards=args.shards or default_cache_dir() / "tokens", out=args.out, steps=args.steps,
                      max_minutes=args.minutes, batch_size=args.batch_size, lr=args.lr, device=args.device,
                      resume=args.resume, init=args.init, seed=args.seed, fim_rate=args.fim_rate, cpu_bf16=args.cpu_bf16,
                      model=ModelConfig(context=args.context, n_layer=args.layers, n_head=args.heads, d_model=args.dim))
    print(json.dumps(train(cfg), indent=1))
    corpus = Path(cfg.shards).parent / "corpus"  # `musedraft corpus build` puts the corpus beside the shards
    if (corpus / "table.jsonl").is_file():
        _write_habits(corpus, [cfg.out / "best", cfg.out / "last"])
    else:
        print(f"no corpus at {corpus}: the checkpoints sample without style habits "
              "(write them later with `musedraft corpus habits --out <checkpoint>`)")


def _write_habits(corpus: Path, folders: list[Path]) -> None:
    """Habits travel with the weights: a checkpoint samples with the habits of the corpus it learnt from."""
    from musedraft.habits import measure_habits, save_habits  # noqa: PLC0415

    habits = measure_habits(corpus, progress=True)
    for folder in folders:
        if folder.is_dir():
            print(f"wrote {save_habits(habits, folder)}: ambitus " +
                  ", ".join(f"{style} {h.ambitus}" for style, h in habits.items()))


def _check_soundfont(args) -> None:
    """A mistyped --soundfont is a SoundFontError now; inside save() it would cost the audio of every draft."""
    if not args.no_audio and args.soundfont:
        from musedraft.audio import find_soundfont  # noqa: PLC0415

        find_soundfont(args.soundfont)


def _cmd_pack(args) -> None:
    from musedraft.pack import pack  # noqa: PLC0415

    _check_soundfont(args)
    index = pack(args.config, args.out, force=args.force, model=args.model, audio=not args.no_audio,
                 soundfont=args.soundfont, repair=not args.no_repair)
    print(f"wrote {index}: open it in a browser to audition the candidates")


def _cmd_evaluate_metrics(args) -> None:
    from musedraft.corpus import default_cache_dir  # noqa: PLC0415
    from musedraft.evaluate import write_evaluation  # noqa: PLC0415

    styles = [s.strip() for s in args.styles.split(",") if s.strip()] if args.styles else None
    command = " ".join(["musedraft evaluate --metrics", f"--drafts {args.drafts}", f"--seed {args.seed}",
                        *([f"--styles {args.styles}"] if args.styles else [])])
    path = write_evaluation(args.out, styles, args.drafts, args.model, (args.cache or default_cache_dir()) / "corpus",
                            args.seed, force=args.force, command=command)
    print(path.read_text(encoding="utf-8"))
    print(f"wrote {path} and {path.with_suffix('.json')}")


def _cmd_evaluate(args) -> None:
    if args.metrics:
        _cmd_evaluate_metrics(args)
        return
    from musedraft.composer import DEFAULT_MODEL  # noqa: PLC0415
    from musedraft.corpus import default_cache_dir  # noqa: PLC0415
    from musedraft.heldout import heldout_table  # noqa: PLC0415

    table = heldout_table(args.model or DEFAULT_MODEL, args.shards or default_cache_dir() / "tokens")
    if args.json:
        print(json.dumps(table, indent=1))
        return
    print(f"test split: {table['test_pieces']} pieces, {table['test_tokens']} tokens, {table['test_notes']} notes")
    print(f"{'model':22s} {'nats/token':>10s} {'nats/note':>10s}")
    for name, row in table["rows"].items():
        print(f"{name:22s} {row['nats_per_token']:10.3f} {row['nats_per_note']:10.3f}")
    print(f"model gain per note over the n-gram: {100 * table['model_gain_per_note']:.1f}%")


COMMANDS = {"compose": _cmd_compose, "continue": _cmd_continue, "regenerate": _cmd_regenerate,
            "check": _cmd_check, "repair": _cmd_repair, "render": _cmd_render, "scenes": _cmd_scenes, "pack": _cmd_pack,
            "corpus": _cmd_corpus, "train": _cmd_train, "evaluate": _cmd_evaluate}


def _one_line_warnings(python_format):
    """A musedraft warning reads like an error, one line on stderr; other warnings keep Python's form
    (file, line and source, which mean nothing to someone running a command)."""
    from musedraft.errors import MusedraftWarning  # noqa: PLC0415

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, MusedraftWarning):
            print(f"musedraft: warning: {message}", file=sys.stderr)
        else:
            python_format(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from musedraft.errors import MusedraftError  # noqa: PLC0415

    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            COMMANDS[args.command](args)
    except MusedraftError as exc:
        if args.debug:
            raise
        print(f"musedraft: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

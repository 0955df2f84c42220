"""Instruments: General MIDI programs, their playable ranges and the register a part sits in.

Shared by the request parser (names → programs), the sampler (range masks), the harmony checker
(out-of-range rule) and the exporter (track names). GM names come from pretty_midi's table; the
ranges are ours (standard orchestration ranges, sounding pitch, MIDI numbers).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from musedraft.errors import RequestError

__all__ = ["Instrument", "INSTRUMENTS", "REGISTERS", "get_instrument", "instrument_of_track", "register_of",
           "instrument_names", "lines_of", "MOST_LINES"]


@dataclass(frozen=True)
class Instrument:
    name: str  # the name musicians use and the track name we export
    program: int  # General MIDI program, 0-127
    low: int  # lowest sounding MIDI pitch a player is comfortable with
    high: int  # highest sounding MIDI pitch

    @property
    def middle(self) -> int:
        """Where a line for this instrument naturally sits: 40% up its range, since the top of a
        written range is for climaxes (a violin's range centre is a high E; its lines centre on C5)."""
        return self.low + (self.high - self.low) * 2 // 5

    @property
    def register(self) -> str:
        return register_of(self.middle)

    @property
    def clef(self) -> str | None:
        """The clef its part is written in where it is not simply treble or bass by range (None): a
        viola reads alto clef, a tenor and a guitar treble clef an octave down."""
        return _CLEFS.get(self.name)

    @property
    def grand_staff(self) -> bool:
        """Whether its part is written on two staves, a brace joining them: a keyboard's or harp's."""
        return self.name in _LINES

    @property
    def strikes_roots(self) -> bool:
        """A timpani strikes the harmony's roots and fifths under the music, doubling the bass in octaves:
        no voice for the voice-leading rules, and not the bass (harmony.scan.Context.drum, and the generator)."""
        return self.name == "timpani"


# (name, program, low, high). Aliases below map everyday names onto these.
_TABLE = [
    ("piano", 0, 21, 108),
    ("electric piano", 4, 28, 100),  # a Rhodes' 73 keys
    ("harpsichord", 6, 29, 89),
    ("celesta", 8, 60, 108),
    ("glockenspiel", 9, 79, 108),
    ("music box", 10, 60, 96),
    ("vibraphone", 11, 53, 89),
    ("marimba", 12, 45, 96),
    ("xylophone", 13, 65, 108),
    ("tubular bells", 14, 60, 77),
    ("dulcimer", 15, 50, 88),
    ("organ", 19, 36, 96),
    ("accordion", 21, 53, 89),
    ("harmonica", 22, 60, 96),
    ("acoustic guitar", 24, 40, 83),
    ("steel guitar", 25, 40, 83),
    ("electric guitar", 27, 40, 86),
    ("acoustic bass", 32, 28, 55),
    ("electric bass", 33, 28, 60),
    ("violin", 40, 55, 100),
    ("viola", 41, 48, 88),
    ("cello", 42, 36, 81),  # A5: Beethoven's quartets go there
    ("contrabass", 43, 28, 60),
    ("harp", 46, 24, 103),
    ("timpani", 47, 40, 57),
    ("strings", 48, 36, 96),
    ("pizzicato strings", 45, 36, 91),
    ("synth strings", 50, 36, 96),
    ("choir", 52, 40, 81),
    ("soprano", 52, 60, 81),
    ("alto", 53, 53, 74),
    ("tenor", 52, 48, 69),
    ("bass voice", 53, 36, 64),  # C2: 6% of the 404 Bach chorales take their bass there, 24% below E2
    ("trumpet", 56, 54, 84),
    ("trombone", 57, 40, 72),
    ("tuba", 58, 28, 58),
    ("french horn", 60, 41, 77),
    ("brass section", 61, 40, 84),
    ("soprano sax", 64, 56, 87),
    ("alto sax", 65, 49, 80),
    ("tenor sax", 66, 44, 75),
    ("baritone sax", 67, 36, 68),
    ("oboe", 68, 58, 91),
    ("english horn", 69, 52, 81),
    ("bassoon", 70, 34, 75),
    ("clarinet", 71, 50, 94),
    ("piccolo", 72, 74, 108),
    ("flute", 73, 60, 96),
    ("recorder", 74, 72, 98),
    ("pan flute", 75, 60, 96),
    ("shakuhachi", 77, 60, 88),
    ("ocarina", 79, 60, 84),
    ("synth lead", 80, 48, 96),
    ("synth pad", 88, 36, 96),
    ("sitar", 104, 48, 84),
    ("banjo", 105, 48, 81),
    ("shamisen", 106, 47, 83),
    ("koto", 107, 48, 91),
    ("kalimba", 108, 60, 88),
    ("bagpipe", 109, 55, 81),
    ("fiddle", 110, 55, 100),
    ("steel drums", 114, 55, 84),
]

_ALIASES = {
    "grand piano": "piano",
    "acoustic grand piano": "piano",
    "guitar": "acoustic guitar",
    "nylon guitar": "acoustic guitar",
    "bass": "contrabass",
    "double bass": "contrabass",
    "string bass": "contrabass",
    "horn": "french horn",
    "string ensemble": "strings",
    "voice": "choir",
    "cor anglais": "english horn",
    "glock": "glockenspiel",
    "pad": "synth pad",
    "lead": "synth lead",
    "saxophone": "alto sax",
    "sax": "alto sax",
    "rhodes": "electric piano",
    "epiano": "electric piano",
    "bells": "tubular bells",
    "chimes": "tubular bells",
    "steel pan": "steel drums",
    "steelpan": "steel drums",
}

# Choir programs (choir aahs, voice oohs, synth voice) are used interchangeably for sung parts, so a
# part's name decides which voice it is; and on a choir program "bass" is a singer, not a contrabass.
# A fifth voice (quinto, quintus) names no register: in Monteverdi's madrigals it is a second soprano in
# some (3.17: its median 69, above the alto's) and a tenor in others; read as a tenor, 21 of its notes in
# 3.17's first 24 bars were out of range. It stays a choir part, whatever its notes.
_VOICE_PROGRAMS = {52, 53, 54}
_VOICE_ALIASES = {"bass": "bass voice", "basso": "bass voice", "baritone": "bass voice", "bassus": "bass voice",
                  "cantus": "soprano", "canto": "soprano", "superius": "soprano", "contratenor": "alto",
                  "altus": "alto"}

INSTRUMENTS: dict[str, Instrument] = {name: Instrument(name, prog, lo, hi) for name, prog, lo, hi in _TABLE}

# Registers name where a part sits, by the median pitch of its notes: the model is told the register
# of each track rather than its instrument, so a flute line and a soprano line share what the corpus
# taught about high parts, and instruments never seen in training (harp, synth pad) still work.
REGISTERS: tuple[tuple[str, int], ...] = (  # (name, lowest median pitch that belongs to it)
    ("bass", 0),
    ("tenor", 54),
    ("alto", 61),
    ("soprano", 67),
    ("high", 77),
)


# A keyboard or harp part is written as several lines that become one track: the model writes one note
# per line at a time (the corpus is mostly part-writing), and a one-line piano is not a piano. A keyboard
# has four lines, two per hand (top first: the melody, two inner voices, the bass). With three lines,
# drafts of the held-out romantic pieces' requests (four of the five are piano music) had polyphony -17%
# against the real pieces, where 30% of the notes are struck together with another of the same staff;
# with four -3% (notes per bar -8.7% -> +7.2%, range +6.4% -> +7.7%; 30 drafts). With one line they had
# 37-53% too few. A harp keeps three: no held-out piece has one to measure a fourth against.
_LINES = {
    "piano": ((60, 91), (55, 79), (48, 72), (28, 62)),
    "electric piano": ((60, 91), (55, 79), (48, 72), (28, 62)),
    "harpsichord": ((60, 89), (55, 77), (48, 70), (29, 62)),
    "organ": ((60, 91), (55, 79), (48, 72), (36, 62)),
    "harp": ((60, 96), (48, 76), (24, 60)),
}
MOST_LINES = max(len(r) for r in _LINES.values())
_CLEFS = {"viola": "alto", "tenor": "treble8vb", "acoustic guitar": "treble8vb", "steel guitar": "treble8vb",
          "electric guitar": "treble8vb"}


def lines_of(inst: Instrument, most: int = MOST_LINES) -> list[Instrument]:
    """The lines the model writes for one part of `inst`, top first: several for a keyboard or harp
    (at most `most`: fewer drop inner voices first, and two are the melody and the bass), one for
    everything else.

    >>> [(i.low, i.high) for i in lines_of(get_instrument("piano"), most=8)]
    [(60, 91), (55, 79), (48, 72), (28, 62)]
    >>> [(i.low, i.high) for i in lines_of(get_instrument("piano"), most=3)]
    [(60, 91), (48, 72), (28, 62)]
    >>> [(i.low, i.high) for i in lines_of(get_instrument("piano"), most=2)], len(lines_of(get_instrument("violin")))
    ([(60, 91), (28, 62)], 1)
    """
    ranges = _LINES.get(inst.name, ())
    most = min(most, len(ranges))
    if most < 2:
        return [inst]
    chosen = ranges[:1] + ranges[len(ranges) - most + 1:]  # fewer lines drop inner voices first
    return [Instrument(inst.name, inst.program, low, high) for low, high in chosen]


def register_of(median_pitch: float) -> str:
    """The register of a part whose notes centre on `median_pitch`.

    >>> register_of(72), register_of(48), register_of(64)
    ('soprano', 'bass', 'alto')
    """
    name = REGISTERS[0][0]
    for reg, low in REGISTERS:
        if median_pitch >= low:
            name = reg
    return name


def numbered_names(insts: list[Instrument]) -> list[str]:
    """Track names for instruments: 'Violin 1', 'Violin 2' where several share one, else 'Cello'.

    >>> numbered_names([get_instrument("violin"), get_instrument("cello"), get_instrument("violin")])
    ['Violin 1', 'Cello', 'Violin 2']
    """
    counts: dict[str, int] = {}
    for i in insts:
        counts[i.name] = counts.get(i.name, 0) + 1
    seen: dict[str, int] = {}
    names = []
    for i in insts:
        base = i.name.title()
        if counts[i.name] > 1:
            seen[i.name] = seen.get(i.name, 0) + 1
            base = f"{base} {seen[i.name]}"
        names.append(base)
    return names


def track_names(tracks) -> list[str]:
    """Each track's name as a reader should see it: its own, or, for an unnamed one (a type-0 file's
    channels, many a DAW's export), its instrument's, as compose() names its tracks ('Piano',
    'Acoustic Bass'; 'Violin 1', 'Violin 2' where two share one), or 'drums', so the MIDI, the MusicXML
    and the piano roll of a type-0 file name its parts as a reader knows them."""
    unnamed = [instrument_of_track(None, int(t.program)) for t in tracks if not t.is_drum and not t.name.strip()]
    defaults = iter(numbered_names(unnamed))
    return [t.name.strip() or ("drums" if t.is_drum else next(defaults)) for t in tracks]


def instrument_names() -> list[str]:
    return sorted(INSTRUMENTS)


def get_instrument(name_or_program: str | int) -> Instrument:
    """Look an instrument up by everyday name ('violin', 'horn'), General MIDI name ('Tubular Bells',
    'Pad 2 (warm)') or GM program number.

    A program we have no range for gets the GM name and a generous two-octave-and-a-half range
    around middle C, so any of the 128 programs can be requested.

    >>> get_instrument("Electric Piano 1").name, get_instrument("pad 2 (warm)").program
    ('electric piano', 89)
    """
    if isinstance(name_or_program, int):
        if not 0 <= name_or_program <= 127:
            raise RequestError(f"GM program {name_or_program} is outside 0-127.")
        for inst in INSTRUMENTS.values():
            if inst.program == name_or_program:
                return inst
        import pretty_midi  # noqa: PLC0415  (GM names only needed for uncommon programs)

        gm_name = pretty_midi.program_to_instrument_name(name_or_program).lower()
        return Instrument(gm_name, name_or_program, 48, 84)
    key = str(name_or_program).strip().lower().replace("_", " ")
    key = _ALIASES.get(key, key)
    if key in INSTRUMENTS:
        return INSTRUMENTS[key]
    if key in _gm_programs():
        return get_instrument(_gm_programs()[key])
    if key in _DRUM_KITS:
        raise RequestError(
            f"{name_or_program!r}: no drum kit. musedraft writes pitched parts only (the music21 corpus it learnt "
            "from has no percussion tracks): add drums in your DAW, or ask for 'timpani' or a pitched drum "
            "program (116 Taiko Drum, 117 Melodic Tom, 118 Synth Drum)."
        )
    raise RequestError(
        f"Unknown instrument {name_or_program!r}. Use a GM program number (0-127), a General MIDI name "
        "('Tubular Bells') or one of: " + ", ".join(instrument_names())
    )


_DRUM_KITS = frozenset({"drums", "drum", "drum kit", "drumkit", "drum set", "drumset", "kit", "percussion"})


@functools.cache
def _gm_programs() -> dict[str, int]:
    """Lower-case General MIDI name → program, so a name copied from a DAW's instrument list works."""
    import pretty_midi  # noqa: PLC0415  (as above: only for names we have no entry for)

    return {pretty_midi.program_to_instrument_name(p).lower(): p for p in range(128)}


def instrument_of_track(name: str | None, program: int) -> Instrument:
    """The instrument a track is for: by its name when we know it ("Bass Voice", "Violin 2") and its
    GM program agrees, else by the program. Several instruments share a program (the voices share
    the choir programs), so the program alone can give a bass the alto's range; a name alone is not
    trusted, so a "Violin" track on program 0 (as music21 writes every part) counts as a piano.

    >>> instrument_of_track("Bass Voice", 53).name, instrument_of_track("Violin 2", 40).name
    ('bass voice', 'violin')
    >>> instrument_of_track("Lead", 41).name
    'viola'
    >>> instrument_of_track("Bass", 52).name, instrument_of_track("Alto", 52).name   # singers on a choir program
    ('bass voice', 'alto')
    >>> instrument_of_track("Quinto", 52).name   # a fifth voice: no register in its name
    'choir'
    """
    base = (name or "").strip().lower().rstrip("0123456789 ").strip()
    if base and program in _VOICE_PROGRAMS:
        voice = INSTRUMENTS.get(_VOICE_ALIASES.get(base, base))
        if voice is not None and voice.program in _VOICE_PROGRAMS:
            return voice
    if base:
        try:
            inst = get_instrument(base)
            if inst.program == program:
                return inst
        except RequestError:
            pass
    return get_instrument(int(program))

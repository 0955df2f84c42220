"""Scene presets: the moods a visual-novel writer asks for, as ready-made compose requests.

A scene names a corpus style the model was trained on, a mode, a tempo range, a metre, an
ensemble and a density, so "sad" means the same thing every time and a request needs one word.
Ensembles of several lines use the many-part styles (classical quartets, chorales, Renaissance
polyphony): the corpus's folk and romantic pieces are mostly single melodies or too few to learn
part-writing from.
`compose(scene="sad")` fills the request from here; explicit arguments override any field.
"""

from __future__ import annotations

from dataclasses import dataclass

from musedraft.corpus import STYLES  # the corpus styles the model is trained on
from musedraft.errors import RequestError

__all__ = ["Scene", "SCENES", "STYLES", "scenes", "get_scene"]



@dataclass(frozen=True)
class Scene:
    name: str  # the key in SCENES and the word a user types
    description: str  # one line for `musedraft scenes` and the docs
    style: str  # corpus style the model is conditioned on (one of STYLES)
    mode: str  # "major" or "minor"
    tempo: tuple[int, int]  # (low, high) quarter notes per minute; a request that names no tempo gets the middle
    time_signature: str  # "4/4", "3/4", "6/8"...
    instruments: tuple[str, ...]  # names musedraft.instruments.get_instrument accepts, top part first
    density: float  # 0..1: fraction of grid positions with an onset; a hint to the generator

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"Scene {self.name!r}: style {self.style!r} is not one of {STYLES}")
        if self.mode not in ("major", "minor"):
            raise ValueError(f"Scene {self.name!r}: mode must be 'major' or 'minor'")
        if not 0.0 <= self.density <= 1.0 or self.tempo[0] > self.tempo[1]:
            raise ValueError(f"Scene {self.name!r}: density outside 0..1 or tempo range reversed")

    @property
    def default_tempo(self) -> float:
        """The middle of the tempo range: what a request gets when it names no tempo."""
        return (self.tempo[0] + self.tempo[1]) / 2


_PRESETS = (
    Scene("daily", "Everyday life: school corridors, a walk home, an unhurried morning.",
          "classical", "major", (100, 120), "4/4", ("flute", "acoustic guitar", "pizzicato strings", "contrabass"), 0.45),
    Scene("sad", "Loss, regret, a rainy goodbye.",
          "chorale", "minor", (56, 72), "3/4", ("piano", "cello", "strings"), 0.25),
    Scene("tense", "Something is wrong: an argument, a chase about to begin.",
          "classical", "minor", (120, 144), "4/4", ("violin", "viola", "cello", "contrabass", "timpani"), 0.6),
    Scene("romantic", "Two people, one quiet evening.",
          "classical", "major", (66, 84), "3/4", ("piano", "violin", "cello"), 0.35),
    Scene("mystery", "Clues, a locked room, footsteps upstairs.",
          "renaissance", "minor", (72, 92), "4/4", ("celesta", "clarinet", "harp", "contrabass"), 0.3),
    Scene("solemn", "A ceremony, a funeral, a vow in a cathedral.",
          "chorale", "minor", (52, 66), "4/4", ("organ", "choir", "contrabass"), 0.2),
    Scene("festive", "A festival, a wedding, the end-of-term party.",
          "classical", "major", (120, 140), "6/8", ("fiddle", "recorder", "accordion", "acoustic guitar", "contrabass"), 0.6),
    Scene("battle", "Steel and fire: the confrontation.",
          "classical", "minor", (140, 168), "4/4", ("brass section", "strings", "french horn", "timpani", "contrabass"), 0.75),
    Scene("nostalgic", "Memories, an old photograph, a childhood street.",
          "classical", "major", (72, 88), "4/4", ("music box", "piano", "strings"), 0.3),
    Scene("ancient", "Legends, ruins, a wandering bard.",
          "medieval", "minor", (76, 96), "3/4", ("recorder", "harp", "bass voice"), 0.35),
    Scene("peaceful", "A meadow, a lake at dawn, rest after the storm.",
          "renaissance", "major", (60, 76), "4/4", ("flute", "oboe", "harp", "cello"), 0.25),
)

SCENES: dict[str, Scene] = {scene.name: scene for scene in _PRESETS}
_ALIASES = {"daily life": "daily", "everyday": "daily", "combat": "battle", "fight": "battle", "love": "romantic",
            "suspense": "tense", "sorrow": "sad", "melancholy": "sad", "festival": "festive", "funeral": "solemn"}


def scenes() -> list[Scene]:
    """Every preset, in the order the docs list them."""
    return list(SCENES.values())


def get_scene(name: str) -> Scene:
    """The preset called `name` ('daily', 'sad', ... or an alias such as 'daily life', 'combat').

    >>> get_scene("Daily Life").instruments[0]
    'flute'

    Raises:
        RequestError: unknown name; the message lists the names there are.
    """
    key = name.strip().lower().replace("_", " ").replace("-", " ")
    key = _ALIASES.get(key, key)
    if key not in SCENES:
        raise RequestError(f"Unknown scene {name!r}; choose one of: {', '.join(SCENES)}.")
    return SCENES[key]

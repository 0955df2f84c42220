"""musedraft: draft multi-track music with a small REMI transformer, check and repair its harmony,
export editable MIDI/MusicXML and an audio preview.

    >>> import musedraft
    >>> draft = musedraft.compose(scene="daily", key="G major", bars=16, seed=7)   # doctest: +SKIP
    >>> draft.save("out/")                                                         # doctest: +SKIP

Heavy libraries (torch, music21, FluidSynth) load on first use, so `import musedraft` stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name → module that defines it (imported on first attribute access)
_API = {
    "compose": "musedraft.composer",
    "compose_candidates": "musedraft.composer",
    "continue_midi": "musedraft.composer",
    "regenerate": "musedraft.composer",
    "load_model": "musedraft.composer",
    "check": "musedraft.harmony",
    "repair": "musedraft.harmony",
    "render": "musedraft.audio",
    "render_file": "musedraft.audio",
    "Draft": "musedraft.draft",
    "scenes": "musedraft.presets",
    "load_midi": "musedraft.score",
}

__all__ = sorted(_API) + ["errors", "__version__"]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    if name == "errors":
        return importlib.import_module("musedraft.errors")
    raise AttributeError(f"module 'musedraft' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__

"""Every failure a user can act on: one small hierarchy so callers catch `MusedraftError` once.

Messages say what went wrong *and what to do*; they never leak a dependency's traceback.
"""

from __future__ import annotations

__all__ = [
    "MusedraftError",
    "RequestError",
    "InvalidMidiError",
    "DecodeError",
    "ModelError",
    "RenderError",
    "SoundFontError",
    "OutputExistsError",
    "OutputPathError",
    "CorpusError",
    "MusedraftWarning",
]


class MusedraftError(Exception):
    """Base class of every error musedraft raises on purpose."""


class RequestError(MusedraftError, ValueError):
    """A compose/continue/regenerate request asks for something impossible (unknown key, 0 bars...)."""


class InvalidMidiError(MusedraftError):
    """A MIDI file is unreadable, empty, or beyond the limits we accept."""


class DecodeError(MusedraftError):
    """A token sequence breaks the REMI grammar and cannot become a score."""


class ModelError(MusedraftError):
    """A checkpoint is missing, corrupted, or does not match its vocabulary."""


class RenderError(MusedraftError):
    """Audio rendering failed (FluidSynth missing, silent output...)."""


class SoundFontError(RenderError):
    """No usable General MIDI sound font was found."""


class NotationError(MusedraftError):
    """music21 could not write the music as MusicXML (the MIDI file holds all of it)."""


class OutputExistsError(MusedraftError, FileExistsError):
    """An output file exists and overwriting was not asked for (pass force=True / --force)."""


class OutputPathError(MusedraftError, OSError):
    """An output cannot be written where it was asked for: a folder in the way, a file where a folder
    should be, no permission."""


class CorpusError(MusedraftError):
    """The training corpus cache is missing or unusable."""


class MusedraftWarning(UserWarning):
    """A result was made, but not quite as asked (a sound font lacks an instrument, say)."""

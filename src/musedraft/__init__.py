"""musedraft: draft multi-track music with a small REMI transformer, check and repair its harmony,
export editable MIDI/MusicXML and an audio preview.

Heavy libraries (torch, music21, FluidSynth) load on first use, so `import musedraft` stays fast.
"""

"""Harmony, results: what check() reports (`Finding`), what repair() changed (`Edit`, `RepairResult`).

Plain dataclasses with `to_dict()` so the CLI prints JSON and a Draft stores its repair report
without knowing anything about music theory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from symusic import Score

__all__ = ["Finding", "Edit", "RepairResult", "format_findings", "in_file_order"]


@dataclass(frozen=True)
class Finding:
    """One slip, located as a musician would look for it."""

    rule: str  # rule id, see musedraft.harmony.RULES
    severity: str  # "error", "warning" or "info"
    bar: int  # 1-based
    beat: float  # 1-based, in the time signature's unit (3.5 = the "and" of three)
    track: int  # index into score.tracks
    track_name: str
    pitch: int  # MIDI pitch of the offending note
    pitch_name: str  # spelled in the local key: "F#4", "Bb3"
    message: str  # a sentence: "Bar 12, beat 3: alto F#4 clashes a minor second against tenor G4 ..."
    time: int = 0  # tick where the fault sounds
    note_start: int = 0  # tick where the offending note starts (it may be held into the fault)
    other_track: int | None = None  # the voice it clashes with or moves in parallel with
    other_pitch: int | None = None
    other_start: int | None = None  # tick where that other note starts
    key: str = ""  # local key the note was judged in

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Edit:
    """One change repair() made; `new_pitch` is None when the note was dropped."""

    bar: int
    beat: float
    track: int
    track_name: str
    old_pitch: int
    new_pitch: int | None
    rule: str  # the rule whose finding this edit removed
    reason: str  # a sentence: "moved alto F#4 to G4 (clash)"
    time: int = 0  # tick where the edited note starts

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RepairResult:
    score: Score  # a new Score; the input is untouched
    edits: list[Edit] = field(default_factory=list)
    findings_before: list[Finding] = field(default_factory=list)
    findings_after: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Everything but the score, JSON-ready."""
        return {"edits": [e.to_dict() for e in self.edits],
                "findings_before": [f.to_dict() for f in self.findings_before],
                "findings_after": [f.to_dict() for f in self.findings_after]}


def in_file_order(findings: list[Finding], order: list[int]) -> list[Finding]:
    """Findings made on a score with its tracks in `order` (score.voice_order), told by the tracks'
    indices in the file; still in time order, then file order."""
    if order == sorted(order):
        return findings
    moved = [replace(f, track=order[f.track], other_track=None if f.other_track is None else order[f.other_track])
             for f in findings]
    return sorted(moved, key=lambda f: (f.time, f.track))


def format_findings(findings: list[Finding]) -> str:
    """A text report for the terminal: one line per finding, then a count by severity.

    >>> f = Finding("clash", "error", 12, 3.0, 1, "Alto", 66, "F#4", "Bar 12, beat 3: alto F#4 clashes.")
    >>> print(format_findings([f]))
    error    clash             Bar 12, beat 3: alto F#4 clashes.
    1 finding: 1 error
    >>> format_findings([])
    'No findings: the harmony is clean.'
    """
    if not findings:
        return "No findings: the harmony is clean."
    lines = [f"{f.severity:<8} {f.rule:<17} {f.message}" for f in findings]
    counts = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")}
    summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n)
    lines.append(f"{len(findings)} finding{'s' if len(findings) != 1 else ''}: {summary}")
    return "\n".join(lines)

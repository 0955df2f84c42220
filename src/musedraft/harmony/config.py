"""Harmony, settings: the rule table (id, default severity, what it catches) and `HarmonyConfig`.

Rules are data: `python -c "from musedraft.harmony import RULES; print(RULES)"` lists them, and a
config switches each one on or off or changes its severity without touching the checker.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from musedraft.corpus import ORDERED_STYLES, STYLES

__all__ = ["Rule", "RULES", "PARALLEL_RULES", "SEVERITIES", "HarmonyConfig"]

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str  # default severity: "error", "warning" or "info"
    summary: str  # one line for reports and docs


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("clash", "error", "a second, seventh, ninth or tritone on a strong beat that no suspension, "
             "appoggiatura, accented passing tone or prepared chord seventh explains"),
        Rule("weak-clash", "warning", "a dissonance off the strong beats that is not a passing, neighbour, "
             "escape or anticipation tone"),
        Rule("out-of-key", "warning", "a pitch outside the local key that is neither a chromatic passing "
             "or neighbour tone nor part of an applied or borrowed chord"),
        Rule("parallel-fifths", "error", "two voices move in parallel (or contrary) perfect fifths"),
        Rule("parallel-octaves", "error", "two voices move in parallel (or contrary) octaves or unisons"),
        Rule("voice-crossing", "info", "a lower voice sounds above the voice written above it (Bach does "
             "it now and then: a remark, not a fault, and repair leaves it alone unless asked)"),
        Rule("out-of-range", "warning", "a note outside its instrument's playable range"),
    )
}
PARALLEL_RULES = frozenset({"parallel-fifths", "parallel-octaves"})  # one motion between two voices, two rules

_CROSSING_STYLES = frozenset(STYLES) - ORDERED_STYLES  # where voices cross freely
# Instrumental styles, where a seventh may arrive by leap and a long appoggiatura may be struck with
# its chord: the chorale's stricter habits are switched off there.
_INSTRUMENTAL_STYLES = {"classical", "romantic", "folk"}


@dataclass
class HarmonyConfig:
    """Which rules run, how loudly they speak, and the style-dependent judgements behind them."""

    enabled: dict[str, bool] = field(default_factory=dict)  # rule id → on/off (absent: on)
    severity: dict[str, str] = field(default_factory=dict)  # rule id → severity override
    allow_voice_crossing: bool = False  # True silences voice-crossing (free polyphony, instruments)
    key_window_bars: int = 4  # bars of music each local key is judged from
    home_key_too: bool = True  # a pitch of the piece's own key is never "out of key"
    leading_tones: bool = True  # a chromatic note moving on by a semitone the way it is written leads there
    applied_slack: float = 1.0  # how much less plausible than the likeliest an applied-chord reading may be
    applied_resolve: bool = False  # a chromatic chord note must move on by step (not leap away)
    strict_chord_changes: bool = True  # chorale habits: a struck chord (a 6/4 too) takes only short ornaments
    # (nct_role and clash say which); instrumental styles ornament and repeat notes more freely
    accented_passing_tones: bool = True  # passing/neighbour tones may fall on strong beats (Bach does)
    contrary_parallels: bool = False  # also fifths/octaves by contrary motion (strict counterpoint)
    doubling_run: int = 3  # this many consecutive octaves between two voices is doubling, not a fault
    dim_any_root: bool = False  # any member of a diminished triad may be its leading tone
    dim_fifth_free: bool = True  # a diminished triad's fifth may rise by step as well as fall
    strict_sevenths: bool = True  # sevenths and leading tones resolve in their own line (seventh_ok,
    # leading_tone_ok); sevenths of non-dominant chords must be prepared or passing
    max_removed: int = 2  # non-chord tones a vertical may carry and still read as a chord
    reading_slack: float = 0.5  # readings this much less plausible than the likeliest may excuse a clash
    repair_rules: tuple[str, ...] | None = None  # rules repair fixes (None: every enabled rule above "info")
    max_move: int = 7  # largest interval (semitones) repair moves a note by, an octave aside
    allow_drop: bool = True  # drop a note when no move fixes it (the last resort)

    def __post_init__(self) -> None:
        for rule_id in (*self.enabled, *self.severity, *(self.repair_rules or ())):
            if rule_id not in RULES:
                raise ValueError(f"Unknown harmony rule {rule_id!r}; rules are: {', '.join(RULES)}.")
        for rule_id, sev in self.severity.items():
            if sev not in SEVERITIES:
                raise ValueError(f"Severity of {rule_id!r} must be one of {SEVERITIES}, not {sev!r}.")
        if self.key_window_bars < 1:
            raise ValueError("key_window_bars must be at least 1.")

    def is_on(self, rule_id: str) -> bool:
        if rule_id == "voice-crossing" and self.allow_voice_crossing:
            return False
        return self.enabled.get(rule_id, True)

    def severity_of(self, rule_id: str) -> str:
        return self.severity.get(rule_id, RULES[rule_id].severity)

    def repairs(self, rule_id: str) -> bool:
        if not self.is_on(rule_id):
            return False
        if self.repair_rules is None:
            return self.severity_of(rule_id) != "info"
        return rule_id in self.repair_rules

    def without(self, *rule_ids: str) -> HarmonyConfig:
        """A copy with these rules switched off.

        >>> HarmonyConfig().without("out-of-range").is_on("out-of-range")
        False
        """
        return replace(self, enabled={**self.enabled, **{r: False for r in rule_ids}})

    @classmethod
    def for_style(cls, style: str | None) -> HarmonyConfig:
        """Defaults for a corpus style (musedraft.presets.STYLES): crossing is remarked on only in
        chorale-like writing, and instrumental styles drop the chorale's habits about sevenths and
        accented dissonances. None or an unknown style gets the chorale defaults.

        >>> HarmonyConfig.for_style("chorale").is_on("voice-crossing"), HarmonyConfig.for_style("romantic").is_on("voice-crossing")
        (True, False)
        """
        instrumental = style in _INSTRUMENTAL_STYLES
        return cls(allow_voice_crossing=style in _CROSSING_STYLES, strict_sevenths=not instrumental,
                   strict_chord_changes=not instrumental)

"""Harmony: check a score for local slips (clashes, wrong notes, parallels, crossings, range) and
repair them with the smallest pitch changes. Stage after generation, before export.

    >>> from musedraft.harmony import check, repair, format_findings   # doctest: +SKIP
    >>> print(format_findings(check("song.mid")))                      # doctest: +SKIP
    >>> fixed = repair("song.mid").score                               # doctest: +SKIP

music21 is the theory (intervals, chords, keys, voice leading); numpy does the scanning.
"""

from __future__ import annotations

from musedraft.harmony.check import check
from musedraft.harmony.config import RULES, HarmonyConfig, Rule
from musedraft.harmony.findings import Edit, Finding, RepairResult, format_findings
from musedraft.harmony.keys import key_of_score
from musedraft.harmony.repair import repair

__all__ = ["check", "repair", "HarmonyConfig", "Finding", "Edit", "RepairResult", "format_findings",
           "RULES", "Rule", "key_of_score"]

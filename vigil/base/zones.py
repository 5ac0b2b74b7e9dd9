"""Health zones: the one rule for which zone a score is in. The scorer asks it, and so do
the settings check (every zone must hold a whole score) and the rule check (a `zone`
bounds the score)."""

from __future__ import annotations

from typing import Protocol

ZONES = ("green", "yellow", "orange", "red")


class CutOffs(Protocol):
    """The lowest rounded score of each zone but red (`health.zones`)."""

    @property
    def green(self) -> float: ...
    @property
    def yellow(self) -> float: ...
    @property
    def orange(self) -> float: ...


def zone_of(score: float, zones: CutOffs) -> str:
    rounded = int(score + 0.5)
    if rounded >= zones.green:
        return "green"
    if rounded >= zones.yellow:
        return "yellow"
    if rounded >= zones.orange:
        return "orange"
    return "red"

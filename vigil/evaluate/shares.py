"""A component's share of its weight (0 to 1, higher healthier) from a health record, and
again under another scale: what calibration compares and fits."""

from __future__ import annotations

from typing import Any

from vigil.config.settings import DeclaredComponent

# The scales a fit may move: full points at `full_at` and above, or none from `zero_at`.
SCALES = ("full_at", "zero_at")


def share(component: dict[str, Any], declared: DeclaredComponent) -> float | None:
    """What the component earned of its weight; None without data. A component weighing
    0 says no points, so its share is worked out from its value and scale."""
    if component.get("value") is None:
        return None
    if component["weight"] > 0:
        return min(1.0, max(0.0, float(component["points"]) / float(component["weight"])))
    scale = scale_of(declared)
    return None if scale is None else scaled(float(component["value"]), *scale)


def scale_of(declared: DeclaredComponent) -> tuple[str, float] | None:
    """The component's scale, if it is one a fit may move: full_at or zero_at of a
    measure's value (not a text it equals, the weighted keys of a state, or a mean)."""
    if declared.measure is None or declared.equals is not None or declared.weights:
        return None
    if declared.full_at is not None:
        return "full_at", declared.full_at
    if declared.zero_at is not None:
        return "zero_at", declared.zero_at
    return None


def scaled(value: float, kind: str, at: float) -> float:
    if kind == "full_at":
        return min(1.0, max(0.0, value / at))
    return max(0.0, 1.0 - value / at)


def share_under(
    component: dict[str, Any], declared: DeclaredComponent, scale: tuple[str, float] | None
) -> float | None:
    """The share as recorded, or under another `scale` (see `rescaled`)."""
    return share(component, declared) if scale is None else rescaled(component, declared, scale[1])


def rescaled(component: dict[str, Any], declared: DeclaredComponent, at: float) -> float | None:
    """The share under a scale at `at` instead, of the same value, times what the rest of
    the declaration made of it (none while held to no points by earned_while, half while
    a process stalled): the record's share over the current scale's."""
    scale = scale_of(declared)
    earned = share(component, declared)
    if scale is None or earned is None:
        return earned
    kind, current = scale
    value = float(component["value"])
    before = scaled(value, kind, current)
    factor = min(1.0, earned / before) if before > 0 else 1.0
    return scaled(value, kind, at) * factor

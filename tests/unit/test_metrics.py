from __future__ import annotations

import logging
from collections import Counter

import pytest

from vigil.ops.metrics import OTHER_TYPES, UNKNOWN_TYPE_LABELS, Metrics


def _by_type(metrics: Metrics) -> dict[str, float]:
    return metrics.by_label("vigil_events_total", "type")


def test_unknown_event_types_keep_their_name_up_to_a_bounded_number_of_labels(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    caplog.set_level(logging.INFO, logger="vigil.input")
    # A producer that puts an id into its type names: one new name per event.
    tally = Counter({"user.session": 5} | {f"custom.{n}": 1 for n in range(100)})
    metrics.record_types(tally)
    metrics.record_types(Counter({"custom.0": 2, "custom.99": 3, "x" * 65: 4}))

    counted = _by_type(metrics)
    assert counted["user.session"] == 5  # catalogue types never take an allowance
    named = {kind for kind in counted if kind.startswith("custom.")}
    assert len(named) == UNKNOWN_TYPE_LABELS
    assert counted["custom.0"] == 3  # a name that got a label keeps it
    assert len(counted) == UNKNOWN_TYPE_LABELS + 2  # + user.session and other
    assert counted[OTHER_TYPES] == 100 - UNKNOWN_TYPE_LABELS + 3 + 4
    assert sum(counted.values()) == 5 + 100 + 2 + 3 + 4  # nothing lost, only pooled
    assert not tally  # the tallies are reset for the next batch
    logged = [r for r in caplog.records if r.getMessage().startswith("events of a type outside")]
    assert len(logged) == UNKNOWN_TYPE_LABELS  # once per name, not per batch
    assert logged[-1].__dict__["type_labels_left"] == 0
    # The labels kept per type, so as not to work them out per batch, are as few as the
    # labels: a name pooled into "other" is not kept.
    assert set(metrics._type_labels) == named | {"user.session"}


def test_a_type_named_like_the_pool_is_pooled() -> None:
    metrics = Metrics()
    metrics.record_types(Counter({OTHER_TYPES: 2}))
    assert _by_type(metrics) == {OTHER_TYPES: 2}

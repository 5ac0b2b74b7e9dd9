"""How well a run's scores and alerts foretold the outcomes: the area under the ROC
curve of the score and of each component alone, churn by zone, precision and recall of
each signal and rule, and a reliability table."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from vigil.base.zones import ZONES
from vigil.config.settings import Settings
from vigil.evaluate.history import Case
from vigil.evaluate.shares import share

# Score bands of the reliability table: 0-9, 10-19, ... 90-100.
BANDS = [(low, low + 9 if low < 90 else 100) for low in range(0, 100, 10)]


@dataclass(frozen=True)
class Rate:
    """Churn among the accounts in a zone, and against all of them."""

    name: str
    accounts: int
    churned: int
    rate: float
    lift: float


@dataclass(frozen=True)
class Flag:
    """A signal or rule as a prediction of churn: of the accounts it fired for in the
    lookback, the share that churned (precision), and the share of churners it caught."""

    key: str
    flagged: int
    churned: int
    precision: float
    recall: float
    lift: float


@dataclass(frozen=True)
class Band:
    """Scores in [low, high]: the churn seen, and the churn a logistic fit of the score
    expects (cross-validated), where the score is read as a probability."""

    low: int
    high: int
    accounts: int
    churned: int
    observed: float
    expected: float | None


@dataclass
class Calibration:
    cases: int
    scored: int  # with a health record at the cutoff
    churned: int  # of those scored
    base_rate: float
    score_auc: float | None
    components: list[tuple[str, int, float | None]]  # (name, accounts with data, AUC)
    zones: list[Rate]
    flags: list[Flag]
    bands: list[Band]
    # ROC curves for the pictures: (false positive rates, true positive rates).
    curves: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)


def auc(churned: list[bool], health: list[float]) -> float | None:
    """The chance that a churner scores lower than an account that stayed (ties count
    half); None unless both are present."""
    if len(set(churned)) < 2:
        return None
    return float(roc_auc_score(churned, [-h for h in health]))


def calibrate(cases: list[Case], settings: Settings) -> Calibration:
    scored = [case for case in cases if case.health is not None]
    churned = [case.churned for case in scored]
    health = [float(case.health["score"]) for case in scored if case.health]
    base = sum(churned) / len(scored) if scored else 0.0
    result = Calibration(
        cases=len(cases),
        scored=len(scored),
        churned=sum(churned),
        base_rate=base,
        score_auc=auc(churned, health),
        components=_components(scored, settings),
        zones=_zones(scored, base),
        flags=_flags(scored, base),
        bands=_bands(churned, health),
    )
    if result.score_auc is not None:
        fpr, tpr, _ = roc_curve(churned, [-h for h in health])
        result.curves["score"] = (fpr.tolist(), tpr.tolist())
        best = max(
            (c for c in result.components if c[2] is not None),
            key=lambda c: c[2] or 0,
            default=None,
        )
        if best is not None:
            name = best[0]
            pairs = [
                (case.churned, value)
                for case in scored
                if (value := _share(case, name, settings)) is not None
            ]
            fpr, tpr, _ = roc_curve([c for c, _ in pairs], [-v for _, v in pairs])
            result.curves[f"{name} alone"] = (fpr.tolist(), tpr.tolist())
    return result


def _share(case: Case, name: str, settings: Settings) -> float | None:
    return share(case.component(name), settings.health.components.declared[name])


def _components(scored: list[Case], settings: Settings) -> list[tuple[str, int, float | None]]:
    out = []
    for name in settings.health.components.declared:
        pairs = [
            (case.churned, value)
            for case in scored
            if (value := _share(case, name, settings)) is not None
        ]
        out.append((name, len(pairs), auc([c for c, _ in pairs], [v for _, v in pairs])))
    return out


def _zones(scored: list[Case], base: float) -> list[Rate]:
    rates = []
    for zone in ZONES:
        inside = [case.churned for case in scored if case.health and case.health["zone"] == zone]
        rate = sum(inside) / len(inside) if inside else 0.0
        rates.append(Rate(zone, len(inside), sum(inside), rate, rate / base if base else 0.0))
    return rates


def _flags(scored: list[Case], base: float) -> list[Flag]:
    churners = sum(case.churned for case in scored)
    keys = sorted({key for case in scored for key in case.flagged})
    flags = []
    for key in keys:
        hit = [case.churned for case in scored if key in case.flagged]
        precision = sum(hit) / len(hit)
        recall = sum(hit) / churners if churners else 0.0
        flags.append(
            Flag(key, len(hit), sum(hit), precision, recall, precision / base if base else 0.0)
        )
    return flags


def _bands(churned: list[bool], health: list[float]) -> list[Band]:
    expected = _expected(churned, health)
    bands = []
    for low, high in BANDS:
        inside = [i for i, h in enumerate(health) if low <= h <= high]
        hit = sum(churned[i] for i in inside)
        bands.append(
            Band(
                low,
                high,
                len(inside),
                hit,
                hit / len(inside) if inside else 0.0,
                float(np.mean([expected[i] for i in inside]))
                if expected is not None and inside
                else None,
            )
        )
    return bands


def _expected(churned: list[bool], health: list[float]) -> list[float] | None:
    """Each account's chance of churn from a logistic fit of the score, predicted by a fit
    on the other folds (so no account predicts itself)."""
    fewest = min(sum(churned), len(churned) - sum(churned))
    if fewest < 2:
        return None
    folds = StratifiedKFold(n_splits=min(5, fewest), shuffle=True, random_state=0)
    x = np.array(health).reshape(-1, 1)
    p = cross_val_predict(LogisticRegression(), x, churned, cv=folds, method="predict_proba")
    return [float(row[1]) for row in p]

"""Fitting the components' weights and scales to outcomes, transparently: each scale
chosen by a one-variable logistic fit of the share it gives, then a logistic regression
of staying on the components' shares with every weight kept at or above zero (a
component whose weight comes out negative is dropped and the rest fitted again),
rounded to whole points. Cross-validation scores held-out accounts the way the engine
does: the weighted mean of the shares of the components with data."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from vigil.config.settings import Settings
from vigil.evaluate.figures import auc
from vigil.evaluate.history import Case
from vigil.evaluate.shares import scale_of, share_under

# Share of the scored accounts a component needs data for to be fitted.
MIN_COVERAGE = 0.05
# Quantiles of the values seen that a scale may move to, besides where it is.
QUANTILES = (0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class Fitted:
    """Weights (whole points) and scales of the components fitted; the others keep
    theirs. `cv_auc` is what the fitted score reached on held-out accounts, `auc` the
    current score's on the same accounts."""

    weights: dict[str, float]
    scales: dict[str, tuple[str, float]]
    kept: list[str]  # components not fitted: too little data, or nothing to fit
    cv_auc: float | None
    auc: float | None
    accounts: int
    folds: int


def fit(cases: list[Case], settings: Settings, folds: int = 5) -> Fitted:
    scored = [case for case in cases if case.health is not None]
    churned = np.array([case.churned for case in scored])
    fewest = min(int(churned.sum()), len(churned) - int(churned.sum()))
    if fewest < 2:
        raise ValueError("fitting needs at least 2 accounts that churned and 2 that stayed")
    names = _fittable(scored, settings)
    weights, scales = _fit(scored, settings, names)
    folds = min(folds, fewest)
    held_out: list[float] = [math.nan] * len(scored)
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    for train, test in splits.split(np.zeros(len(scored)), churned):
        fold_weights, fold_scales = _fit([scored[i] for i in train], settings, names)
        for i in test:
            held_out[i] = _score(scored[i], settings, fold_weights, fold_scales)
    kept = [n for n in settings.health.components.declared if n not in names]
    current = [float(case.health["score"]) for case in scored if case.health]
    known = [i for i, score in enumerate(held_out) if not math.isnan(score)]
    return Fitted(
        weights=weights,
        scales=scales,
        kept=kept,
        cv_auc=auc([bool(churned[i]) for i in known], [held_out[i] for i in known]),
        auc=auc([bool(c) for c in churned], current),
        accounts=len(scored),
        folds=folds,
    )


def _fittable(scored: list[Case], settings: Settings) -> list[str]:
    """The components with data for enough accounts, whose values are not the same for
    all of them: one that only earned_while moves says nothing of what it measures."""
    names = []
    for name in settings.health.components.declared:
        values = {str(v) for case in scored if (v := _value(case, name)) is not None}
        covered = sum(_value(case, name) is not None for case in scored)
        if covered >= MIN_COVERAGE * len(scored) and len(values) > 1:
            names.append(name)
    return names


def _value(case: Case, name: str) -> float | None:
    value = case.component(name).get("value")
    return float(value) if isinstance(value, int | float) else None


def _fit(
    cases: list[Case], settings: Settings, names: list[str]
) -> tuple[dict[str, float], dict[str, tuple[str, float]]]:
    declared = settings.health.components.declared
    stayed = np.array([not case.churned for case in cases])
    scales: dict[str, tuple[str, float]] = {}
    for name in names:
        scale = scale_of(declared[name])
        if scale is not None:
            scales[name] = _best_scale(cases, settings, name, scale, stayed)
    columns = [_shares(cases, settings, name, scales.get(name)) for name in names]
    x = np.column_stack(columns) if columns else np.zeros((len(cases), 0))
    active = list(range(len(names)))
    coefs = np.zeros(len(names))
    while active:
        model = LogisticRegression(max_iter=1000).fit(x[:, active], stayed)
        found = model.coef_[0]
        if (found >= 0).all():
            coefs[active] = found
            break
        del active[int(np.argmin(found))]  # the most negative: fitted again without it
    total = sum(declared[name].weight for name in names)
    weights = {
        name: float(round(total * c / coefs.sum())) if coefs.sum() > 0 else 0.0
        for name, c in zip(names, coefs, strict=True)
    }
    return weights, scales


def _shares(
    cases: list[Case], settings: Settings, name: str, scale: tuple[str, float] | None
) -> np.ndarray:
    """The component's share per account, under `scale`; an account without data takes
    the mean of those with (in the engine, its weight goes to the other components)."""
    declared = settings.health.components.declared[name]
    values = [share_under(c.component(name), declared, scale) for c in cases]
    known = [v for v in values if v is not None]
    mean = float(np.mean(known)) if known else 0.0
    return np.array([mean if v is None else v for v in values])


def _best_scale(
    cases: list[Case],
    settings: Settings,
    name: str,
    scale: tuple[str, float],
    stayed: np.ndarray,
) -> tuple[str, float]:
    """Where the scale fits the outcomes best: by the log-loss of a logistic fit of the
    share it gives, among quantiles of the values seen and where it is now."""
    kind, now = scale
    values = [v for c in cases if (v := _value(c, name)) is not None and v > 0]
    candidates = (
        {now, *(round(float(np.quantile(values, q)), 2) for q in QUANTILES)} if values else {now}
    )
    best, best_loss = now, math.inf
    for at in sorted(a for a in candidates if a > 0):
        x = _shares(cases, settings, name, (kind, at)).reshape(-1, 1)
        if len(np.unique(x)) < 2:
            continue
        model = LogisticRegression().fit(x, stayed)
        loss = log_loss(stayed, model.predict_proba(x)[:, 1])
        if loss < best_loss - 1e-9:
            best, best_loss = at, loss
    return kind, best


def _score(
    case: Case,
    settings: Settings,
    weights: dict[str, float],
    scales: dict[str, tuple[str, float]],
) -> float:
    """The score the engine would give the account under these weights and scales: the
    weighted mean of the shares of the components with data, out of 100."""
    points = total = 0.0
    for name, declared in settings.health.components.declared.items():
        weight = weights.get(name, declared.weight)
        component = case.component(name)
        scale = scales.get(name)
        value = share_under(component, declared, scale)
        if value is None or weight <= 0:
            continue
        points += weight * value
        total += weight
    return 100.0 * points / total if total else math.nan


def settings_file(fitted: Fitted, said: str) -> str:
    """A settings file (TOML) with the fitted weights and scales, saying how they were
    fitted (`said`) and what they reached."""
    import tomli_w

    components: dict[str, dict[str, float]] = {}
    for name, weight in fitted.weights.items():
        components[name] = {"weight": weight}
        if name in fitted.scales:
            kind, at = fitted.scales[name]
            components[name][kind] = at
    cv = "n/a" if fitted.cv_auc is None else f"{fitted.cv_auc:.3f}"
    now = "n/a" if fitted.auc is None else f"{fitted.auc:.3f}"
    header = [
        "# Health component weights and scales fitted by `vigil calibrate --fit`.",
        f"# {said}",
        f"# Accounts: {fitted.accounts}. Cross-validated AUC ({fitted.folds} folds): {cv};",
        f"# the scores of the run calibrated: {now}.",
        "# Not fitted (too little data, or weighed as they are): "
        + (", ".join(fitted.kept) or "none")
        + ".",
        "# Use it as it is (vigil run --config FILE), or copy the tables into your own file.",
    ]
    return "\n".join(header) + "\n\n" + tomli_w.dumps({"health": {"components": components}})

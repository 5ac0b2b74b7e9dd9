"""A calibration said two ways: plain text for the terminal, and an HTML page with the
pictures people would rather look at (the ROC curve, churn by zone, reliability)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterator

from vigil.evaluate.figures import Calibration
from vigil.evaluate.fit import Fitted


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def tables(c: Calibration) -> Iterator[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of each table of the report."""
    yield (
        "Ranking: area under the ROC curve (churners scored lower; 0.5 is a coin flip)",
        ["", "accounts", "AUC"],
        [["score", str(c.scored), _f(c.score_auc)]]
        + [[name, str(n), _f(a)] for name, n, a in c.components],
    )
    yield (
        "Churn by zone at the cutoff",
        ["zone", "accounts", "churned", "churn rate", "lift"],
        [[r.name, str(r.accounts), str(r.churned), _pct(r.rate), _f(r.lift, 2)] for r in c.zones],
    )
    yield (
        "Signals and rules that fired in the lookback, as predictions of churn",
        ["", "accounts", "churned", "precision", "recall", "lift"],
        [
            [
                f.key,
                str(f.flagged),
                str(f.churned),
                _pct(f.precision),
                _pct(f.recall),
                _f(f.lift, 2),
            ]
            for f in c.flags
        ],
    )
    yield (
        "Reliability: churn seen by score band, and as a logistic fit of the score expects",
        ["score", "accounts", "churned", "seen", "expected"],
        [
            [
                f"{b.low}-{b.high}",
                str(b.accounts),
                str(b.churned),
                _pct(b.observed),
                _pct(b.expected),
            ]
            for b in c.bands
            if b.accounts
        ],
    )


def heading(c: Calibration, horizon: str, lookback: str) -> list[str]:
    return [
        f"{c.cases} accounts with an outcome, {c.scored} scored at their cutoff "
        f"({horizon} before the outcome), {c.churned} of those churned "
        f"(base rate {_pct(c.base_rate)}); signals and rules over the {lookback} before it.",
    ]


def fitted_lines(fitted: Fitted) -> list[str]:
    weights = ", ".join(
        f"{name} {weight:g}"
        + (
            f" ({fitted.scales[name][0]} {fitted.scales[name][1]:g})"
            if name in fitted.scales
            else ""
        )
        for name, weight in fitted.weights.items()
    )
    return [
        f"fitted on {fitted.accounts} accounts: {weights}",
        f"cross-validated AUC ({fitted.folds} folds) {_f(fitted.cv_auc)}, "
        f"against {_f(fitted.auc)} for the scores of the run",
    ]


def text(c: Calibration, horizon: str, lookback: str, fitted: Fitted | None = None) -> str:
    lines = heading(c, horizon, lookback)
    for title, header, rows in tables(c):
        lines += ["", title]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    if fitted is not None:
        lines += ["", *fitted_lines(fitted)]
    return "\n".join(lines) + "\n"


def page(c: Calibration, horizon: str, lookback: str, fitted: Fitted | None = None) -> str:
    parts = ["<!doctype html><meta charset=utf-8><title>Vigil calibration</title>"]
    parts.append(
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;"
        "text-align:right}td:first-child,th:first-child{text-align:left}</style>"
    )
    parts.append("<h1>Vigil calibration</h1>")
    parts += [f"<p>{html.escape(line)}</p>" for line in heading(c, horizon, lookback)]
    if fitted is not None:
        parts += [f"<p><b>{html.escape(line)}</b></p>" for line in fitted_lines(fitted)]
    parts.append(
        "".join(f'<img alt="{alt}" src="data:image/png;base64,{png}">' for alt, png in _pictures(c))
    )
    for title, header, rows in tables(c):
        parts.append(f"<h2>{html.escape(title)}</h2><table>")
        parts.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
        for row in rows:
            parts.append(
                "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
            )
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def _pictures(c: Calibration) -> Iterator[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")  # no display: pictures into memory
    from matplotlib import pyplot as plt

    def png(fig: object) -> str:
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=80, bbox_inches="tight")  # type: ignore[attr-defined]
        plt.close(fig)  # type: ignore[arg-type]
        return base64.b64encode(out.getvalue()).decode()

    if c.curves:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for name, (fpr, tpr) in c.curves.items():
            ax.plot(fpr, tpr, label=name)
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="coin flip")
        ax.set(xlabel="accounts that stayed, flagged", ylabel="churners, flagged", title="ROC")
        ax.legend(loc="lower right")
        yield "ROC curve", png(fig)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    zones = [r for r in c.zones if r.accounts]
    ax.bar(
        [r.name for r in zones],
        [100 * r.rate for r in zones],
        color=[_COLOURS[r.name] for r in zones],
    )
    ax.axhline(100 * c.base_rate, linestyle=":", color="grey", label="all accounts")
    ax.set(ylabel="churned (%)", title="Churn by zone")
    ax.legend()
    yield "churn by zone", png(fig)
    bands = [b for b in c.bands if b.accounts]
    if any(b.expected is not None for b in bands):
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        labels = [f"{b.low}-{b.high}" for b in bands]
        ax.plot(labels, [100 * b.observed for b in bands], marker="o", label="seen")
        ax.plot(labels, [100 * (b.expected or 0) for b in bands], marker="x", label="expected")
        ax.set(xlabel="score", ylabel="churned (%)", title="Reliability")
        ax.tick_params(axis="x", labelrotation=45)
        ax.legend()
        yield "reliability", png(fig)


_COLOURS = {"green": "#2e7d32", "yellow": "#f9a825", "orange": "#ef6c00", "red": "#c62828"}

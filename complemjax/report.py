"""Turning result tables into markdown tables, seed intervals and PNG figures.

Studies write tidy CSVs; the functions here summarise them over seeds (mean and a
Student-t interval), print markdown tables whose columns are explained underneath, draw
line plots with interval bands, and assemble ``report.md`` from per-study sections.
Nothing here computes a metric: it only aggregates what the studies measured.
``seed_interval`` and ``summarize`` live in :mod:`complemjax.stats` (re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from complemjax.stats import seed_interval, summarize

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "assemble_report",
    "check_results_table",
    "format_ci",
    "line_plot",
    "markdown_table",
    "new_figure",
    "seed_interval",
    "share_where",
    "summarize",
]


def check_results_table(
    path: str | Path, *, complete: Sequence[str] = (), allow_missing: bool = False
) -> pd.DataFrame:
    """Read a study's results CSV and refuse it when it cannot support a report.

    A report's summary sentences ("the CF ranker is better in X% of runs") are computed
    from these tables; a missing (NaN) value in a column such a sentence counts over would
    silently drop out of (or skew) the count. So the table must exist, parse and have rows,
    and the ``complete`` columns must hold no NaN (unless ``allow_missing``). NaN values in
    other columns (metrics undefined for some configurations) are counted in one warning
    line on stderr.

    Args:
        path: the CSV file.
        complete: columns that must not hold NaN (the ones summary sentences count over).
        allow_missing: accept NaN in ``complete`` columns too (then only warned about).

    Returns:
        The table.

    Raises:
        ValueError: missing, empty or unparsable file, a ``complete`` column that is
            absent, or NaN values in ``complete`` columns (naming columns and counts).
    """
    import sys

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"results table {path} does not exist")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError as e:
        raise ValueError(f"results table {path} is empty; rerun the study") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ValueError(f"results table {path} does not parse ({e}); rerun the study") from e
    if df.empty:
        raise ValueError(f"results table {path} has a header but no rows; rerun the study")
    absent = [c for c in complete if c not in df.columns]
    if absent:
        raise ValueError(
            f"results table {path} lacks columns {absent} (broken, or written by another "
            f"version); rerun the study"
        )
    n_nan = df.select_dtypes("number").isna().sum()
    n_nan = n_nan[n_nan > 0]
    hard = [c for c in n_nan.index if c in complete]
    if hard and not allow_missing:
        what = ", ".join(f"{c}: {int(n_nan[c])} of {len(df)}" for c in hard)
        raise ValueError(
            f"results table {path} has missing (NaN) values ({what}); the report's summary "
            f"counts over these columns would silently drop those runs. Rerun the study, or "
            f"pass --allow-missing to report on the finite values only"
        )
    if len(n_nan):
        what = ", ".join(f"{c}: {int(n)} of {len(df)}" for c, n in n_nan.items())
        print(f"complemjax: warning: {path.name} has NaN values ({what})", file=sys.stderr)
    return df


def share_where(
    condition: Sequence[bool] | np.ndarray, valid: Sequence[bool] | np.ndarray
) -> tuple[float, int, int]:
    """Share of ``valid`` entries where ``condition`` holds: ``(share, n_used, n_dropped)``.

    For summary sentences such as "A is better in X% of runs": compute ``condition`` as
    ``a > b`` and ``valid`` as ``isfinite(a) & isfinite(b)``, and state ``n_dropped``
    when it is not zero. ``share`` is NaN when no entry is valid.
    """
    cond = np.asarray(condition, dtype=bool)
    ok = np.asarray(valid, dtype=bool)
    if cond.shape != ok.shape:
        raise ValueError(
            f"`condition` and `valid` must have the same shape, got {cond.shape} and {ok.shape}"
        )
    n_used = int(ok.sum())
    share = float(cond[ok].mean()) if n_used else math.nan
    return share, n_used, int(ok.size - n_used)


def format_ci(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    """``'0.512 [0.490, 0.534]'``; just the mean when the interval is undefined."""
    if math.isnan(mean):
        return "n/a"
    if math.isnan(lo) or math.isnan(hi):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown_table(
    df: pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    *,
    digits: int = 3,
) -> str:
    """A GitHub markdown table of ``df`` followed by a legend of what each column means.

    Args:
        df: table to print (index ignored).
        columns: ``{column: meaning}``; printed under the table as the legend. Columns of
            ``df`` missing from it are printed without a legend entry.
        digits: decimals of float cells.
    """

    def cell(v) -> str:
        if isinstance(v, float | np.floating):
            return "n/a" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    out = [header, rule, *body]
    if columns:
        legend = [f"- `{c}`: {columns[c]}" for c in df.columns if c in columns]
        if legend:
            out += ["", "Columns:", *legend]
    return "\n".join(out) + "\n"


def new_figure(**kwargs: Any) -> Figure:
    """A matplotlib ``Figure`` not registered with pyplot (no backend is chosen or changed).

    Figures are drawn with the Agg canvas and written with ``fig.savefig``; importing
    complemjax never touches the user's matplotlib backend, and no figure stays open.
    """
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def line_plot(
    summary: pd.DataFrame,
    *,
    x: str,
    hue: str,
    path: str | Path,
    facet: str | None = None,
    title: str = "",
    xlabel: str | None = None,
    ylabel: str = "",
    logx: bool = False,
    hline: float | None = None,
    ylim: tuple[float, float] | None = None,
) -> Path:
    """Line plot of ``summary`` (from :func:`summarize`) with seed-interval bands.

    One panel per value of ``facet``; one line per value of ``hue``; ``mean`` on the y
    axis with ``[ci_low, ci_high]`` shaded.
    """
    path = Path(path)
    facets = [None] if facet is None else list(dict.fromkeys(summary[facet]))
    ncol = min(len(facets), 3)
    nrow = -(-len(facets) // ncol)
    fig = new_figure(figsize=(4.6 * ncol, 3.6 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False, sharey=True)
    for ax, fv in zip(axes.flat, facets):
        sub = summary if fv is None else summary[summary[facet] == fv]
        for hv in dict.fromkeys(sub[hue]):
            line = sub[sub[hue] == hv].sort_values(x)
            ax.plot(line[x], line["mean"], marker="o", ms=3.5, label=str(hv))
            ax.fill_between(line[x], line["ci_low"], line["ci_high"], alpha=0.2)
        if hline is not None:
            ax.axhline(hline, color="grey", lw=0.8, ls="--")
        if logx:
            ax.set_xscale("log", base=2)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_title(f"{facet} = {fv}" if fv is not None else title, fontsize=10)
        ax.set_xlabel(xlabel or x)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(facets) :]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(ylabel)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, title=hue, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title and facet is not None:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def assemble_report(
    out_dir: str | Path, sections: Sequence[tuple[str, str]], *, intro: str = ""
) -> Path:
    """Write ``out_dir/report.md`` from ``(title, markdown)`` sections, in order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = ["# complemjax results\n", intro.strip() + "\n" if intro else ""]
    toc = [f"- [{t}](#{t.lower().replace(' ', '-')})" for t, _ in sections]
    parts += ["## Contents\n", "\n".join(toc) + "\n"]
    for title, body in sections:
        parts += [f"## {title}\n", body.strip() + "\n"]
    path = out_dir / "report.md"
    path.write_text("\n".join(p for p in parts if p))
    return path

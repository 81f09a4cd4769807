"""The protocol every study of ``complemjax reproduce`` follows, and its shared plumbing.

A study is a module with:

- ``NAME``: its name (the key in :data:`complemjax.studies.STUDIES`, the stem of its files);
- ``StudyConfig``: a frozen dataclass of sizes and grids, whose defaults are the run of
  ``make reproduce`` and whose ``StudyConfig.full()`` is the run of ``--full``;
- ``run(out_dir, *, config=None, seed=0, progress=True, resume=False) -> dict[str, DataFrame]``:
  computes and writes its tables (``out_dir/<NAME>.csv`` is the main one, other tables
  ``out_dir/<NAME>_<table>.csv``, metadata ``out_dir/<NAME>.meta.json``) and returns them;
- ``render(out_dir) -> str``: the markdown section (and figures under ``out_dir/figures``)
  rebuilt from the saved tables alone, without recomputing;
- optionally ``plan(config) -> list[str]``: the work a run will do, one line per stage,
  printed by the command before it starts.

Inside a study, ``run`` and ``render`` are split into named steps (``_one_seed``,
``_tables``, ``_figures``, ``_findings``) so that no function carries a whole study.

This module also holds what studies share: :class:`Progress` (elapsed time and a measured
estimate of the time left), :class:`StageTimer` (a per-stage time table), saving/loading of
tables, and the figure style (:func:`method_style`: one colour and marker per method, the
same in every figure, readable in grayscale) with :func:`interval_plot` (dot-and-interval
plots of paired differences).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = [
    "Progress",
    "StageTimer",
    "Study",
    "interval_plot",
    "load_tables",
    "method_style",
    "resolve_config",
    "save_tables",
]


@runtime_checkable
class Study(Protocol):
    """What ``complemjax reproduce`` needs of a study module (see the module docstring)."""

    NAME: str
    StudyConfig: type

    def run(
        self,
        out_dir: str | Path,
        *,
        config: Any = None,
        seed: int = 0,
        progress: bool = True,
        resume: bool = False,
    ) -> dict[str, pd.DataFrame]:
        """Compute the study's tables, write them (CSV) under ``out_dir``, return them."""
        ...

    def render(self, out_dir: str | Path) -> str:
        """Figures and a markdown section from the CSVs saved in ``out_dir``."""
        ...


def resolve_config(cls: type, config: Any = None, *, full: bool = False) -> Any:
    """The study config to run: ``config`` if given, else ``cls.full()`` or ``cls()``.

    Raises:
        ValueError: ``config`` is not an instance of ``cls``.
    """
    if config is None:
        return cls.full() if full else cls()
    if not isinstance(config, cls):
        raise ValueError(
            f"`config` must be a {cls.__module__}.{cls.__name__}, got {type(config).__name__}"
        )
    return config


# ----------------------------------------------------------------------------- progress
class Progress:
    """Prints units of work done, elapsed time and a measured estimate of the time left.

    The estimate is ``remaining units × mean seconds per unit``, where the mean excludes the
    first unit once a second one is done (the first carries compilation); after only the
    first unit it is ``remaining × first unit`` (an overestimate, and labelled as such).

    Args:
        name: label printed in front of every line.
        total: units of work planned (e.g. variants × seeds).
        enabled: print nothing when False (times are still measured).
    """

    def __init__(self, name: str, total: int, *, enabled: bool = True):
        if total < 0:
            raise ValueError(f"`total` must be >= 0, got {total}")
        self.name, self.total, self.enabled = name, int(total), enabled
        self.t0 = time.perf_counter()
        self.done = 0
        self.durations: list[float] = []
        self._last = self.t0

    def eta(self) -> float:
        """Estimated seconds left (NaN before the first unit)."""
        if not self.durations:
            return float("nan")
        rest = self.total - self.done
        per = np.mean(self.durations[1:]) if len(self.durations) > 1 else self.durations[0]
        return float(max(rest, 0) * per)

    def step(self, what: str = "", *, skipped: bool = False) -> None:
        """Mark one unit done (``skipped``: reused from an earlier run, not timed)."""
        now = time.perf_counter()
        self.done += 1
        if not skipped:
            self.durations.append(now - self._last)
        self._last = now
        if self.enabled:
            eta = self.eta()
            left = "n/a" if np.isnan(eta) else f"~{eta:.0f} s"
            tag = " (reused)" if skipped else ""
            print(
                f"  [{self.name}] {self.done}/{self.total} {what}{tag}: elapsed "
                f"{now - self.t0:.0f} s, estimated left {left}",
                flush=True,
            )


class StageTimer:
    """Accumulates wall-clock seconds per named stage; ``table()`` gives the time table.

    Example:
        >>> timer = StageTimer()
        >>> with timer("train"):
        ...     pass
        >>> list(timer.table().columns)
        ['stage', 'seconds', 'calls']
    """

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def __call__(self, stage: str):
        """A context manager that adds its wall time to ``stage``."""
        return _Stage(self, stage)

    def add(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` (one call) to ``stage``."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + float(seconds)
        self.calls[stage] = self.calls.get(stage, 0) + 1

    def table(self) -> pd.DataFrame:
        """Columns stage, seconds, calls: one row per stage, in first-seen order."""
        rows = [(s, round(v, 2), self.calls[s]) for s, v in self.seconds.items()]
        return pd.DataFrame(rows, columns=["stage", "seconds", "calls"])


class _Stage:
    def __init__(self, timer: StageTimer, stage: str):
        self.timer, self.stage = timer, stage

    def __enter__(self):
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.timer.add(self.stage, time.perf_counter() - self.t)
        return False


# ----------------------------------------------------------------------------- tables
def _table_path(out_dir: Path, name: str, table: str) -> Path:
    return out_dir / (f"{name}.csv" if table == "main" else f"{name}_{table}.csv")


def save_tables(
    out_dir: str | Path, name: str, tables: Mapping[str, pd.DataFrame], meta: Mapping[str, Any]
) -> None:
    """Write ``tables`` and ``meta`` under ``out_dir``.

    ``"main"`` → ``<name>.csv``, other tables ``<name>_<table>.csv``; ``meta`` →
    ``<name>.meta.json``, with the list of tables.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "main" not in tables:
        raise ValueError(f"`tables` must include 'main', got {sorted(tables)}")
    for table, df in tables.items():
        df.to_csv(_table_path(out_dir, name, table), index=False)
    meta = {**meta, "tables": sorted(tables)}
    (out_dir / f"{name}.meta.json").write_text(json.dumps(meta, indent=1, default=_json_default))


def load_tables(out_dir: str | Path, name: str) -> tuple[dict[str, pd.DataFrame], dict]:
    """Read back what :func:`save_tables` wrote: ``(tables, meta)``."""
    out_dir = Path(out_dir)
    path = out_dir / f"{name}.meta.json"
    if not path.is_file():
        raise ValueError(f"`out_dir` {out_dir} has no {path.name}; run the study first")
    meta = json.loads(path.read_text())
    tables = {}
    for table in meta.get("tables", ["main"]):
        p = _table_path(out_dir, name, table)
        tables[table] = pd.read_csv(p) if p.stat().st_size > 1 else pd.DataFrame()
    return tables, meta


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    return str(o)


# ----------------------------------------------------------------------------- figures
# One colour per method family, the same in every figure (Okabe-Ito, colour-blind safe),
# and a distinct marker so that figures stay readable in grayscale.
_PALETTE = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00",
    "#CC79A7", "#999999",
)  # fmt: skip
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")
_FIXED = {
    "semantic": 0, "bpr": 1, "lightgcn": 2, "ease": 3, "popularity": 8, "random": 8,
    "alpharec": 5, "rlmrec": 6, "wsum": 7, "rrf": 4, "combmnz": 4, "gate": 7,
    "shared-private": 0, "oracle-merge": 8,
}  # fmt: skip


def method_style(method: str) -> dict[str, str]:
    """Matplotlib ``color`` and ``marker`` of a method, fixed across every figure.

    Methods whose name starts with a known family (``bpr``, ``lightgcn``, ``wsum@K`` ...)
    take that family's colour; the marker is derived from the full name, so two methods
    of one family remain distinguishable without colour.
    """
    family = method.split(" ")[0].split("@")[0].split("(")[0]
    idx = _FIXED.get(family)
    if idx is None:
        idx = sum(map(ord, family)) % len(_PALETTE)
    marker = _MARKERS[sum(map(ord, method)) % len(_MARKERS)]
    return {"color": _PALETTE[idx], "marker": marker}


def interval_plot(
    df: pd.DataFrame,
    *,
    path: str | Path,
    title: str,
    xlabel: str,
    facet: str | None = None,
    method: str = "method",
    estimate: str = "effect",
    low: str = "ci_low",
    high: str = "ci_high",
    zero_label: str = "0",
) -> Path:
    """Dot-and-interval plot: one row per method, its estimate and interval, a line at 0.

    Args:
        df: one row per (facet, method) with columns ``method``, ``estimate``, ``low``,
            ``high`` (e.g. paired differences against the best single view).
        path: PNG file to write.
        title: figure title (the question the figure answers).
        xlabel: what the x axis is, with its unit and what the interval is over.
        facet: optional column; one panel per value.
        method: column naming the method of each row (the y axis).
        estimate: column of the point estimate.
        low: column of the interval's lower end.
        high: column of the interval's upper end.
        zero_label: legend text of the reference line at 0.
    """
    from matplotlib.figure import Figure

    for c in (method, estimate, low, high) + ((facet,) if facet else ()):
        if c not in df.columns:
            raise ValueError(f"`df` lacks column {c!r}; it has {list(df.columns)}")
    facets = list(dict.fromkeys(df[facet])) if facet else [None]
    n_rows = max(len(set(df[method])), 1)
    fig = Figure(figsize=(4.6 * len(facets), 0.42 * n_rows + 1.4))
    axes = fig.subplots(1, len(facets), squeeze=False, sharey=True)
    order = list(dict.fromkeys(df[method]))
    for ax, f in zip(axes[0], facets):
        g = df if f is None else df[df[facet] == f]
        for y, m in enumerate(order):
            r = g[g[method] == m]
            if r.empty:
                continue
            st = method_style(m)
            e, lo, hi = (float(r[c].iloc[0]) for c in (estimate, low, high))
            ax.plot([lo, hi], [y, y], color=st["color"], lw=2)
            ax.plot([e], [y], marker=st["marker"], color=st["color"], ms=7, ls="none",
                    markeredgecolor="black")  # fmt: skip
        ax.axvline(0.0, color="0.4", ls="--", lw=1, label=zero_label)
        ax.set_yticks(range(len(order)), order, fontsize=8)
        ax.set_xlabel(xlabel, fontsize=8)
        if f is not None:
            ax.set_title(str(f), fontsize=9)
        ax.invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path

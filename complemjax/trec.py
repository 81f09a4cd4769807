"""Rankings from other tools in, results out: TREC run and qrels files, ranx runs.

A **run** lists, for each query (here: a user), ranked documents (items) with scores::

    qid Q0 docid rank score tag          # one line per (user, item), whitespace-separated

and **qrels** list the relevant documents of each query::

    qid 0 docid relevance                # relevance > 0 counts as relevant (binary)

These are the formats of trec_eval and ranx (``Run.from_file(kind="trec")``), so a
researcher with two existing systems gets complementarity diagnostics
(:func:`complemjax.complementarity.compare_rankers`) without re-implementing anything, and
fused rankings go back out to those tools.

Order of a run's list: score descending; equal scores by ``rank`` ascending, then by docid
(as a string) ascending — stated because trec_eval breaks score ties by docid descending
and ranx by its own order, so tied lists can differ between tools.

The module is host-side (NumPy/pandas), with no dependency beyond them; ranx objects are
accepted when ranx is installed (``pip install ranx``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from complemjax._checks import check_positive_int

if TYPE_CHECKING:
    from ranx import Run as RanxRun

__all__ = [
    "Qrels",
    "Run",
    "from_ranx",
    "qrels_to_sets",
    "read_qrels",
    "read_run",
    "run_to_topk",
    "to_ranx",
    "topk_to_run",
    "write_run",
]


class Run(NamedTuple):
    """A ranking of items per user, as read from a TREC run file.

    Attributes:
      frame: DataFrame with string columns ``user``, ``item`` and float ``score``, int
        ``rank``; one row per (user, item), sorted per user best first.
      tag: the run tag (the file's last column), or ``""``.
    """

    frame: pd.DataFrame
    tag: str = ""


class Qrels(NamedTuple):
    """Relevance judgements: DataFrame with string ``user``, ``item`` and int ``relevance``."""

    frame: pd.DataFrame


def _path(name: str, path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"`{name}` must be a file path, got {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"`{name}`: no such file {p}")
    return p


def _read_columns(name: str, path: Path, n_cols: int) -> list[list[str]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != n_cols:
                raise ValueError(
                    f"`{name}` {path}: line {lineno} has {len(parts)} fields, expected "
                    f"{n_cols}: {line.strip()[:80]!r}"
                )
            rows.append(parts)
    if not rows:
        raise ValueError(f"`{name}` {path} has no entries")
    return rows


def _sort_run(df: pd.DataFrame) -> pd.DataFrame:
    df = df.sort_values(
        ["user", "score", "rank", "item"], ascending=[True, False, True, True], kind="stable"
    )
    return df.reset_index(drop=True)


def read_run(path: str | os.PathLike) -> Run:
    """Read a TREC run file (``qid Q0 docid rank score tag``).

    Args:
      path: file path.

    Returns:
      :class:`Run`, lists ordered by score descending (ties: rank, then docid).

    Raises:
      ValueError: missing file, a line without six fields, a non-numeric rank or score,
        a non-finite score, or an item listed twice for the same user (naming the user).
    """
    p = _path("path", path)
    rows = _read_columns("path", p, 6)
    df = pd.DataFrame(rows, columns=["user", "q0", "item", "rank", "score", "tag"])
    try:
        df["rank"] = df["rank"].astype(np.int64)
        df["score"] = df["score"].astype(np.float64)
    except ValueError as e:
        raise ValueError(f"`path` {p}: rank/score columns must be numeric ({e})") from None
    if not np.isfinite(df["score"].to_numpy()).all():
        bad = int((~np.isfinite(df["score"].to_numpy())).sum())
        raise ValueError(f"`path` {p}: {bad} non-finite scores")
    dup = df.duplicated(["user", "item"])
    if dup.any():
        r = df[dup].iloc[0]
        raise ValueError(f"`path` {p}: user {r['user']!r} lists item {r['item']!r} twice")
    tags = df["tag"].unique()
    tag = str(tags[0]) if len(tags) == 1 else ""
    return Run(_sort_run(df[["user", "item", "rank", "score"]]), tag)


def read_qrels(path: str | os.PathLike) -> Qrels:
    """Read a TREC qrels file (``qid 0 docid relevance``); relevance > 0 is relevant."""
    p = _path("path", path)
    rows = _read_columns("path", p, 4)
    df = pd.DataFrame(rows, columns=["user", "iter", "item", "relevance"])
    try:
        df["relevance"] = df["relevance"].astype(np.int64)
    except ValueError as e:
        raise ValueError(f"`path` {p}: relevance column must be an integer ({e})") from None
    df = df.drop_duplicates(["user", "item"], keep="last")
    return Qrels(df[["user", "item", "relevance"]].reset_index(drop=True))


def _id_index(name: str, ids) -> dict[str, int]:
    ids = [str(x) for x in np.asarray(ids, dtype=object).ravel()]
    if len(set(ids)) != len(ids):
        raise ValueError(f"`{name}` contains repeated ids")
    if not ids:
        raise ValueError(f"`{name}` is empty")
    return {x: j for j, x in enumerate(ids)}


def _map(name: str, values: pd.Series, index: dict[str, int], what: str) -> np.ndarray:
    out = values.map(index)
    missing = out.isna()
    if missing.any():
        examples = ", ".join(repr(v) for v in values[missing].unique()[:3])
        raise ValueError(
            f"`{name}`: {int(missing.sum())} entries name {what} ids that are not in "
            f"`{what}_ids` (e.g. {examples})"
        )
    return out.to_numpy(dtype=np.int64)


def run_to_topk(
    run: Run, *, user_ids: npt.ArrayLike, item_ids: npt.ArrayLike, k: int
) -> np.ndarray:
    """Top-``k`` item indices per user from a run, aligned to ``user_ids`` / ``item_ids``.

    Args:
      run: :class:`Run` (or a ranx ``Run``, converted with :func:`from_ranx`).
      user_ids: ``[U]`` ids giving the row order of the result.
      item_ids: ``[n_items]`` ids giving the item indices.
      k: list length; users with fewer than ``k`` ranked items are padded with ``-1``.

    Returns:
      ``[U, k]`` int32 item indices (``-1`` padding), usable as ``topk_a``/``topk_b`` of
      :func:`complemjax.complementarity.compare_rankers`.
    """
    run = _as_run("run", run)
    k = check_positive_int("k", k)
    uidx = _id_index("user_ids", user_ids)
    iidx = _id_index("item_ids", item_ids)
    df = run.frame
    users = _map("run", df["user"], uidx, "user")
    items = _map("run", df["item"], iidx, "item")
    pos = df.groupby("user", sort=False).cumcount().to_numpy()
    keep = pos < k
    out = np.full((len(uidx), k), -1, dtype=np.int32)
    out[users[keep], pos[keep]] = items[keep]
    return out


def qrels_to_sets(qrels: Qrels, *, user_ids: npt.ArrayLike, item_ids: npt.ArrayLike) -> np.ndarray:
    """Padded relevant-item sets ``[U, T]`` (``-1`` padding) from qrels with relevance > 0.

    Users of ``user_ids`` without judgements get an empty row (they are skipped by the
    metrics); a judged user or item that is not in the id lists raises ``ValueError``.
    """
    if not isinstance(qrels, Qrels):
        raise ValueError(f"`qrels` must be a Qrels (see read_qrels), got {type(qrels).__name__}")
    uidx = _id_index("user_ids", user_ids)
    iidx = _id_index("item_ids", item_ids)
    df = qrels.frame[qrels.frame["relevance"] > 0]
    users = _map("qrels", df["user"], uidx, "user")
    items = _map("qrels", df["item"], iidx, "item")
    counts = np.bincount(users, minlength=len(uidx))
    out = np.full((len(uidx), max(int(counts.max(initial=0)), 1)), -1, dtype=np.int32)
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out[users, np.arange(users.size) - starts[users]] = items
    return out


def topk_to_run(
    items: npt.ArrayLike,
    scores: npt.ArrayLike | None = None,
    *,
    user_ids: npt.ArrayLike,
    item_ids: npt.ArrayLike,
    tag: str = "complemjax",
) -> Run:
    """A :class:`Run` from ``[U, K]`` top-K item indices (``-1`` padding skipped).

    ``scores`` (``[U, K]``) are written as given; without them the score is ``K - rank + 1``
    so that every tool reads the list in the same order.
    """
    items = np.asarray(items)
    if items.ndim != 2 or not np.issubdtype(items.dtype, np.integer):
        raise ValueError(f"`items` must be a 2-D integer array, got {items.dtype} {items.shape}")
    user_ids = np.asarray(user_ids, dtype=object)
    item_ids = np.asarray(item_ids, dtype=object)
    if user_ids.shape[0] != items.shape[0]:
        raise ValueError(f"`user_ids` must have {items.shape[0]} entries, got {user_ids.shape[0]}")
    if items.size and items.max() >= item_ids.shape[0]:
        raise ValueError(f"`items` holds index {items.max()} >= len(item_ids)={len(item_ids)}")
    k = items.shape[1]
    if scores is None:
        scores = np.broadcast_to(np.arange(k, 0, -1, dtype=np.float64), items.shape)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != items.shape:
        raise ValueError(f"`scores` must have shape {items.shape}, got {scores.shape}")
    u, r = np.nonzero(items >= 0)
    if not np.isfinite(scores[u, r]).all():
        raise ValueError("`scores` has non-finite values at listed items")
    df = pd.DataFrame(
        {
            "user": user_ids[u].astype(str),
            "item": item_ids[items[u, r]].astype(str),
            "rank": r + 1,
            "score": scores[u, r],
        }
    )
    return Run(_sort_run(df), tag)


def write_run(path: str | os.PathLike, run: Run) -> Path:
    """Write a :class:`Run` as a TREC run file (``qid Q0 docid rank score tag``).

    Ranks are rewritten 1..n in the run's order, so trec_eval and ranx read the same list.
    """
    run = _as_run("run", run)
    df = run.frame.copy()
    df["rank"] = df.groupby("user", sort=False).cumcount() + 1
    tag = run.tag or "complemjax"
    if any(ch.isspace() for ch in tag):
        raise ValueError(f"`run.tag` must not contain whitespace, got {tag!r}")
    for col in ("user", "item"):
        if df[col].astype(str).str.contains(r"\s").any():
            raise ValueError(f"`run`: a {col} id contains whitespace; TREC files cannot hold it")
    p = Path(path)
    with open(p, "w", encoding="utf-8") as fh:
        for user, item, rank, score in df[["user", "item", "rank", "score"]].itertuples(
            index=False
        ):
            fh.write(f"{user} Q0 {item} {rank} {score!r} {tag}\n")
    return p


def from_ranx(run: Run | RanxRun | Mapping[str, Mapping[str, float]]) -> Run:
    """Convert a ranx ``Run`` (or a ``{user: {item: score}}`` mapping) to a :class:`Run`."""
    if isinstance(run, Run):
        return run
    name = getattr(run, "name", None) or ""
    if hasattr(run, "to_dict"):
        run = run.to_dict()
    if not isinstance(run, Mapping):
        raise ValueError(
            f"`run` must be a complemjax Run, a ranx Run or a mapping, got {type(run).__name__}"
        )
    rows = [(str(u), str(i), float(s)) for u, docs in run.items() for i, s in dict(docs).items()]
    if not rows:
        raise ValueError("`run` has no entries")
    df = pd.DataFrame(rows, columns=["user", "item", "score"])
    if not np.isfinite(df["score"].to_numpy()).all():
        raise ValueError("`run` has non-finite scores")
    df["rank"] = 0
    df = _sort_run(df)
    df["rank"] = df.groupby("user", sort=False).cumcount() + 1
    return Run(df[["user", "item", "rank", "score"]], str(name).replace(" ", "_"))


def to_ranx(run: Run) -> RanxRun:
    """Convert a :class:`Run` to a ranx ``Run`` (needs ``pip install ranx``)."""
    try:
        from ranx import Run as RanxRun
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("to_ranx needs ranx: pip install ranx") from e
    run = _as_run("run", run)
    d: dict[str, dict[str, float]] = {}
    for user, item, score in run.frame[["user", "item", "score"]].itertuples(index=False):
        d.setdefault(user, {})[item] = float(score)
    return RanxRun(d, name=run.tag or None)


def _as_run(name: str, run) -> Run:
    if isinstance(run, Run):
        return run
    if hasattr(run, "to_dict") or isinstance(run, Mapping):
        return from_ranx(run)
    raise ValueError(f"`{name}` must be a Run (see read_run), got {type(run).__name__}")

"""The :class:`Interactions` container: user-item interactions with contiguous indices.

Every dataset in complemjax is an :class:`Interactions`: original user and item ids are
mapped to contiguous ``int32`` indices ``0..n_users-1`` and ``0..n_items-1`` (ids sorted
ascending, so the map does not depend on row order), with optional ratings and timestamps,
item metadata as a :class:`pandas.DataFrame` (one row per item index), and a ``report``
that counts everything that was removed on the way (duplicates, rows with missing ids,
k-core or rating-threshold filtering). Nothing is dropped silently: every removal appears
in ``report``.

All of this is host-side (NumPy/pandas) data preparation; the arrays go to JAX unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from complemjax._checks import check_positive_int
from complemjax.data.padding import pad_item_sets

__all__ = [
    "InteractionStats",
    "Interactions",
    "from_frame",
    "implicit",
    "kcore",
    "stats_table",
]


class InteractionStats(dict):
    """Dataset statistics as papers print them (a ``dict`` with fixed keys).

    Keys: ``name``, ``users``, ``items``, ``interactions``, ``density``
    (= interactions / (users * items)), ``avg_per_user``, ``avg_per_item``,
    ``min_per_user``, ``min_per_item``, ``has_ratings``, ``has_timestamps``.
    """


@dataclasses.dataclass(frozen=True, eq=False)
class Interactions:
    """User-item interactions with contiguous indices and their id maps.

    Attributes:
      user_idx: ``[n]`` int32 user index of each interaction.
      item_idx: ``[n]`` int32 item index of each interaction.
      user_ids: ``[n_users]`` original user ids; ``user_ids[u]`` is the id of index ``u``.
      item_ids: ``[n_items]`` original item ids.
      ratings: ``[n]`` float32 ratings, or None (implicit data).
      timestamps: ``[n]`` int64 timestamps (seconds), or None.
      item_info: DataFrame with ``n_items`` rows in index order (column ``item_id`` plus
        metadata such as ``title``, ``year``, ``genres``), or None.
      report: counts of what was read and removed (e.g. ``duplicates_removed``).
      name: dataset name for tables.

    Each (user, item) pair occurs at most once (duplicates are removed at construction by
    :func:`from_frame` and counted in ``report``). Subsets produced by splits share the
    same id maps as their parent, so indices are comparable across train/valid/test.
    """

    user_idx: np.ndarray
    item_idx: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    item_info: pd.DataFrame | None = None
    report: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    name: str = "interactions"

    def __post_init__(self):
        for field in ("user_idx", "item_idx"):
            v = np.asarray(getattr(self, field))
            if v.ndim != 1 or not (np.issubdtype(v.dtype, np.integer) or v.size == 0):
                raise ValueError(
                    f"`{field}` must be a 1-D integer index array, got dtype {v.dtype}, "
                    f"shape {v.shape} (float ids would be truncated; map ids with from_frame)"
                )
        n = len(self.user_idx)
        if len(self.item_idx) != n:
            raise ValueError(
                f"`item_idx` must have the same length as `user_idx`: got {len(self.item_idx)} "
                f"and {n}"
            )
        for field in ("ratings", "timestamps"):
            v = getattr(self, field)
            if v is not None and len(v) != n:
                raise ValueError(f"`{field}` must have length {n}, got {len(v)}")
        if n:
            if self.user_idx.min() < 0 or self.user_idx.max() >= len(self.user_ids):
                raise ValueError(f"`user_idx` must lie in [0, {len(self.user_ids)})")
            if self.item_idx.min() < 0 or self.item_idx.max() >= len(self.item_ids):
                raise ValueError(f"`item_idx` must lie in [0, {len(self.item_ids)})")
        if self.item_info is not None and len(self.item_info) != len(self.item_ids):
            raise ValueError(
                f"`item_info` must have one row per item ({len(self.item_ids)}), "
                f"got {len(self.item_info)}"
            )

    # ------------------------------------------------------------------ sizes
    @property
    def n_users(self) -> int:
        """Number of users in the id map (including users with no interaction here)."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of items in the id map (including items with no interaction here)."""
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        """Number of (user, item) interactions."""
        return len(self.user_idx)

    def __len__(self) -> int:
        return self.n_interactions

    def __repr__(self) -> str:
        return (
            f"Interactions(name={self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"interactions={self.n_interactions}, ratings={self.ratings is not None}, "
            f"timestamps={self.timestamps is not None})"
        )

    # ------------------------------------------------------------------ id maps
    def user_index(self, ids: npt.ArrayLike) -> np.ndarray:
        """Map original user ids to indices; unknown ids raise ValueError."""
        return _lookup("ids", self.user_ids, ids, "user")

    def item_index(self, ids: npt.ArrayLike) -> np.ndarray:
        """Map original item ids to indices; unknown ids raise ValueError."""
        return _lookup("ids", self.item_ids, ids, "item")

    # ------------------------------------------------------------------ views
    def to_csr(self, *, values: str = "ones") -> sp.csr_matrix:
        """Sparse ``[n_users, n_items]`` CSR matrix.

        Args:
          values: ``"ones"`` (binary implicit matrix) or ``"ratings"``.
        """
        if values == "ones":
            data = np.ones(self.n_interactions, dtype=np.float32)
        elif values == "ratings":
            if self.ratings is None:
                raise ValueError("`values`='ratings' but this dataset has no ratings")
            data = self.ratings.astype(np.float32)
        else:
            raise ValueError(f"`values` must be 'ones' or 'ratings', got {values!r}")
        return sp.csr_matrix(
            (data, (self.user_idx, self.item_idx)), shape=(self.n_users, self.n_items)
        )

    def padded_item_sets(self) -> np.ndarray:
        """Per-user item sets ``[n_users, max_len]`` int32 padded with -1 (ranking contract)."""
        return pad_item_sets(self.user_idx, self.item_idx, self.n_users)

    def user_counts(self) -> np.ndarray:
        """``[n_users]`` number of interactions per user."""
        return np.bincount(self.user_idx, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """``[n_items]`` number of interactions per item."""
        return np.bincount(self.item_idx, minlength=self.n_items)

    def stats(self) -> InteractionStats:
        """Users, items, interactions and density, counting only users/items that occur."""
        uc = self.user_counts()
        ic = self.item_counts()
        n_u = int((uc > 0).sum())
        n_i = int((ic > 0).sum())
        n = self.n_interactions
        return InteractionStats(
            name=self.name,
            users=n_u,
            items=n_i,
            interactions=n,
            density=n / (n_u * n_i) if n_u and n_i else 0.0,
            avg_per_user=n / n_u if n_u else 0.0,
            avg_per_item=n / n_i if n_i else 0.0,
            min_per_user=int(uc[uc > 0].min()) if n_u else 0,
            min_per_item=int(ic[ic > 0].min()) if n_i else 0,
            has_ratings=self.ratings is not None,
            has_timestamps=self.timestamps is not None,
        )

    def to_frame(self) -> pd.DataFrame:
        """Interactions as a DataFrame with indices and original ids."""
        cols = {
            "user": self.user_idx,
            "item": self.item_idx,
            "user_id": self.user_ids[self.user_idx],
            "item_id": self.item_ids[self.item_idx],
        }
        if self.ratings is not None:
            cols["rating"] = self.ratings
        if self.timestamps is not None:
            cols["timestamp"] = self.timestamps
        return pd.DataFrame(cols)

    # ------------------------------------------------------------------ subsets
    def select(
        self,
        mask: npt.ArrayLike,
        *,
        name: str | None = None,
        report: Mapping[str, Any] | None = None,
    ) -> Interactions:
        """Interactions where ``mask`` ([n] bool) is True, keeping the id maps."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.n_interactions,):
            raise ValueError(f"`mask` must have shape ({self.n_interactions},), got {mask.shape}")
        return dataclasses.replace(
            self,
            user_idx=self.user_idx[mask],
            item_idx=self.item_idx[mask],
            ratings=None if self.ratings is None else self.ratings[mask],
            timestamps=None if self.timestamps is None else self.timestamps[mask],
            name=self.name if name is None else name,
            report=dict(self.report) if report is None else report,
        )

    def compact(self) -> Interactions:
        """Drop users and items with no interaction and re-index contiguously.

        The removed counts are added to ``report`` (``compact_users_removed``,
        ``compact_items_removed``), accumulating over repeated calls.
        """
        u_keep = self.user_counts() > 0
        i_keep = self.item_counts() > 0
        u_new = np.cumsum(u_keep) - 1
        i_new = np.cumsum(i_keep) - 1
        report = dict(self.report)
        report["compact_users_removed"] = report.get("compact_users_removed", 0) + int(
            (~u_keep).sum()
        )
        report["compact_items_removed"] = report.get("compact_items_removed", 0) + int(
            (~i_keep).sum()
        )
        info = None
        if self.item_info is not None:
            info = self.item_info.iloc[np.flatnonzero(i_keep)].reset_index(drop=True)
        return dataclasses.replace(
            self,
            user_idx=u_new[self.user_idx].astype(np.int32),
            item_idx=i_new[self.item_idx].astype(np.int32),
            user_ids=self.user_ids[u_keep],
            item_ids=self.item_ids[i_keep],
            item_info=info,
            report=report,
        )


def _lookup(arg: str, table: np.ndarray, ids, kind: str) -> np.ndarray:
    try:
        ids_arr = np.atleast_1d(np.asarray(ids, dtype=table.dtype if table.size else None))
    except (TypeError, ValueError) as e:
        raise ValueError(f"`{arg}`: cannot compare with {kind} ids of dtype {table.dtype}") from e
    pos = np.searchsorted(table, ids_arr)
    pos_c = np.clip(pos, 0, max(len(table) - 1, 0))
    ok = (pos < len(table)) & (table[pos_c] == ids_arr) if len(table) else np.zeros_like(pos, bool)
    if not np.all(ok):
        bad = ids_arr[~ok]
        raise ValueError(f"`{arg}`: {bad.size} unknown {kind} id(s), e.g. {list(bad[:5])!r}")
    return pos.astype(np.int32)


def _sorted_unique(values: pd.Series) -> np.ndarray:
    uniq = pd.unique(values)
    try:
        return np.sort(np.asarray(uniq))
    except TypeError:  # mixed types: sort by string form
        return np.asarray(sorted(uniq, key=str), dtype=object)


def from_frame(
    df: pd.DataFrame,
    *,
    user_col: str,
    item_col: str,
    rating_col: str | None = None,
    time_col: str | None = None,
    item_info: pd.DataFrame | None = None,
    item_info_id_col: str | None = None,
    keep: str = "last",
    name: str = "interactions",
    report: Mapping[str, Any] | None = None,
) -> Interactions:
    """Build :class:`Interactions` from a DataFrame with one interaction per row.

    Rows with a missing user or item id are removed and counted
    (``report["missing_id_rows_removed"]``); rows with a missing rating (when
    ``rating_col`` is given) or timestamp (when ``time_col`` is given) raise, since
    there is no safe default. Repeated (user, item) pairs are de-duplicated keeping the
    ``keep="last"`` (latest timestamp, then last row) or ``"first"`` occurrence and
    counted in ``report["duplicates_removed"]``.

    Args:
      df: the interactions.
      user_col: user id column (any hashable, sortable type).
      item_col: item id column (any hashable, sortable type).
      rating_col: optional numeric rating column.
      time_col: optional timestamp column: numeric seconds, or datetimes / ISO 8601 date
        strings converted to Unix seconds (UTC when no zone is given).
      item_info: optional item metadata with one row per item id in ``item_info_id_col``;
        items of ``df`` absent from it get NaN metadata and are
        counted in ``report["items_without_info"]``; extra metadata rows are ignored and
        counted in ``report["info_rows_unused"]``.
      item_info_id_col: the item id column of ``item_info`` (default ``item_col``).
      keep: which duplicate to keep, ``"last"`` or ``"first"``.
      name: dataset name.
      report: counts from an earlier stage (e.g. a loader), merged into the new report.

    Returns:
      An :class:`Interactions` whose id maps are the sorted unique ids.
    """
    for arg, col in (("user_col", user_col), ("item_col", item_col)):
        if col not in df.columns:
            raise ValueError(f"`{arg}`={col!r} is not a column; columns are {list(df.columns)}")
    for arg, col in (("rating_col", rating_col), ("time_col", time_col)):
        if col is not None and col not in df.columns:
            raise ValueError(f"`{arg}`={col!r} is not a column; columns are {list(df.columns)}")
    if keep not in ("last", "first"):
        raise ValueError(f"`keep` must be 'last' or 'first', got {keep!r}")
    rep: dict[str, Any] = dict(report or {})
    rep.setdefault("rows_read", len(df))

    cols = [user_col, item_col] + [c for c in (rating_col, time_col) if c is not None]
    work = df[cols].copy()
    missing_id = work[user_col].isna() | work[item_col].isna()
    rep["missing_id_rows_removed"] = rep.get("missing_id_rows_removed", 0) + int(missing_id.sum())
    work = work.loc[~missing_id]

    ratings = None
    if rating_col is not None:
        work[rating_col] = _numeric_ratings(work[rating_col], rating_col)
    if time_col is not None:
        work[time_col] = _unix_seconds(work[time_col], time_col)

    # de-duplicate (user, item): order by time (stable) so "last" is the latest
    if time_col is not None:
        work = work.sort_values(time_col, kind="stable")
    dup = work.duplicated([user_col, item_col], keep=keep)
    rep["duplicates_removed"] = rep.get("duplicates_removed", 0) + int(dup.sum())
    work = work.loc[~dup]

    user_ids = _sorted_unique(work[user_col])
    item_ids = _sorted_unique(work[item_col])
    u = _index_of(user_ids, work[user_col].to_numpy())
    i = _index_of(item_ids, work[item_col].to_numpy())
    order = np.lexsort((i, u))  # canonical row order: by user, then item
    if rating_col is not None:
        ratings = work[rating_col].to_numpy(np.float32)[order]
    timestamps = None if time_col is None else work[time_col].to_numpy(np.int64)[order]

    info = None
    if item_info is not None:
        info = _item_info_table(item_info, item_info_id_col or item_col, item_ids, rep)
    return Interactions(
        user_idx=u[order].astype(np.int32),
        item_idx=i[order].astype(np.int32),
        user_ids=user_ids,
        item_ids=item_ids,
        ratings=ratings,
        timestamps=timestamps,
        item_info=info,
        report=rep,
        name=name,
    )


def _numeric_ratings(r: pd.Series, rating_col: str) -> pd.Series:
    """Ratings as float32; a missing or non-numeric value raises naming ``rating_col``."""
    values = pd.to_numeric(r, errors="coerce")
    if values.isna().any():
        n_bad = int(values.isna().sum())
        raise ValueError(
            f"`rating_col`={rating_col!r} has {n_bad} missing or non-numeric values, "
            f"e.g. {list(r.loc[values.isna()].head(3))!r}"
        )
    return values.astype(np.float32)


def _unix_seconds(t: pd.Series, time_col: str) -> pd.Series:
    """Timestamps as int64 Unix seconds from numbers, datetimes or ISO 8601 text (UTC)."""
    if not pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_datetime64_any_dtype(t):
        if pd.to_numeric(t, errors="coerce").notna().all():
            t = pd.to_numeric(t)
        else:  # date/time text (ISO 8601): parsed, UTC when no zone is given
            try:
                t = pd.to_datetime(t, utc=True, format="ISO8601")
            except (ValueError, TypeError) as e:
                raise ValueError(
                    f"`time_col`={time_col!r} must hold numbers (Unix seconds), datetimes "
                    f"or ISO 8601 date strings: {e}"
                ) from e
    if pd.api.types.is_datetime64_any_dtype(t):
        t = (t - pd.Timestamp(0, tz=t.dt.tz)) // pd.Timedelta(seconds=1)
    t = pd.to_numeric(t, errors="coerce")
    if t.isna().any():
        raise ValueError(
            f"`time_col`={time_col!r} has {int(t.isna().sum())} missing or non-numeric values"
        )
    return t.astype(np.int64)


def _item_info_table(
    item_info: pd.DataFrame, id_col: str, item_ids: np.ndarray, rep: dict[str, Any]
) -> pd.DataFrame:
    """Metadata rows in ``item_ids`` order (NaN where absent); counts go into ``rep``."""
    if id_col not in item_info.columns:
        raise ValueError(f"`item_info` has no id column {id_col!r}")
    meta = item_info.drop_duplicates(id_col, keep="first").set_index(id_col)
    in_meta = pd.Index(item_ids).isin(meta.index)
    rep["items_without_info"] = int((~in_meta).sum())
    rep["info_rows_unused"] = int((~meta.index.isin(item_ids)).sum())
    return meta.reindex(pd.Index(item_ids, name="item_id")).reset_index()


def _index_of(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    if table.dtype == object:
        lut = {v: k for k, v in enumerate(table)}
        return np.fromiter((lut[v] for v in values), dtype=np.int64, count=len(values))
    return np.searchsorted(table, values.astype(table.dtype))


def implicit(inter: Interactions, *, threshold: float, compact: bool = True) -> Interactions:
    """Keep interactions with ``rating >= threshold`` (implicit positive feedback).

    The number removed is added to ``report["below_threshold_removed"]``; with
    ``compact=True`` users/items left without interactions are removed and counted.

    Args:
      inter: a dataset with ratings.
      threshold: minimum rating counted as positive (e.g. 4 on a 0.5-5 scale).
      compact: re-index after filtering.
    """
    if inter.ratings is None:
        raise ValueError("`inter` has no ratings; a rating `threshold` needs explicit ratings")
    keep = inter.ratings >= threshold
    rep = dict(inter.report)
    rep["below_threshold_removed"] = rep.get("below_threshold_removed", 0) + int((~keep).sum())
    rep["implicit_threshold"] = float(threshold)
    out = inter.select(keep, report=rep)
    return out.compact() if compact else out


def kcore(
    inter: Interactions, *, user_k: int = 5, item_k: int = 5, max_iter: int = 100
) -> Interactions:
    """Iterative k-core: repeatedly drop users with < ``user_k`` and items with < ``item_k``.

    Stops at the fixed point (every remaining user has >= ``user_k`` and every item >=
    ``item_k`` interactions) and re-indexes. Counts removed are added to ``report``
    (``kcore_interactions_removed``, ``kcore_iterations``; users/items via
    ``compact_*_removed``). Raises if the fixed point is not reached in ``max_iter``
    rounds.
    """
    user_k = check_positive_int("user_k", user_k)
    item_k = check_positive_int("item_k", item_k)
    max_iter = check_positive_int("max_iter", max_iter)
    u, i = inter.user_idx, inter.item_idx
    keep = np.ones(len(u), dtype=bool)
    n_rounds = 0
    for _ in range(max_iter):
        n_rounds += 1
        uc = np.bincount(u[keep], minlength=inter.n_users)
        ic = np.bincount(i[keep], minlength=inter.n_items)
        bad = keep & ((uc[u] < user_k) | (ic[i] < item_k))
        if not bad.any():
            break
        keep &= ~bad
    else:
        raise ValueError(f"k-core did not converge within `max_iter`={max_iter} rounds")
    rep = dict(inter.report)
    rep["kcore_interactions_removed"] = rep.get("kcore_interactions_removed", 0) + int(
        (~keep).sum()
    )
    rep["kcore_iterations"] = n_rounds
    rep["kcore"] = (user_k, item_k)
    return inter.select(keep, report=rep).compact()


def stats_table(
    datasets: Interactions | Iterable[Interactions | Mapping[str, Any]], *, digits: int = 4
) -> str:
    """Markdown table of :meth:`Interactions.stats` for one or more datasets.

    Columns: dataset, #users, #items, #interactions, density (%), avg per user, avg per item.
    """
    if isinstance(datasets, Interactions):
        datasets = [datasets]
    lines = [
        "| dataset | #users | #items | #interactions | density (%) | avg/user | avg/item |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for d in datasets:
        s = d.stats() if isinstance(d, Interactions) else d
        lines.append(
            f"| {s['name']} | {s['users']:,} | {s['items']:,} | {s['interactions']:,} | "
            f"{100 * s['density']:.{digits}f} | {s['avg_per_user']:.1f} | "
            f"{s['avg_per_item']:.1f} |"
        )
    return "\n".join(lines)

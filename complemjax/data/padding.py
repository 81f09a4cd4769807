"""Padded per-user item arrays: the host-side layout every ranking function consumes.

A user's set of items (training history, held-out test items, a top-K list) is one row of
an ``int32 [n_users, L]`` array, padded with ``-1``. These builders run on the host
(NumPy; not jittable) when data are prepared, and return NumPy arrays that every JAX
function of the package accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from complemjax._checks import check_positive_int

__all__ = ["pad_item_lists", "pad_item_sets"]


def _as_int_vector(name: str, x) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"`{name}` must hold integer indices, got dtype {a.dtype}")
    return a.astype(np.int64)


def pad_item_sets(
    user_idx: npt.ArrayLike,
    item_idx: npt.ArrayLike,
    n_users: int,
    *,
    max_len: int | None = None,
    n_items: int | None = None,
) -> np.ndarray:
    """Build padded per-user item sets from interaction pairs.

    Row ``u`` holds the distinct items ``{i : (u, i) in pairs}`` in ascending order,
    followed by ``-1`` padding. Host-side (NumPy) data preparation; not jittable.

    Args:
      user_idx: ``[n]`` int user index of each interaction, in ``[0, n_users)``.
      item_idx: ``[n]`` int item index of each interaction, ``>= 0`` (and
        ``< n_items`` when ``n_items`` is given).
      n_users: number of rows of the result.
      max_len: width of the result; default the largest set size (at least 1). A
        user with more distinct items than ``max_len`` raises ``ValueError`` (no
        silent truncation).
      n_items: optional catalogue size for range checking ``item_idx``.

    Returns:
      ``[n_users, max_len]`` int32 array, ``-1``-padded.

    Example:
      >>> pad_item_sets([0, 0, 2, 0], [5, 1, 3, 5], 3)  # doctest: +SKIP
      [[ 1,  5], [-1, -1], [ 3, -1]]
    """
    n_users = check_positive_int("n_users", n_users)
    u = _as_int_vector("user_idx", user_idx)
    i = _as_int_vector("item_idx", item_idx)
    if u.shape != i.shape:
        raise ValueError(
            f"`user_idx` and `item_idx` must have the same length, got {u.shape} and {i.shape}"
        )
    if u.size:
        if u.min() < 0 or u.max() >= n_users:
            raise ValueError(
                f"`user_idx` must lie in [0, {n_users}), got range [{u.min()}, {u.max()}]"
            )
        if i.min() < 0:
            raise ValueError(f"`item_idx` must be >= 0, got minimum {i.min()}")
        if n_items is not None and i.max() >= n_items:
            raise ValueError(f"`item_idx` must be < n_items={n_items}, got maximum {i.max()}")
    if u.size:
        order = np.lexsort((i, u))
        u, i = u[order], i[order]
        keep = np.ones(u.size, dtype=bool)
        keep[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
        u, i = u[keep], i[keep]
    counts = np.bincount(u, minlength=n_users)
    longest = int(counts.max()) if counts.size else 0
    if max_len is None:
        width = max(longest, 1)
    else:
        width = check_positive_int("max_len", max_len)
        if longest > width:
            raise ValueError(
                f"`max_len`={width} is smaller than the largest item set ({longest} items)"
            )
    out = np.full((n_users, width), -1, dtype=np.int32)
    if u.size:
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos = np.arange(u.size) - starts[u]
        out[u, pos] = i
    return out


def pad_item_lists(lists: Sequence, *, max_len: int | None = None) -> np.ndarray:
    """Stack one 1-D integer array per user into a ``-1``-padded ``[n_users, L]`` array.

    Order within each row is preserved (so ranked lists stay ranked); use
    :func:`pad_item_sets` to sort and de-duplicate.

    Args:
      lists: sequence of ``n_users`` 1-D integer arrays (may be empty) with entries
        ``>= 0``.
      max_len: width ``L``; default the longest list (at least 1). Longer lists raise.

    Returns:
      ``[n_users, L]`` int32 array.
    """
    if len(lists) == 0:
        raise ValueError("`lists` must contain at least one (possibly empty) array")
    rows = [_as_int_vector(f"lists[{j}]", a) for j, a in enumerate(lists)]
    for j, r in enumerate(rows):
        if r.size and r.min() < 0:
            raise ValueError(f"`lists[{j}]` must hold item indices >= 0, got {r.min()}")
    longest = max(r.size for r in rows)
    if max_len is None:
        width = max(longest, 1)
    else:
        width = check_positive_int("max_len", max_len)
        if longest > width:
            raise ValueError(f"`max_len`={width} is smaller than the longest list ({longest})")
    out = np.full((len(rows), width), -1, dtype=np.int32)
    for j, r in enumerate(rows):
        out[j, : r.size] = r
    return out

"""Train/validation/test splits of an :class:`Interactions` dataset.

All splits return a :class:`Split` whose three parts share the parent's id maps (so
indices line up) and partition the parent's interactions exactly (every interaction is
in exactly one part; ``Split.info`` counts what went where and why).

Randomness (tie-breaking, shuffles) comes from ``numpy.random.default_rng(seed)`` with
an explicit integer ``seed``: this is host-side data preparation, so a local NumPy
``Generator`` (never the global RNG) is used; the same ``seed`` gives the same split on
every platform. :func:`temporal_split` involves no randomness and takes no seed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from complemjax._checks import check_in_range
from complemjax.data.interactions import Interactions
from complemjax.data.padding import pad_item_sets

__all__ = [
    "Split",
    "cold_item_split",
    "leave_one_out",
    "random_split",
    "temporal_split",
]


class Split(NamedTuple):
    """A train/valid/test split; the parts share the parent's id maps.

    Attributes:
      train, valid, test: :class:`Interactions` (``valid`` may be empty).
      info: counts describing the split (method, seed, sizes, users skipped, ...).
    """

    train: Interactions
    valid: Interactions
    test: Interactions
    info: dict[str, Any]

    def exclude_for_valid(self) -> np.ndarray:
        """Padded training sets ``[n_users, L]`` (to mask when ranking for validation)."""
        return self.train.padded_item_sets()

    def exclude_for_test(self) -> np.ndarray:
        """Padded train ∪ valid sets ``[n_users, L]`` (to mask when ranking for test)."""
        u = np.concatenate([self.train.user_idx, self.valid.user_idx])
        i = np.concatenate([self.train.item_idx, self.valid.item_idx])
        return pad_item_sets(u, i, self.train.n_users)


def _check_seed(seed) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"`seed` must be an integer, got {seed!r}")
    return np.random.default_rng(int(seed))


def _make(inter: Interactions, part: np.ndarray, info: dict[str, Any]) -> Split:
    """``part``: [n] int8 with 0 = train, 1 = valid, 2 = test."""
    names = ("train", "valid", "test")
    subsets = [inter.select(part == k, name=f"{inter.name}-{names[k]}") for k in range(3)]
    info = dict(info)
    for k, name in enumerate(names):
        info[f"n_{name}"] = int((part == k).sum())
    return Split(*subsets, info)


def _rank_from_end(user_idx: np.ndarray, order: np.ndarray, n_users: int) -> np.ndarray:
    """Position of each interaction counted from the user's last one (0 = last)."""
    u_sorted = user_idx[order]
    counts = np.bincount(u_sorted, minlength=n_users)
    ends = np.cumsum(counts)
    pos_sorted = ends[u_sorted] - 1 - np.arange(len(order))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = pos_sorted
    return rank


def leave_one_out(inter: Interactions, *, seed: int, valid: bool = True) -> Split:
    """Leave-one-out by time: each user's last interaction → test, second-last → valid.

    Interactions are ordered per user by timestamp; equal timestamps are ordered by a
    seeded random tie-break. Users with fewer than 3 interactions (2 when
    ``valid=False``) keep all of them in train and are counted in
    ``info["users_too_short"]``.

    Args:
      inter: dataset with timestamps.
      seed: integer seed for the tie-break.
      valid: also hold out the second-last interaction for validation.

    Raises:
      ValueError: ``inter`` has no timestamps.
    """
    if inter.timestamps is None:
        raise ValueError("`inter` has no timestamps; leave_one_out orders by time")
    rng = _check_seed(seed)
    tie = rng.random(inter.n_interactions)
    order = np.lexsort((tie, inter.timestamps, inter.user_idx))
    rank = _rank_from_end(inter.user_idx, order, inter.n_users)
    counts = inter.user_counts()
    need = 3 if valid else 2
    eligible = counts[inter.user_idx] >= need
    part = np.zeros(inter.n_interactions, dtype=np.int8)
    part[eligible & (rank == 0)] = 2
    if valid:
        part[eligible & (rank == 1)] = 1
    info = {
        "method": "leave_one_out",
        "seed": int(seed),
        "users_too_short": int(((counts > 0) & (counts < need)).sum()),
    }
    return _make(inter, part, info)


def temporal_split(
    inter: Interactions, *, valid_frac: float = 0.1, test_frac: float = 0.2
) -> Split:
    """Global temporal split at timestamp quantiles (no randomness, hence no seed).

    With cut points ``t_v = quantile(t, 1 - valid_frac - test_frac)`` and
    ``t_t = quantile(t, 1 - test_frac)`` (``method="lower"``): train = ``t < t_v``,
    valid = ``t_v <= t < t_t``, test = ``t >= t_t``. Equal timestamps never straddle a
    cut, so realised fractions can differ slightly (reported in ``info``). Test users or
    items absent from train are counted (``test_users_not_in_train``,
    ``test_items_not_in_train``), not removed.

    Raises:
      ValueError: no timestamps, or fractions outside ``[0, 1)`` summing to >= 1.
    """
    if inter.timestamps is None:
        raise ValueError("`inter` has no timestamps; temporal_split cuts by time")
    check_in_range("valid_frac", valid_frac, 0.0, 1.0, hi_open=True)
    check_in_range("test_frac", test_frac, 0.0, 1.0, lo_open=True, hi_open=True)
    if valid_frac + test_frac >= 1.0:
        raise ValueError(f"`valid_frac` + `test_frac` must be < 1, got {valid_frac} + {test_frac}")
    t = inter.timestamps
    t_v = np.quantile(t, 1.0 - valid_frac - test_frac, method="lower")
    t_t = np.quantile(t, 1.0 - test_frac, method="lower")
    part = np.zeros(len(t), dtype=np.int8)
    part[(t >= t_v) & (t < t_t)] = 1
    part[t >= t_t] = 2
    if valid_frac == 0.0:
        part[part == 1] = 0
    train = part == 0
    seen_u = np.bincount(inter.user_idx[train], minlength=inter.n_users) > 0
    seen_i = np.bincount(inter.item_idx[train], minlength=inter.n_items) > 0
    test = part == 2
    info = {
        "method": "temporal",
        "valid_cut": int(t_v),
        "test_cut": int(t_t),
        "test_users_not_in_train": int(
            np.unique(inter.user_idx[test][~seen_u[inter.user_idx[test]]]).size
        ),
        "test_items_not_in_train": int(
            np.unique(inter.item_idx[test][~seen_i[inter.item_idx[test]]]).size
        ),
    }
    return _make(inter, part, info)


def random_split(
    inter: Interactions, *, seed: int, test_frac: float = 0.2, valid_frac: float = 0.0
) -> Split:
    """Random per-user split: each user's interactions are shuffled and divided by ratio.

    User u with n_u interactions gets ``n_test = floor(test_frac * n_u + 0.5)`` test and
    ``n_valid = floor(valid_frac * n_u + 0.5)`` validation interactions, reduced (valid
    first, then test) so that at least one stays in train; users with a single
    interaction stay entirely in train.

    Args:
      inter: the dataset.
      seed: integer seed of the shuffle.
      test_frac: fraction per user for test, in (0, 1).
      valid_frac: fraction per user for validation, in [0, 1).
    """
    rng = _check_seed(seed)
    check_in_range("test_frac", test_frac, 0.0, 1.0, lo_open=True, hi_open=True)
    check_in_range("valid_frac", valid_frac, 0.0, 1.0, hi_open=True)
    if valid_frac + test_frac >= 1.0:
        raise ValueError(f"`valid_frac` + `test_frac` must be < 1, got {valid_frac} + {test_frac}")
    counts = inter.user_counts()
    n_test = np.floor(test_frac * counts + 0.5).astype(np.int64)
    n_valid = np.floor(valid_frac * counts + 0.5).astype(np.int64)
    n_test = np.minimum(n_test, np.maximum(counts - 1, 0))
    n_valid = np.minimum(n_valid, np.maximum(counts - 1 - n_test, 0))
    shuffle = rng.random(inter.n_interactions)
    order = np.lexsort((shuffle, inter.user_idx))
    rank = _rank_from_end(inter.user_idx, order, inter.n_users)
    u = inter.user_idx
    part = np.zeros(inter.n_interactions, dtype=np.int8)
    part[rank < n_test[u]] = 2
    part[(rank >= n_test[u]) & (rank < n_test[u] + n_valid[u])] = 1
    info = {"method": "random", "seed": int(seed), "test_frac": test_frac, "valid_frac": valid_frac}
    return _make(inter, part, info)


def cold_item_split(
    inter: Interactions, *, seed: int, test_frac: float = 0.2, valid_frac: float = 0.1
) -> Split:
    """Item cold-start split: items (not interactions) are partitioned at random.

    Items that occur are shuffled; ``floor(test_frac * n + 0.5)`` become test items and
    ``floor(valid_frac * n + 0.5)`` validation items. Every interaction goes with its
    item, so test and validation items never occur in train.

    Args:
      inter: the dataset.
      seed: integer seed of the item shuffle.
      test_frac: fraction of items held out for test, in (0, 1).
      valid_frac: fraction of items held out for validation, in [0, 1).

    Returns:
      A :class:`Split`; ``info["test_items"]`` and ``info["valid_items"]`` hold the
      held-out item indices (sorted).
    """
    rng = _check_seed(seed)
    check_in_range("test_frac", test_frac, 0.0, 1.0, lo_open=True, hi_open=True)
    check_in_range("valid_frac", valid_frac, 0.0, 1.0, hi_open=True)
    if valid_frac + test_frac >= 1.0:
        raise ValueError(f"`valid_frac` + `test_frac` must be < 1, got {valid_frac} + {test_frac}")
    active = np.flatnonzero(inter.item_counts() > 0)
    perm = rng.permutation(active)
    n_t = int(np.floor(test_frac * active.size + 0.5))
    n_v = int(np.floor(valid_frac * active.size + 0.5))
    if n_t + n_v >= active.size:
        raise ValueError(f"`test_frac`/`valid_frac` leave no training item ({active.size} items)")
    test_items = np.sort(perm[:n_t])
    valid_items = np.sort(perm[n_t : n_t + n_v])
    item_part = np.zeros(inter.n_items, dtype=np.int8)
    item_part[valid_items] = 1
    item_part[test_items] = 2
    part = item_part[inter.item_idx]
    info = {
        "method": "cold_item",
        "seed": int(seed),
        "test_items": test_items,
        "valid_items": valid_items,
    }
    return _make(inter, part, info)

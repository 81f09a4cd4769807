"""EASE, the closed-form item–item model of Steck (2019), and its l2 selection.

* :func:`fit_ease` — item weights ``B`` from the binary interaction matrix.
* :func:`ease_score_fn` — scoring function for :func:`complemjax.ranking.topk_from_score_fn`.
* :func:`select_ease` — the l2 grid chosen on validation Recall@K.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from jax.typing import ArrayLike

from complemjax.data import padding
from complemjax.models._pairs import check_item_sets, check_pairs

__all__ = ["EASESelection", "ease_score_fn", "fit_ease", "select_ease"]


def _gram(user_idx, item_idx, n_users, n_items) -> np.ndarray:
    import scipy.sparse as sp

    u = np.asarray(user_idx)
    i = np.asarray(item_idx)
    x = sp.csr_matrix((np.ones(u.size, np.float64), (u, i)), shape=(n_users, n_items))
    x.data[:] = 1.0  # binarise (duplicate pairs would otherwise add up)
    return (x.T @ x).toarray()


@jax.jit
def _ease_from_gram(g, l2):
    n = g.shape[0]
    p = jnp.linalg.inv(g + l2 * jnp.eye(n, dtype=g.dtype))
    b = -p / jnp.diag(p)[None, :]
    return b.at[jnp.diag_indices(n)].set(0.0)


def fit_ease(
    user_idx: ArrayLike, item_idx: ArrayLike, *, n_users: int, n_items: int, l2: float
) -> jax.Array:
    """EASE item-item weights (Steck 2019), closed form.

    With the binary user-item matrix X ``[n_users, n_items]`` and
    ``P = (XᵀX + λI)⁻¹``: ``B_ij = −P_ij / P_jj`` for ``i ≠ j`` and ``B_ii = 0``; the
    score of user u is ``s_u = x_u B``. The Gram matrix ``XᵀX`` is computed with a
    sparse product on the host (never the dense X), then inverted in JAX: memory and
    time are ``O(n_items²)`` and ``O(n_items³)``, fine up to ~10k items.

    Args:
      user_idx: ``[n]`` int users of the training interactions.
      item_idx: ``[n]`` int items of the training interactions.
      n_users: number of users (rows of the interaction matrix).
      n_items: number of items (columns of the interaction matrix).
      l2: ridge weight λ > 0 (Steck reports a few hundred on ML-20M).

    Returns:
      ``B [n_items, n_items]``; rank with :func:`ease_score_fn`.

    References:
      Steck. Embarrassingly Shallow Autoencoders for Sparse Data. WWW 2019, eq. 8.
    """
    u, i, n_users, n_items = check_pairs(user_idx, item_idx, n_users, n_items)
    if isinstance(l2, bool) or not isinstance(l2, (int, float, np.number)):
        raise ValueError(f"`l2` must be a finite positive number, got {l2!r}")
    if not np.isfinite(l2) or l2 <= 0:
        raise ValueError(f"`l2` must be a finite positive number, got {l2}")
    dtype = jnp.zeros(()).dtype
    g = jnp.asarray(_gram(u, i, n_users, n_items), dtype=dtype)
    return _ease_from_gram(g, jnp.asarray(l2, dtype))


def _ease_scores(args, users):
    b, sets = args
    n_items = b.shape[0]
    rows = sets[users]  # [c, L]
    valid = rows >= 0
    idx = jnp.where(valid, rows, n_items)  # out of range -> dropped
    x = jnp.zeros((users.shape[0], n_items), b.dtype)
    x = x.at[jnp.arange(users.shape[0])[:, None], idx].add(valid.astype(b.dtype), mode="drop")
    return x @ b


def ease_score_fn(b: ArrayLike, history_sets: ArrayLike) -> jax.tree_util.Partial:
    """Scoring function for :func:`complemjax.ranking.topk_from_score_fn`.

    ``score_fn(users) = X[users] B`` with X the multi-hot history built on the fly from
    the padded ``history_sets [n_users, L]`` (so memory is ``O(chunk × n_items)``).

    Example:
      >>> fn = ease_score_fn(B, train_sets)  # doctest: +SKIP
      >>> top = ranking.topk_from_score_fn(fn, n_users=U, n_items=I, k=20,
      ...                                  exclude=train_sets)  # doctest: +SKIP
    """
    b = jnp.asarray(b)
    if b.ndim != 2 or b.shape[0] != b.shape[1]:
        raise ValueError(f"`b` must be a square [n_items, n_items] matrix, got {b.shape}")
    sets = jnp.asarray(history_sets, jnp.int32)
    if sets.ndim != 2:
        raise ValueError(f"`history_sets` must be [n_users, L], got shape {sets.shape}")
    return jax.tree_util.Partial(_ease_scores, (b, sets))


class EASESelection(NamedTuple):
    """Output of :func:`select_ease`.

    Attributes:
      l2: the chosen ridge weight λ.
      best: its index in the grid.
      recall: ``[G]`` validation Recall@K of each λ.
      grid: ``[G]`` the λ values tried.
      b: ``[n_items, n_items]`` weights of the chosen λ.
      train_seconds: wall time of the selection.
      edge: flags when the chosen λ is the smallest or largest of the grid.
      k: the K of Recall@K.
    """

    l2: float
    best: int
    recall: np.ndarray
    grid: np.ndarray
    b: jax.Array
    train_seconds: float
    edge: tuple[str, ...]
    k: int

    def row(self) -> dict:
        """A row of the selection table (same keys as ``Selection.row``)."""
        return {
            "method": "EASE",
            "configs": int(self.grid.size),
            "chosen": f"l2={self.l2:.3g}",
            "epochs": 0,
            f"valid_recall@{self.k}": float(self.recall[self.best]),
            "train_s": self.train_seconds,
            "edge": "; ".join(self.edge),
        }


def select_ease(
    user_idx: ArrayLike,
    item_idx: ArrayLike,
    valid_sets: ArrayLike,
    *,
    n_users: int,
    n_items: int,
    grid: npt.ArrayLike,
    k: int = 20,
) -> EASESelection:
    """Choose EASE's λ on validation Recall@K (training items excluded).

    The Gram matrix is formed once; each λ costs one ``n_items × n_items`` inversion.
    The highest validation recall wins (ties: the smaller λ, i.e. the earlier entry of
    the ascending grid). A choice at either end of the grid is flagged in ``edge``.

    Args:
      user_idx: ``[n]`` int users of the training interactions.
      item_idx: ``[n]`` int items of the training interactions.
      valid_sets: ``[n_users, L]`` padded validation items (``-1`` padding).
      n_users: number of users (rows of the interaction matrix).
      n_items: number of items (columns of the interaction matrix).
      grid: 1-D sequence of λ > 0 (sorted ascending internally).
      k: cut-off K of Recall@K.

    Returns:
      :class:`EASESelection`.
    """
    from complemjax import ranking

    u, i, n_users, n_items = check_pairs(user_idx, item_idx, n_users, n_items)
    lams = np.sort(np.asarray(grid, dtype=float).ravel())
    if lams.size == 0 or not np.isfinite(lams).all() or (lams <= 0).any():
        raise ValueError(f"`grid` must be a non-empty list of finite l2 > 0, got {grid!r}")
    valid = check_item_sets("valid_sets", valid_sets, n_users, n_items)
    k = int(k)
    t0 = time.perf_counter()
    exclude = padding.pad_item_sets(np.asarray(u), np.asarray(i), n_users)
    dtype = jnp.zeros(()).dtype
    g = jnp.asarray(_gram(u, i, n_users, n_items), dtype=dtype)
    recall = np.zeros(lams.size)
    best_b, best = None, 0
    for c, lam in enumerate(lams):
        b = _ease_from_gram(g, jnp.asarray(lam, dtype))
        top = ranking.topk_from_score_fn(
            ease_score_fn(b, exclude), n_users=n_users, n_items=n_items, k=k, exclude=exclude
        )
        recall[c] = float(ranking.evaluate_topk(top.items, valid, ks=(k,)).mean("recall")[0])
        if best_b is None or recall[c] > recall[best]:
            best, best_b = c, b
    edge = ()
    if lams.size > 1 and best in (0, lams.size - 1):
        side = "smallest" if best == 0 else "largest"
        edge = (f"l2={lams[best]:.3g} is the {side} value tried",)
    return EASESelection(float(lams[best]), best, recall, lams, best_b,
                         time.perf_counter() - t0, edge, k)  # fmt: skip

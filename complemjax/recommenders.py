"""Semantic recommenders: user profiles from history item vectors, and a learned map.

* :func:`user_profiles` — a user's profile is the mean of the (optionally
  L2-normalised) vectors of the items in their history; scoring every item by
  ``profile · item`` (or cosine, in :func:`complemjax.ranking.topk_from_embeddings`)
  gives the zero-training semantic recommender.
* :func:`fit_linear_map` / :func:`mapped_recommender` — an AlphaRec-style linear map
  (Sheng et al. 2025 use an MLP trained with InfoNCE; here: one linear map W fitted in
  closed form by ridge regression of the collaborative item embeddings on the semantic
  ones). Items are represented by ``z_i = (x_i − x̄) W + ȳ`` in the collaborative space,
  users by the mean of ``z`` over their history, and score ``profile_u · z_i``.
  Fitting the map on warm items only (``fit_mask``) makes it usable for cold items.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from complemjax._checks import check_matrix, check_positive_int, check_same_rows

__all__ = [
    "LinearMap",
    "apply_linear_map",
    "fit_linear_map",
    "mapped_recommender",
    "user_profiles",
]


def _l2_normalize(x):
    n = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return x / jnp.where(n > 0, n, 1.0)


def user_profiles(item_emb, user_idx, item_idx, *, n_users: int, normalize: bool = True):
    """Mean history vector per user: ``e_u = (1/|H_u|) Σ_{i∈H_u} v_i``.

    With ``normalize=True`` the item vectors are L2-normalised first (``v_i =
    x_i/‖x_i‖``). Users without history get the zero vector. Computed as a segment sum
    over the interactions: memory ``O(n_interactions × d)``, no users × items array.

    Args:
      item_emb: ``[n_items, d]`` item vectors.
      user_idx, item_idx: ``[n]`` int history interactions (e.g. the training split).
      n_users: number of users (rows of the result).
      normalize: L2-normalise item vectors before averaging.

    Returns:
      ``[n_users, d]`` profiles; rank with ``topk_from_embeddings(profiles, item_emb)``.

    Example:
      >>> prof = user_profiles(sem, tr.user_idx, tr.item_idx, n_users=tr.n_users)  # doctest: +SKIP
      >>> top = ranking.topk_from_embeddings(prof, sem, k=20, exclude=train_sets)
      ... # doctest: +SKIP
    """
    item_emb = check_matrix("item_emb", item_emb)
    n_users = check_positive_int("n_users", n_users)
    u = jnp.asarray(user_idx, jnp.int32)
    i = jnp.asarray(item_idx, jnp.int32)
    if u.ndim != 1 or u.shape != i.shape:
        raise ValueError(
            f"`user_idx` and `item_idx` must be 1-D of equal length, got {u.shape}, {i.shape}"
        )
    return _profiles(item_emb, u, i, n_users, normalize)


@jax.jit(static_argnames=("n_users", "normalize"))
def _profiles(item_emb, u, i, n_users, normalize):
    v = _l2_normalize(item_emb) if normalize else item_emb
    sums = jax.ops.segment_sum(v[i], u, num_segments=n_users)
    counts = jax.ops.segment_sum(jnp.ones(u.shape, v.dtype), u, num_segments=n_users)
    return sums / jnp.maximum(counts, 1.0)[:, None]


class LinearMap(NamedTuple):
    """Affine map ``z = (x − x_mean) W + y_mean``.

    Attributes:
      weight: ``[d_x, d_y]``.
      x_mean: ``[d_x]``.
      y_mean: ``[d_y]``.
    """

    weight: jax.Array
    x_mean: jax.Array
    y_mean: jax.Array


def fit_linear_map(x, y, *, l2: float, mask=None) -> LinearMap:
    """Ridge regression of ``y`` on ``x`` with intercept, closed form in feature space.

    ``W = (X̃ᵀX̃ + λ I)⁻¹ X̃ᵀỸ`` with ``X̃, Ỹ`` centred over the fitted rows; cost
    ``O(n d_x² + d_x³)`` (no n × n Gram).

    Args:
      x: ``[n, d_x]`` semantic item embeddings.
      y: ``[n, d_y]`` collaborative item embeddings (same items, same order).
      l2: ridge weight λ >= 0.
      mask: optional ``[n]`` bool, rows used for fitting (e.g. warm items).

    Returns:
      :class:`LinearMap`.
    """
    x = check_matrix("x", x)
    y = check_matrix("y", y)
    check_same_rows("x", x, "y", y)
    if not float(l2) >= 0:
        raise ValueError(f"`l2` must be >= 0, got {l2}")
    dtype = jnp.result_type(x.dtype, y.dtype)
    w = jnp.ones(x.shape[0], dtype) if mask is None else jnp.asarray(mask, bool).astype(dtype)
    if w.shape != (x.shape[0],):
        raise ValueError(f"`mask` must have shape ({x.shape[0]},), got {w.shape}")
    if float(w.sum()) < 2:
        raise ValueError("`mask` selects fewer than 2 rows to fit the map")
    return _ridge(x.astype(dtype), y.astype(dtype), w, jnp.asarray(l2, dtype))


@jax.jit
def _ridge(x, y, w, l2):
    n = jnp.sum(w)
    xm = (w @ x) / n
    ym = (w @ y) / n
    xc = (x - xm) * w[:, None]
    yc = (y - ym) * w[:, None]
    gram = xc.T @ xc + l2 * jnp.eye(x.shape[1], dtype=x.dtype)
    weight = jnp.linalg.solve(gram, xc.T @ yc)
    return LinearMap(weight, xm, ym)


def apply_linear_map(m: LinearMap, x) -> jax.Array:
    """``[n, d_x] → [n, d_y]``: ``(x − x_mean) W + y_mean``."""
    x = check_matrix("x", x)
    if x.shape[1] != m.weight.shape[0]:
        raise ValueError(
            f"`x` must have {m.weight.shape[0]} columns for this map, got shape {x.shape}"
        )
    return (x - m.x_mean) @ m.weight + m.y_mean


def mapped_recommender(
    sem_item_emb,
    cf_item_emb,
    user_idx,
    item_idx,
    *,
    n_users: int,
    l2: float,
    fit_mask=None,
) -> tuple[jax.Array, jax.Array, LinearMap]:
    """Semantic recommender through a ridge map into the collaborative space.

    ``z_i = map(x_i)`` for every item; ``e_u = mean_{i∈H_u} z_i`` (no normalisation);
    score ``e_u · z_i``.

    Args:
      sem_item_emb: ``[n_items, d_x]`` semantic item embeddings.
      cf_item_emb: ``[n_items, d_y]`` collaborative item embeddings (e.g. BPR).
      user_idx, item_idx: ``[n]`` history interactions (training split).
      n_users: number of users.
      l2: ridge weight of the map.
      fit_mask: ``[n_items]`` bool, items whose CF embedding is trained (default all).

    Returns:
      ``(user_emb [n_users, d_y], item_emb [n_items, d_y], map)`` for
      ``ranking.topk_from_embeddings``.
    """
    m = fit_linear_map(sem_item_emb, cf_item_emb, l2=l2, mask=fit_mask)
    z = apply_linear_map(m, sem_item_emb)
    prof = user_profiles(z, user_idx, item_idx, n_users=n_users, normalize=False)
    return prof, z, m

"""The most-popular baseline: items ranked by their number of training interactions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from complemjax._checks import check_positive_int

__all__ = ["popularity", "popularity_embeddings"]


def popularity(item_idx: ArrayLike, *, n_items: int) -> jax.Array:
    """Item popularity ``[n_items]``: ``pop_i = |{(u, i) in training}|``.

    Args:
      item_idx: ``[n]`` int item of each training interaction, in ``[0, n_items)``.
      n_items: catalogue size.

    Returns:
      ``[n_items]`` float counts.
    """
    n_items = check_positive_int("n_items", n_items)
    i = jnp.asarray(item_idx)
    if not jnp.issubdtype(i.dtype, jnp.integer) or i.ndim != 1:
        raise ValueError(f"`item_idx` must be a 1-D integer array, got {i.dtype} {i.shape}")
    if not isinstance(i, jax.core.Tracer) and i.size:
        a = np.asarray(i)
        if a.min() < 0 or a.max() >= n_items:
            raise ValueError(
                f"`item_idx` must lie in [0, n_items={n_items}), got range [{a.min()}, {a.max()}]"
            )
    return _popularity(i, n_items)


@jax.jit(static_argnames=("n_items",))
def _popularity(i, n_items):
    dtype = jnp.zeros(()).dtype
    return jnp.zeros(n_items, dtype).at[i].add(1.0)


def popularity_embeddings(
    item_idx: ArrayLike, *, n_users: int, n_items: int
) -> tuple[jax.Array, jax.Array]:
    """Popularity as a rank-1 factor model.

    ``user_emb = 1 [n_users, 1]``, ``item_emb = popularity [n_items, 1]``, so
    ``ranking.topk_from_embeddings`` ranks by popularity (ties to the lower item index) with each
    user's history excluded.
    """
    pop = popularity(item_idx, n_items=n_items)
    n_users = check_positive_int("n_users", n_users)
    return jnp.ones((n_users, 1), pop.dtype), pop[:, None]

"""Input checks shared by the model families (one owner, public names)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from complemjax._checks import check_positive_int
from complemjax.ranking import check_item_sets

__all__ = ["check_item_sets", "check_pairs"]


def check_pairs(user_idx, item_idx, n_users, n_items, mask=None):
    """Validate training pairs (and an optional mask) before any work.

    Returns ``(user_idx, item_idx, n_users, n_items)`` as int32 arrays and ints, with masked
    entries pointed at row 0.
    """
    n_users = check_positive_int("n_users", n_users)
    n_items = check_positive_int("n_items", n_items, minimum=2)
    u = jnp.asarray(user_idx)
    i = jnp.asarray(item_idx)
    for name, a in (("user_idx", u), ("item_idx", i)):
        if not jnp.issubdtype(a.dtype, jnp.integer) or a.ndim != 1:
            raise ValueError(f"`{name}` must be a 1-D integer array, got {a.dtype} {a.shape}")
    if u.shape != i.shape:
        raise ValueError(f"`user_idx` and `item_idx` must match, got {u.shape} and {i.shape}")
    if u.shape[0] == 0:
        raise ValueError("`user_idx` is empty: no training interactions")
    if mask is not None:
        m = jnp.asarray(mask)
        if m.shape != u.shape:
            raise ValueError(f"`mask` must have the shape of `user_idx` {u.shape}, got {m.shape}")
        if not isinstance(m, jax.core.Tracer):
            m = np.asarray(m).astype(bool)
            if not m.any():
                raise ValueError("`mask` marks no interaction as real")
            # padded entries may hold anything: point them at row 0 (their weight is 0)
            if not isinstance(u, jax.core.Tracer):
                u = jnp.asarray(np.where(m, np.asarray(u), 0))
            if not isinstance(i, jax.core.Tracer):
                i = jnp.asarray(np.where(m, np.asarray(i), 0))
    if not isinstance(u, jax.core.Tracer):
        if int(u.min()) < 0 or int(u.max()) >= n_users:
            raise ValueError(f"`user_idx` must lie in [0, {n_users})")
    if not isinstance(i, jax.core.Tracer):
        if int(i.min()) < 0 or int(i.max()) >= n_items:
            raise ValueError(f"`item_idx` must lie in [0, {n_items})")
    return u.astype(jnp.int32), i.astype(jnp.int32), n_users, n_items

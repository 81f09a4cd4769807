"""Input checks shared by the model families (one owner, public names)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from complemjax._checks import check_positive_int
from complemjax.ranking import check_item_sets

__all__ = ["check_item_sets", "check_pairs"]


def check_pairs(
    user_idx: ArrayLike,
    item_idx: ArrayLike,
    n_users: int,
    n_items: int,
    mask: ArrayLike | None = None,
    *,
    unique: bool = False,
    names: tuple[str, str] = ("user_idx", "item_idx"),
) -> tuple[jax.Array, jax.Array, int, int]:
    """Validate training pairs (and an optional mask) before any work: the one pair validator.

    Used by every model fit, :func:`complemjax.models.build_graph` and the learned fusions
    of :mod:`complemjax.fusion`. Raises ValueError
    naming the argument for: ``n_users < 1`` or ``n_items < 2``; indices that are not 1-D
    integer arrays of one length; no pair; a ``mask`` of another shape or marking no pair
    real; a real pair out of ``[0, n_users) × [0, n_items)``; with ``unique=True`` a
    repeated real ``(user, item)`` pair. Checks that need values are skipped for traced
    arguments.

    Args:
      user_idx: ``[E]`` int users.
      item_idx: ``[E]`` int items.
      n_users: number of users.
      n_items: number of items (>= 2: a negative must exist).
      mask: optional ``[E]`` bool/0-1, the real entries of padded arrays.
      unique: refuse repeated real pairs (a graph needs each interaction once).
      names: the caller's names of ``user_idx`` and ``item_idx``, used in the messages.

    Returns:
      ``(user_idx, item_idx, n_users, n_items)`` as int32 arrays and ints, with masked
      entries pointed at row 0 (their weight is 0 wherever ``mask`` is used).
    """
    n_users = check_positive_int("n_users", n_users)
    n_items = check_positive_int("n_items", n_items, minimum=2)
    nu, ni = names
    u = jnp.asarray(user_idx)
    i = jnp.asarray(item_idx)
    for name, a in ((nu, u), (ni, i)):
        if not jnp.issubdtype(a.dtype, jnp.integer) or a.ndim != 1:
            raise ValueError(f"`{name}` must be a 1-D integer array, got {a.dtype} {a.shape}")
    if u.shape != i.shape:
        raise ValueError(f"`{nu}` and `{ni}` must match, got {u.shape} and {i.shape}")
    if u.shape[0] == 0:
        raise ValueError(f"`{nu}` is empty: no training interactions")
    if mask is not None:
        m = jnp.asarray(mask)
        if m.shape != u.shape:
            raise ValueError(f"`mask` must have the shape of `{nu}` {u.shape}, got {m.shape}")
        if not isinstance(m, jax.core.Tracer):
            m = np.asarray(m).astype(bool)
            if not m.any():
                raise ValueError("`mask` marks no interaction as real")
            # padded entries may hold anything: point them at row 0 (their weight is 0)
            if not isinstance(u, jax.core.Tracer):
                u = jnp.asarray(np.where(m, np.asarray(u), 0))
            if not isinstance(i, jax.core.Tracer):
                i = jnp.asarray(np.where(m, np.asarray(i), 0))
    for name, a, hi in ((nu, u, n_users), (ni, i, n_items)):
        if isinstance(a, jax.core.Tracer):
            continue
        # on the host: a concrete array closed over by a jitted function would otherwise
        # be reduced by a staged (traced) min/max, which int() cannot read
        lo_a, hi_a = int(np.min(np.asarray(a))), int(np.max(np.asarray(a)))
        if lo_a < 0 or hi_a >= hi:
            raise ValueError(f"`{name}` must lie in [0, {hi}), got [{lo_a}, {hi_a}]")
    if unique and not isinstance(u, jax.core.Tracer) and not isinstance(i, jax.core.Tracer):
        keys = np.asarray(u).astype(np.int64) * n_items + np.asarray(i)
        if mask is not None and not isinstance(mask, jax.core.Tracer):
            keys = keys[np.asarray(mask).astype(bool)]
        n_rep = keys.size - np.unique(keys).size
        if n_rep:
            raise ValueError(
                f"`{nu}`/`{ni}` contain {n_rep} repeated (user, item) pairs; the graph "
                "needs each interaction once"
            )
    return u.astype(jnp.int32), i.astype(jnp.int32), n_users, n_items

"""Shared pieces of the learned fusion models (gate, shared-private).

Input checks, the BPR sampler adapter and the Adam scan loop. The BPR sampler and loss
themselves live in :mod:`complemjax.models.bpr` (the ones BPR-MF trains with) and InfoNCE
in :mod:`complemjax.models.contrastive`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from complemjax import _checks
from complemjax.models import bpr

__all__: list[str] = []


def check_interactions(
    train_users: ArrayLike, train_items: ArrayLike, n_users: int, n_items: int
) -> tuple[jax.Array, jax.Array]:
    """Validate interaction pairs ``[n_inter]`` (int) and return them as int32 arrays."""
    u = jnp.asarray(train_users)
    i = jnp.asarray(train_items)
    for name, x, hi in (("train_users", u, n_users), ("train_items", i, n_items)):
        if x.ndim != 1 or not jnp.issubdtype(x.dtype, jnp.integer):
            raise ValueError(
                f"`{name}` must be a 1-D int array, got shape {x.shape} and dtype {x.dtype}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"`{name}` must not be empty")
        if not isinstance(x, jax.core.Tracer):
            lo, top = int(jnp.min(x)), int(jnp.max(x))
            if lo < 0 or top >= hi:
                raise ValueError(f"`{name}` entries must lie in [0, {hi}), got [{lo}, {top}]")
    if u.shape != i.shape:
        raise ValueError(
            f"`train_users` and `train_items` must have the same shape, got {u.shape} and {i.shape}"
        )
    return u.astype(jnp.int32), i.astype(jnp.int32)


def check_padded(name: str, x: ArrayLike, n_rows: int) -> jax.Array:
    """Validate a ``[n_rows, L]`` int padded item-set array (``-1`` padding)."""
    x = jnp.asarray(x)
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(
            f"`{name}` must be an int [n_users, max_len] padded array, got shape {x.shape} "
            f"and dtype {x.dtype}"
        )
    if x.shape[0] != n_rows:
        raise ValueError(f"`{name}` must have {n_rows} rows (users), got shape {x.shape}")
    return x.astype(jnp.int32)


def check_views(x: ArrayLike, y: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Validate two item-view matrices with the same rows; return them in a common float dtype."""
    x = _checks.check_matrix("x", x, min_rows=2)
    y = _checks.check_matrix("y", y, min_rows=2)
    _checks.check_same_rows("x", x, "y", y)
    dt = jnp.result_type(x.dtype, y.dtype)
    return x.astype(dt), y.astype(dt)


def check_hparam(name: str, value: ArrayLike, lo: float, *, lo_open: bool = False) -> None:
    """Raise ValueError naming ``name`` unless every entry of ``value`` is ``>= lo`` (``> lo``).

    ``> lo`` when ``lo_open``; NaN is refused; skipped under tracing.
    """
    _checks.check_in_range(name, value, lo, np.inf, lo_open=lo_open)


def bpr_sampler(
    users: jax.Array, items: jax.Array, n_users: int, n_items: int, config: Any
) -> Callable[[jax.Array], tuple[jax.Array, jax.Array, jax.Array]]:
    """``key -> (u, i+, j-)``: ``config.batch_size`` BPR triples over ``(users, items)``.

    The BPR-MF sampler (:func:`complemjax.models.bpr.sample_bpr_triples`): entries uniform with
    replacement, negatives uniform over items, redrawn ``config.n_neg_retries`` times while a
    fitting pair when ``config.reject_positives``. ``config`` is a gate or shared-private config.
    """
    sorted_keys = None
    if config.reject_positives:
        sorted_keys = bpr.positive_keys(users, items, n_users=n_users, n_items=n_items)

    def sample(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        u, i, j, _ = bpr.sample_bpr_triples(
            key, users, items, n_items=n_items, n_draws=config.batch_size,
            sorted_keys=sorted_keys, n_neg_retries=config.n_neg_retries,
        )  # fmt: skip
        return u, i, j

    return sample


def fit_scan(
    key: jax.Array, params: Any, loss_fn: Callable, learning_rate: ArrayLike, steps: int
) -> tuple[Any, jax.Array]:
    """Adam on ``loss_fn(params, key_t)`` for ``steps`` steps in a ``lax.scan``.

    Per-step keys are ``fold_in(key, t)``. Returns ``(params, losses [steps])``.
    """
    opt = optax.adam(learning_rate)
    state = opt.init(params)

    def step(carry, t):
        p, s = carry
        loss, g = jax.value_and_grad(loss_fn)(p, jax.random.fold_in(key, t))
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), loss

    (params, _), losses = jax.lax.scan(step, (params, state), jnp.arange(steps))
    return params, losses

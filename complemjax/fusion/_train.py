"""Shared pieces of the learned fusion models (gate, shared-private).

Input checks, BPR sampling and loss, the Adam scan loop. InfoNCE lives in
:mod:`complemjax.models.contrastive`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from complemjax import _checks

__all__: list[str] = []


def check_interactions(train_users, train_items, n_users: int, n_items: int):
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


def check_padded(name: str, x, n_rows: int) -> jax.Array:
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


def check_views(x, y):
    """Validate two item-view matrices with the same rows; return them in a common float dtype."""
    x = _checks.check_matrix("x", x, min_rows=2)
    y = _checks.check_matrix("y", y, min_rows=2)
    _checks.check_same_rows("x", x, "y", y)
    dt = jnp.result_type(x.dtype, y.dtype)
    return x.astype(dt), y.astype(dt)


def check_hparam(name: str, value, lo: float, *, lo_open: bool = False):
    _checks.check_in_range(name, value, lo, np.inf, lo_open=lo_open)


def sample_bpr(key, users, items, n_items: int, batch: int):
    """Uniform interaction ``(u, i+)`` and uniform negative item (collisions not rejected)."""
    k1, k2 = jax.random.split(key)
    idx = jax.random.randint(k1, (batch,), 0, users.shape[0])
    neg = jax.random.randint(k2, (batch,), 0, n_items)
    return users[idx], items[idx], neg


def bpr_loss(pos, neg):
    """``-mean(log sigmoid(pos - neg))`` (Rendle et al. 2009)."""
    return -jnp.mean(jax.nn.log_sigmoid(pos - neg))


def fit_scan(key, params, loss_fn: Callable, learning_rate, steps: int):
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

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
from complemjax.models._pairs import check_pairs

__all__: list[str] = []


def check_interactions(
    train_users: ArrayLike, train_items: ArrayLike, n_users: int, n_items: int
) -> tuple[jax.Array, jax.Array]:
    """Validate the fitting pairs with the models' pair validator; return them as int32."""
    u, i, _, _ = check_pairs(
        train_users, train_items, n_users, n_items, names=("train_users", "train_items")
    )
    return u, i


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

"""Shared-plus-private fusion model: align the two views only on a learned shared subspace.

Item i has a semantic view ``x_i`` (dim ``D_x``) and a collaborative view ``y_i`` (``D_y``).
Its representation concatenates a shared part and two private residuals::

    s_i   = (x_i W_sx + y_i W_sy) / 2                  (shared, dim r)
    px_i  = x_i W_px,   py_i = y_i W_py                (private, dim d each)
    h_i   = [s_i, px_i, py_i]                          (dim r + 2d)
    score(u, i) = e_u . h_i                            (e_u: learned user embedding)

Loss per batch of BPR triples (u, i+, i-), with B the batch's items::

    L = BPR(e_u . h_{i+} - e_u . h_{i-})
        + align_weight * InfoNCE(x_B W_sx, y_B W_sy; temperature)   (shared parts only)
        + orth_weight * (O(S_C, PX_C)^2 + O(S_C, PY_C)^2)
        + l2 * (|e_u|^2 + |h_{i+}|^2 + |h_{i-}|^2) / B

where C is the whole catalogue (``orth_items=None``, the default) or a fresh uniform sample of
``orth_items`` items per step (large catalogues; a sampled estimate leaves a noise floor in
the achieved orthogonality), and the orthogonality measure
``O(S, P) = ||S^T P||_F / (||S||_F ||P||_F)`` in ``[0, 1]`` (0 iff every shared feature
column is orthogonal to every private one over the items; scale free).
Only the shared projections are pulled together (contrastively, so they cannot collapse); the
private residuals stay free to carry each view's own signal, kept apart from the shared part by
the orthogonality penalty (the "difference loss" of domain separation networks).

References:
    Bousmalis et al., "Domain Separation Networks", NeurIPS 2016 (shared/private, orthogonality).
    "Rethinking Semantic Collaborative Integration: Why Alignment Is Not Enough", SIGIR 2026
    (arXiv 2604.22195).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from complemjax import _checks
from complemjax.fusion import _train
from complemjax.models import bpr
from complemjax.models.contrastive import info_nce

__all__ = [
    "SharedPrivateConfig",
    "SharedPrivateFit",
    "SharedPrivateHParams",
    "SharedPrivateParams",
    "fit_shared_private",
    "orthogonality",
    "shared_private_embeddings",
    "shared_private_init",
    "shared_private_loss",
    "shared_private_parts",
]


@dataclasses.dataclass(frozen=True)
class SharedPrivateConfig:
    """Static settings of the shared-plus-private model.

    ``shared_dim`` r, ``private_dim`` d, ``steps``, ``batch_size``, ``init_scale`` of the user
    embeddings, ``orth_items`` (None = penalise orthogonality over the whole catalogue each step; an
    int = over that many sampled items). Each step's ``batch_size`` BPR triples come from
    :func:`complemjax.models.bpr.sample_bpr_triples`, as BPR-MF's: ``reject_positives`` redraws
    (up to ``n_neg_retries`` times) a negative that is a training pair.
    """

    shared_dim: int = 16
    private_dim: int = 16
    steps: int = 500
    batch_size: int = 512
    init_scale: float = 0.1
    orth_items: int | None = None
    reject_positives: bool = True
    n_neg_retries: int = 4

    def __post_init__(self):
        _checks.check_positive_int("shared_dim", self.shared_dim)
        _checks.check_positive_int("private_dim", self.private_dim)
        _checks.check_positive_int("steps", self.steps)
        _checks.check_positive_int("batch_size", self.batch_size, minimum=2)
        if self.orth_items is not None:
            _checks.check_positive_int("orth_items", self.orth_items, minimum=2)
        _checks.check_positive_int("n_neg_retries", self.n_neg_retries, minimum=0)


@flax.struct.dataclass
class SharedPrivateHParams:
    """Dynamic knobs of the shared-plus-private model (vmappable).

    ``learning_rate`` (> 0), ``l2``, ``align_weight`` (>= 0), ``orth_weight`` (>= 0), InfoNCE
    ``temperature`` (> 0).
    """

    learning_rate: jax.Array = 0.01
    l2: jax.Array = 1e-4
    align_weight: jax.Array = 0.1
    orth_weight: jax.Array = 1.0
    temperature: jax.Array = 0.2


@flax.struct.dataclass
class SharedPrivateParams:
    """Trained parameters of the shared-plus-private model.

    ``w_sx [D_x, r]``, ``w_sy [D_y, r]``, ``w_px [D_x, d]``, ``w_py [D_y, d]``,
    ``user [n_users, r + 2d]``.
    """

    w_sx: jax.Array
    w_sy: jax.Array
    w_px: jax.Array
    w_py: jax.Array
    user: jax.Array


class SharedPrivateFit(NamedTuple):
    """Trained parameters and the training loss per step ``[steps]``."""

    params: SharedPrivateParams
    losses: jax.Array


def shared_private_init(
    key: jax.Array,
    n_users: int,
    d_x: int,
    d_y: int,
    config: SharedPrivateConfig,
    dtype: DTypeLike | None = None,
) -> SharedPrivateParams:
    """Random initial parameters (projections ~ N(0, 1/D), users ~ N(0, init_scale^2))."""
    dt = jnp.zeros(()).dtype if dtype is None else dtype
    r, d = config.shared_dim, config.private_dim
    k = jax.random.split(key, 5)
    return SharedPrivateParams(
        w_sx=jax.random.normal(k[0], (d_x, r), dt) / np.sqrt(d_x),
        w_sy=jax.random.normal(k[1], (d_y, r), dt) / np.sqrt(d_y),
        w_px=jax.random.normal(k[2], (d_x, d), dt) / np.sqrt(d_x),
        w_py=jax.random.normal(k[3], (d_y, d), dt) / np.sqrt(d_y),
        user=config.init_scale * jax.random.normal(k[4], (n_users, r + 2 * d), dt),
    )


def shared_private_parts(
    params: SharedPrivateParams, x: jax.Array, y: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(S [n, r], PX [n, d], PY [n, d])`` of items with views ``x [n, D_x]``, ``y [n, D_y]``."""
    s = 0.5 * (x @ params.w_sx + y @ params.w_sy)
    return s, x @ params.w_px, y @ params.w_py


def orthogonality(shared: jax.Array, private: jax.Array) -> jax.Array:
    """``||S^T P||_F / (||S||_F ||P||_F)`` in ``[0, 1]``; 0 means exactly orthogonal.

    Args:
        shared: ``[n, r]`` shared features of n items.
        private: ``[n, d]`` private features of the same items.

    Returns:
        Scalar.
    """
    num = jnp.linalg.norm(shared.T @ private)
    den = jnp.linalg.norm(shared) * jnp.linalg.norm(private)
    return num / jnp.maximum(den, 1e-12)


def shared_private_embeddings(
    params: SharedPrivateParams, x: ArrayLike, y: ArrayLike
) -> tuple[jax.Array, jax.Array]:
    """``(user_emb [n_users, r+2d], item_emb [n_items, r+2d])`` of a trained model.

    For ``ranking.topk_from_embeddings(..., similarity="dot")``.
    """
    x, y = _train.check_views(x, y)
    return params.user, jnp.concatenate(shared_private_parts(params, x, y), axis=1)


def _symmetric_info_nce(a, b, temperature):
    """In-batch InfoNCE in both directions, ``(CE(cos(A, B)/τ, I) + CE(cos(B, A)/τ, I)) / 2``."""
    labels = jnp.arange(a.shape[0])
    return 0.5 * (
        jnp.mean(info_nce(a, b, labels, temperature))
        + jnp.mean(info_nce(b, a, labels, temperature))
    )


def shared_private_loss(
    params: SharedPrivateParams,
    x: jax.Array,
    y: jax.Array,
    users: jax.Array,
    pos: jax.Array,
    neg: jax.Array,
    hp: SharedPrivateHParams,
    orth_idx: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Loss of the module docstring on one batch; returns ``(total, parts dict)``.

    ``orth_idx`` (``[m]`` int) selects the items of the orthogonality penalty (default: all).
    """
    items = jnp.concatenate([pos, neg])
    s, px, py = shared_private_parts(params, x[items], y[items])
    h = jnp.concatenate([s, px, py], axis=1)
    b = users.shape[0]
    hp_, hn = h[:b], h[b:]
    e = params.user[users]
    bpr_term = bpr.bpr_loss(jnp.sum(e * hp_, 1) - jnp.sum(e * hn, 1))
    align = _symmetric_info_nce(x[pos] @ params.w_sx, y[pos] @ params.w_sy, hp.temperature)
    if orth_idx is None:
        sc, pxc, pyc = shared_private_parts(params, x, y)
    else:
        sc, pxc, pyc = shared_private_parts(params, x[orth_idx], y[orth_idx])
    orth = orthogonality(sc, pxc) ** 2 + orthogonality(sc, pyc) ** 2
    reg = (jnp.sum(e**2) + jnp.sum(h**2)) / b
    total = bpr_term + hp.align_weight * align + hp.orth_weight * orth + hp.l2 * reg
    return total, {"bpr": bpr_term, "align": align, "orth": orth}


@functools.partial(jax.jit, static_argnames=("config", "n_users", "n_items"))
def _fit(key, x, y, users, items, hp, *, config, n_users, n_items):
    k_init, k_train = jax.random.split(key)
    params = shared_private_init(k_init, n_users, x.shape[1], y.shape[1], config, x.dtype)
    sample = _train.bpr_sampler(users, items, n_users, n_items, config)

    def loss_fn(p, k):
        k_b, k_o = jax.random.split(k)
        bu, bp, bn = sample(k_b)
        orth_idx = None
        if config.orth_items is not None:
            orth_idx = jax.random.randint(k_o, (config.orth_items,), 0, n_items)
        return shared_private_loss(p, x, y, bu, bp, bn, hp, orth_idx)[0]

    params, losses = _train.fit_scan(k_train, params, loss_fn, hp.learning_rate, config.steps)
    return SharedPrivateFit(params, losses)


def _check_hp(hp):
    _train.check_hparam("learning_rate", hp.learning_rate, 0.0, lo_open=True)
    _train.check_hparam("l2", hp.l2, 0.0)
    _train.check_hparam("align_weight", hp.align_weight, 0.0)
    _train.check_hparam("orth_weight", hp.orth_weight, 0.0)
    _train.check_hparam("temperature", hp.temperature, 0.0, lo_open=True)


def fit_shared_private(
    key: jax.Array,
    x: ArrayLike,
    y: ArrayLike,
    train_users: ArrayLike,
    train_items: ArrayLike,
    *,
    n_users: int,
    config: SharedPrivateConfig | None = None,
    hparams: SharedPrivateHParams | None = None,
) -> SharedPrivateFit:
    """Train the shared-plus-private model with BPR + shared-only InfoNCE + orthogonality.

    Args:
        key: PRNG key; ``jax.vmap`` over ``jax.random.split(key, n)`` trains n seeds, and
            ``vmap`` over a batched :class:`SharedPrivateHParams` sweeps knobs.
        x: ``[n_items, D_x]`` semantic item view.
        y: ``[n_items, D_y]`` collaborative item view.
        train_users: ``[n_inter]`` int users of the training interactions.
        train_items: ``[n_inter]`` int items of the training interactions.
        n_users: number of users.
        config: :class:`SharedPrivateConfig`.
        hparams: :class:`SharedPrivateHParams`.

    Returns:
        :class:`SharedPrivateFit`; rank with :func:`shared_private_embeddings` and
        ``ranking.topk_from_embeddings``.

    Example:
        >>> fit = fit_shared_private(key, x, y, tu, ti, n_users=n_users)
        >>> ue, ie = shared_private_embeddings(fit.params, x, y)
    """
    config = SharedPrivateConfig() if config is None else config
    hparams = SharedPrivateHParams() if hparams is None else hparams
    x, y = _train.check_views(x, y)
    n_users = _checks.check_positive_int("n_users", n_users)
    users, items = _train.check_interactions(train_users, train_items, n_users, x.shape[0])
    _check_hp(hparams)
    return _fit(
        key, x, y, users, items, hparams, config=config, n_users=n_users, n_items=x.shape[0]
    )

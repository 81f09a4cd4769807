"""Alignment-centric baselines: what "integrate by aligning" looks like, to compare fusion with.

(a) **Semantic mapping** (the AlphaRec "linear mapping" recipe, simplified). Items are
represented by the semantic view mapped into a collaborative-sized space, users by the mean of
their history items, and the map is trained end to end with BPR on the user-item interactions::

    h_i = MLP(x_i)    (linear: x_i W + b; or one GELU hidden layer)
    e_u = mean_{j in H(u)} h_j              (training: H(u) \\ {i+}, leave-self-out)
    score(u, i) = e_u . h_i

Recommendation uses the mapped view alone (no collaborative embedding at inference). This is
the *ranking-loss* variant; the *regression* variant (fit the map onto pretrained CF item
embeddings) is a probe, see ``complemjax.probes``. AlphaRec adds graph propagation and an
InfoNCE loss with cosine scores, which are left out here.

(b) **Contrastively aligned MF** (the RLMRec recipe, simplified). BPR matrix factorisation whose
item embeddings are pulled towards a learned map of the semantic view with InfoNCE::

    L = BPR(p_u . q_{i+} - p_u . q_{i-}) + align_weight * InfoNCE(q_B, MLP(x_B); temperature)
        + l2 * (|p_u|^2 + |q_{i+}|^2 + |q_{i-}|^2) / B

``align_weight`` is a dynamic knob (:class:`AlignedMFHParams`), so a sweep from 0 upward is one
``jax.vmap``; at 0 the model is plain BPR-MF.

References:
    Sheng et al., "Language Representations Can be What Recommenders Need" (AlphaRec),
    ICLR 2025.
    Ren et al., "Representation Learning with Large Language Models for Recommendation"
    (RLMRec), WWW 2024.
    Rendle et al., "BPR", UAI 2009.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp

from complemjax import _checks
from complemjax.fusion import _train

__all__ = [
    "AlignedMFConfig",
    "AlignedMFFit",
    "AlignedMFHParams",
    "MappingConfig",
    "MappingFit",
    "MappingHParams",
    "aligned_mf_embeddings",
    "aligned_mf_loss",
    "fit_aligned_mf",
    "fit_semantic_mapping",
    "semantic_mapping_embeddings",
    "semantic_mapping_loss",
]


# ----------------------------------------------------------------------------- (a) mapping


@dataclasses.dataclass(frozen=True)
class MappingConfig:
    """Static settings of the semantic mapping: ``out_dim``, ``hidden`` (None = linear map),
    ``steps``, ``batch_size``."""

    out_dim: int = 64
    hidden: int | None = None
    steps: int = 500
    batch_size: int = 512

    def __post_init__(self):
        _checks.check_positive_int("out_dim", self.out_dim)
        if self.hidden is not None:
            _checks.check_positive_int("hidden", self.hidden)
        _checks.check_positive_int("steps", self.steps)
        _checks.check_positive_int("batch_size", self.batch_size)


@flax.struct.dataclass
class MappingHParams:
    """Dynamic knobs: ``lr`` (> 0) and ``l2`` (>= 0, on the map weights)."""

    lr: jax.Array = 0.01
    l2: jax.Array = 1e-4


class MappingFit(NamedTuple):
    """Trained map parameters (dict of arrays) and the loss per step ``[steps]``."""

    params: dict
    losses: jax.Array


def _user_mean(h, hist_rows, drop=None):
    """Mean of ``h`` over each padded history row ``[b, L]``, optionally leaving ``drop`` out."""
    m = (hist_rows >= 0).astype(h.dtype)
    tot = jnp.einsum("bl,bld->bd", m, h[jnp.maximum(hist_rows, 0)])
    cnt = jnp.sum(m, axis=1)
    if drop is not None:
        tot = tot - h[drop]
        cnt = cnt - 1
    return tot / jnp.maximum(cnt, 1)[:, None]


def semantic_mapping_loss(params, x, history, users, pos, neg, hp: MappingHParams):
    """BPR loss of the mapped-semantic recommender on one batch (leave-self-out users)."""
    h = _train.mlp_apply(params, x)
    e = _user_mean(h, history[users], drop=pos)
    bpr = _train.bpr_loss(jnp.sum(e * h[pos], 1), jnp.sum(e * h[neg], 1))
    w = [v for k, v in params.items() if k.startswith("w")]
    return bpr + hp.l2 * _train.l2_norm_sq(w)


@functools.partial(jax.jit, static_argnames=("config",))
def _fit_mapping(key, x, history, users, items, hp, *, config):
    k_init, k_train = jax.random.split(key)
    params = _train.mlp_init(k_init, x.shape[1], config.out_dim, config.hidden, x.dtype)

    def loss_fn(p, k):
        bu, bp, bn = _train.sample_bpr(k, users, items, x.shape[0], config.batch_size)
        return semantic_mapping_loss(p, x, history, bu, bp, bn, hp)

    params, losses = _train.fit_scan(k_train, params, loss_fn, hp.lr, config.steps)
    return MappingFit(params, losses)


def fit_semantic_mapping(
    key,
    x,
    history,
    train_users,
    train_items,
    *,
    config: MappingConfig | None = None,
    hparams: MappingHParams | None = None,
) -> MappingFit:
    """Train the AlphaRec-style map of the semantic view with BPR (see module docstring).

    Args:
        key: PRNG key (vmap over split keys for seeds).
        x: ``[n_items, D_x]`` semantic item view.
        history: ``[n_users, L]`` int32 padded training items per user (``-1`` padding);
            must contain the training interactions.
        train_users, train_items: ``[n_inter]`` training pairs.
        config: :class:`MappingConfig`.
        hparams: :class:`MappingHParams`.

    Returns:
        :class:`MappingFit`; rank with :func:`semantic_mapping_embeddings`.
    """
    config = MappingConfig() if config is None else config
    hparams = MappingHParams() if hparams is None else hparams
    x = _checks.check_matrix("x", x, min_rows=2)
    n_users = jnp.asarray(history).shape[0] if jnp.ndim(history) == 2 else -1
    history = _train.check_padded("history", history, n_users)
    users, items = _train.check_interactions(train_users, train_items, n_users, x.shape[0])
    _train.check_hparam("lr", hparams.lr, 0.0, lo_open=True)
    _train.check_hparam("l2", hparams.l2, 0.0)
    return _fit_mapping(key, x, history, users, items, hparams, config=config)


def semantic_mapping_embeddings(params, x, history):
    """``(user_emb [n_users, out], item_emb [n_items, out])``: mapped items and history means."""
    x = _checks.check_matrix("x", x, min_rows=1)
    history = jnp.asarray(history, jnp.int32)
    h = _train.mlp_apply(params, x)
    return _user_mean(h, history), h


# ----------------------------------------------------------------------------- (b) RLMRec


@dataclasses.dataclass(frozen=True)
class AlignedMFConfig:
    """Static settings: embedding ``dim``, semantic map ``map_hidden`` (None = linear),
    ``steps``, ``batch_size``, ``init_scale``."""

    dim: int = 64
    map_hidden: int | None = None
    steps: int = 500
    batch_size: int = 512
    init_scale: float = 0.1

    def __post_init__(self):
        _checks.check_positive_int("dim", self.dim)
        if self.map_hidden is not None:
            _checks.check_positive_int("map_hidden", self.map_hidden)
        _checks.check_positive_int("steps", self.steps)
        _checks.check_positive_int("batch_size", self.batch_size, minimum=2)


@flax.struct.dataclass
class AlignedMFHParams:
    """Dynamic knobs (vmappable): ``lr`` (> 0), ``l2`` (>= 0), ``align_weight`` (>= 0; 0 =
    plain BPR-MF), InfoNCE ``temperature`` (> 0)."""

    lr: jax.Array = 0.01
    l2: jax.Array = 1e-4
    align_weight: jax.Array = 0.1
    temperature: jax.Array = 0.2


class AlignedMFFit(NamedTuple):
    """Trained ``{"user", "item", "map"}`` parameters and the loss per step ``[steps]``."""

    params: dict
    losses: jax.Array


def aligned_mf_loss(params, x, users, pos, neg, hp: AlignedMFHParams):
    """BPR + align_weight * InfoNCE(q, map(x)) + l2 on one batch; ``(total, parts)``."""
    p = params["user"][users]
    qp, qn = params["item"][pos], params["item"][neg]
    bpr = _train.bpr_loss(jnp.sum(p * qp, 1), jnp.sum(p * qn, 1))
    align = _train.info_nce(qp, _train.mlp_apply(params["map"], x[pos]), hp.temperature)
    reg = (jnp.sum(p**2) + jnp.sum(qp**2) + jnp.sum(qn**2)) / users.shape[0]
    return bpr + hp.align_weight * align + hp.l2 * reg, {"bpr": bpr, "align": align}


@functools.partial(jax.jit, static_argnames=("config", "n_users"))
def _fit_amf(key, x, users, items, hp, *, config, n_users):
    ku, ki, km, kt = jax.random.split(key, 4)
    dt = x.dtype
    params = {
        "user": config.init_scale * jax.random.normal(ku, (n_users, config.dim), dt),
        "item": config.init_scale * jax.random.normal(ki, (x.shape[0], config.dim), dt),
        "map": _train.mlp_init(km, x.shape[1], config.dim, config.map_hidden, dt),
    }

    def loss_fn(p, k):
        bu, bp, bn = _train.sample_bpr(k, users, items, x.shape[0], config.batch_size)
        return aligned_mf_loss(p, x, bu, bp, bn, hp)[0]

    params, losses = _train.fit_scan(kt, params, loss_fn, hp.lr, config.steps)
    return AlignedMFFit(params, losses)


def fit_aligned_mf(
    key,
    x,
    train_users,
    train_items,
    *,
    n_users: int,
    config: AlignedMFConfig | None = None,
    hparams: AlignedMFHParams | None = None,
) -> AlignedMFFit:
    """Train RLMRec-style contrastively aligned BPR-MF (see module docstring).

    Args:
        key: PRNG key.
        x: ``[n_items, D_x]`` semantic item view.
        train_users, train_items: ``[n_inter]`` training pairs.
        n_users: number of users.
        config: :class:`AlignedMFConfig`.
        hparams: :class:`AlignedMFHParams`; batch ``align_weight`` and ``jax.vmap`` to sweep.

    Returns:
        :class:`AlignedMFFit`; rank with :func:`aligned_mf_embeddings`.

    Example:
        >>> hp = AlignedMFHParams(align_weight=jnp.array([0.0, 0.1, 1.0]))
        >>> fits = jax.vmap(lambda h: fit_aligned_mf(key, x, tu, ti, n_users=n, hparams=h))(hp)
    """
    config = AlignedMFConfig() if config is None else config
    hparams = AlignedMFHParams() if hparams is None else hparams
    x = _checks.check_matrix("x", x, min_rows=2)
    n_users = _checks.check_positive_int("n_users", n_users)
    users, items = _train.check_interactions(train_users, train_items, n_users, x.shape[0])
    _train.check_hparam("lr", hparams.lr, 0.0, lo_open=True)
    _train.check_hparam("l2", hparams.l2, 0.0)
    _train.check_hparam("align_weight", hparams.align_weight, 0.0)
    _train.check_hparam("temperature", hparams.temperature, 0.0, lo_open=True)
    return _fit_amf(key, x, users, items, hparams, config=config, n_users=n_users)


def aligned_mf_embeddings(params):
    """``(user_emb [n_users, dim], item_emb [n_items, dim])`` of a trained aligned MF."""
    return params["user"], params["item"]

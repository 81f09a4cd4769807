"""Learned, complementarity-aware gated fusion of two normalised views.

For user u and item i, with per-user normalised view scores ``n_a(u, i)``, ``n_b(u, i)``
(min-max or z-score over the user's rankable items, as in :mod:`.rules`)::

    g(u, i)  = sigmoid(b + phi_u(u) . w_u + phi_i(i) . w_i)          (w_i only if per_item)
    f(u, i)  = g(u, i) * n_a(u, i) + (1 - g(u, i)) * n_b(u, i)

``phi_u`` are user features (default :func:`gate_user_features`: history length, agreement of
the two views' top-M lists, each view's confidence) and ``phi_i`` item features (default
:func:`gate_item_features`: popularity). Parameters start at zero, so at initialisation
``g = 1/2`` and ``f`` is exactly the equal-weight sum ``(n_a + n_b) / 2``
(``rules.fuse_scores`` with ``RuleConfig("wsum", norm)`` and ``weight=0.5``).

Training minimises BPR, ``-mean log sigmoid(f(u, i+) - f(u, i-))``, with Adam (optax) over
``lax.scan`` steps on sampled (user, positive, uniform negative) triples, plus ``l2 * |w|^2``.
Fit the gate on interactions the views were **not** trained on (a validation split), with the
views' training items passed as ``exclude``; on training interactions a collaborative view is
overfit and the gate would learn to trust it blindly. ``fit_gate`` is a pure function of a key,
so ``jax.vmap`` over ``jax.random.split(key, n)`` trains an ensemble of seeds.

References:
    Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009.
    Shazeer et al., "Outrageously large neural networks: the sparsely-gated mixture-of-experts
    layer", ICLR 2017 (gating).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from complemjax import _checks
from complemjax.fusion import _train
from complemjax.fusion.rules import as_score_fn, exclusion_mask, normalize_rows
from complemjax.models import bpr
from complemjax.ranking import check_item_sets

__all__ = [
    "GateConfig",
    "GateFit",
    "GateHParams",
    "GateParams",
    "fit_gate",
    "gate_init",
    "gate_item_features",
    "gate_loss",
    "gate_score_fn",
    "gate_scores",
    "gate_user_features",
]


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """Static gate settings.

    Attributes:
        norm: per-user normalisation of each view, ``"zscore"`` or ``"minmax"`` (affine, so it
            can be applied to training positives that are excluded from the statistics).
        per_item: add an item-feature term to the gate.
        steps: Adam steps.
        batch_size: BPR triples per step, drawn by
            :func:`complemjax.models.bpr.sample_bpr_triples` (as BPR-MF).
        reject_positives: redraw a negative that is one of the fitting pairs (as
            :class:`complemjax.models.BPRConfig`; needs ``n_users * n_items < 2**31``).
        n_neg_retries: redraws for ``reject_positives``.
    """

    norm: str = "zscore"
    per_item: bool = True
    steps: int = 300
    batch_size: int = 256
    reject_positives: bool = True
    n_neg_retries: int = 4

    def __post_init__(self):
        if self.norm not in ("zscore", "minmax"):
            raise ValueError(f"`norm` must be 'zscore' or 'minmax', got {self.norm!r}")
        _checks.check_positive_int("steps", self.steps)
        _checks.check_positive_int("batch_size", self.batch_size)
        _checks.check_positive_int("n_neg_retries", self.n_neg_retries, minimum=0)


@flax.struct.dataclass
class GateHParams:
    """Dynamic training knobs (vmappable): learning rate and L2 penalty on gate weights."""

    learning_rate: jax.Array = 0.05
    l2: jax.Array = 1e-4


@flax.struct.dataclass
class GateParams:
    """Gate weights: ``w_user [f_u]``, ``w_item [f_i]``, bias ``b`` (scalar)."""

    w_user: jax.Array
    w_item: jax.Array
    b: jax.Array


class GateFit(NamedTuple):
    """Result of :func:`fit_gate`: parameters and the training loss per step ``[steps]``."""

    params: GateParams
    losses: jax.Array


def gate_init(
    n_user_features: int, n_item_features: int, dtype: DTypeLike | None = None
) -> GateParams:
    """Zero gate (``g = 1/2`` everywhere: the equal-weight sum)."""
    dt = jnp.zeros(()).dtype if dtype is None else dtype
    return GateParams(
        w_user=jnp.zeros((n_user_features,), dt),
        w_item=jnp.zeros((n_item_features,), dt),
        b=jnp.zeros((), dt),
    )


def _standardise(x, axis=0):
    m = jnp.mean(x, axis=axis, keepdims=True)
    s = jnp.std(x, axis=axis, keepdims=True)
    return (x - m) / jnp.maximum(s, 1e-6)


def gate_item_features(item_popularity: ArrayLike) -> jax.Array:
    """Item features ``[n_items, 1]``: standardised ``log1p(popularity)``.

    Args:
        item_popularity: ``[n_items]`` interaction counts (training split).

    Returns:
        ``[n_items, 1]`` float features (mean 0, std 1 over items).
    """
    pop = _checks.as_float_array("item_popularity", jnp.asarray(item_popularity, float), ndim=1)
    _checks.check_finite("item_popularity", pop)
    return _standardise(jnp.log1p(jnp.maximum(pop, 0)))[:, None]


@functools.partial(jax.jit, static_argnames=("n_items", "top_m", "chunk", "norm"))
def _user_feature_pass(fa, fb, exclude, *, n_items, top_m, chunk, norm):
    n_users = exclude.shape[0]
    n_chunks = -(-n_users // chunk)
    users = jnp.minimum(jnp.arange(n_chunks * chunk, dtype=jnp.int32), n_users - 1)

    def one(u):
        sa, sb = fa(u), fb(u)
        valid = exclusion_mask(exclude[u], n_items)
        na = normalize_rows(sa, valid, norm)
        nb = normalize_rows(sb, valid, norm)
        ta, ia = jax.lax.top_k(jnp.where(valid, na, -jnp.inf), top_m)
        tb, ib = jax.lax.top_k(jnp.where(valid, nb, -jnp.inf), top_m)
        overlap = jnp.sum(jnp.any(ia[:, :, None] == ib[:, None, :], axis=-1), axis=1) / top_m
        conf_a = jnp.mean(jnp.where(jnp.isfinite(ta), ta, 0), axis=1)
        conf_b = jnp.mean(jnp.where(jnp.isfinite(tb), tb, 0), axis=1)
        return jnp.stack([overlap.astype(conf_a.dtype), conf_a, conf_b], axis=1)

    out = jax.lax.map(one, users.reshape(n_chunks, chunk))
    return out.reshape(n_chunks * chunk, 3)[:n_users]


def gate_user_features(
    score_fn_a: Callable,
    score_fn_b: Callable,
    *,
    n_users: int,
    n_items: int,
    exclude: ArrayLike,
    top_m: int = 20,
    norm: str = "zscore",
    user_chunk: int = 256,
) -> jax.Array:
    """Default user features ``[n_users, 4]`` for the gate, standardised over users.

    Columns: ``log1p |history|``; agreement ``|top_M(a) ∩ top_M(b)| / M``; confidence of view
    A and of view B, the mean normalised score of that view's top-M items. Computed in one
    chunked pass over users (memory ``user_chunk x n_items``).

    Args:
        score_fn_a: ``user_idx [c] -> [c, n_items]`` scores of view A.
        score_fn_b: ``user_idx [c] -> [c, n_items]`` scores of view B.
        n_users: number of users.
        n_items: number of items.
        exclude: ``[n_users, L]`` int32 padded training items (history; excluded from lists).
        top_m: M of the agreement and confidence features.
        norm: ``"zscore"`` or ``"minmax"`` (as in :class:`GateConfig`).
        user_chunk: users per chunk.

    Returns:
        ``[n_users, 4]`` float features.
    """
    n_users = _checks.check_positive_int("n_users", n_users)
    n_items = _checks.check_positive_int("n_items", n_items)
    top_m = _checks.check_positive_int("top_m", top_m, maximum=n_items)
    if norm not in ("zscore", "minmax"):
        raise ValueError(f"`norm` must be 'zscore' or 'minmax', got {norm!r}")
    exclude = check_item_sets("exclude", exclude, n_users, n_items)
    chunk = min(_checks.check_positive_int("user_chunk", user_chunk), n_users)
    fa = as_score_fn("score_fn_a", score_fn_a)
    fb = as_score_fn("score_fn_b", score_fn_b)
    feats = _user_feature_pass(
        fa, fb, exclude, n_items=n_items, top_m=top_m, chunk=chunk, norm=norm
    )
    hist = jnp.log1p(jnp.sum(exclude >= 0, axis=1)).astype(feats.dtype)[:, None]
    return _standardise(jnp.concatenate([hist, feats], axis=1))


def _affine_normalize(scores, valid, method):
    """Per-row min-max / z-score with statistics over ``valid`` but applied to every entry."""
    if method == "minmax":
        mn = jnp.min(jnp.where(valid, scores, jnp.inf), axis=-1, keepdims=True)
        mx = jnp.max(jnp.where(valid, scores, -jnp.inf), axis=-1, keepdims=True)
        return (scores - mn) / jnp.maximum(mx - mn, 1e-9)
    dt = scores.dtype
    cnt = jnp.maximum(jnp.sum(valid, axis=-1, keepdims=True), 1).astype(dt)
    mean = jnp.sum(jnp.where(valid, scores, 0), axis=-1, keepdims=True) / cnt
    var = jnp.sum(jnp.where(valid, (scores - mean) ** 2, 0), axis=-1, keepdims=True) / cnt
    return (scores - mean) / jnp.maximum(jnp.sqrt(var), 1e-9)


def _gate(params: GateParams, uf, itf, per_item: bool):
    """``g [c, n]`` from user features ``uf [c, f_u]`` and item features ``itf [n, f_i]``."""
    logit = params.b + uf @ params.w_user  # [c]
    logit = logit[:, None]
    if per_item:
        logit = logit + (itf @ params.w_item)[None, :]
    return jax.nn.sigmoid(logit)


def gate_scores(
    params: GateParams,
    scores_a: ArrayLike,
    scores_b: ArrayLike,
    user_features: ArrayLike,
    item_features: ArrayLike,
    *,
    config: GateConfig,
    valid: ArrayLike | None = None,
) -> jax.Array:
    """Gated fused scores ``f = g n_a + (1 - g) n_b`` for a block of users (see module doc).

    Args:
        params: :class:`GateParams`.
        scores_a: ``[c, n_items]`` raw scores of view A.
        scores_b: ``[c, n_items]`` raw scores of view B.
        user_features: ``[c, f_u]`` features of these users.
        item_features: ``[n_items, f_i]`` item features.
        config: :class:`GateConfig`.
        valid: optional ``[c, n_items]`` rankable-item mask (normalisation statistics);
            invalid items get ``-inf``.

    Returns:
        ``[c, n_items]`` fused scores.
    """
    sa = _checks.as_float_array("scores_a", scores_a, ndim=2)
    sb = _checks.as_float_array("scores_b", scores_b, ndim=2)
    if sa.shape != sb.shape:
        raise ValueError(
            f"`scores_a` and `scores_b` must have the same shape, got {sa.shape} and {sb.shape}"
        )
    _checks.check_finite("scores_a", sa)
    _checks.check_finite("scores_b", sb)
    valid = jnp.ones(sa.shape, bool) if valid is None else jnp.asarray(valid, bool)
    out = _gated_rows(
        params, sa, sb, jnp.asarray(user_features), jnp.asarray(item_features), valid, config
    )
    return jnp.where(valid, out, -jnp.inf)


def _gated_rows(params, sa, sb, uf, itf, valid, config):
    na = _affine_normalize(sa, valid, config.norm)
    nb = _affine_normalize(sb, valid, config.norm)
    g = _gate(params, uf, itf, config.per_item)
    return g * na + (1 - g) * nb


def _gate_apply(
    params, fa, fb, user_features, item_features, exclude, user_idx, *, config, n_items
):
    sa, sb = fa(user_idx), fb(user_idx)
    valid = (
        jnp.ones(sa.shape, bool) if exclude is None else exclusion_mask(exclude[user_idx], n_items)
    )
    out = _gated_rows(params, sa, sb, user_features[user_idx], item_features, valid, config)
    return jnp.where(valid, out, -jnp.inf)


@functools.lru_cache(maxsize=64)
def _gate_apply_for(config, n_items):
    return functools.partial(_gate_apply, config=config, n_items=n_items)


def gate_score_fn(
    params: GateParams,
    score_fn_a: Callable[[jax.Array], jax.Array],
    score_fn_b: Callable[[jax.Array], jax.Array],
    user_features: ArrayLike,
    item_features: ArrayLike,
    *,
    config: GateConfig,
    n_items: int,
    exclude: ArrayLike | None = None,
) -> jax.tree_util.Partial:
    """Fused ``score_fn(user_idx [c]) -> [c, n_items]`` of a trained gate.

    For ``ranking.topk_from_score_fn`` (a ``jax.tree_util.Partial``; chunked over users).
    """
    n_items = _checks.check_positive_int("n_items", n_items)
    uf = _checks.check_matrix("user_features", user_features)
    itf = _checks.check_matrix("item_features", item_features)
    if itf.shape[0] != n_items:
        raise ValueError(f"`item_features` must have {n_items} rows, got shape {itf.shape}")
    if exclude is not None:
        exclude = check_item_sets("exclude", exclude, uf.shape[0], n_items)
    fa = as_score_fn("score_fn_a", score_fn_a)
    fb = as_score_fn("score_fn_b", score_fn_b)
    return jax.tree_util.Partial(_gate_apply_for(config, n_items), params, fa, fb, uf, itf, exclude)


def gate_loss(
    params: GateParams,
    fa: Callable[[jax.Array], jax.Array],
    fb: Callable[[jax.Array], jax.Array],
    user_features: jax.Array,
    item_features: jax.Array,
    exclude: jax.Array | None,
    users: jax.Array,
    pos: jax.Array,
    neg: jax.Array,
    *,
    config: GateConfig,
    n_items: int,
    l2: ArrayLike = 0.0,
) -> jax.Array:
    """BPR loss of the gate on one batch of triples ``(users, pos, neg)`` (each ``[B]``)."""
    sa, sb = fa(users), fb(users)
    valid = jnp.ones(sa.shape, bool) if exclude is None else exclusion_mask(exclude[users], n_items)
    f = _gated_rows(params, sa, sb, user_features[users], item_features, valid, config)
    fp = jnp.take_along_axis(f, pos[:, None], axis=1)[:, 0]
    fn = jnp.take_along_axis(f, neg[:, None], axis=1)[:, 0]
    return bpr.bpr_loss(fp - fn) + l2 * (jnp.sum(params.w_user**2) + jnp.sum(params.w_item**2))


@functools.partial(jax.jit, static_argnames=("config", "n_items"))
def _fit_gate(key, fa, fb, uf, itf, exclude, users, items, hp, *, config, n_items):
    params = gate_init(uf.shape[1], itf.shape[1], uf.dtype)
    sample = _train.bpr_sampler(users, items, uf.shape[0], n_items, config)

    def loss_fn(p, k):
        bu, bp, bn = sample(k)
        return gate_loss(
            p, fa, fb, uf, itf, exclude, bu, bp, bn, config=config, n_items=n_items, l2=hp.l2
        )

    params, losses = _train.fit_scan(key, params, loss_fn, hp.learning_rate, config.steps)
    return GateFit(params, losses)


def fit_gate(
    key: jax.Array,
    score_fn_a: Callable[[jax.Array], jax.Array],
    score_fn_b: Callable[[jax.Array], jax.Array],
    user_features: ArrayLike,
    item_features: ArrayLike,
    train_users: ArrayLike,
    train_items: ArrayLike,
    *,
    config: GateConfig,
    n_items: int,
    hparams: GateHParams | None = None,
    exclude: ArrayLike | None = None,
) -> GateFit:
    """Train the gate with BPR (Adam, ``lax.scan``) from a zero (equal-weight) start.

    Args:
        key: PRNG key (``jax.random.key``); vmap over a batch of keys for several seeds.
        score_fn_a: ``user_idx [c] -> [c, n_items]`` raw scores of view A.
        score_fn_b: ``user_idx [c] -> [c, n_items]`` raw scores of view B.
        user_features: ``[n_users, f_u]`` (e.g. :func:`gate_user_features`).
        item_features: ``[n_items, f_i]`` (e.g. :func:`gate_item_features`).
        train_users: ``[n_inter]`` int users of the positive pairs to fit on (a validation
            split).
        train_items: ``[n_inter]`` int items of those pairs.
        config: :class:`GateConfig`.
        n_items: number of items.
        hparams: :class:`GateHParams` (vmappable).
        exclude: optional ``[n_users, L]`` padded items left out of normalisation statistics
            (the views' training history).

    Returns:
        :class:`GateFit` (params, losses ``[steps]``).

    Example:
        >>> fits = jax.vmap(lambda k: fit_gate(k, fa, fb, uf, itf, vu, vi, config=cfg,
        ...                 n_items=n_items, exclude=train))(jax.random.split(key, 4))
    """
    hparams = GateHParams() if hparams is None else hparams
    _train.check_hparam("learning_rate", hparams.learning_rate, 0.0, lo_open=True)
    _train.check_hparam("l2", hparams.l2, 0.0)
    n_items = _checks.check_positive_int("n_items", n_items)
    uf = _checks.check_matrix("user_features", user_features)
    itf = _checks.check_matrix("item_features", item_features)
    if itf.shape[0] != n_items:
        raise ValueError(f"`item_features` must have {n_items} rows, got shape {itf.shape}")
    users, items = _train.check_interactions(train_users, train_items, uf.shape[0], n_items)
    if exclude is not None:
        exclude = check_item_sets("exclude", exclude, uf.shape[0], n_items)
    fa = as_score_fn("score_fn_a", score_fn_a)
    fb = as_score_fn("score_fn_b", score_fn_b)
    return _fit_gate(
        key, fa, fb, uf, itf, exclude, users, items, hparams, config=config, n_items=n_items
    )

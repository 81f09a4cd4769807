"""Rule-based fusion of two rankers: per-user normalisation and score/rank fusion rules.

Two ways to fuse, with the same definitions:

* **Score rows** (the library path): each view is a ``score_fn(user_idx) -> [c, n_items]``;
  :func:`fuse_score_fns` composes two of them into one ``score_fn`` usable by
  ``ranking.topk_from_score_fn``, so fusion runs chunk by chunk over users and never holds
  users x items in memory. ``RuleConfig.depth=None`` normalises and fuses over each user's
  full (non-excluded) score row; ``depth=N`` first cuts each view to its top-N run, exactly as
  a run-fusion toolkit (ranx) sees it.
* **Top-N runs** (:func:`fuse_runs`): each view is given as item ids ``[n_users, N]`` (sorted by
  decreasing score, ``-1`` padded) and their scores; candidates are the union of the two runs.

Definitions (per user; ``P_v`` is the set of items present in view v — the whole valid row or
its top-N run; ``pos_v(i)`` the 0-based position of item i in view v sorted by decreasing score,
ties to the lower item index; absent items contribute 0 to score sums):

* min-max: ``(s - min_P s) / max(max_P s - min_P s, 1e-9)``;
* z-score: ``(s - mean_P s) / max(std_P s, 1e-9)`` (population std, ``ddof=0``);
* rank: ``1 - pos_v(i) / |P_v|``;
* weighted sum (CombSUM with weights): ``w * n_a(i) + (1 - w) * n_b(i)``, ``w`` in ``[0, 1]``;
* CombSUM: ``n_a(i) + n_b(i)``; CombMNZ: ``(n_a(i) + n_b(i)) * |{v : i in P_v}|``;
* RRF: ``sum_v 1[i in P_v] / (k + pos_v(i) + 1)``, ``k > 0``;
* Borda (BordaFuse): with ``C`` the candidate union, ``sum_v b_v(i)`` where
  ``b_v(i) = |C| - pos_v(i)`` if ``i in P_v`` else ``(|C| - |P_v| + 1) / 2``.

These are ranx's definitions (``min_max_norm``, ``zmuv_norm``, ``rank_norm``, ``wsum``,
``comb_sum``, ``comb_mnz``, ``rrf``, ``bordafuse``; eps ``1e-9`` as in ranx), so fused scores on
the same runs agree with ranx to floating-point rounding. Items outside the candidate union
score ``-inf``. Rank-based rules (RRF, Borda) ignore the normalisation.

References:
    Fox & Shaw, "Combination of Multiple Searches", TREC 1993 (CombSUM, CombMNZ).
    Cormack, Clarke & Buettcher, "Reciprocal rank fusion ...", SIGIR 2009.
    Aslam & Montague, "Models for Metasearch", SIGIR 2001 (BordaFuse).
    Bassani, "ranx.fuse: A Python Library for Metasearch", CIKM 2022.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from complemjax import _checks, ranking

__all__ = [
    "FUSION_METHODS",
    "NORM_METHODS",
    "FusedRun",
    "RuleConfig",
    "RuleHParams",
    "TuneResult",
    "fuse_runs",
    "fuse_score_fns",
    "fuse_scores",
    "normalize_scores",
    "rule_grid",
    "tune_rule",
]

NORM_METHODS = ("none", "minmax", "zscore", "rank")
FUSION_METHODS = ("wsum", "combsum", "combmnz", "rrf", "borda")
_EPS = 1e-9


@dataclasses.dataclass(frozen=True)
class RuleConfig:
    """Static choice of a fusion rule.

    Attributes:
        method: one of ``"wsum"``, ``"combsum"``, ``"combmnz"``, ``"rrf"``, ``"borda"``.
        norm: per-user normalisation applied to each view first: ``"none"``, ``"minmax"``,
            ``"zscore"`` or ``"rank"`` (ignored by ``rrf`` and ``borda``).
        depth: ``None`` fuses full score rows; an int N fuses each view's top-N run only.
    """

    method: str = "wsum"
    norm: str = "minmax"
    depth: int | None = None

    def __post_init__(self):
        if self.method not in FUSION_METHODS:
            raise ValueError(f"`method` must be one of {FUSION_METHODS}, got {self.method!r}")
        if self.norm not in NORM_METHODS:
            raise ValueError(f"`norm` must be one of {NORM_METHODS}, got {self.norm!r}")
        if self.depth is not None:
            _checks.check_positive_int("depth", self.depth)


@flax.struct.dataclass
class RuleHParams:
    """Dynamic (vmappable) fusion knobs.

    Attributes:
        weight: weight ``w`` of view A in ``[0, 1]`` (view B gets ``1 - w``); used by ``wsum``.
        rrf_k: RRF constant ``k > 0``; used by ``rrf``.
    """

    weight: jax.Array = 0.5
    rrf_k: jax.Array = 60.0


def _check_hparams(hparams: RuleHParams) -> None:
    _checks.check_in_range("weight", hparams.weight, 0.0, 1.0)
    _checks.check_in_range("rrf_k", hparams.rrf_k, 0.0, np.inf, lo_open=True)


def _check_config(config) -> RuleConfig:
    if not isinstance(config, RuleConfig):
        raise ValueError(
            f"`config` must be a RuleConfig (e.g. RuleConfig('wsum', 'minmax')), got {config!r}"
        )
    return config


def _ranks_desc(scores: jax.Array, present: jax.Array) -> jax.Array:
    """0-based position of each entry when present entries are sorted by decreasing score.

    Ties go to the lower index; absent entries are placed after all present ones.
    """
    neg = jnp.where(present, -scores, jnp.inf)
    order = jnp.argsort(neg, axis=-1, stable=True)
    n = scores.shape[-1]
    ar = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), scores.shape)
    return jnp.put_along_axis(jnp.zeros_like(ar), order, ar, axis=-1, inplace=False)


def normalize_rows(
    scores: jax.Array, present: ArrayLike, method: str, pos: jax.Array | None = None
) -> jax.Array:
    """Normalise along the last axis over ``present`` entries; absent entries -> 0."""
    dt = scores.dtype
    eps = jnp.asarray(_EPS, dt)
    if method == "none":
        out = scores
    elif method == "minmax":
        mn = jnp.min(jnp.where(present, scores, jnp.inf), axis=-1, keepdims=True)
        mx = jnp.max(jnp.where(present, scores, -jnp.inf), axis=-1, keepdims=True)
        out = (scores - mn) / jnp.maximum(mx - mn, eps)
    elif method == "zscore":
        cnt = jnp.maximum(jnp.sum(present, axis=-1, keepdims=True), 1).astype(dt)
        mean = jnp.sum(jnp.where(present, scores, 0), axis=-1, keepdims=True) / cnt
        var = jnp.sum(jnp.where(present, (scores - mean) ** 2, 0), axis=-1, keepdims=True) / cnt
        out = (scores - mean) / jnp.maximum(jnp.sqrt(var), eps)
    elif method == "rank":
        if pos is None:
            pos = _ranks_desc(scores, present)
        cnt = jnp.maximum(jnp.sum(present, axis=-1, keepdims=True), 1).astype(dt)
        out = 1.0 - pos.astype(dt) / cnt
    else:  # pragma: no cover - guarded by RuleConfig
        raise ValueError(f"`norm` must be one of {NORM_METHODS}, got {method!r}")
    return jnp.where(present, out, jnp.zeros((), dt))


def normalize_scores(
    scores: ArrayLike, *, method: str = "minmax", valid: ArrayLike | None = None
) -> jax.Array:
    """Per-user (per-row) score normalisation.

    ``min-max: (s - min s) / max(max s - min s, 1e-9)``; ``z-score: (s - mean s) /
    max(std s, 1e-9)``; ``rank: 1 - pos(s) / n`` with ``pos`` the 0-based position in
    decreasing-score order (ties to the lower index). Statistics run over ``valid`` entries
    of each row; invalid entries are returned as 0.

    Args:
        scores: ``[..., n]`` float scores (one row per user).
        method: ``"none"``, ``"minmax"``, ``"zscore"`` or ``"rank"``.
        valid: optional boolean ``[..., n]`` mask of the entries that take part.

    Returns:
        ``[..., n]`` normalised scores.

    Example:
        >>> normalize_scores(jnp.array([[1.0, 3.0, 2.0]]), method="minmax")
        Array([[0. , 1. , 0.5]], dtype=float32)
    """
    if method not in NORM_METHODS:
        raise ValueError(f"`method` must be one of {NORM_METHODS}, got {method!r}")
    scores = _checks.as_float_array("scores", scores)
    if scores.ndim < 1:
        raise ValueError(f"`scores` must have at least 1 dimension, got shape {scores.shape}")
    _checks.check_finite("scores", scores)
    if valid is None:
        valid = jnp.ones(scores.shape, bool)
    else:
        valid = jnp.asarray(valid, bool)
        if valid.shape != scores.shape:
            raise ValueError(
                f"`valid` must have the shape of `scores` {scores.shape}, got {valid.shape}"
            )
    return normalize_rows(scores, valid, method)


def _combine(na, nb, pa, pb, pos_a, pos_b, hparams: RuleHParams, method: str):
    """Fused score of one candidate set from per-view normalised scores, presence, positions."""
    dt = na.dtype
    cand = pa | pb
    fa, fb = pa.astype(dt), pb.astype(dt)
    if method == "wsum":
        w = jnp.asarray(hparams.weight, dt)
        out = w * na + (1 - w) * nb
    elif method == "combsum":
        out = na + nb
    elif method == "combmnz":
        out = (na + nb) * (fa + fb)
    elif method == "rrf":
        k = jnp.asarray(hparams.rrf_k, dt)
        out = fa / (k + pos_a.astype(dt) + 1) + fb / (k + pos_b.astype(dt) + 1)
    elif method == "borda":
        n_c = jnp.sum(cand, axis=-1, keepdims=True).astype(dt)
        len_a = jnp.sum(pa, axis=-1, keepdims=True).astype(dt)
        len_b = jnp.sum(pb, axis=-1, keepdims=True).astype(dt)
        ba = jnp.where(pa, n_c - pos_a.astype(dt), (n_c - len_a + 1) / 2)
        bb = jnp.where(pb, n_c - pos_b.astype(dt), (n_c - len_b + 1) / 2)
        out = ba + bb
    else:  # pragma: no cover - guarded by RuleConfig
        raise ValueError(f"`method` must be one of {FUSION_METHODS}, got {method!r}")
    return jnp.where(cand, ranking.canonical_zero(out), -jnp.inf)


def _view_presence(scores, valid, depth):
    """Presence mask and positions of one view: the valid row, or its top-``depth`` run."""
    if depth is None or depth >= scores.shape[-1]:
        return valid, _ranks_desc(scores, valid)
    masked = jnp.where(valid, ranking.canonical_zero(scores), -jnp.inf)
    _, idx = jax.lax.top_k(masked, depth)  # ties -> lower index
    rows = jnp.arange(scores.shape[0])[:, None]
    present = jnp.zeros(scores.shape, bool).at[rows, idx].set(True) & valid
    big = jnp.iinfo(jnp.int32).max
    pos = jnp.full(scores.shape, big, jnp.int32)
    pos = pos.at[rows, idx].set(jnp.broadcast_to(jnp.arange(depth, dtype=jnp.int32), idx.shape))
    return present, pos


def _fuse_rows(sa, sb, valid, hparams, config: RuleConfig):
    pa, pos_a = _view_presence(sa, valid, config.depth)
    pb, pos_b = _view_presence(sb, valid, config.depth)
    na = normalize_rows(sa, pa, config.norm, pos_a)
    nb = normalize_rows(sb, pb, config.norm, pos_b)
    return _combine(na, nb, pa, pb, pos_a, pos_b, hparams, config.method)


def fuse_scores(
    scores_a: ArrayLike,
    scores_b: ArrayLike,
    hparams: RuleHParams | None = None,
    *,
    config: RuleConfig,
    valid: ArrayLike | None = None,
) -> jax.Array:
    """Fuse two views' score rows for the same users with a rule (see module docstring).

    Args:
        scores_a: ``[c, n_items]`` scores of view A for c users.
        scores_b: ``[c, n_items]`` scores of view B for the same users.
        hparams: :class:`RuleHParams` (weight, rrf_k); defaults to ``RuleHParams()``.
        config: static :class:`RuleConfig` (method, norm, depth).
        valid: optional ``[c, n_items]`` boolean mask of rankable items (e.g. not in history);
            normalisation statistics and ranks use valid items only; invalid items get ``-inf``.

    Returns:
        ``[c, n_items]`` fused scores (``-inf`` outside the candidate union).

    Example:
        >>> a = jnp.array([[3.0, 1.0, 2.0]]); b = jnp.array([[1.0, 3.0, 2.0]])
        >>> fuse_scores(a, b, RuleHParams(weight=1.0), config=RuleConfig("wsum"))
        Array([[1. , 0. , 0.5]], dtype=float32)
    """
    config = _check_config(config)
    hparams = RuleHParams() if hparams is None else hparams
    if not isinstance(hparams, RuleHParams):
        raise ValueError(f"`hparams` must be a RuleHParams or None, got {type(hparams).__name__}")
    scores_a = _checks.as_float_array("scores_a", scores_a, ndim=2)
    scores_b = _checks.as_float_array("scores_b", scores_b, ndim=2)
    if scores_a.shape != scores_b.shape:
        raise ValueError(
            f"`scores_a` and `scores_b` must have the same shape, got {scores_a.shape} "
            f"and {scores_b.shape}"
        )
    _checks.check_finite("scores_a", scores_a)
    _checks.check_finite("scores_b", scores_b)
    _check_hparams(hparams)
    if valid is None:
        valid = jnp.ones(scores_a.shape, bool)
    else:
        valid = jnp.asarray(valid, bool)
        if valid.shape != scores_a.shape:
            raise ValueError(f"`valid` must have shape {scores_a.shape}, got {valid.shape}")
    dt = jnp.result_type(scores_a.dtype, scores_b.dtype)
    return _fuse_rows(scores_a.astype(dt), scores_b.astype(dt), valid, hparams, config)


def exclusion_mask(exclude_rows: jax.Array, n_items: int) -> jax.Array:
    """``[c, n_items]`` boolean: True where the item is NOT in the user's padded set."""
    c = exclude_rows.shape[0]
    idx = jnp.where(exclude_rows >= 0, exclude_rows, n_items)
    rows = jnp.arange(c)[:, None]
    return jnp.ones((c, n_items), bool).at[rows, idx].set(False, mode="drop")


def _check_exclude(exclude, n_users):
    if exclude is None:
        return None
    exclude = jnp.asarray(exclude)
    if exclude.ndim != 2 or not jnp.issubdtype(exclude.dtype, jnp.integer):
        raise ValueError(
            f"`exclude` must be an int [n_users, max_len] padded array, got shape "
            f"{exclude.shape} and dtype {exclude.dtype}"
        )
    if n_users is not None and exclude.shape[0] != n_users:
        raise ValueError(f"`exclude` must have {n_users} rows (users), got {exclude.shape[0]}")
    return exclude.astype(jnp.int32)


def as_score_fn(name: str, fn: Callable) -> jax.tree_util.Partial:
    """Wrap a score function as a ``jax.tree_util.Partial`` (a pytree jit can take)."""
    if isinstance(fn, jax.tree_util.Partial):
        return fn
    if not callable(fn):
        raise ValueError(f"`{name}` must be callable, got {type(fn).__name__}")
    return jax.tree_util.Partial(fn)


def _fused_apply(fa, fb, hparams, exclude, user_idx, *, config, n_items):
    sa = jnp.asarray(fa(user_idx))
    sb = jnp.asarray(fb(user_idx))
    if sa.shape != sb.shape or sa.shape[-1] != n_items:
        raise ValueError(
            f"view score functions must return [c, n_items={n_items}] arrays of the same "
            f"shape, got {sa.shape} and {sb.shape}"
        )
    if exclude is None:
        valid = jnp.ones(sa.shape, bool)
    else:
        valid = exclusion_mask(exclude[user_idx], n_items)
    dt = jnp.result_type(sa.dtype, sb.dtype)
    return _fuse_rows(sa.astype(dt), sb.astype(dt), valid, hparams, config)


@functools.lru_cache(maxsize=256)
def _fused_apply_for(config: RuleConfig, n_items: int):
    # one function object per (config, n_items) so jit caches compiled programs across calls
    return functools.partial(_fused_apply, config=config, n_items=n_items)


def fuse_score_fns(
    score_fn_a: Callable,
    score_fn_b: Callable,
    hparams: RuleHParams | None = None,
    *,
    config: RuleConfig,
    n_items: int,
    exclude: ArrayLike | None = None,
) -> jax.tree_util.Partial:
    """Compose two view score functions into one fused score function.

    The result ``score_fn(user_idx [c]) -> [c, n_items]`` can be handed to
    ``ranking.topk_from_score_fn``; it evaluates both views on the same chunk of users only, so
    memory is bounded by the chunk. It is a ``jax.tree_util.Partial`` whose traced arguments
    are the two view functions (themselves wrapped as ``Partial``), ``hparams`` and ``exclude``,
    so new weights or new view parameters reuse the compiled program.

    Args:
        score_fn_a: ``user_idx int32 [c] -> [c, n_items]`` scores of view A (a plain function
            or a ``jax.tree_util.Partial`` carrying its parameters).
        score_fn_b: same for view B.
        hparams: :class:`RuleHParams`.
        config: :class:`RuleConfig`.
        n_items: number of items.
        exclude: optional ``[n_users, max_len]`` int32 padded (-1) item sets to leave out of
            normalisation statistics, ranks and top-N runs (e.g. training history). Pass the
            same array as ``exclude`` to ``topk_from_score_fn``.

    Returns:
        A fused ``score_fn`` (``jax.tree_util.Partial``).

    Example:
        >>> fused = fuse_score_fns(fa, fb, RuleHParams(rrf_k=60.0), config=RuleConfig("rrf"),
        ...                        n_items=n_items, exclude=train_padded)
        >>> top = ranking.topk_from_score_fn(fused, n_users=n, n_items=n_items, k=20,
        ...                                  exclude=train_padded)  # doctest: +SKIP
    """
    config = _check_config(config)
    hparams = RuleHParams() if hparams is None else hparams
    n_items = _checks.check_positive_int("n_items", n_items)
    _check_hparams(hparams)
    exclude = _check_exclude(exclude, None)
    fa = as_score_fn("score_fn_a", score_fn_a)
    fb = as_score_fn("score_fn_b", score_fn_b)
    return jax.tree_util.Partial(_fused_apply_for(config, n_items), fa, fb, hparams, exclude)


# ----------------------------------------------------------------------------- top-N runs


def _union_fuse_chunk(ia, sa, ib, sb, hparams, config: RuleConfig, k: int, pack_bits: int = 0):
    """Fuse one chunk of top-N runs: ``ia, ib [c, N]`` ids (-1 pad), ``sa, sb [c, N]``.

    The 2N slots are sorted by item id (A's copy of an id before B's). With ``pack_bits > 0``
    (ids < 2**(31 - pack_bits) - 1 and 2N <= 2**pack_bits) the sort is a single-operand sort of
    ``id << pack_bits | slot``, several times faster on CPU than a stable argsort.
    """
    c, n = ia.shape
    dt = sa.dtype
    pa0, pb0 = ia >= 0, ib >= 0
    pos = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (c, n))
    # normalise each run over its own (present) entries; positions are the given run order
    na0 = normalize_rows(sa, pa0, config.norm, pos)
    nb0 = normalize_rows(sb, pb0, config.norm, pos)
    big = jnp.iinfo(jnp.int32).max
    val = jnp.concatenate([na0, nb0], axis=1)
    if pack_bits:
        sentinel = (1 << (31 - pack_bits)) - 1
        ids = jnp.concatenate([jnp.where(pa0, ia, sentinel), jnp.where(pb0, ib, sentinel)], 1)
        packed = (ids << pack_bits) | jnp.arange(2 * n, dtype=jnp.int32)
        sk = jnp.sort(packed, axis=1)
        order = sk & ((1 << pack_bits) - 1)
        sid = sk >> pack_bits
        real = sid != sentinel
    else:
        ids = jnp.concatenate([jnp.where(pa0, ia, big), jnp.where(pb0, ib, big)], axis=1)
        order = jnp.argsort(ids, axis=1, stable=True)  # A copy before B copy of the same id
        sid = jnp.take_along_axis(ids, order, axis=1)
        real = sid != big
    sfb = order >= n
    sval = jnp.take_along_axis(val, order, axis=1)
    spos = (order % n).astype(jnp.int32)
    prev_same = jnp.concatenate([jnp.zeros((c, 1), bool), sid[:, 1:] == sid[:, :-1]], axis=1)
    next_same = jnp.concatenate([sid[:, 1:] == sid[:, :-1], jnp.zeros((c, 1), bool)], axis=1)
    first = real & ~prev_same
    nval = jnp.concatenate([sval[:, 1:], jnp.zeros((c, 1), dt)], axis=1)
    npos = jnp.concatenate([spos[:, 1:], jnp.zeros((c, 1), jnp.int32)], axis=1)
    pa = first & ~sfb
    pb = first & (sfb | next_same)
    na = jnp.where(pa, sval, 0)
    nb = jnp.where(sfb, sval, jnp.where(next_same, nval, 0))
    nb = jnp.where(pb, nb, 0)
    pos_a = jnp.where(pa, spos, big)
    pos_b = jnp.where(sfb, spos, jnp.where(next_same, npos, big))
    fused = _combine(na, nb, pa, pb, pos_a, pos_b, hparams, config.method)
    top_s, top_j = jax.lax.top_k(fused, k)  # slots sorted by id: ties -> lower item id
    top_i = jnp.take_along_axis(sid, top_j, axis=1)
    top_i = jnp.where(jnp.isfinite(top_s), top_i, -1)
    return top_i.astype(jnp.int32), top_s


class FusedRun(NamedTuple):
    """Fused top-k lists.

    Attributes:
        items: ``[n_users, k]`` int32 item ids by decreasing fused score (-1 where the union
            had fewer than k candidates).
        scores: ``[n_users, k]`` fused scores (``-inf`` at padding).
    """

    items: jax.Array
    scores: jax.Array


@functools.partial(jax.jit, static_argnames=("config", "k", "user_chunk", "pack_bits"))
def _fuse_runs_jit(ia, sa, ib, sb, hparams, config, k, user_chunk, pack_bits):
    n_users, n = ia.shape
    n_chunks = -(-n_users // user_chunk)
    pad = n_chunks * user_chunk - n_users

    def padu(x, fill):
        return jnp.pad(x, ((0, pad), (0, 0)), constant_values=fill)

    xs = (padu(ia, -1), padu(sa, 0), padu(ib, -1), padu(sb, 0))
    xs = jax.tree.map(lambda x: x.reshape(n_chunks, user_chunk, n), xs)
    items, scores = jax.lax.map(lambda t: _union_fuse_chunk(*t, hparams, config, k, pack_bits), xs)
    return (items.reshape(-1, k)[:n_users], scores.reshape(-1, k)[:n_users])


def fuse_runs(
    items_a: ArrayLike,
    scores_a: ArrayLike,
    items_b: ArrayLike,
    scores_b: ArrayLike,
    hparams: RuleHParams | None = None,
    *,
    config: RuleConfig,
    k: int,
    user_chunk: int = 1024,
) -> FusedRun:
    """Fuse two top-N runs per user and return the fused top-k (ranx ``fuse`` semantics).

    Candidates are the union of the two runs; each run is normalised over its own N entries
    (``RuleConfig.depth`` is ignored here: the runs already are the top-N). Ties in the fused
    score go to the lower item id.

    Args:
        items_a: ``[n_users, N]`` int item ids of view A's run, sorted by decreasing score,
            ``-1`` padded at the end; ids unique within a row.
        scores_a: ``[n_users, N]`` float scores matching ``items_a``.
        items_b: ``[n_users, N]`` item ids of view B's run, as ``items_a``.
        scores_b: ``[n_users, N]`` float scores matching ``items_b``.
        hparams: :class:`RuleHParams`.
        config: :class:`RuleConfig` (method and norm).
        k: length of the fused list, ``1 <= k <= 2N``.
        user_chunk: users per chunk (bounds memory to ``user_chunk x 2N``).

    Returns:
        :class:`FusedRun` with ``items`` and ``scores`` of shape ``[n_users, k]``.

    Example:
        >>> out = fuse_runs(ia, sa, ib, sb, RuleHParams(rrf_k=60.0), config=RuleConfig("rrf"),
        ...                 k=10)
    """
    hparams = RuleHParams() if hparams is None else hparams
    ia = jnp.asarray(items_a)
    ib = jnp.asarray(items_b)
    for name, x in (("items_a", ia), ("items_b", ib)):
        if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.integer):
            raise ValueError(
                f"`{name}` must be an int [n_users, N] array, got shape {x.shape} "
                f"and dtype {x.dtype}"
            )
    sa = _checks.as_float_array("scores_a", scores_a, ndim=2)
    sb = _checks.as_float_array("scores_b", scores_b, ndim=2)
    for name, s, i in (("scores_a", sa, ia), ("scores_b", sb, ib), ("items_b", ib, ia)):
        if s.shape != i.shape:
            ref = "items_a" if name == "items_b" else name.replace("scores", "items")
            raise ValueError(f"`{name}` must have the shape of `{ref}` {i.shape}, got {s.shape}")
    _checks.check_finite("scores_a", sa)
    _checks.check_finite("scores_b", sb)
    config = _check_config(config)
    _check_hparams(hparams)
    k = _checks.check_positive_int("k", k, maximum=2 * ia.shape[1])
    user_chunk = _checks.check_positive_int("user_chunk", user_chunk)
    user_chunk = min(user_chunk, ia.shape[0])
    pack_bits = max(1, int(np.ceil(np.log2(2 * ia.shape[1]))))
    max_id = max(int(jnp.max(ia)), int(jnp.max(ib)))
    if pack_bits > 30 or max_id >= (1 << (31 - pack_bits)) - 1:
        pack_bits = 0  # ids too large to pack with the slot index: stable argsort instead
    dt = jnp.result_type(sa.dtype, sb.dtype)
    items, scores = _fuse_runs_jit(
        ia.astype(jnp.int32),
        sa.astype(dt),
        ib.astype(jnp.int32),
        sb.astype(dt),
        hparams,
        config,
        k,
        user_chunk,
        pack_bits,
    )
    return FusedRun(items, scores)


# ----------------------------------------------------------------------------- tuning


class TuneResult(NamedTuple):
    """Outcome of a vmapped grid search over fusion knobs.

    Attributes:
        best_index: index of the selected candidate (first best on ties).
        best_hparams: :class:`RuleHParams` of that candidate (scalars).
        values: ``[G]`` validation metric of each candidate.
        hparams: the candidate grid, :class:`RuleHParams` with leading axis ``G``.
    """

    best_index: int
    best_hparams: RuleHParams
    values: jax.Array
    hparams: RuleHParams


def rule_grid(
    *,
    weights: ArrayLike | Sequence[float] | None = None,
    rrf_ks: ArrayLike | Sequence[float] | None = None,
) -> RuleHParams:
    """Cartesian grid of :class:`RuleHParams` (leading axis ``G``) for :func:`tune_rule`.

    Args:
        weights: 1-D weights in ``[0, 1]`` (default ``[0.5]``).
        rrf_ks: 1-D RRF constants ``> 0`` (default ``[60.]``).

    Returns:
        :class:`RuleHParams` with fields of shape ``[len(weights) * len(rrf_ks)]``.
    """
    w = np.atleast_1d(np.asarray([0.5] if weights is None else weights, dtype=float))
    kk = np.atleast_1d(np.asarray([60.0] if rrf_ks is None else rrf_ks, dtype=float))
    for name, v in (("weights", w), ("rrf_ks", kk)):
        if v.ndim != 1 or v.size == 0:
            raise ValueError(f"`{name}` must be a non-empty 1-D list, got shape {v.shape}")
    _checks.check_in_range("weights", w, 0.0, 1.0)
    _checks.check_in_range("rrf_ks", kk, 0.0, np.inf, lo_open=True)
    ww, kg = np.meshgrid(w, kk, indexing="ij")
    dt = jnp.zeros(()).dtype
    return RuleHParams(weight=jnp.asarray(ww.ravel(), dt), rrf_k=jnp.asarray(kg.ravel(), dt))


def _recall_ndcg(top_items, target_rows, k):
    """Per-user Recall@k and NDCG@k (``nan`` for empty targets), as :mod:`ranking` defines."""
    rel, n_t = ranking.relevance_matrix(top_items[:, :k], target_rows)
    m = ranking.metrics_from_relevance(rel, n_t, (k,))
    return m["recall"][0], m["ndcg"][0]


@functools.partial(jax.jit, static_argnames=("config", "k", "n_items", "chunk"))
def _grid_metrics(score_fn_a, score_fn_b, grid, exclude, target, *, config, k, n_items, chunk):
    n_users = target.shape[0]
    n_chunks = -(-n_users // chunk)
    pad = n_chunks * chunk - n_users
    users = jnp.pad(jnp.arange(n_users, dtype=jnp.int32), (0, pad)).reshape(n_chunks, chunk)
    tgt = jnp.pad(target, ((0, pad), (0, 0)), constant_values=-1)
    tgt = tgt.reshape(n_chunks, chunk, -1)
    live = (jnp.arange(n_chunks * chunk) < n_users).reshape(n_chunks, chunk)

    def one_chunk(carry, xs):
        u, t, alive = xs
        sa = score_fn_a(u)
        sb = score_fn_b(u)
        dt = jnp.result_type(sa.dtype, sb.dtype)
        sa, sb = sa.astype(dt), sb.astype(dt)
        valid = jnp.ones(sa.shape, bool) if exclude is None else exclusion_mask(exclude[u], n_items)

        def per_candidate(p):
            fused = _fuse_rows(sa, sb, valid, p, config)
            fused = jnp.where(valid, fused, -jnp.inf)
            _, top = jax.lax.top_k(fused, k)
            r, nd = _recall_ndcg(top, t, k)
            ok = alive & ~jnp.isnan(r)
            return (jnp.sum(jnp.where(ok, r, 0)), jnp.sum(jnp.where(ok, nd, 0)), jnp.sum(ok))

        sums = jax.vmap(per_candidate)(grid)
        return jax.tree.map(jnp.add, carry, sums), None

    g = grid.weight.shape[0]
    dt = jnp.zeros(()).dtype
    init = (jnp.zeros(g, dt), jnp.zeros(g, dt), jnp.zeros(g, jnp.int32))
    (rs, ns, cnt), _ = jax.lax.scan(one_chunk, init, (users, tgt, live))
    cnt = jnp.maximum(cnt, 1).astype(dt)
    return rs / cnt, ns / cnt


def tune_rule(
    score_fn_a: Callable,
    score_fn_b: Callable,
    grid: RuleHParams,
    *,
    config: RuleConfig,
    valid_padded: ArrayLike,
    exclude: ArrayLike | None = None,
    n_items: int,
    k: int = 20,
    metric: str = "recall",
    user_chunk: int = 256,
    n_users: int | None = None,
) -> TuneResult:
    """Select fusion knobs on a validation split by a vmapped grid.

    All ``G`` candidates are evaluated in one jitted call: users are scanned in chunks, both
    views are scored once per chunk, and the fusion + top-k + Recall/NDCG@k are ``vmap``-ed over
    the candidate axis. Users with an empty validation set are skipped. The candidate with
    the highest mean validation metric wins (the first one on ties).

    Args:
        score_fn_a: ``user_idx int32 [c] -> [c, n_items]`` scores of view A (jit-traceable).
        score_fn_b: same for view B (plain functions or ``jax.tree_util.Partial``).
        grid: :class:`RuleHParams` with a leading candidate axis ``[G]`` (see :func:`rule_grid`).
        config: :class:`RuleConfig`.
        valid_padded: ``[n_users, max_len]`` int32 validation items (-1 padded).
        exclude: optional ``[n_users, L]`` int32 items to leave out (training history).
        n_items: number of items.
        k: cut-off K of the selection metric.
        metric: ``"recall"`` or ``"ndcg"`` (@k).
        user_chunk: users per chunk; memory is about ``G x user_chunk x n_items``.
        n_users: number of users; when given, ``valid_padded`` (and ``exclude``) must have
            exactly that many rows (a validation array missing rows would otherwise tune
            on the users it holds only).

    Returns:
        :class:`TuneResult`.

    Example:
        >>> grid = rule_grid(weights=jnp.linspace(0, 1, 11))
        >>> res = tune_rule(fa, fb, grid, config=RuleConfig("wsum", "zscore"),
        ...                 valid_padded=val, exclude=train, n_items=n_items, k=20)
    """
    if metric not in ("recall", "ndcg"):
        raise ValueError(f"`metric` must be 'recall' or 'ndcg', got {metric!r}")
    config = _check_config(config)
    if not isinstance(grid, RuleHParams):
        raise ValueError(f"`grid` must be a RuleHParams (see rule_grid), got {type(grid).__name__}")
    n_items = _checks.check_positive_int("n_items", n_items)
    k = _checks.check_positive_int("k", k, maximum=n_items)
    target = _check_valid_padded(valid_padded, n_users, n_items)
    n_users = target.shape[0]
    if exclude is not None and np.shape(exclude)[0] != n_users:
        raise ValueError(
            f"`valid_padded` has {n_users} rows (users) but `exclude` has "
            f"{np.shape(exclude)[0]}; both need one row per user"
        )
    exclude = _check_exclude(exclude, n_users)
    grid = _check_grid_values(grid)
    user_chunk = min(_checks.check_positive_int("user_chunk", user_chunk), n_users)
    fa = as_score_fn("score_fn_a", score_fn_a)
    fb = as_score_fn("score_fn_b", score_fn_b)
    rec, nd = _grid_metrics(
        fa,
        fb,
        grid,
        exclude,
        target.astype(jnp.int32),
        config=config,
        k=k,
        n_items=n_items,
        chunk=user_chunk,
    )
    values = rec if metric == "recall" else nd
    best = int(jnp.argmax(values))
    return TuneResult(best, jax.tree.map(lambda x: x[best], grid), values, grid)


def _check_valid_padded(valid_padded, n_users: int | None, n_items: int) -> jax.Array:
    """``valid_padded`` as an int ``[n_users, max_len]`` array of items in ``[0, n_items)`` or -1.

    Raises:
        ValueError: naming ``valid_padded`` (or ``n_users``) when the shape, the row count,
            the item range is wrong or no validation item is present.
    """
    target = jnp.asarray(valid_padded)
    if target.ndim != 2 or not jnp.issubdtype(target.dtype, jnp.integer):
        raise ValueError(
            f"`valid_padded` must be an int [n_users, max_len] array, got shape {target.shape}"
        )
    if n_users is not None:
        n_users = _checks.check_positive_int("n_users", n_users)
        if target.shape[0] != n_users:
            raise ValueError(
                f"`valid_padded` must have one row per user ({n_users}), got shape {target.shape}"
            )
    if target.size and (int(target.min()) < -1 or int(target.max()) >= n_items):
        raise ValueError(
            f"`valid_padded` entries must be item indices in [0, {n_items}) or -1, got "
            f"range [{int(target.min())}, {int(target.max())}]"
        )
    if not bool(jnp.any(target >= 0)):
        raise ValueError("`valid_padded` holds no validation item: nothing to tune on")
    return target


def _check_grid_values(grid: RuleHParams) -> RuleHParams:
    """The candidates as 1-D arrays of equal length, weights in [0, 1], ``rrf_k > 0``."""
    w = jnp.atleast_1d(jnp.asarray(grid.weight))
    kk = jnp.atleast_1d(jnp.asarray(grid.rrf_k))
    if w.ndim != 1 or kk.shape != w.shape:
        raise ValueError(
            f"`grid` fields must be 1-D of equal length, got weight {w.shape}, rrf_k {kk.shape}"
        )
    if w.size == 0:
        raise ValueError("`grid` is empty (no candidate); build it with rule_grid(...)")
    _checks.check_in_range("weight", w, 0.0, 1.0)
    _checks.check_in_range("rrf_k", kk, 0.0, np.inf, lo_open=True)
    return RuleHParams(weight=w, rrf_k=kk)

"""Full-ranking top-K recommendation lists and ranking metrics from one top-K pass.

Item sets (a user's training history to exclude, a user's held-out test items) are
*padded item sets*: int32 arrays ``[n_users, max_len]`` whose entries are item indices
in ``[0, n_items)`` and whose padding is ``-1``. Build them with
:func:`complemjax.data.pad_item_sets` (from interaction pairs) or
:func:`complemjax.data.pad_item_lists` (from one array per user).

Top-K lists are computed by scoring users in chunks (``lax.map`` over padded user
chunks inside one ``jax.jit``), so memory is bounded by ``user_chunk × n_items`` (or
``user_chunk × item_chunk`` with item chunking), never by ``n_users × n_items``.

Conventions pinned by the tests:

* Ties in score break to the lower item index (``lax.top_k`` is documented to put the
  lower index first among equal values; ``-0.0`` is normalised to ``+0.0`` first, and
  the item-chunk merge sorts explicitly by ``(score desc, item asc)``).
* Excluded (history) items get score ``-inf`` and never appear in a list. Any item
  whose score is ``-inf`` is "not a candidate": if a user has fewer than ``k``
  candidates, the trailing slots hold item ``-1`` with score ``-inf``.
* ``k`` larger than the number of items raises ``ValueError``. Embeddings must be
  finite and small enough that no dot product can overflow (checked up front, so no
  score is NaN); :func:`topk_from_score_fn` counts NaN scores on device and raises.
* Selection is exact: for the same scores, every user/item chunking returns the same
  lists (the item-chunk merge is an exact top-k of the union of partial top-ks). The
  scores of :func:`topk_from_embeddings` are matrix products whose last-bit rounding
  XLA may vary with the chunk shape (seen on CPU for tiny shapes); with generic float
  embeddings two items whose scores agree to within ~1 ulp can then swap. With exactly
  representable products (e.g. small-integer or dyadic embeddings) lists are identical.

Metrics (binary relevance; users with an empty test set are skipped and counted), for
user ``u`` with held-out set ``T_u`` and top-K list ``L_u``::

    hits@K      = |L_u[:K] ∩ T_u|
    Recall@K    = hits / |T_u|
    Precision@K = hits / K
    Hit@K       = 1[hits > 0]
    MRR@K       = 1 / rank of the first hit in L_u[:K]   (0 if none)
    NDCG@K      = DCG / IDCG,  DCG = Σ_{r≤K} rel_r / log2(r + 1),
                  IDCG = Σ_{r ≤ min(K, |T_u|)} 1 / log2(r + 1)

``|T_u|`` counts distinct non-negative entries of the user's test row.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from complemjax import _native
from complemjax._checks import check_matrix, check_no_repeats, check_positive_int
from complemjax._native import topk as native_topk

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "METRIC_NAMES",
    "RankingMetrics",
    "TopK",
    "evaluate_topk",
    "item_coverage",
    "per_user_metrics",
    "relevance_matrix",
    "topk_from_embeddings",
    "topk_from_score_fn",
]

METRIC_NAMES: tuple[str, ...] = ("recall", "ndcg", "precision", "hit", "mrr")

# Default budget for one chunk of scores (user_chunk * item_span entries): 2**21
# (8 MiB in float32, cache-friendly) on CPU, 2**24 (64 MiB) on accelerators.
_CHUNK_BUDGET_CPU = 2**21
_CHUNK_BUDGET_ACCEL = 2**24


class TopK(NamedTuple):
    """Top-K lists, best first.

    Attributes:
      items: ``[n_users, k]`` int32 item indices; ``-1`` where the user had fewer than
        ``k`` candidate (non-excluded, finite-scored) items.
      scores: ``[n_users, k]`` float scores of those items (``-inf`` for ``-1`` slots).
    """

    items: jax.Array  # [U, k] int32
    scores: jax.Array  # [U, k] float


# ---------------------------------------------------------------------------
# Padded item sets
# ---------------------------------------------------------------------------


def check_item_sets(name: str, x: ArrayLike, n_rows: int, n_items: int | None) -> jax.Array:
    """Validate a padded item-set array ``[n_rows, L]`` with entries in ``[-1, n_items)``."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        x = np.asarray(x)
        dtype = x.dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"`{name}` must be an integer array (padded with -1), got dtype {dtype}")
    if len(x.shape) != 2:
        raise ValueError(f"`{name}` must have shape [n_users, max_len], got shape {x.shape}")
    if x.shape[0] != n_rows:
        raise ValueError(f"`{name}` must have {n_rows} rows (one per user), got shape {x.shape}")
    if not isinstance(x, jax.core.Tracer) and x.size:
        a = np.asarray(x)
        lo, hi = int(a.min()), int(a.max())
        if lo < -1:
            raise ValueError(f"`{name}` entries must be item indices or -1 padding, got {lo}")
        if n_items is not None and hi >= n_items:
            raise ValueError(f"`{name}` entries must be < n_items={n_items}, got {hi}")
    return jnp.asarray(x, dtype=jnp.int32)


# ---------------------------------------------------------------------------
# Chunked top-K core
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _TopKConfig:
    """Static configuration of a chunked top-K pass (fixes shapes and control flow)."""

    k: int
    n_users: int
    n_items: int
    user_chunk: int
    item_chunk: int  # == n_items when not item-chunked
    similarity: str = "dot"
    check_nan: bool = False
    n_split: int = 1  # independent row slices per user chunk (CPU thread parallelism)


def _auto_n_split(user_chunk: int) -> int:
    """Row slices per user chunk: the CPU thread count (at most 4), 1 on accelerators.

    1 as well when the native top-k kernel runs: it splits the rows over threads itself.
    """
    if jax.default_backend() != "cpu" or _native.available():
        return 1
    return max(1, min(os.cpu_count() or 1, 4, user_chunk))


def _auto_user_chunk(n_users: int, item_span: int) -> int:
    cpu = jax.default_backend() == "cpu"
    budget = _CHUNK_BUDGET_CPU if cpu else _CHUNK_BUDGET_ACCEL
    return max(1, min(n_users, budget // max(item_span, 1)))


def canonical_zero(x: jax.Array) -> jax.Array:
    """Map -0.0 to +0.0 (``lax.top_k`` orders them as different values)."""
    return jnp.where(x == 0, jnp.zeros((), x.dtype), x)


def _block_size(n: int, k: int) -> int:
    """Block length for :func:`_exact_topk`; 0 means plain ``lax.top_k`` is used.

    ``b ≈ sqrt(n / k)`` balances the two ``top_k`` calls (over ``n / b`` block maxima,
    then over ``k · b`` candidates); a divisor of ``n`` near it is preferred, so that
    the row splits into whole blocks without a separate tail.
    """
    b0 = max(8, round(math.sqrt(n / k)))
    if n < 4 * k * b0:
        return 0
    for delta in range(0, max(1, b0 // 3)):
        for b in (b0 - delta, b0 + delta):
            if b >= 8 and n % b == 0:
                return b
    return b0


def _exact_topk(scores, k):
    """Exact top-k along axis 1 with ties to the lower index.

    On a CPU with the native kernels (:mod:`complemjax._native`), float32 scores go to
    the native row-wise top-k (the same selection, about 7× faster than the pure-JAX
    selection below at 20,000 items); elsewhere, and as its definition, the pure-JAX
    selection :func:`_exact_topk_xla`.
    """
    if scores.dtype != jnp.float32 or not _native.available():
        return _exact_topk_xla(scores, k)
    return lax.platform_dependent(
        scores, cpu=lambda x: native_topk.topk_rows(x, k), default=lambda x: _exact_topk_xla(x, k)
    )


def _exact_topk_xla(scores, k):
    """Exact top-k along axis 1 with ties to the lower index, in XLA operations.

    For long rows, a two-stage selection: the row is cut into contiguous blocks of
    ``b`` items, the ``k`` blocks with the largest maxima (ties: lower block) are kept,
    and the top-k of their ``k·b`` items (in ascending item order) is taken. This is
    exact: an item ranked in the top k (score desc, index asc) cannot lie outside the
    top-k blocks, since each of those blocks holds an item ranked above it. It replaces
    one ``top_k`` over ``n`` (XLA's CPU ``top_k`` is a per-row partial sort, a few ns
    per element) by a fused max-reduction plus two ``top_k`` calls over about
    ``2·sqrt(n·k)`` elements.

    Args:
      scores: ``[c, n]`` float.
      k: static, ``<= n``.

    Returns:
      (values ``[c, k]``, indices ``[c, k]`` int32). NaN scores give unspecified
      results (XLA's vectorised max does not reliably propagate NaN); callers check.
    """
    c, n = scores.shape
    b = _block_size(n, k)
    if b == 0:
        vals, idx = lax.top_k(canonical_zero(scores), k)
        return vals, idx.astype(jnp.int32)
    n_main = (n // b) * b
    if n_main == n:
        blocked = scores.reshape(c, n // b, b)
        bmax = jnp.max(blocked, axis=2)
    else:
        bmax = jnp.max(scores[:, :n_main].reshape(c, n_main // b, b), axis=2)
        bmax = jnp.concatenate([bmax, jnp.max(scores[:, n_main:], axis=1, keepdims=True)], 1)
    _, blocks = lax.top_k(canonical_zero(bmax), k)
    blocks = jnp.sort(blocks, axis=1)  # ascending item order among the candidates
    offs = jnp.arange(b, dtype=blocks.dtype)
    if n_main == n:
        vals = jnp.take_along_axis(blocked, blocks[:, :, None], axis=1).reshape(c, k * b)
        vals, pos = lax.top_k(canonical_zero(vals), k)
        items = jnp.take_along_axis(blocks, pos // b, axis=1) * b + pos % b
        return vals, items.astype(jnp.int32)
    cand = (blocks[:, :, None] * b + offs).reshape(c, k * b)
    inside = cand < n
    vals = jnp.take_along_axis(scores, jnp.minimum(cand, n - 1), axis=1)
    vals = jnp.where(inside, canonical_zero(vals), -jnp.inf)
    vals, pos = lax.top_k(vals, k)
    return vals, jnp.take_along_axis(cand, pos, axis=1).astype(jnp.int32)


def _split_rows(fn, n_split, *arrays):
    """``fn`` on ``n_split`` contiguous row slices of ``arrays``, results concatenated.

    The slices share no data, so XLA's CPU runtime runs their selections (``top_k`` is
    a sequential per-row custom call) concurrently on its thread pool; scalar results
    (NaN counts) are summed.
    """
    c = arrays[0].shape[0]
    if n_split <= 1 or c < 2:
        return fn(*arrays)
    bounds = sorted({c * j // n_split for j in range(n_split + 1)})
    outs = [fn(*(a[lo:hi] for a in arrays)) for lo, hi in itertools.pairwise(bounds)]
    return jax.tree.map(
        lambda *x: jnp.concatenate(x, axis=0) if x[0].ndim else sum(x[1:], x[0]), *outs
    )


def _mask_and_topk(scores, excl, offset, k, count_nan=False):
    """Mask excluded items of one chunk, then top-k with lower-index tie-break.

    Args:
      scores: ``[c, n]`` scores of items ``offset .. offset + n - 1``.
      excl: ``[c, L]`` global item indices to exclude (``-1`` = padding).
      offset: global index of the chunk's first item (int or traced scalar).
      k: static number of items to keep (``<= n``).
      count_nan: count NaN scores (one extra pass over the chunk); else the count is 0.

    Returns:
      (values ``[c, k]``, global item indices ``[c, k]`` int32, NaN count scalar).
    """
    n = scores.shape[1]
    if count_nan:
        n_nan = jnp.sum(jnp.isnan(scores), dtype=jnp.int32)
    else:
        n_nan = jnp.zeros((), jnp.int32)
    local = excl - offset
    valid = (excl >= 0) & (local >= 0) & (local < n)
    local = jnp.where(valid, local, n)  # out of bounds -> dropped
    rows = jnp.arange(scores.shape[0])[:, None]
    scores = scores.at[rows, local].set(-jnp.inf, mode="drop")  # in place
    vals, idx = _exact_topk(scores, k)
    return vals, (idx + offset).astype(jnp.int32), n_nan


def _merge_topk(vals_a, items_a, vals_b, items_b, k):
    """Exact merge of two top-k candidate sets: sort by (score desc, item asc), keep k."""
    vals = jnp.concatenate([vals_a, vals_b], axis=1)
    items = jnp.concatenate([items_a, items_b], axis=1)
    neg, items = lax.sort((-vals, items), dimension=1, num_keys=2)
    return -neg[:, :k], items[:, :k]


def _finalise(vals, items):
    items = jnp.where(vals == -jnp.inf, -1, items).astype(jnp.int32)
    return vals, items


def _pad_rows(x, n_rows, fill):
    extra = n_rows - x.shape[0]
    if extra == 0:
        return x
    pad = jnp.full((extra, *x.shape[1:]), fill, dtype=x.dtype)
    return jnp.concatenate([x, pad], axis=0)


def _check_candidates(candidates, n_items: int, k: int) -> np.ndarray:
    """Validate a candidate set; return its item indices, ascending, as int32 ``[m]``.

    ``candidates`` is a boolean mask ``[n_items]`` or a 1-D array of distinct item
    indices in ``[0, n_items)``. It must be concrete (its size fixes the shapes), hold at
    least one item, and at least ``k`` items.
    """
    if isinstance(candidates, jax.core.Tracer):
        raise ValueError(
            "`candidates` must be a concrete array (its size fixes the output shapes), "
            "got a traced value; build it outside jax.jit"
        )
    c = np.asarray(candidates)
    if c.ndim != 1:
        raise ValueError(f"`candidates` must be 1-D ([n_items] mask or indices), got {c.shape}")
    if c.dtype == np.bool_:
        if c.shape[0] != n_items:
            raise ValueError(
                f"`candidates` as a boolean mask must have length n_items={n_items}, "
                f"got {c.shape[0]}"
            )
        idx = np.flatnonzero(c)
    elif np.issubdtype(c.dtype, np.integer):
        if c.size and (c.min() < 0 or c.max() >= n_items):
            raise ValueError(
                f"`candidates` indices must lie in [0, {n_items}), got range [{c.min()}, {c.max()}]"
            )
        idx = np.unique(c)
        if idx.size != c.size:
            raise ValueError(
                f"`candidates` indices must be distinct, got {c.size - idx.size} duplicates"
            )
    else:
        raise ValueError(f"`candidates` must be a boolean mask or int indices, got {c.dtype}")
    if idx.size == 0:
        raise ValueError("`candidates` selects no item")
    if k > idx.size:
        raise ValueError(f"`k`={k} is larger than the number of candidate items ({idx.size})")
    return idx.astype(np.int32)


@jax.jit
def _restrict_to_candidates(item_emb, exclude, cand_idx):
    """Sub-catalogue ``item_emb[cand_idx]`` and ``exclude`` re-indexed into it (else -1)."""
    n_items = item_emb.shape[0]
    local = jnp.full((n_items + 1,), -1, jnp.int32)
    local = local.at[cand_idx].set(jnp.arange(cand_idx.shape[0], dtype=jnp.int32))
    ex = jnp.where(exclude >= 0, local[jnp.where(exclude >= 0, exclude, n_items)], -1)
    return item_emb[cand_idx], ex


@jax.jit
def _to_global_items(items, cand_idx):
    return jnp.where(items >= 0, cand_idx[jnp.maximum(items, 0)], -1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _topk_embeddings_core(user_emb, item_emb, exclude, cfg: _TopKConfig):
    n_users, n_items, k = cfg.n_users, cfg.n_items, cfg.k
    c, ic = cfg.user_chunk, cfg.item_chunk
    if cfg.similarity == "cosine":
        tiny = jnp.finfo(user_emb.dtype).tiny
        user_emb = user_emb / jnp.maximum(jnp.linalg.norm(user_emb, axis=1, keepdims=True), tiny)
        item_emb = item_emb / jnp.maximum(jnp.linalg.norm(item_emb, axis=1, keepdims=True), tiny)
    n_uc = -(-n_users // c)
    u = _pad_rows(user_emb, n_uc * c, 0).reshape(n_uc, c, -1)
    ex = _pad_rows(exclude, n_uc * c, -1).reshape(n_uc, c, -1)

    if ic >= n_items:

        def one_chunk(args):
            return _split_rows(
                lambda uu, ee: _mask_and_topk(uu @ item_emb.T, ee, 0, k), cfg.n_split, *args
            )

    else:
        n_ic = -(-n_items // ic)
        items_p = _pad_rows(item_emb, n_ic * ic, 0).reshape(n_ic, ic, -1)
        offsets = jnp.arange(n_ic, dtype=jnp.int32) * ic
        pad_mask = jnp.arange(n_ic * ic).reshape(n_ic, ic) >= n_items  # [n_ic, ic]
        kk = min(k, ic)

        def one_chunk(args):
            uc, exc = args

            def step(carry, xs):
                best_v, best_i, nan_count = carry
                emb, off, pmask = xs
                s = uc @ emb.T
                s = jnp.where(pmask[None, :], -jnp.inf, s)
                v, i, nn = _mask_and_topk(s, exc, off, kk)
                best_v, best_i = _merge_topk(best_v, best_i, v, i, k)
                return (best_v, best_i, nan_count + nn), None

            init = (
                jnp.full((c, k), -jnp.inf, dtype=uc.dtype),
                jnp.full((c, k), jnp.iinfo(jnp.int32).max, dtype=jnp.int32),
                jnp.zeros((), jnp.int32),
            )
            (v, i, nn), _ = lax.scan(step, init, (items_p, offsets, pad_mask))
            return v, i, nn

    vals, items, n_nan = lax.map(one_chunk, (u, ex))
    vals = vals.reshape(n_uc * c, k)[:n_users]
    items = items.reshape(n_uc * c, k)[:n_users]
    vals, items = _finalise(vals, items)
    return vals, items, jnp.sum(n_nan)


def _check_no_overflow(user_emb, item_emb) -> None:
    """Raise unless every partial dot product is provably finite (so no NaN score).

    ``|Σ_{j∈S} u_j v_j| <= d · max|u| · max|v|`` (also bounds squared norms for cosine).
    """
    if isinstance(user_emb, jax.core.Tracer) or isinstance(item_emb, jax.core.Tracer):
        return
    d = user_emb.shape[1]
    mu = float(jnp.max(jnp.abs(user_emb)))
    mv = float(jnp.max(jnp.abs(item_emb)))
    limit = float(jnp.finfo(user_emb.dtype).max) / 2
    if d * max(mu * mv, mu * mu, mv * mv) >= limit:
        raise ValueError(
            f"`user_emb` / `item_emb` are too large: scores may overflow {user_emb.dtype} "
            f"(d={d}, max|user_emb|={mu:.3g}, max|item_emb|={mv:.3g}); rescale them"
        )


def topk_from_embeddings(
    user_emb: ArrayLike,
    item_emb: ArrayLike,
    *,
    k: int,
    exclude: ArrayLike | None = None,
    similarity: str = "dot",
    user_chunk: int | None = None,
    item_chunk: int | None = None,
    candidates: ArrayLike | None = None,
) -> TopK:
    """Top-K items per user by embedding similarity, excluding history, chunked.

    ``score(u, i) = <e_u, e_i>`` (``similarity="dot"``) or
    ``<e_u, e_i> / (‖e_u‖ ‖e_i‖)`` (``"cosine"``; a zero vector has similarity 0).
    Items in ``exclude[u]`` get score ``-inf``; ties break to the lower item index.

    With ``candidates``, only those items are ranked (e.g. cold items): the result is
    the ranking of the sub-catalogue ``item_emb[candidates]`` (history re-indexed into
    it, non-candidate history ignored), reported in global item indices.

    Users are processed in chunks of ``user_chunk`` by ``lax.map`` inside one jit; with
    ``item_chunk`` the catalogue is scanned in chunks, a partial top-k is taken per item
    chunk and merged exactly (same result as one shot). Peak memory is
    ``O(user_chunk × item_chunk)`` plus the inputs and the ``[n_users, k]`` output. On
    CPU each user chunk is cut into one row slice per thread (at most 4) whose
    matmul and selection XLA runs concurrently; the selection of each row is a block
    max-reduction followed by two small ``top_k`` calls (see :func:`_exact_topk`).

    Args:
      user_emb: ``[n_users, d]`` float user embeddings (finite).
      item_emb: ``[n_items, d]`` float item embeddings (finite).
      k: list length, ``1 <= k <= n_items``.
      exclude: optional ``[n_users, L]`` int padded item sets (``-1`` padding), e.g.
        the training history; see :func:`complemjax.data.pad_item_sets`.
      similarity: ``"dot"`` or ``"cosine"``.
      user_chunk: users per chunk; default keeps a chunk of scores at most 2**21
        entries (8 MiB in float32) on CPU and 2**24 on GPU/TPU.
      item_chunk: items per chunk; default ``None`` scores the whole catalogue at once.
      candidates: optional item subset to rank: a boolean mask ``[n_items]`` or a 1-D
        array of distinct item indices (concrete, not traced); ``k`` must not exceed its
        size.

    Returns:
      :class:`TopK` with ``items [n_users, k]`` (``-1`` where a user has fewer than
      ``k`` candidates) and ``scores [n_users, k]``.

    Example:
      >>> top = topk_from_embeddings(u, v, k=10, exclude=pad_item_sets(us, its, n_users))
      ... # doctest: +SKIP
      >>> cold = topk_from_embeddings(u, v, k=10, candidates=is_cold)  # doctest: +SKIP
    """
    user_emb = check_matrix("user_emb", user_emb)
    item_emb = check_matrix("item_emb", item_emb)
    if user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError(
            "`user_emb` and `item_emb` must have the same embedding dimension: got "
            f"user_emb.shape={tuple(user_emb.shape)} and item_emb.shape={tuple(item_emb.shape)}"
        )
    if similarity not in ("dot", "cosine"):
        raise ValueError(f"`similarity` must be 'dot' or 'cosine', got {similarity!r}")
    n_users, n_items = user_emb.shape[0], item_emb.shape[0]
    k = check_positive_int("k", k, maximum=n_items)
    dtype = jnp.result_type(user_emb.dtype, item_emb.dtype)
    user_emb, item_emb = user_emb.astype(dtype), item_emb.astype(dtype)
    _check_no_overflow(user_emb, item_emb)
    if exclude is None:
        exclude = jnp.full((n_users, 1), -1, dtype=jnp.int32)
    exclude = check_item_sets("exclude", exclude, n_users, n_items)
    cand_idx = None
    if candidates is not None:
        cand_idx = jnp.asarray(_check_candidates(candidates, n_items, k))
        item_emb, exclude = _restrict_to_candidates(item_emb, exclude, cand_idx)
        n_items = int(cand_idx.shape[0])
    if item_chunk is None:
        ic = n_items
    else:
        ic = min(check_positive_int("item_chunk", item_chunk), n_items)
    if user_chunk is None:
        uc = _auto_user_chunk(n_users, ic)
    else:
        uc = min(check_positive_int("user_chunk", user_chunk), n_users)
    cfg = _TopKConfig(
        k=k,
        n_users=n_users,
        n_items=n_items,
        user_chunk=uc,
        item_chunk=ic,
        similarity=similarity,
        n_split=_auto_n_split(uc),
    )
    vals, items, _ = _topk_embeddings_core(user_emb, item_emb, exclude, cfg)
    if cand_idx is not None:
        items = _to_global_items(items, cand_idx)
    return TopK(items=items, scores=vals)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _topk_score_fn_core(score_fn, exclude, cand_mask, cfg: _TopKConfig):
    n_users, k, c = cfg.n_users, cfg.k, cfg.user_chunk
    n_uc = -(-n_users // c)
    users = jnp.minimum(jnp.arange(n_uc * c, dtype=jnp.int32), n_users - 1).reshape(n_uc, c)
    ex = _pad_rows(exclude, n_uc * c, -1).reshape(n_uc, c, -1)

    def one_slice(uidx, exc):
        s = score_fn(uidx)
        if cand_mask is not None:
            s = jnp.where(cand_mask[None, :], s, -jnp.inf)
        return _mask_and_topk(s, exc, 0, k, cfg.check_nan)

    def one_chunk(args):
        return _split_rows(one_slice, cfg.n_split, *args)

    vals, items, n_nan = lax.map(one_chunk, (users, ex))
    vals = vals.reshape(n_uc * c, k)[:n_users]
    items = items.reshape(n_uc * c, k)[:n_users]
    vals, items = _finalise(vals, items)
    return vals, items, jnp.sum(n_nan)


def topk_from_score_fn(
    score_fn: Callable[[jax.Array], jax.Array],
    *,
    n_users: int,
    n_items: int,
    k: int,
    exclude: ArrayLike | None = None,
    user_chunk: int | None = None,
    check_nan: bool = True,
    candidates: ArrayLike | None = None,
) -> TopK:
    """Top-K items per user from an arbitrary jittable scoring function, chunked.

    ``score_fn(user_idx)`` maps an int32 vector ``[c]`` of user indices to scores
    ``[c, n_items]``. The users are split into ``ceil(n_users / user_chunk)`` chunks
    (the last one padded with repeats of the last user, whose rows are dropped) and the
    chunks run under ``lax.map`` inside one ``jax.jit``: one compilation, no per-chunk
    Python dispatch, memory ``O(user_chunk × n_items)``.

    ``score_fn`` is passed to ``jax.jit`` as a pytree argument. Arrays it closes over
    become compile-time constants; for large parameters, pass
    ``jax.tree_util.Partial(fn, params)`` (with ``fn(params, user_idx)``) so the
    parameters are traced arguments and repeated calls with new parameters reuse the
    compiled program (compilation is cached on the function object, so define ``fn``
    once, not as a fresh lambda per call).

    Scores of ``-inf`` mark non-candidates; ties break to the lower item index;
    excluded items get ``-inf``, and so do items outside ``candidates`` when given
    (their scores, NaN or not, are ignored). NaN scores raise ``ValueError`` after the
    pass (the check counts NaNs on device, no host callback). On CPU each user chunk
    is cut into one row slice per thread (at most 4), so ``score_fn`` must accept any
    chunk length ``<= user_chunk``.

    Args:
      score_fn: jittable ``int32 [c] -> float [c, n_items]``.
      n_users: number of users (rows of the result).
      n_items: catalogue size.
      k: list length, ``1 <= k <= n_items``.
      exclude: optional ``[n_users, L]`` int padded item sets to exclude.
      user_chunk: users per chunk; default keeps a chunk at most 2**21 scores on CPU,
        2**24 on GPU/TPU.
      check_nan: count NaN scores on device and raise ``ValueError`` if any (costs one
        extra read of each chunk of scores); ``False`` skips the check, and NaN scores
        then give unspecified lists.
      candidates: optional item subset to rank: a boolean mask ``[n_items]`` or a 1-D
        array of distinct item indices (concrete); ``k`` must not exceed its size.

    Returns:
      :class:`TopK` with ``items [n_users, k]`` int32 and ``scores [n_users, k]``.

    Example:
      >>> fn = jax.tree_util.Partial(lambda p, u: p["U"][u] @ p["V"].T, params)
      >>> top = topk_from_score_fn(fn, n_users=U, n_items=I, k=20)  # doctest: +SKIP
    """
    if not callable(score_fn):
        raise ValueError(f"`score_fn` must be callable, got {type(score_fn).__name__}")
    n_users = check_positive_int("n_users", n_users)
    n_items = check_positive_int("n_items", n_items)
    k = check_positive_int("k", k, maximum=n_items)
    uc = (
        _auto_user_chunk(n_users, n_items)
        if user_chunk is None
        else min(check_positive_int("user_chunk", user_chunk), n_users)
    )
    if exclude is None:
        exclude = jnp.full((n_users, 1), -1, dtype=jnp.int32)
    exclude = check_item_sets("exclude", exclude, n_users, n_items)
    cand_mask = None
    if candidates is not None:
        idx = _check_candidates(candidates, n_items, k)
        cand_mask = jnp.zeros(n_items, dtype=bool).at[idx].set(True)
    if not isinstance(score_fn, jax.tree_util.Partial):
        score_fn = jax.tree_util.Partial(score_fn)
    n_split = _auto_n_split(uc)
    for size in sorted({uc, uc // n_split, -(-uc // n_split)}):
        out = jax.eval_shape(score_fn, jax.ShapeDtypeStruct((size,), jnp.int32))
        if (
            not hasattr(out, "shape")
            or tuple(out.shape) != (size, n_items)
            or not jnp.issubdtype(out.dtype, jnp.floating)
        ):
            raise ValueError(
                f"`score_fn` must map int32 [{size}] to float [{size}, {n_items}], got "
                f"{getattr(out, 'shape', out)} {getattr(out, 'dtype', '')}"
            )
    cfg = _TopKConfig(
        k=k,
        n_users=n_users,
        n_items=n_items,
        user_chunk=uc,
        item_chunk=n_items,
        check_nan=bool(check_nan),
        n_split=n_split,
    )
    vals, items, n_nan = _topk_score_fn_core(score_fn, exclude, cand_mask, cfg)
    if not isinstance(n_nan, jax.core.Tracer) and int(n_nan) > 0:
        raise ValueError(f"`score_fn` returned {int(n_nan)} NaN scores")
    return TopK(items=items, scores=vals)


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def _n_distinct(sets):
    """Number of distinct non-negative entries per row of a padded ``[U, T]`` array."""
    big = jnp.iinfo(jnp.int32).max
    s = jnp.sort(jnp.where(sets < 0, big, sets), axis=1)
    first = jnp.concatenate([jnp.ones_like(s[:, :1], dtype=bool), s[:, 1:] != s[:, :-1]], axis=1)
    return jnp.sum((s != big) & first, axis=1).astype(jnp.int32)


@jax.jit
def relevance_matrix(topk_items: ArrayLike, test: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Binary relevance of each list position and the test-set sizes.

    ``rel[u, r] = 1[L_u[r] ∈ T_u]`` (``-1`` list slots are never relevant);
    ``n_test[u] = |T_u|`` (distinct non-negative entries).

    The comparison ``[U, K, T]`` is fused into the reduction by XLA (not materialised);
    compute ``O(U K T)``, memory ``O(U (K + T))``.

    Args:
      topk_items: ``[U, K]`` int item lists (``-1`` allowed).
      test: ``[U, T]`` int padded test sets.

    Returns:
      (``rel [U, K]`` bool, ``n_test [U]`` int32).
    """
    items = topk_items.astype(jnp.int32)
    test = test.astype(jnp.int32)
    rel = jnp.any(items[:, :, None] == test[:, None, :], axis=2) & (items >= 0)
    return rel, _n_distinct(test)


def metrics_from_relevance(
    rel: ArrayLike, n_test: ArrayLike, ks: tuple[int, ...]
) -> dict[str, jax.Array]:
    """Per-user metrics from a relevance matrix: the one implementation of the definitions.

    Every ranking metric in the package (here, in :mod:`complemjax.complementarity` and in
    :mod:`complemjax.fusion.rules`) is computed by this function, with the definitions of
    the module docstring (Recall = hits/|T_u|, Precision = hits/K, Hit, MRR, NDCG with
    IDCG over min(K, |T_u|) positions).

    Args:
      rel: ``[U, K]`` bool, ``rel[u, r]`` = the item at rank ``r + 1`` is in ``T_u``.
      n_test: ``[U]`` int ``|T_u|``.
      ks: cut-offs, each ``<= K`` (static).

    Returns:
      dict from each name in ``METRIC_NAMES`` plus ``"hits"`` to ``[len(ks), U]`` arrays
      (NaN for users with ``|T_u| = 0``).
    """
    kmax = rel.shape[1]
    dtype = jnp.result_type(float)
    relf = rel.astype(dtype)
    ranks = jnp.arange(1, kmax + 1, dtype=dtype)
    disc = 1.0 / jnp.log2(ranks + 1.0)
    cum_hits = jnp.cumsum(relf, axis=1)
    cum_dcg = jnp.cumsum(relf * disc, axis=1)
    cum_idcg = jnp.cumsum(disc)
    any_hit = jnp.any(rel, axis=1)
    first = jnp.argmax(rel, axis=1)  # 0-based rank of first hit (0 if none)
    evaluated = n_test > 0
    nt = jnp.maximum(n_test, 1).astype(dtype)
    out = {m: [] for m in (*METRIC_NAMES, "hits")}
    for k in ks:
        h = cum_hits[:, k - 1]
        ideal = jnp.minimum(n_test, k)
        idcg = cum_idcg[jnp.maximum(ideal, 1) - 1]
        vals = {
            "hits": h,
            "recall": h / nt,
            "precision": h / k,
            "hit": (h > 0).astype(dtype),
            "mrr": jnp.where(any_hit & (first < k), 1.0 / (first + 1.0), 0.0).astype(dtype),
            "ndcg": cum_dcg[:, k - 1] / idcg,
        }
        for m, v in vals.items():
            out[m].append(jnp.where(evaluated, v, jnp.nan))
    return {m: jnp.stack(v) for m, v in out.items()}


_EVAL_CHUNK = 4096  # users per chunk in metric evaluation (bounds the [c, K] temporaries)


@functools.partial(jax.jit, static_argnames=("ks",))
def _evaluate_core(topk_items, test, ks):
    """Per-user metrics over user chunks (``lax.map``): temporaries ``O(chunk · K)``."""
    n_users = topk_items.shape[0]
    c = min(n_users, _EVAL_CHUNK)
    n_chunks = -(-n_users // c)
    items = _pad_rows(topk_items.astype(jnp.int32), n_chunks * c, -1)
    tst = _pad_rows(test.astype(jnp.int32), n_chunks * c, -1)

    def one(args):
        it, ts = args
        rel, n_test = relevance_matrix(it, ts)
        return metrics_from_relevance(rel, n_test, ks), n_test

    per_user, n_test = lax.map(one, (items.reshape(n_chunks, c, -1), tst.reshape(n_chunks, c, -1)))
    per_user = {
        m: jnp.moveaxis(v, 0, 1).reshape(len(ks), n_chunks * c)[:, :n_users]
        for m, v in per_user.items()
    }
    return per_user, n_test.reshape(-1)[:n_users]


def per_user_metrics(
    topk_items: ArrayLike, test: ArrayLike, *, ks: tuple[int, ...]
) -> dict[str, jax.Array]:
    """Jittable, vmappable per-user metrics (no validation; see :func:`evaluate_topk`).

    Args:
      topk_items: ``[U, Kmax]`` int lists (``-1`` = empty slot).
      test: ``[U, T]`` int padded test sets.
      ks: static tuple of cut-offs ``<= Kmax``.

    Returns:
      dict ``{"recall", "ndcg", "precision", "hit", "mrr", "hits"}`` of ``[n_ks, U]``
      arrays (NaN for users with an empty test set) plus ``"n_test"`` ``[U]``.

    Example:
      >>> jax.vmap(lambda L: per_user_metrics(L, test, ks=(10,))["recall"])(lists)
      ... # doctest: +SKIP
    """
    per_user, n_test = _evaluate_core(topk_items, test, tuple(ks))
    return {**per_user, "n_test": n_test}


class RankingMetrics(NamedTuple):
    """Ranking metrics of one top-K pass, per user and averaged, at several K.

    Per-user arrays are ``[n_ks, n_users]`` (row ``j`` is K = ``ks[j]``), NaN for
    users whose test set is empty (skipped). Means average over evaluated users only.

    Attributes:
      ks: the cut-offs, in the order given.
      recall, ndcg, precision, hit, mrr: ``[n_ks, U]`` per-user metrics.
      hits: ``[n_ks, U]`` number of hits ``|L_u[:K] ∩ T_u|`` (NaN if skipped).
      n_test: ``[U]`` int32 ``|T_u|``.
      evaluated: ``[U]`` bool, ``|T_u| > 0``.
      n_evaluated: number of evaluated users.
      n_skipped: number of users skipped for an empty test set.
    """

    ks: tuple[int, ...]
    recall: jax.Array
    ndcg: jax.Array
    precision: jax.Array
    hit: jax.Array
    mrr: jax.Array
    hits: jax.Array
    n_test: jax.Array
    evaluated: jax.Array
    n_evaluated: int
    n_skipped: int

    def mean(self, metric: str) -> jax.Array:
        """Mean of ``metric`` over evaluated users, ``[n_ks]``."""
        if metric not in (*METRIC_NAMES, "hits"):
            raise ValueError(f"`metric` must be one of {METRIC_NAMES}, got {metric!r}")
        return jnp.nanmean(getattr(self, metric), axis=1)

    def summary(self) -> dict[str, float]:
        """``{"recall@10": value, ...}`` for every metric and K."""
        out = {}
        for m in METRIC_NAMES:
            means = np.asarray(self.mean(m))
            for j, k in enumerate(self.ks):
                out[f"{m}@{k}"] = float(means[j])
        return out

    def to_frame(self) -> pd.DataFrame:
        """Tidy pandas DataFrame with columns ``k, metric, value, n_users``."""
        import pandas as pd

        rows = []
        for m in METRIC_NAMES:
            means = np.asarray(self.mean(m))
            for j, k in enumerate(self.ks):
                rows.append(
                    {"k": k, "metric": m, "value": float(means[j]), "n_users": self.n_evaluated}
                )
        return pd.DataFrame(rows, columns=["k", "metric", "value", "n_users"])


def check_topk_items(name: str, topk_items: ArrayLike) -> jax.Array:
    if isinstance(topk_items, TopK):
        topk_items = topk_items.items
    dtype = getattr(topk_items, "dtype", None)
    if dtype is None:
        topk_items = np.asarray(topk_items)
        dtype = topk_items.dtype
    if not jnp.issubdtype(dtype, jnp.integer) or len(topk_items.shape) != 2:
        raise ValueError(
            f"`{name}` must be an integer array [n_users, K], got dtype {dtype} "
            f"shape {tuple(topk_items.shape)}"
        )
    if not isinstance(topk_items, jax.core.Tracer) and topk_items.size:
        lo = int(np.asarray(topk_items).min())
        if lo < -1:
            raise ValueError(f"`{name}` entries must be item indices or -1, got {lo}")
        check_no_repeats(name, topk_items)
    return jnp.asarray(topk_items, dtype=jnp.int32)


def check_ks(ks: Sequence[int] | int, kmax: int) -> tuple[int, ...]:
    if isinstance(ks, (int, np.integer)):
        ks = (int(ks),)
    ks = tuple(check_positive_int("ks", k) for k in ks)
    if not ks:
        raise ValueError("`ks` must contain at least one cut-off")
    if max(ks) > kmax:
        raise ValueError(f"`ks` must be <= the list length {kmax}, got max(ks)={max(ks)}")
    return ks


def evaluate_topk(
    topk_items: ArrayLike, test: ArrayLike, *, ks: Sequence[int] | int = (10, 20)
) -> RankingMetrics:
    """Recall, NDCG, Precision, Hit and MRR at every K in ``ks`` from one top-K pass.

    With ``Kmax = topk_items.shape[1] >= max(ks)``, the metric at K uses the first K
    entries of each list (see the module docstring for the formulas). Users with an
    empty test set are skipped (NaN per-user values) and counted in ``n_skipped``.

    Args:
      topk_items: ``[U, Kmax]`` int item lists, best first (``-1`` = empty slot), or a
        :class:`TopK`.
      test: ``[U, T]`` int padded held-out sets (``-1`` padding).
      ks: cut-offs, each ``<= Kmax``.

    Returns:
      :class:`RankingMetrics`.

    Example:
      >>> m = evaluate_topk(top.items, test, ks=(10, 20)); m.summary()["recall@10"]
      ... # doctest: +SKIP
    """
    topk_items = check_topk_items("topk_items", topk_items)
    test = check_item_sets("test", test, topk_items.shape[0], None)
    ks = check_ks(ks, topk_items.shape[1])
    per_user, n_test = _evaluate_core(topk_items, test, ks)
    n_eval = int(jnp.sum(n_test > 0))
    if n_eval == 0:
        raise ValueError(f"`test` has no user with a non-empty test set (shape {test.shape})")
    return RankingMetrics(
        ks=ks,
        **{m: per_user[m] for m in (*METRIC_NAMES, "hits")},
        n_test=n_test,
        evaluated=n_test > 0,
        n_evaluated=n_eval,
        n_skipped=int(test.shape[0]) - n_eval,
    )


def item_coverage(topk_items: ArrayLike, n_items: int, k: int) -> jax.Array:
    """Catalogue coverage@K: fraction of items in at least one user's top-K list.

    ``coverage@K = |∪_u L_u[:K]| / n_items`` (``-1`` slots ignored). Memory ``O(n_items)``.

    Args:
      topk_items: ``[U, Kmax]`` int item lists.
      n_items: catalogue size.
      k: cut-off ``<= Kmax``.

    Returns:
      Scalar float.
    """
    topk_items = check_topk_items("topk_items", topk_items)
    n_items = check_positive_int("n_items", n_items)
    k = check_positive_int("k", k, maximum=topk_items.shape[1])
    if topk_items.size and int(jnp.max(topk_items)) >= n_items:
        raise ValueError(
            f"`topk_items` entries must be < n_items={n_items}, got {int(jnp.max(topk_items))}"
        )
    return _coverage_core(topk_items[:, :k], n_items)


@functools.partial(jax.jit, static_argnames=("n_items",))
def _coverage_core(items, n_items):
    idx = jnp.where(items < 0, n_items, items).ravel()
    seen = jnp.zeros(n_items + 1, dtype=bool).at[idx].set(True)
    return jnp.mean(seen[:n_items].astype(jnp.result_type(float)))

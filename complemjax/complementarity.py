r"""Complementarity diagnostics between two rankers A and B at the same K.

For user ``u`` with held-out set ``T_u`` and top-K lists ``L^A``, ``L^B`` (first K
entries; ``-1`` slots are empty), hit sets ``H^A = L^A ∩ T_u``, ``H^B = L^B ∩ T_u``:

* ``Jaccard@K = |L^A ∩ L^B| / |L^A ∪ L^B|``; ``overlap@K = |L^A ∩ L^B| / K``.
* shared hits ``|H^A ∩ H^B|``; unique hits ``|H^A \ H^B|`` and ``|H^B \ H^A|``.
* unique-hit share of A (micro) ``Σ_u |H^A \ H^B| / Σ_u |H^A ∪ H^B|``; the per-user
  version is the mean of ``|H^A \ H^B| / |H^A ∪ H^B|`` over users with
  ``|H^A ∪ H^B| > 0``. Likewise for B and for shared hits.
* oracle best-of-two@K ``= mean_u max(metric^A_u, metric^B_u)`` (per metric).
* oracle merge@K: the best K-list drawn from ``L^A ∪ L^B`` puts all union hits first.
  With ``h = min(|H^A ∪ H^B|, K)``: Recall ``= h / |T_u|``, Precision ``= h / K``,
  Hit ``= 1[h > 0]``, MRR ``= 1[h > 0]``, NDCG ``= Σ_{r≤h} 1/log2(r+1) /
  Σ_{r≤min(K,|T_u|)} 1/log2(r+1)``. It bounds every fusion that re-ranks the two
  lists.
* union@2K ``= |H^A ∪ H^B| / |T_u|`` (a budget of 2K items; not a K-list metric).
* oracle gain ``= oracle − max(mean A, mean B)`` (absolute) and that divided by
  ``max(mean A, mean B)`` (relative; NaN when both means are 0).

Users with an empty test set are skipped (and every per-user mean is over evaluated
users). Per-user diagnostics live in JAX (:func:`pair_user_stats`, jit/vmap-able);
:func:`compare_rankers` aggregates them into a tidy table with breakdowns and paired
bootstrap intervals.

Breakdowns:

* ``user_activity``: users are split by history length ``a_u`` (distinct training
  items) at the empirical quantiles (``numpy.quantile``, linear interpolation) of
  ``a_u`` over evaluated users into ``n_user_buckets`` buckets: bucket ``j`` holds
  users with ``q_{j} < a_u <= q_{j+1}`` (the first bucket includes its lower edge).
  With many ties a bucket can be empty; ``n_users`` reports its size.
* ``item_popularity``: ``head`` = the ``ceil(head_fraction × n_items)`` most popular
  items (popularity = training interactions; ties to the lower item index), ``tail``
  = the rest. Per bucket, the lists are *not* re-ranked; hits, test items and list
  entries are restricted to the bucket's items: ``T^b_u = T_u ∩ b``,
  ``L^{A,b} = L^A ∩ b`` (positions kept), so Recall@K = ``|L^A ∩ T^b_u| / |T^b_u|``,
  Precision@K = ``|L^A ∩ T^b_u| / K``, NDCG uses the kept positions and
  ``min(K, |T^b_u|)`` ideal positions, Jaccard/overlap use ``L^{A,b}``, ``L^{B,b}``.
  Users with ``T^b_u = ∅`` are skipped in that bucket.

Bootstrap: ``n_boot`` paired resamples of the evaluated users (with replacement, the
same resample for A and B); every statistic is a ratio of user sums
``Σ_u c_u num_u / Σ_u c_u den_u`` with resample counts ``c_u``, computed in batches of
vmapped resamples; percentile intervals at level ``confidence``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from complemjax._checks import (
    check_finite,
    check_in_range,
    check_key,
    check_no_repeats,
    check_positive_int,
)
from complemjax.ranking import (
    METRIC_NAMES,
    TopK,
    check_item_sets,
    check_ks,
    check_topk_items,
    metrics_from_relevance,
    relevance_matrix,
)
from complemjax.stats import resample_map

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PairStats",
    "compare_rankers",
    "item_popularity_buckets",
    "pair_user_stats",
    "user_activity_buckets",
]


class PairStats(NamedTuple):
    r"""Per-user complementarity quantities of rankers A and B at one K (all ``[U]``).

    Metric dicts map each name in ``METRIC_NAMES`` (recall, ndcg, precision, hit, mrr)
    to a ``[U]`` float array, NaN for users with an empty (restricted) test set.

    Attributes:
      n_test: ``|T_u|`` (restricted to the item mask if one is given).
      hits_a, hits_b: ``|H^A|``, ``|H^B|``.
      shared: ``|H^A ∩ H^B|``.
      unique_a, unique_b: ``|H^A \ H^B|``, ``|H^B \ H^A|``.
      union: ``|H^A ∪ H^B|``.
      list_inter, list_union: ``|L^A ∩ L^B|``, ``|L^A ∪ L^B|``.
      jaccard: ``list_inter / list_union`` (NaN if the union is empty).
      overlap: ``list_inter / K``.
      a, b: per-user metrics of each ranker.
      best_of_two: elementwise max of ``a`` and ``b``.
      merge: oracle merge@K metrics.
      union_2k: ``|H^A ∪ H^B| / |T_u|``.
    """

    n_test: jax.Array
    hits_a: jax.Array
    hits_b: jax.Array
    shared: jax.Array
    unique_a: jax.Array
    unique_b: jax.Array
    union: jax.Array
    list_inter: jax.Array
    list_union: jax.Array
    jaccard: jax.Array
    overlap: jax.Array
    a: dict
    b: dict
    best_of_two: dict
    merge: dict
    union_2k: jax.Array


def _restrict(items, item_mask):
    """Replace items outside ``item_mask`` (and ``-1``) by ``-1``; ``item_mask`` ``[I]``."""
    if item_mask is None:
        return items
    inside = (items >= 0) & item_mask[jnp.maximum(items, 0)]
    return jnp.where(inside, items, -1)


def pair_user_stats(
    items_a: ArrayLike,
    items_b: ArrayLike,
    test: ArrayLike,
    *,
    k: int,
    item_mask: ArrayLike | None = None,
) -> PairStats:
    """Per-user overlap, hit decomposition and oracle bounds of two rankers at K.

    See the module docstring for the definitions. Pure JAX, ``O(U (K + T))`` memory;
    concrete lists are checked for repeated items (a repeat would count as several hits),
    nothing else is validated (use :func:`compare_rankers` for checked, aggregated output).

    Args:
      items_a: ``[U, >=k]`` int32 top-K lists of ranker A (``-1`` = empty slot; an
        item appears at most once per list, as in every :class:`TopK`).
      items_b: ``[U, >=k]`` int32 top-K lists of ranker B.
      test: ``[U, T]`` int32 padded held-out sets.
      k: the cut-off K (static).
      item_mask: optional ``[n_items]`` bool; restricts lists, hits and test items to
        the items where it is True (item-bucket breakdowns).

    Returns:
      :class:`PairStats` of ``[U]`` arrays.

    Example:
      >>> s = pair_user_stats(top_a.items, top_b.items, test, k=10)  # doctest: +SKIP
      >>> float(s.shared.sum() / s.union.sum())  # micro shared-hit share  # doctest: +SKIP
    """
    check_no_repeats("items_a", items_a)  # concrete inputs only (a no-op under jit)
    check_no_repeats("items_b", items_b)
    return _pair_user_stats_impl(items_a, items_b, test, k=k, item_mask=item_mask)


@functools.partial(jax.jit, static_argnames=("k",))
def _pair_user_stats_impl(items_a, items_b, test, *, k: int, item_mask=None) -> PairStats:
    dtype = jnp.result_type(float)
    la = _restrict(items_a[:, :k].astype(jnp.int32), item_mask)
    lb = _restrict(items_b[:, :k].astype(jnp.int32), item_mask)
    t = _restrict(test.astype(jnp.int32), item_mask)
    rel_a, n_test = relevance_matrix(la, t)
    rel_b, _ = relevance_matrix(lb, t)
    a_in_b, _ = relevance_matrix(la, lb)  # A's entries that are in B's list
    size_a = jnp.sum(la >= 0, axis=1)
    size_b = jnp.sum(lb >= 0, axis=1)
    hits_a = jnp.sum(rel_a, axis=1)
    hits_b = jnp.sum(rel_b, axis=1)
    shared = jnp.sum(rel_a & a_in_b, axis=1)
    union = hits_a + hits_b - shared
    inter = jnp.sum(a_in_b, axis=1)
    list_union = size_a + size_b - inter
    evaluated = n_test > 0
    ma = {m: v[0] for m, v in metrics_from_relevance(rel_a, n_test, (k,)).items() if m != "hits"}
    mb = {m: v[0] for m, v in metrics_from_relevance(rel_b, n_test, (k,)).items() if m != "hits"}
    best = {m: jnp.maximum(ma[m], mb[m]) for m in METRIC_NAMES}
    h = jnp.minimum(union, k)
    disc = 1.0 / jnp.log2(jnp.arange(2, k + 2, dtype=dtype))
    cum = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(disc)])
    nt = jnp.maximum(n_test, 1).astype(dtype)
    merge = {
        "recall": h / nt,
        "ndcg": cum[h] / cum[jnp.maximum(jnp.minimum(n_test, k), 1)],
        "precision": h.astype(dtype) / k,
        "hit": (h > 0).astype(dtype),
        "mrr": (h > 0).astype(dtype),
    }
    merge = {m: jnp.where(evaluated, v, jnp.nan) for m, v in merge.items()}
    return PairStats(
        n_test=n_test,
        hits_a=hits_a,
        hits_b=hits_b,
        shared=shared,
        unique_a=hits_a - shared,
        unique_b=hits_b - shared,
        union=union,
        list_inter=inter,
        list_union=list_union,
        jaccard=jnp.where(list_union > 0, inter / jnp.maximum(list_union, 1), jnp.nan),
        overlap=inter.astype(dtype) / k,
        a=ma,
        b=mb,
        best_of_two=best,
        merge=merge,
        union_2k=jnp.where(evaluated, union / nt, jnp.nan),
    )


# ---------------------------------------------------------------------------
# Buckets (host-side set-up)
# ---------------------------------------------------------------------------


def user_activity_buckets(
    activity: ArrayLike, evaluated: ArrayLike, n_buckets: int = 3
) -> tuple[list[str], np.ndarray]:
    """Quantile buckets of user activity.

    Edges ``q_j = quantile(activity[evaluated], j / n_buckets)``; bucket ``j`` holds
    users with ``q_j < a_u <= q_{j+1}`` (bucket 0 also takes ``a_u = q_0``).

    Args:
      activity: ``[U]`` history lengths (or any activity measure).
      evaluated: ``[U]`` bool, users used to place the edges.
      n_buckets: number of buckets.

    Returns:
      (``labels`` list of str, ``members`` ``[n_buckets, U]`` bool NumPy array).
    """
    a = np.asarray(activity, dtype=np.float64)
    ev = np.asarray(evaluated, dtype=bool)
    edges = np.quantile(a[ev], np.linspace(0.0, 1.0, n_buckets + 1))
    idx = np.clip(np.searchsorted(edges[1:-1], a, side="left"), 0, n_buckets - 1)
    labels, members = [], []
    for j in range(n_buckets):
        lo, hi = edges[j], edges[j + 1]
        op = "[" if j == 0 else "("
        labels.append(f"Q{j + 1} {op}{lo:g}, {hi:g}]")
        members.append(idx == j)
    return labels, np.stack(members)


def item_popularity_buckets(
    popularity: ArrayLike, head_fraction: float = 0.2
) -> tuple[list[str], np.ndarray]:
    """Head/tail split of the catalogue by popularity.

    ``head`` = the ``ceil(head_fraction × n_items)`` items with the most training
    interactions (ties to the lower item index); ``tail`` = the rest.

    Args:
      popularity: ``[n_items]`` interaction counts.
      head_fraction: fraction of items in the head, in ``(0, 1)``.

    Returns:
      (``labels`` ``["head", "tail"]``, ``masks`` ``[2, n_items]`` bool NumPy array).
    """
    p = np.asarray(popularity, dtype=np.float64)
    n_head = math.ceil(head_fraction * p.size)
    order = np.lexsort((np.arange(p.size), -p))
    head = np.zeros(p.size, dtype=bool)
    head[order[:n_head]] = True
    return ["head", "tail"], np.stack([head, ~head])


# ---------------------------------------------------------------------------
# Aggregation and bootstrap
# ---------------------------------------------------------------------------


def _ratio_terms(s: PairStats, w, total_den):
    """Numerators and denominators ``[Q, U]`` (rows: ``_TERM_NAMES``); stat = Σ num / Σ den.

    ``w`` ``[U]`` bool selects the users of the bucket; ``total_den`` ``[U]`` is
    ``1 / N`` on the ``N`` resampled (evaluated) users and 0 elsewhere, so that
    ``Σ_u c_u total_den_u = 1`` for every resample and ``Σ num / Σ total_den`` is a sum.
    """
    dtype = jnp.result_type(float)
    ev = (s.n_test > 0) & w
    evf = ev.astype(dtype)
    nums, dens = [], []

    def add(num, den):
        nums.append(num.astype(dtype))
        dens.append(den.astype(dtype))

    def add_mean(x):
        ok = ev & ~jnp.isnan(x)
        add(jnp.where(ok, x, 0.0), ok)

    for m in METRIC_NAMES:
        for x in (s.a[m], s.b[m], s.best_of_two[m], s.merge[m]):
            add_mean(x)
    for x in (s.union_2k, s.jaccard, s.overlap):
        add_mean(x)
    union = s.union.astype(dtype)
    has = ev & (s.union > 0)
    for x in (s.shared, s.unique_a, s.unique_b):
        x = x.astype(dtype)
        add(x * evf, evf)  # mean hits per user
        add(x * evf, union * evf)  # micro share
        add(jnp.where(has, x / jnp.maximum(union, 1), 0.0), has)  # per-user share
        add(x * evf, total_den)  # total over the bucket's users
    return jnp.stack(nums), jnp.stack(dens)


@functools.partial(jax.jit, static_argnames=("k",))
def _bucket_terms(items_a, items_b, test, user_masks, item_masks, *, k):
    """Ratio terms for user buckets (``[Bu, U]``) then item buckets.

    ``item_masks`` ``[1 + Bi, n_items]``: row 0 is all True (used with the user buckets),
    rows 1.. are the item buckets (used with all users). Returns (num ``[Bu + Bi, Q, U]``,
    den ``[Bu + Bi, Q, U]``, n_users ``[Bu + Bi]``); the Q rows follow ``_TERM_NAMES``.
    One vmapped graph for the statistics and one for the terms (one compile per K).
    """
    si = jax.vmap(lambda m: _pair_user_stats_impl(items_a, items_b, test, k=k, item_mask=m))(
        item_masks
    )
    pool = si.n_test[0] > 0
    total_den = pool / jnp.maximum(jnp.sum(pool), 1).astype(jnp.result_type(float))
    n_bu, n_bi = user_masks.shape[0], item_masks.shape[0] - 1
    which = jnp.concatenate([jnp.zeros(n_bu, jnp.int32), jnp.arange(1, n_bi + 1)])
    sb = jax.tree_util.tree_map(lambda x: x[which], si)
    w = jnp.concatenate([user_masks, jnp.ones((n_bi, user_masks.shape[1]), bool)])
    num, den = jax.vmap(_ratio_terms, in_axes=(0, 0, None))(sb, w, total_den)
    n_in = jnp.sum((sb.n_test > 0) & w, axis=1)
    return num, den, n_in


def _term_names() -> tuple[str, ...]:
    names = []
    for m in METRIC_NAMES:
        names += [f"{m}_a", f"{m}_b", f"{m}_best_of_two", f"{m}_merge"]
    names += ["recall_union_2k", "jaccard", "overlap"]
    for x in ("shared", "unique_a", "unique_b"):
        names += [f"{x}_hits", f"{x}_share_micro", f"{x}_share_per_user", f"{x}_hits_total"]
    return tuple(names)


_TERM_NAMES = _term_names()


@functools.partial(jax.jit, static_argnames=("n_boot", "batch"))
def _bootstrap(key, num, den, pool, n_boot: int, batch: int):
    """Paired bootstrap of ratios ``Σ c num / Σ c den`` over users; ``[n_boot, Q]``.

    Each resample draws ``len(pool)`` users from ``pool`` with replacement (the package's
    one primitive, :func:`complemjax.stats.resample_map`); ``batch`` resamples are
    vmapped together.
    """
    n_users = num.shape[1]

    def one(idx):
        counts = jnp.zeros((n_users,), num.dtype).at[pool[idx]].add(1.0)
        return (num @ counts) / (den @ counts)

    return resample_map(key, one, pool.shape[0], n_boot=n_boot, batch_size=batch)


def _gain_rows(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Oracle gains from base statistics (works on scalars or replicate vectors)."""
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for m in METRIC_NAMES:
            base = np.maximum(values[f"{m}_a"], values[f"{m}_b"])
            for oracle in ("best_of_two", "merge"):
                gain = values[f"{m}_{oracle}"] - base
                out[f"{m}_{oracle}_gain"] = gain
                out[f"{m}_{oracle}_gain_rel"] = np.where(base > 0, gain / base, np.nan)
        base = np.maximum(values["recall_a"], values["recall_b"])
        gain = values["recall_union_2k"] - base
        out["recall_union_2k_gain"] = gain
        out["recall_union_2k_gain_rel"] = np.where(base > 0, gain / base, np.nan)
    return out


def _as_items(name, x):
    if isinstance(x, TopK):
        x = x.items
    return check_topk_items(name, x)


def compare_rankers(
    topk_a: ArrayLike | TopK,
    topk_b: ArrayLike | TopK,
    test: ArrayLike,
    *,
    ks: Sequence[int] | int = (10, 20),
    history: ArrayLike | None = None,
    user_activity: ArrayLike | None = None,
    item_popularity: ArrayLike | None = None,
    key: jax.Array | None = None,
    n_boot: int = 1000,
    n_user_buckets: int = 3,
    head_fraction: float = 0.2,
    confidence: float = 0.95,
    boot_batch: int = 32,
) -> pd.DataFrame:
    """Tidy table of complementarity diagnostics between rankers A and B.

    Every statistic of the module docstring, at every K in ``ks``, overall
    (``bucket_type="all"``) and, when the inputs allow, by user-activity quantile bucket
    and by item-popularity head/tail, with paired bootstrap intervals over users.

    Metric names (column ``metric``): ``{m}_a``, ``{m}_b``, ``{m}_best_of_two``,
    ``{m}_merge``, ``{m}_best_of_two_gain``, ``{m}_best_of_two_gain_rel``,
    ``{m}_merge_gain``, ``{m}_merge_gain_rel`` for ``m`` in recall, ndcg, precision,
    hit, mrr; ``recall_union_2k`` (budget 2K) and its gains; ``jaccard``, ``overlap``;
    ``{shared,unique_a,unique_b}_hits`` (mean per user), ``..._hits_total`` (sum over
    the bucket's users), ``..._share_micro`` (Σ_u x / Σ_u |H^A ∪ H^B|) and
    ``..._share_per_user``.

    Args:
      topk_a: ``[U, Ka]`` int lists of ranker A (or a ``TopK``), ``Ka >= max(ks)``.
      topk_b: ``[U, Kb]`` int lists of ranker B (or a ``TopK``).
      test: ``[U, T]`` int padded held-out sets.
      ks: cut-offs.
      history: optional ``[U, L]`` padded training sets; gives user activity
        ``|history_u|`` when ``user_activity`` is not given.
      user_activity: optional ``[U]`` activity per user (overrides ``history``).
      item_popularity: optional ``[n_items]`` training interaction counts; enables the
        head/tail breakdown.
      key: PRNG key for the bootstrap; ``None`` gives no intervals (NaN ``ci_*``).
      n_boot: bootstrap resamples.
      n_user_buckets: number of activity quantile buckets.
      head_fraction: fraction of items in the popularity head.
      confidence: interval level, e.g. 0.95 (percentile interval).
      boot_batch: resamples vmapped together (memory ``O(boot_batch × U)``).

    Returns:
      pandas DataFrame with columns ``k, bucket_type, bucket, metric, value, ci_low,
      ci_high, n_users`` (``n_users`` = users contributing to the bucket). A ratio whose
      denominator is 0 (e.g. hit shares in a bucket without any hit, relative gains
      over a zero baseline) is NaN; intervals use the finite bootstrap replicates.

    Example:
      >>> df = compare_rankers(top_sem, top_cf, test, ks=(10, 20), history=train,
      ...                      key=jax.random.key(0))  # doctest: +SKIP
    """
    import pandas as pd

    items_a, items_b, test, ks, n_boot, boot_batch, n_user_buckets, key = _check_compare(
        topk_a, topk_b, test, ks=ks, key=key, n_boot=n_boot, boot_batch=boot_batch,
        n_user_buckets=n_user_buckets, head_fraction=head_fraction, confidence=confidence,
        user_activity=user_activity, item_popularity=item_popularity,
    )  # fmt: skip
    _, n_test = relevance_matrix(items_a[:, :1], test)
    evaluated = np.asarray(n_test > 0)
    if not evaluated.any():
        raise ValueError(f"`test` has no user with a non-empty test set (shape {test.shape})")
    buckets = _comparison_buckets(
        items_a, items_b, test, evaluated, history=history, user_activity=user_activity,
        item_popularity=item_popularity, n_user_buckets=n_user_buckets,
        head_fraction=head_fraction,
    )  # fmt: skip
    user_masks, item_masks = _bucket_masks(buckets, items_a, items_b, test)
    pool = jnp.asarray(np.nonzero(evaluated)[0].astype(np.int32))
    alpha = (1.0 - confidence) / 2.0
    rows = []
    for k in ks:
        num, den, n_in = _bucket_terms(items_a, items_b, test, user_masks, item_masks, k=k)
        reps = None
        if key is not None:
            reps = _bootstrap_replicates(
                jax.random.fold_in(key, k), num, den, pool, n_boot, boot_batch
            )
        rows += _rows_at_k(k, buckets, num, den, np.asarray(n_in), reps, alpha)
    cols = ["k", "bucket_type", "bucket", "metric", "value", "ci_low", "ci_high", "n_users"]
    return pd.DataFrame(rows, columns=cols)


def _check_compare(
    topk_a, topk_b, test, *, ks, key, n_boot, boot_batch, n_user_buckets, head_fraction,
    confidence, user_activity, item_popularity,
):  # fmt: skip
    """Checked inputs of :func:`compare_rankers`: item lists, test sets, ``ks``, sizes, key."""
    items_a = _as_items("topk_a", topk_a)
    items_b = _as_items("topk_b", topk_b)
    n_users = items_a.shape[0]
    if items_b.shape[0] != n_users:
        raise ValueError(
            f"`topk_b` must have {n_users} rows like `topk_a`, got shape {items_b.shape}"
        )
    test = check_item_sets("test", test, n_users, None)
    ks = check_ks(ks, min(items_a.shape[1], items_b.shape[1]))
    n_boot = check_positive_int("n_boot", n_boot)
    boot_batch = check_positive_int("boot_batch", boot_batch)
    n_user_buckets = check_positive_int("n_user_buckets", n_user_buckets)
    check_in_range("head_fraction", head_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    check_in_range("confidence", confidence, 0.0, 1.0, lo_open=True, hi_open=True)
    if key is not None:
        key = check_key("key", key)
    for name, v in (("user_activity", user_activity), ("item_popularity", item_popularity)):
        if v is not None:  # NaN would build "Q1 [nan, nan]" buckets
            check_finite(name, np.asarray(v, dtype=float))
    return items_a, items_b, test, ks, n_boot, boot_batch, n_user_buckets, key


def _comparison_buckets(
    items_a, items_b, test, evaluated, *, history, user_activity, item_popularity,
    n_user_buckets, head_fraction,
):  # fmt: skip
    """Bucket definitions: ``(bucket_type, label, user mask [U], item mask [n_items] | None)``.

    ``"all"`` first, then the user-activity quantile buckets (activity from ``history``
    when not given), then the item-popularity head and tail.
    """
    n_users = items_a.shape[0]
    buckets = [("all", "all", np.ones(n_users, dtype=bool), None)]
    if user_activity is None and history is not None:
        hist = check_item_sets("history", history, n_users, None)
        _, user_activity = relevance_matrix(hist[:, :1], hist)
    if user_activity is not None:
        act = np.asarray(user_activity)
        if act.shape != (n_users,):
            raise ValueError(f"`user_activity` must have shape ({n_users},), got {act.shape}")
        labels, members = user_activity_buckets(act, evaluated, n_user_buckets)
        buckets += [("user_activity", lab, mem, None) for lab, mem in zip(labels, members)]
    if item_popularity is not None:
        pop = np.asarray(item_popularity)
        if pop.ndim != 1:
            raise ValueError(f"`item_popularity` must be 1-D [n_items], got shape {pop.shape}")
        n_items = pop.shape[0]
        hi = max(int(jnp.max(items_a)), int(jnp.max(items_b)), int(jnp.max(test)))
        if hi >= n_items:
            raise ValueError(
                f"`item_popularity` has {n_items} items but the lists/test hold item {hi}"
            )
        labels, masks = item_popularity_buckets(pop, head_fraction)
        buckets += [
            ("item_popularity", lab, np.ones(n_users, dtype=bool), jnp.asarray(m))
            for lab, m in zip(labels, masks)
        ]
    return buckets


def _bucket_masks(buckets, items_a, items_b, test):
    """``[n_user_buckets, U]`` user masks and ``[1 + n_item_buckets, n_items]`` item masks.

    The first item mask keeps every item (it pairs with the user buckets).
    """
    user_masks = jnp.asarray(np.stack([b[2] for b in buckets if b[3] is None]))
    item_masks = [b[3] for b in buckets if b[3] is not None]
    if item_masks:
        n_items = item_masks[0].shape[0]
    else:
        n_items = 1 + max(int(jnp.max(items_a)), int(jnp.max(items_b)), int(jnp.max(test)), 0)
    return user_masks, jnp.stack([jnp.ones(n_items, dtype=bool), *item_masks])


def _bootstrap_replicates(key, num, den, pool, n_boot: int, boot_batch: int) -> np.ndarray:
    """``[n_boot, buckets, terms]`` bootstrap replicates of every bucket's ratio terms."""
    nb, q = num.shape[0], num.shape[1]
    reps = _bootstrap(
        key, num.reshape(nb * q, -1), den.reshape(nb * q, -1), pool, n_boot, boot_batch
    )
    return np.asarray(reps).reshape(n_boot, nb, q)


def _rows_at_k(k, buckets, num, den, n_in, reps, alpha) -> list[dict]:
    """Table rows at cut-off ``k``: every bucket × metric with its percentile interval."""
    with np.errstate(divide="ignore", invalid="ignore"):
        point = np.asarray(jnp.sum(num, axis=2)) / np.asarray(jnp.sum(den, axis=2))
    rows = []
    for bi, (btype, label, _, _) in enumerate(buckets):
        values = {n: point[bi, j] for j, n in enumerate(_TERM_NAMES)}
        values.update(_gain_rows(values))
        if reps is not None:
            rv = {n: reps[:, bi, j] for j, n in enumerate(_TERM_NAMES)}
            rv.update(_gain_rows(rv))
        for name, val in values.items():
            lo = hi_ = np.nan
            if reps is not None:
                r = rv[name]
                r = r[np.isfinite(r)]
                if r.size:
                    lo, hi_ = np.quantile(r, [alpha, 1.0 - alpha])
            rows.append(
                {
                    "k": k,
                    "bucket_type": btype,
                    "bucket": label,
                    "metric": name,
                    "value": float(val),
                    "ci_low": float(lo),
                    "ci_high": float(hi_),
                    "n_users": int(n_in[bi]),
                }
            )
    return rows

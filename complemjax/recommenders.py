"""Semantic recommenders: rank items for a user from item text embeddings and the user's history.

No interaction data other than the user's own history enters these rankers (popularity
enters only through fusion); they need no training.

* Profile rankers — a user's profile is a weighted mean of the L2-normalised vectors of
  the items in their history, ``e_u = Σ_{i∈H_u} w_ui v_i / Σ_{i∈H_u} w_ui``, and items
  are ranked by ``cos(e_u, v_i)``: :func:`user_profiles` with ``weights`` = 1 (mean
  profile), the rating (:func:`rating_weights`) or a recency decay
  (:func:`recency_weights`).
* Item-based kNN — ``s(u, i) = Σ_{j ∈ H_u ∩ N_N(i)} cos(v_i, v_j)`` with ``N_N(i)`` the
  ``N`` nearest neighbours of ``i`` (itself excluded): :func:`item_neighbors` (blockwise,
  through :func:`complemjax.ranking.topk_from_embeddings`) and :func:`item_knn_score_fn`
  (a ``score_fn`` for :func:`complemjax.ranking.topk_from_score_fn`). Never an
  ``items × items`` array beyond one chunk.
* :func:`select_semantic_ranker` — picks a ranker variant × embedding post-processing
  (:class:`complemjax.semantic.PostProcess`) on *validation* Recall@K and records every
  trial.
* :func:`fit_linear_map` / :func:`linear_map_onto_cf` — a diagnostic, not a semantic
  ranker: a ridge map (:class:`complemjax.probes.Ridge`) from the semantic embeddings onto
  trained collaborative item embeddings, ``z_i = x_i W + b``; users are the mean of ``z``
  over their history and score ``profile_u · z_i``. Because ``W`` is fitted to CF
  embeddings, it carries collaborative information.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from complemjax import probes, ranking
from complemjax._checks import check_matrix, check_positive_int, check_same_rows
from complemjax.data import padding
from complemjax.semantic import DEFAULT_POSTPROCESSES, PostProcess, postprocess

__all__ = [
    "ItemNeighbors",
    "LinearMap",
    "SemanticRanker",
    "SemanticSelection",
    "apply_linear_map",
    "fit_linear_map",
    "item_knn_score_fn",
    "item_neighbors",
    "linear_map_onto_cf",
    "rating_weights",
    "recency_weights",
    "select_semantic_ranker",
    "semantic_topk",
    "user_profiles",
]

_KNN_CHUNK_BUDGET = 2**22  # entries of one [user_chunk, n_items, n_neighbors] gather


def _l2_normalize(x):
    n = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return x / jnp.where(n > 0, n, 1.0)


def _check_index(name: str, x, n: int, n_name: str):
    """1-D integer indices in ``[0, n)``; ValueError naming ``name`` otherwise.

    Under tracing (``jit``/``vmap``) only the rank and dtype can be checked; values are
    then the caller's responsibility (``segment_sum`` drops ids outside ``[0, n)``).
    """
    if isinstance(x, jax.core.Tracer):
        if x.ndim != 1 or not jnp.issubdtype(x.dtype, jnp.integer):
            raise ValueError(f"`{name}` must be a 1-D integer array, got {x.dtype} {x.shape}")
        return x.astype(jnp.int32)
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.integer) and a.dtype != bool):
        raise ValueError(
            f"`{name}` must be an integer array (indices), got dtype {a.dtype}; "
            "cast on purpose with .astype(int)"
        )
    if a.size and (a.min() < 0 or a.max() >= n):
        bad = int(((a < 0) | (a >= n)).sum())
        raise ValueError(
            f"`{name}` must lie in [0, {n_name}={n}): {bad} entries outside, "
            f"min {int(a.min())}, max {int(a.max())}"
        )
    return jnp.asarray(a, jnp.int32)


def _check_pairs(user_idx, item_idx, n_users: int, n_items: int):
    u = _check_index("user_idx", user_idx, n_users, "n_users")
    i = _check_index("item_idx", item_idx, n_items, "n_items")
    if u.shape != i.shape:
        raise ValueError(
            f"`user_idx` and `item_idx` must have equal length, got {u.shape}, {i.shape}"
        )
    return u, i


# ----------------------------------------------------------------------------- profiles
def user_profiles(
    item_emb: ArrayLike,
    user_idx: ArrayLike,
    item_idx: ArrayLike,
    *,
    n_users: int,
    normalize: bool = True,
    weights: ArrayLike | None = None,
) -> jax.Array:
    """Weighted mean history vector per user: ``e_u = Σ_{i∈H_u} w_ui v_i / Σ_{i∈H_u} w_ui``.

    With ``normalize=True`` the item vectors are L2-normalised first (``v_i =
    x_i/‖x_i‖``); ``weights=None`` gives ``w_ui = 1`` (the mean profile). Users without
    history (or with all-zero weights) get the zero vector. Computed as a segment sum
    over the interactions: memory ``O(n_interactions × d)``, no users × items array.

    Args:
      item_emb: ``[n_items, d]`` item vectors.
      user_idx: ``[n]`` int users of the history interactions (e.g. the training split),
        ``0 <= user_idx < n_users``.
      item_idx: ``[n]`` int items of those interactions, ``0 <= item_idx < n_items``.
      n_users: number of users (rows of the result).
      normalize: L2-normalise item vectors before averaging.
      weights: optional ``[n]`` finite non-negative weights (:func:`rating_weights`,
        :func:`recency_weights`).

    Returns:
      ``[n_users, d]`` profiles; rank with ``topk_from_embeddings(profiles, item_emb,
      similarity="cosine")``.

    Raises:
      ValueError: naming the argument — non-integer, negative or out-of-range indices,
        mismatched lengths, negative or non-finite weights. Under ``jit``/``vmap`` only
        shapes and dtypes are checked; ids outside ``[0, n_users)`` are then dropped
        (``segment_sum``), which callers may use to mask padding.

    Example:
      >>> prof = user_profiles(sem, tr.user_idx, tr.item_idx, n_users=tr.n_users)  # doctest: +SKIP
      >>> top = ranking.topk_from_embeddings(prof, sem, k=20, exclude=train_sets)
      ... # doctest: +SKIP
    """
    item_emb = check_matrix("item_emb", item_emb)
    n_users = check_positive_int("n_users", n_users)
    u, i = _check_pairs(user_idx, item_idx, n_users, item_emb.shape[0])
    if weights is None:
        w = jnp.ones(u.shape, item_emb.dtype)
    elif isinstance(weights, jax.core.Tracer):
        if weights.shape != u.shape:
            raise ValueError(f"`weights` must have shape {u.shape}, got {weights.shape}")
        w = weights.astype(item_emb.dtype)
    else:
        wa = np.asarray(weights)
        if wa.shape != u.shape or not np.issubdtype(wa.dtype, np.number):
            raise ValueError(
                f"`weights` must be numeric of shape {u.shape}, got {wa.dtype} {wa.shape}"
            )
        if not np.all(np.isfinite(wa)) or (wa.size and wa.min() < 0):
            raise ValueError(
                f"`weights` must be finite and >= 0: {int((~np.isfinite(wa)).sum())} "
                f"non-finite, {int((wa < 0).sum())} negative"
            )
        w = jnp.asarray(wa, item_emb.dtype)
    return _profiles(item_emb, u, i, w, n_users, normalize)


@functools.partial(jax.jit, static_argnames=("n_users", "normalize"))
def _profiles(item_emb, u, i, w, n_users, normalize):
    v = _l2_normalize(item_emb) if normalize else item_emb
    sums = jax.ops.segment_sum(v[i] * w[:, None], u, num_segments=n_users)
    total = jax.ops.segment_sum(w, u, num_segments=n_users)
    return sums / jnp.where(total > 0, total, 1.0)[:, None]


def rating_weights(ratings: ArrayLike, *, min_rating: float | None = None) -> jax.Array:
    """Profile weights from explicit ratings: ``w = r`` (or ``1[r >= min_rating]``).

    Args:
      ratings: ``[n]`` finite non-negative ratings of the history interactions.
      min_rating: if given, weights are 1 for ratings ``>= min_rating`` and 0 otherwise
        (a "liked items" profile).
    """
    r = np.asarray(ratings)
    if r.ndim != 1 or not np.issubdtype(r.dtype, np.number):
        raise ValueError(f"`ratings` must be a 1-D numeric array, got {r.dtype} {r.shape}")
    if not np.all(np.isfinite(r)) or (r.size and r.min() < 0):
        raise ValueError("`ratings` must be finite and >= 0")
    if min_rating is None:
        return jnp.asarray(r, jnp.float32)
    return jnp.asarray(r >= float(min_rating), jnp.float32)


def recency_weights(
    user_idx: ArrayLike, timestamps: ArrayLike, *, n_users: int, half_life: float
) -> jax.Array:
    """Profile weights that halve every ``half_life`` more recent interactions.

    ``w_ui = 2^{−r_ui / h}`` with ``r_ui`` the number of the user's interactions strictly
    later than this one (ties in time share a rank) and ``h = half_life``. Counting
    interactions rather than seconds makes ``h`` comparable across users who rate in
    one session or over years.

    Args:
      user_idx: ``[n]`` int user of each history interaction.
      timestamps: ``[n]`` numeric times (any unit; only their order within a user counts).
      n_users: number of users.
      half_life: ``h > 0``, in interactions.

    Returns:
      ``[n]`` float32 weights in ``(0, 1]`` (1 for each user's latest interactions).
    """
    n_users = check_positive_int("n_users", n_users)
    if isinstance(user_idx, jax.core.Tracer) or isinstance(timestamps, jax.core.Tracer):
        raise ValueError("`recency_weights` is host-side (NumPy); call it outside jit")
    u = np.asarray(_check_index("user_idx", user_idx, n_users, "n_users"))
    t = np.asarray(timestamps)
    if t.shape != u.shape or not np.issubdtype(t.dtype, np.number):
        raise ValueError(
            f"`timestamps` must be numeric of shape {u.shape}, got {t.dtype} {t.shape}"
        )
    if not np.all(np.isfinite(t)):
        raise ValueError("`timestamps` must be finite")
    if not (np.isfinite(half_life) and half_life > 0):
        raise ValueError(f"`half_life` must be > 0, got {half_life!r}")
    # rank from the end without floating overflow: order by (user, time desc)
    order = np.lexsort((-t.astype(np.float64), u))
    us, ts = u[order], t[order]
    new_user = np.r_[True, us[1:] != us[:-1]]
    new_run = new_user | np.r_[True, ts[1:] != ts[:-1]]
    pos = np.arange(u.size)
    user_start = np.maximum.accumulate(np.where(new_user, pos, 0))
    run_start = np.maximum.accumulate(np.where(new_run, pos, 0))
    rank = np.empty(u.size, np.float64)
    rank[order] = run_start - user_start
    return jnp.asarray(np.exp2(-rank / float(half_life)), jnp.float32)


# ----------------------------------------------------------------------------- item kNN
class ItemNeighbors(NamedTuple):
    """The ``N`` nearest neighbours of every item by cosine (itself excluded).

    Attributes:
      items: ``[n_items, N]`` int32 neighbour indices, most similar first (ties to the
        lower index).
      sims: ``[n_items, N]`` their cosine similarities.
    """

    items: jax.Array
    sims: jax.Array


def item_neighbors(
    item_emb: ArrayLike,
    *,
    n_neighbors: int,
    item_chunk: int | None = None,
    user_chunk: int | None = None,
) -> ItemNeighbors:
    """Top-``N`` cosine neighbours of every item, blockwise.

    ``N_N(i) = top-N_{j ≠ i} cos(x_i, x_j)`` (a zero vector has cosine 0 with
    everything). Computed by :func:`complemjax.ranking.topk_from_embeddings` with the
    items as "users" and each item's own index excluded, so memory is one chunk of
    ``user_chunk × item_chunk`` similarities, never ``n_items × n_items``.

    Args:
      item_emb: ``[n_items, d]`` finite item embeddings.
      n_neighbors: ``1 <= N <= n_items − 1``.
      item_chunk: item chunk size passed to ``topk_from_embeddings``.
      user_chunk: query chunk size passed to ``topk_from_embeddings`` (the queries are items).

    Returns:
      :class:`ItemNeighbors`.
    """
    item_emb = check_matrix("item_emb", item_emb, min_rows=2)
    n = item_emb.shape[0]
    n_neighbors = check_positive_int("n_neighbors", n_neighbors, maximum=n - 1)
    self_excl = jnp.arange(n, dtype=jnp.int32)[:, None]
    top = ranking.topk_from_embeddings(
        item_emb,
        item_emb,
        k=n_neighbors,
        exclude=self_excl,
        similarity="cosine",
        item_chunk=item_chunk,
        user_chunk=user_chunk,
    )
    return ItemNeighbors(top.items, top.scores)


def _knn_scores(params, user_idx):
    nbr_items, nbr_sims, history = params
    n_items = nbr_items.shape[0]
    hist = history[user_idx]  # [c, L]
    rows = jnp.arange(hist.shape[0])[:, None]
    ind = jnp.zeros((hist.shape[0], n_items + 1), nbr_sims.dtype)
    ind = ind.at[rows, jnp.where(hist < 0, n_items, hist)].set(1.0)[:, :n_items]
    gathered = ind[:, nbr_items]  # [c, n_items, N]: 1 where neighbour n of i is in H_u
    return jnp.einsum("cin,in->ci", gathered, nbr_sims, precision=jax.lax.Precision.HIGHEST)


def item_knn_score_fn(neighbors: ItemNeighbors, history: ArrayLike) -> jax.tree_util.Partial:
    """Item-based kNN scores as a ``score_fn`` for :func:`ranking.topk_from_score_fn`.

    ``s(u, i) = Σ_{n=1..N} sims[i, n] · 1[items[i, n] ∈ H_u]`` — the sum of the cosine
    similarities between ``i`` and the user's history items that are among ``i``'s ``N``
    nearest neighbours (Sarwar et al. 2001; Deshpande & Karypis 2004). Per chunk of
    ``c`` users the cost is a ``[c, n_items, N]`` gather; pair it with
    :func:`knn_user_chunk` to bound it.

    Args:
      neighbors: from :func:`item_neighbors`.
      history: ``[n_users, L]`` int padded history sets (``-1`` padding).

    Returns:
      ``Partial(fn, params)`` mapping ``int32 [c]`` users to ``[c, n_items]`` scores.

    References:
      B. Sarwar, G. Karypis, J. Konstan, J. Riedl (2001), Item-based collaborative
      filtering recommendation algorithms, WWW. M. Deshpande and G. Karypis (2004),
      Item-based top-N recommendation algorithms, ACM TOIS 22(1).
    """
    if not isinstance(neighbors, ItemNeighbors):
        raise ValueError(f"`neighbors` must be ItemNeighbors, got {type(neighbors).__name__}")
    n_items = neighbors.items.shape[0]
    h = np.asarray(history)
    if h.ndim != 2 or not np.issubdtype(h.dtype, np.integer):
        raise ValueError(f"`history` must be a 2-D int padded set array, got {h.dtype} {h.shape}")
    if h.size and (h.min() < -1 or h.max() >= n_items):
        raise ValueError(
            f"`history` entries must lie in [-1, {n_items}), got [{h.min()}, {h.max()}]"
        )
    params = (neighbors.items, neighbors.sims, jnp.asarray(h, jnp.int32))
    return jax.tree_util.Partial(_knn_scores, params)


def knn_user_chunk(n_users: int, n_items: int, n_neighbors: int) -> int:
    """Users per chunk so one ``[c, n_items, N]`` gather stays under 2**22 entries."""
    return max(1, min(n_users, _KNN_CHUNK_BUDGET // max(1, n_items * n_neighbors)))


# ----------------------------------------------------------------------------- rankers
@dataclasses.dataclass(frozen=True)
class SemanticRanker:
    """A semantic ranker variant (static config).

    Attributes:
      kind: ``"mean"`` (mean profile), ``"rating"`` (rating-weighted profile, ``w = r``),
        ``"liked"`` (profile of items rated ``>= min_rating``), ``"recency"``
        (``w = 2^{−r/h}``, see :func:`recency_weights`) or ``"item_knn"``.
      half_life: ``h`` for ``"recency"``.
      n_neighbors: ``N`` for ``"item_knn"``.
      min_rating: threshold for ``"liked"``.
    """

    kind: str = "mean"
    half_life: float | None = None
    n_neighbors: int | None = None
    min_rating: float | None = None

    def __post_init__(self):
        kinds = ("mean", "rating", "liked", "recency", "item_knn")
        if self.kind not in kinds:
            raise ValueError(f"`kind` must be one of {kinds}, got {self.kind!r}")
        if self.kind == "recency" and not (self.half_life is not None and self.half_life > 0):
            raise ValueError(f"`half_life` must be > 0 for kind='recency', got {self.half_life}")
        if self.kind == "item_knn":
            check_positive_int("n_neighbors", self.n_neighbors)
        if self.kind == "liked" and self.min_rating is None:
            raise ValueError("`min_rating` is required for kind='liked'")

    def describe(self) -> str:
        """Short label, e.g. ``mean``, ``recency(h=10)``, ``item_knn(N=50)``."""
        if self.kind == "recency":
            return f"recency(h={self.half_life:g})"
        if self.kind == "item_knn":
            return f"item_knn(N={self.n_neighbors})"
        if self.kind == "liked":
            return f"liked(r>={self.min_rating:g})"
        return self.kind


#: Ranker variants tried by default by :func:`select_semantic_ranker`.
DEFAULT_RANKERS: tuple[SemanticRanker, ...] = (
    SemanticRanker("mean"),
    SemanticRanker("rating"),
    SemanticRanker("liked", min_rating=4.0),
    SemanticRanker("recency", half_life=10.0),
    SemanticRanker("recency", half_life=50.0),
    SemanticRanker("item_knn", n_neighbors=20),
    SemanticRanker("item_knn", n_neighbors=100),
)


def semantic_topk(
    ranker: SemanticRanker,
    item_emb: ArrayLike,
    user_idx: ArrayLike,
    item_idx: ArrayLike,
    *,
    n_users: int,
    k: int,
    exclude: ArrayLike | None = None,
    ratings: ArrayLike | None = None,
    timestamps: ArrayLike | None = None,
    neighbors: ItemNeighbors | None = None,
) -> ranking.TopK:
    """Top-``k`` items per user from one semantic ranker, chunked.

    Profile kinds score ``cos(e_u, x_i)`` with ``e_u`` from :func:`user_profiles`;
    ``"item_knn"`` scores with :func:`item_knn_score_fn`.

    Args:
      ranker: :class:`SemanticRanker`.
      item_emb: ``[n_items, d]`` (post-processed) item embeddings.
      user_idx: ``[n]`` int users of the history interactions (the profile / kNN history).
      item_idx: ``[n]`` int items of those interactions.
      n_users: number of users.
      k: list length.
      exclude: ``[n_users, L]`` padded sets to exclude (e.g. the training history).
      ratings: ``[n]`` ratings of the history (``"rating"``, ``"liked"``).
      timestamps: ``[n]`` times of the history (``"recency"``).
      neighbors: precomputed :func:`item_neighbors` with at least ``ranker.n_neighbors``
        columns (reused across calls; default computed here).

    Returns:
      :class:`complemjax.ranking.TopK`.
    """
    if not isinstance(ranker, SemanticRanker):
        raise ValueError(f"`ranker` must be a SemanticRanker, got {type(ranker).__name__}")
    item_emb = check_matrix("item_emb", item_emb)
    n_users = check_positive_int("n_users", n_users)
    n_items = item_emb.shape[0]
    u, i = _check_pairs(user_idx, item_idx, n_users, n_items)
    if ranker.kind == "item_knn":
        n = ranker.n_neighbors
        if neighbors is None:
            neighbors = item_neighbors(item_emb, n_neighbors=n)
        elif neighbors.items.shape != (n_items, neighbors.items.shape[1]) or (
            neighbors.items.shape[1] < n
        ):
            raise ValueError(
                f"`neighbors` must have shape ({n_items}, >= {n}), got {neighbors.items.shape}"
            )
        nb = ItemNeighbors(neighbors.items[:, :n], neighbors.sims[:, :n])
        history = jnp.asarray(padding.pad_item_sets(u, i, n_users))
        return ranking.topk_from_score_fn(
            item_knn_score_fn(nb, history),
            n_users=n_users,
            n_items=n_items,
            k=k,
            exclude=exclude,
            user_chunk=knn_user_chunk(n_users, n_items, n),
        )
    weights = None
    if ranker.kind in ("rating", "liked"):
        if ratings is None:
            raise ValueError(f"`ratings` are required for the {ranker.describe()} ranker")
        weights = rating_weights(ratings, min_rating=ranker.min_rating)
    elif ranker.kind == "recency":
        if timestamps is None:
            raise ValueError(f"`timestamps` are required for the {ranker.describe()} ranker")
        weights = recency_weights(u, timestamps, n_users=n_users, half_life=ranker.half_life)
    prof = user_profiles(item_emb, u, i, n_users=n_users, weights=weights)
    return ranking.topk_from_embeddings(prof, item_emb, k=k, exclude=exclude, similarity="cosine")


class SemanticSelection(NamedTuple):
    """Result of :func:`select_semantic_ranker`.

    Attributes:
      ranker: the chosen :class:`SemanticRanker`.
      postprocess: the chosen :class:`~complemjax.semantic.PostProcess`.
      valid_score: its validation Recall@K.
      trials: one dict per (post-processing, ranker) tried: ``postprocess``, ``ranker``
        (labels), ``valid_recall`` (validation Recall@K), ``k``.
      item_emb: ``[n_items, d]`` the item embeddings post-processed by the choice.
    """

    ranker: SemanticRanker
    postprocess: PostProcess
    valid_score: float
    trials: list[dict[str, Any]]
    item_emb: jax.Array


def select_semantic_ranker(
    item_emb: ArrayLike,
    user_idx: ArrayLike,
    item_idx: ArrayLike,
    *,
    n_users: int,
    valid_sets: ArrayLike,
    ratings: ArrayLike | None = None,
    timestamps: ArrayLike | None = None,
    rankers: Sequence[SemanticRanker] = DEFAULT_RANKERS,
    postprocesses: Sequence[PostProcess] = DEFAULT_POSTPROCESSES,
    fit_mask: ArrayLike | None = None,
    k: int = 20,
) -> SemanticSelection:
    """Choose a semantic ranker × embedding post-processing on validation Recall@``k``.

    Every post-processing is fitted on the catalogue embeddings (rows in ``fit_mask``;
    no interaction or label enters the fit), then every ranker ranks all items for every
    user from the training history, excluding it, and is scored on ``valid_sets``.
    The best mean validation Recall@``k`` wins (first in the given order on ties). The
    test set is never seen here; evaluate the choice on test with :func:`semantic_topk`
    on ``selection.item_emb``.

    Args:
      item_emb: ``[n_items, d]`` raw (un-normalised) item embeddings of one encoder.
      user_idx: ``[n]`` int users of the training interactions.
      item_idx: ``[n]`` int items of the training interactions.
      n_users: number of users.
      valid_sets: ``[n_users, L]`` padded validation item sets.
      ratings: ``[n]`` ratings of the training interactions or None (needed by the
        ``"rating"``/``"liked"`` rankers, which are skipped and recorded as such without).
      timestamps: ``[n]`` times of the training interactions or None (needed by the
        ``"recency"`` ranker, skipped and recorded as such without).
      rankers: variants to try.
      postprocesses: post-processings to try.
      fit_mask: ``[n_items]`` bool, items with text (the post-processing fit rows; other
        rows stay zero).
      k: cut-off of the selection metric.

    Returns:
      :class:`SemanticSelection`.
    """
    item_emb = check_matrix("item_emb", item_emb)
    n_users = check_positive_int("n_users", n_users)
    u, i = _check_pairs(user_idx, item_idx, n_users, item_emb.shape[0])
    if not rankers or not postprocesses:
        raise ValueError("`rankers` and `postprocesses` must be non-empty")
    exclude = padding.pad_item_sets(u, i, n_users)
    n_max = max((r.n_neighbors for r in rankers if r.kind == "item_knn"), default=0)
    trials, best = [], None
    for pp in postprocesses:
        x = postprocess(item_emb, pp, mask=fit_mask)
        nb = item_neighbors(x, n_neighbors=n_max) if n_max else None
        for r in rankers:
            row = {"postprocess": pp.describe(), "ranker": r.describe(), "k": k}
            if (r.kind in ("rating", "liked") and ratings is None) or (
                r.kind == "recency" and timestamps is None
            ):
                trials.append({**row, "valid_recall": float("nan"), "skipped": "no input"})
                continue
            top = semantic_topk(
                r, x, u, i, n_users=n_users, k=k, exclude=exclude,
                ratings=ratings, timestamps=timestamps, neighbors=nb,
            )  # fmt: skip
            score = float(ranking.evaluate_topk(top.items, valid_sets, ks=(k,)).mean("recall")[0])
            trials.append({**row, "valid_recall": score})
            if best is None or score > best[0]:
                best = (score, r, pp, x)
    if best is None:
        raise ValueError("no ranker could run: pass `ratings`/`timestamps` or other `rankers`")
    return SemanticSelection(best[1], best[2], best[0], trials, best[3])


# ----------------------------------------------------------------------------- linear map
LinearMap = probes.LinearParams  # ``z = x W + b``: ``weight [d_x, d_y]``, ``bias [d_y]``


def fit_linear_map(
    x: ArrayLike, y: ArrayLike, *, l2: float, mask: ArrayLike | None = None
) -> probes.LinearParams:
    """Ridge map from semantic to collaborative item embeddings, via :class:`probes.Ridge`.

    ``W = (X̃ᵀX̃ + λ I)^+ X̃ᵀỸ`` and ``b = ȳ − x̄ W`` with ``X̃, Ỹ`` centred over the
    fitted rows (:func:`complemjax.probes.fit` with ``Ridge()``; ``λ = 0`` gives the
    minimum-norm least-squares map). Cost ``O(n d_x² + d_x³)``.

    Args:
      x: ``[n, d_x]`` semantic item embeddings.
      y: ``[n, d_y]`` collaborative item embeddings (same items, same order).
      l2: ridge weight ``λ >= 0`` (sum-of-squares scale).
      mask: optional ``[n]`` bool, rows used for fitting (e.g. warm items).

    Returns:
      :class:`complemjax.probes.LinearParams` (``weight``, ``bias``); apply with
      :func:`apply_linear_map`.
    """
    x = check_matrix("x", x)
    y = check_matrix("y", y)
    check_same_rows("x", x, "y", y)
    keep = _row_mask_np("mask", mask, x.shape[0])
    if int(keep.sum()) < 2:
        raise ValueError(f"`mask` selects {int(keep.sum())} rows; at least 2 are needed")
    if keep.all():
        xs, ys = x, y
    else:
        idx = jnp.asarray(np.flatnonzero(keep))
        xs, ys = x[idx], y[idx]
    key = jax.random.key(0)  # unused by the linear probe
    return probes.fit(key, probes.Ridge(), xs, ys, probes.ProbeHParams(l2=l2))


def _row_mask_np(name, mask, n):
    if mask is None:
        return np.ones(n, bool)
    m = np.asarray(mask)
    if m.dtype != bool or m.shape != (n,):
        raise ValueError(f"`{name}` must be a bool array of shape ({n},), got {m.dtype} {m.shape}")
    return m


def apply_linear_map(m: probes.LinearParams, x: ArrayLike) -> jax.Array:
    """``[n, d_x] → [n, d_y]``: ``x W + b``."""
    return probes.predict(probes.Ridge(), m, x)


def linear_map_onto_cf(
    sem_item_emb: ArrayLike,
    cf_item_emb: ArrayLike,
    user_idx: ArrayLike,
    item_idx: ArrayLike,
    *,
    n_users: int,
    l2: float,
    fit_mask: ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array, probes.LinearParams]:
    """Diagnostic: the semantic embeddings mapped linearly onto CF embeddings, as a ranker.

    ``z_i = x_i W + b`` (:func:`fit_linear_map`, fitted to trained CF item embeddings);
    ``e_u = mean_{i∈H_u} z_i`` (no normalisation); score ``e_u · z_i``. It measures how
    much of the CF geometry a linear read-out of the text embeddings recovers; it is
    not a semantic-only ranker (``W`` is learnt from interactions).

    Args:
      sem_item_emb: ``[n_items, d_x]`` semantic item embeddings.
      cf_item_emb: ``[n_items, d_y]`` collaborative item embeddings (e.g. BPR).
      user_idx: ``[n]`` int users of the history interactions (training split).
      item_idx: ``[n]`` int items of those interactions.
      n_users: number of users.
      l2: ridge weight of the map.
      fit_mask: ``[n_items]`` bool, items whose CF embedding is trained (default all).

    Returns:
      ``(user_emb [n_users, d_y], item_emb [n_items, d_y], map)`` for
      ``ranking.topk_from_embeddings``.
    """
    m = fit_linear_map(sem_item_emb, cf_item_emb, l2=l2, mask=fit_mask)
    z = apply_linear_map(m, sem_item_emb)
    prof = user_profiles(z, user_idx, item_idx, n_users=n_users, normalize=False)
    return prof, z, m

"""One training and selection protocol for every learned recommendation model.

Every model family (BPR-MF, LightGCN, AlphaRec, RLMRec, ...) is a frozen dataclass that
implements :class:`ModelFamily`: ``init`` / ``train_epochs`` / ``embeddings``, pure and
vmappable over ``(state, hparams)``. The protocol is then identical for all of them:

* :func:`select` trains the G hyper-parameter configurations of a grid (a stacked
  ``*HParams`` pytree) from one key in ONE vmapped program, evaluates validation
  Recall@K every ``eval_every`` epochs (full-catalogue ranking with the training items
  excluded), keeps each configuration's best epoch, stops when every configuration has
  gone ``patience`` evaluations without improving (or at ``max_epochs``), and returns a
  :class:`Selection` with the chosen configuration, its epoch, its validation score, the
  training time and edge-of-grid flags.
* :func:`retrain` trains the chosen configuration on another seed (another key and/or
  another split) with its own epoch choice on that seed's validation set, so a study runs
  G + S trainings, not G × S.

Neither function receives test data: their only held-out input is ``valid_sets``. That is
the structural guarantee that nothing is chosen on test (tested in
``tests/test_models_protocol.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from complemjax._checks import check_positive_int
from complemjax.data import padding
from complemjax.models._pairs import check_item_sets
from complemjax.models.graph import Graph, build_graph

__all__ = [
    "Fitted",
    "ModelFamily",
    "Selection",
    "TrainData",
    "make_train_data",
    "retrain",
    "select",
    "stack_hparams",
]


class TrainData(NamedTuple):
    """Training interactions of one split in every form the models need (a pytree).

    Attributes:
      user_idx: ``[E]`` int32 user of each training interaction (padding allowed).
      item_idx: ``[E]`` int32 item of each training interaction.
      mask: ``[E]`` bool, which entries are real interactions.
      graph: :class:`~complemjax.models.graph.Graph` of the real interactions.
      history: ``[n_users, L]`` int32 training items of each user ascending, ``-1`` pad.
      item_features: ``[n_items, D]`` float semantic (LLM) item embeddings, or None.
    """

    user_idx: jax.Array
    item_idx: jax.Array
    mask: jax.Array
    graph: Graph
    history: jax.Array
    item_features: jax.Array | None

    @property
    def n_users(self) -> int:
        """Number of users (graph rows)."""
        return self.graph.n_users

    @property
    def n_items(self) -> int:
        """Number of items (graph columns)."""
        return self.graph.n_items


def make_train_data(
    user_idx: ArrayLike,
    item_idx: ArrayLike,
    *,
    n_users: int,
    n_items: int,
    item_features: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    history_len: int | None = None,
) -> TrainData:
    """Build :class:`TrainData` once per split (host-side; validates everything).

    Args:
      user_idx: ``[E]`` int training users (each real (user, item) pair once).
      item_idx: ``[E]`` int training items.
      n_users: number of users.
      n_items: number of items.
      item_features: optional ``[n_items, D]`` float item embeddings (finite).
      mask: optional ``[E]`` bool, real entries of padded arrays (default all real).
        Masked entries are dropped everywhere: graph weight 0, never in ``history``,
        never sampled as positives by the model families.
      history_len: width L of ``history`` (default the longest history); give a common
        value to stack several splits (e.g. a density grid) for ``jax.vmap``.

    Returns:
      :class:`TrainData`.
    """
    from complemjax._checks import check_matrix

    graph = build_graph(user_idx, item_idx, n_users=n_users, n_items=n_items, mask=mask)
    u = np.asarray(user_idx).astype(np.int32)
    i = np.asarray(item_idx).astype(np.int32)
    m = np.ones(u.shape, bool) if mask is None else np.asarray(mask).astype(bool)
    history = jnp.asarray(
        padding.pad_item_sets(u[m], i[m], n_users, n_items=n_items, max_len=history_len)
    )
    feats = None
    if item_features is not None:
        feats = check_matrix("item_features", item_features)
        if feats.shape[0] != n_items:
            raise ValueError(
                f"`item_features` must have n_items={n_items} rows, got shape {feats.shape}"
            )
    # padded entries point at row 0 so that gathers stay in range; `mask` zeroes them
    u = np.where(m, u, 0)
    i = np.where(m, i, 0)
    return TrainData(jnp.asarray(u), jnp.asarray(i), jnp.asarray(m), graph, history, feats)


class ModelFamily(Protocol):
    """What a model family implements (a frozen, hashable dataclass of static config).

    ``init`` and ``train_epochs`` must be pure and vmappable over ``(state, hparams)``;
    ``embeddings`` returns ``(user_emb [U, d], item_emb [I, d])`` with score
    ``user_emb @ item_emb.T`` (cosine models return unit-norm rows).
    """

    name: str

    def init(self, key: jax.Array, data: TrainData, hparams: Any) -> Any:
        """Initial training state (parameters, optimiser state, key) for ``data``."""

    def train_epochs(
        self, state: Any, data: TrainData, hparams: Any, n_epochs: int
    ) -> tuple[Any, jax.Array]:
        """Run ``n_epochs`` training epochs; returns ``(state, losses [n_epochs])``."""

    def embeddings(self, state: Any, data: TrainData, hparams: Any) -> tuple[jax.Array, jax.Array]:
        """``(user_emb [U, d], item_emb [I, d])``, scored by ``user_emb @ item_emb.T``."""

    # optional: ``check_hparams(grid)`` raises ValueError naming a bad field (called by
    # select/retrain before anything is compiled)


def stack_hparams(configs: Sequence[Any]) -> Any:
    """Stack a list of ``*HParams`` into one grid pytree with a leading axis G."""
    configs = list(configs)
    if not configs:
        raise ValueError("`configs` is empty: need at least one hyper-parameter setting")
    return jax.tree.map(lambda *x: jnp.stack([jnp.asarray(v) for v in x]), *configs)


class Selection(NamedTuple):
    """Outcome of :func:`select` (one row of the report's selection table).

    Attributes:
      method: ``family.name``.
      n_configs: G, configurations tried.
      best_index: index of the chosen configuration in the grid.
      hparams: the chosen configuration (scalars), same type as the grid.
      chosen: ``{field: value}`` of the chosen configuration (for tables).
      best_epoch: epochs of the chosen checkpoint.
      valid_score: its validation Recall@K.
      train_seconds: wall time of the whole selection (training + validation).
      scores: ``[G, C]`` validation Recall@K per configuration and checkpoint (NaN
        after a configuration stopped or after the run stopped).
      epochs: ``[C]`` epochs at each checkpoint.
      best_epochs: ``[G]`` best epoch of each configuration.
      best_scores: ``[G]`` best validation score of each configuration.
      edge: human-readable flags of a choice at the edge of the grid (best epoch ==
        ``max_epochs``; chosen value at the min/max of an ordered hyper-parameter axis).
      state: training state of the chosen configuration at its best epoch.
      user_emb, item_emb: embeddings of the chosen model at its best epoch.
      k: the K of Recall@K.
      losses: ``[G, epochs run]`` training loss of each epoch (``train_epochs``' output).
    """

    method: str
    n_configs: int
    best_index: int
    hparams: Any
    chosen: dict
    best_epoch: int
    valid_score: float
    train_seconds: float
    scores: np.ndarray
    epochs: np.ndarray
    best_epochs: np.ndarray
    best_scores: np.ndarray
    edge: tuple[str, ...]
    state: Any
    user_emb: jax.Array
    item_emb: jax.Array
    k: int
    losses: np.ndarray

    def row(self) -> dict:
        """``{method, configs, chosen, epochs, valid_recall, train_s, edge}`` for a table."""
        return {
            "method": self.method,
            "configs": self.n_configs,
            "chosen": ", ".join(f"{k}={_fmt(v)}" for k, v in self.chosen.items()),
            "epochs": self.best_epoch,
            f"valid_recall@{self.k}": self.valid_score,
            "train_s": self.train_seconds,
            "edge": "; ".join(self.edge),
        }


class Fitted(NamedTuple):
    """Outcome of :func:`retrain`.

    One configuration on one seed, epoch chosen on its validation set (fields as in
    :class:`Selection`).
    """

    method: str
    hparams: Any
    best_epoch: int
    valid_score: float
    train_seconds: float
    scores: np.ndarray
    epochs: np.ndarray
    edge: tuple[str, ...]
    state: Any
    user_emb: jax.Array
    item_emb: jax.Array
    k: int


def _fmt(v) -> str:
    v = float(v)
    return f"{int(v)}" if v.is_integer() and abs(v) < 1e6 else f"{v:.3g}"


@functools.partial(jax.jit, static_argnames=("family",))
def _init_grid(family, key, data, grid):
    return jax.vmap(family.init, in_axes=(None, None, 0))(key, data, grid)


@functools.partial(jax.jit, static_argnames=("family", "n_epochs"))
def _train_grid(family, state, data, grid, n_epochs):
    return jax.vmap(lambda s, h: family.train_epochs(s, data, h, n_epochs))(state, grid)


@functools.partial(jax.jit, static_argnames=("family",))
def _embed_grid(family, state, data, grid):
    return jax.vmap(lambda s, h: family.embeddings(s, data, h))(state, grid)


def _hparam_fields(grid) -> dict[str, np.ndarray]:
    if dataclasses.is_dataclass(grid):
        names = [f.name for f in dataclasses.fields(grid)]
        return {n: np.asarray(getattr(grid, n)) for n in names}
    leaves, _ = jax.tree.flatten(grid)
    return {f"h{j}": np.asarray(x) for j, x in enumerate(leaves)}


def _check_sets(valid_sets, exclude_sets, n_users, n_items):
    valid = check_item_sets("valid_sets", valid_sets, n_users, n_items)
    excl = check_item_sets("exclude_sets", exclude_sets, n_users, n_items)
    v, e = np.asarray(valid).astype(np.int64), np.asarray(excl).astype(np.int64)
    if not (v >= 0).any():
        raise ValueError("`valid_sets` holds no validation items: nothing to select on")
    # a validation item that is also excluded can never be hit: a wrong split
    rows_v = np.broadcast_to(np.arange(n_users)[:, None], v.shape)
    rows_e = np.broadcast_to(np.arange(n_users)[:, None], e.shape)
    kv = (rows_v * n_items + v)[v >= 0]
    ke = (rows_e * n_items + e)[e >= 0]
    both = np.isin(kv, ke)
    if both.any():
        u = int(kv[both][0] // n_items)
        raise ValueError(
            f"`valid_sets` and `exclude_sets` share {int(both.sum())} items (first at user "
            f"{u}): validation items must not be training items"
        )
    return valid, excl


def _run(family, key, data, grid, *, valid_sets, exclude_sets, max_epochs, eval_every, patience, k):
    from complemjax import ranking

    if not isinstance(data, TrainData):
        raise ValueError(f"`data` must be a TrainData (make_train_data), got {type(data).__name__}")
    check = getattr(family, "check_hparams", None)
    if check is not None:
        check(grid)
    max_epochs = check_positive_int("max_epochs", max_epochs)
    eval_every = check_positive_int("eval_every", eval_every)
    patience = check_positive_int("patience", patience)
    k = check_positive_int("k", k, maximum=data.n_items)
    if max_epochs % eval_every:
        raise ValueError(f"`eval_every`={eval_every} must divide `max_epochs`={max_epochs}")
    valid, excl = _check_sets(valid_sets, exclude_sets, data.n_users, data.n_items)
    fields = _hparam_fields(grid)
    sizes = {a.shape[0] if a.ndim else None for a in fields.values()}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            "every hyper-parameter of the grid needs the same leading axis G, got shapes "
            + str({n: a.shape for n, a in fields.items()})
        )
    n_grid = sizes.pop()
    for n, a in fields.items():
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise ValueError(f"`hparams.{n}` has non-finite values: {a}")

    t0 = time.perf_counter()
    state = _init_grid(family, key, data, grid)
    n_checks = max_epochs // eval_every
    scores = np.full((n_grid, n_checks), np.nan)
    best_scores = np.full(n_grid, -np.inf)
    best_epochs = np.zeros(n_grid, np.int64)
    since = np.zeros(n_grid, np.int64)
    active = np.ones(n_grid, bool)
    win = (-np.inf, -1, -1)
    win_state = win_emb = None
    losses = []
    for c in range(n_checks):
        state, loss_c = _train_grid(family, state, data, grid, eval_every)
        losses.append(np.asarray(loss_c).reshape(n_grid, -1))
        ue, ie = _embed_grid(family, state, data, grid)
        for g in np.flatnonzero(active):
            ug, ig = ue[g], ie[g]
            if not (bool(jnp.isfinite(ug).all()) and bool(jnp.isfinite(ig).all())):
                active[g] = False  # diverged: its best so far stands
                continue
            top = ranking.topk_from_embeddings(ug, ig, k=k, exclude=excl)
            rec = float(ranking.evaluate_topk(top.items, valid, ks=(k,)).mean("recall")[0])
            scores[g, c] = rec
            if rec > best_scores[g]:
                best_scores[g], best_epochs[g], since[g] = rec, (c + 1) * eval_every, 0
                if rec > win[0] or (rec == win[0] and g < win[1]):
                    win = (rec, int(g), c)
                    win_state = jax.tree.map(lambda x, g=g: x[g], state)
                    win_emb = (ug, ig)
            else:
                since[g] += 1
                if since[g] >= patience:
                    active[g] = False
        if not active.any():
            break
    jax.block_until_ready(win_emb)
    seconds = time.perf_counter() - t0
    if win_state is None:
        raise ValueError("validation Recall@K is NaN for every configuration (diverged?)")
    g_best = win[1]
    chosen = {n: a[g_best].item() for n, a in fields.items()}
    edge = []
    if best_epochs[g_best] == max_epochs:
        edge.append(f"best epoch = max_epochs ({max_epochs}): widen the epoch budget")
    for n, a in fields.items():
        distinct = np.unique(a)
        if distinct.size > 1 and np.issubdtype(a.dtype, np.number):
            if a[g_best] == distinct[0]:
                edge.append(f"{n}={_fmt(a[g_best])} is the smallest value tried")
            elif a[g_best] == distinct[-1]:
                edge.append(f"{n}={_fmt(a[g_best])} is the largest value tried")
    chosen_hp = jax.tree.map(lambda x: x[g_best], grid)
    return dict(
        n_grid=n_grid, g_best=g_best, hparams=chosen_hp, chosen=chosen,
        best_epoch=int(best_epochs[g_best]), valid_score=float(best_scores[g_best]),
        seconds=seconds, scores=scores, epochs=np.arange(1, n_checks + 1) * eval_every,
        best_epochs=best_epochs, best_scores=best_scores, edge=tuple(edge), state=win_state,
        emb=win_emb, k=k, losses=np.concatenate(losses, axis=1),
    )  # fmt: skip


def select(
    family: ModelFamily,
    key: jax.Array,
    data: TrainData,
    hparams_grid: Any,
    *,
    valid_sets: ArrayLike,
    exclude_sets: ArrayLike,
    max_epochs: int,
    eval_every: int,
    patience: int,
    k: int = 20,
) -> Selection:
    """Select a configuration and its epoch on validation Recall@K (one vmapped program).

    All G configurations start from the same ``key`` (same initialisation when the
    family's init does not depend on the hyper-parameters) and are trained together by
    ``jax.vmap(family.train_epochs)``. After every ``eval_every`` epochs each still
    active configuration ranks the whole catalogue for every user (``exclude_sets``
    removed) and its validation Recall@K::

        Recall@K = mean_u |top-K(u) ∩ V_u| / min(K, |V_u|)   over users with V_u ≠ ∅

    is recorded (:func:`complemjax.ranking.evaluate_topk`). A configuration stops after
    ``patience`` evaluations without improving its best; the run stops when every
    configuration has stopped or at ``max_epochs``. The winner is the configuration
    with the highest best score (ties: lower grid index), at its best epoch.

    Args:
      family: a :class:`ModelFamily` (static, hashable).
      key: ``jax.random.key`` for initialisation and sampling.
      data: :class:`TrainData` of the training split.
      hparams_grid: the family's ``*HParams`` with ``[G]`` leaves
        (:func:`stack_hparams`).
      valid_sets: ``[n_users, Lv]`` padded validation items (``-1`` pad).
      exclude_sets: ``[n_users, Le]`` padded items never recommended (the training
        items, usually ``data.history``); must not contain validation items.
      max_epochs: most epochs per configuration (a multiple of ``eval_every``).
      eval_every: epochs between validation evaluations.
      patience: evaluations without improvement before a configuration stops.
      k: cut-off K of Recall@K.

    Returns:
      :class:`Selection`.
    """
    r = _run(family, key, data, hparams_grid, valid_sets=valid_sets,
             exclude_sets=exclude_sets, max_epochs=max_epochs, eval_every=eval_every,
             patience=patience, k=k)  # fmt: skip
    return Selection(
        method=family.name, n_configs=r["n_grid"], best_index=r["g_best"],
        hparams=r["hparams"], chosen=r["chosen"], best_epoch=r["best_epoch"],
        valid_score=r["valid_score"], train_seconds=r["seconds"], scores=r["scores"],
        epochs=r["epochs"], best_epochs=r["best_epochs"], best_scores=r["best_scores"],
        edge=r["edge"], state=r["state"], user_emb=r["emb"][0], item_emb=r["emb"][1], k=r["k"],
        losses=r["losses"],
    )  # fmt: skip


def retrain(
    family: ModelFamily,
    key: jax.Array,
    data: TrainData,
    hparams: Any,
    *,
    valid_sets: ArrayLike,
    exclude_sets: ArrayLike,
    max_epochs: int,
    eval_every: int,
    patience: int,
    k: int = 20,
) -> Fitted:
    """Train one chosen configuration on another seed, epochs chosen on its validation.

    The same loop as :func:`select` with a grid of one (so the same early stopping),
    for a new ``key`` and/or a new split's ``data``/``valid_sets``.

    Args:
      family: a :class:`ModelFamily` (static, hashable).
      key: ``jax.random.key`` for initialisation and sampling.
      data: :class:`TrainData` of the training split.
      valid_sets: ``[n_users, Lv]`` padded validation items (``-1`` pad).
      exclude_sets: ``[n_users, Le]`` padded items never recommended (the training
        items, usually ``data.history``); must not contain validation items.
      max_epochs: most epochs (a multiple of ``eval_every``).
      eval_every: epochs between validation evaluations.
      patience: evaluations without improvement before training stops.
      k: cut-off K of Recall@K.
      hparams: one ``*HParams`` with scalar leaves (e.g. ``Selection.hparams``).

    Returns:
      :class:`Fitted`.
    """
    grid = jax.tree.map(lambda x: jnp.asarray(x)[None], hparams)
    r = _run(family, key, data, grid, valid_sets=valid_sets, exclude_sets=exclude_sets,
             max_epochs=max_epochs, eval_every=eval_every, patience=patience, k=k)  # fmt: skip
    return Fitted(
        method=family.name, hparams=hparams, best_epoch=r["best_epoch"],
        valid_score=r["valid_score"], train_seconds=r["seconds"], scores=r["scores"][0],
        epochs=r["epochs"], edge=r["edge"],
        state=r["state"], user_emb=r["emb"][0], item_emb=r["emb"][1], k=r["k"],
    )  # fmt: skip

"""Collaborative item (and user) embeddings from interactions: BPR-MF, EASE, popularity.

* :func:`fit_bpr` — matrix factorisation trained with the BPR pairwise loss
  (Rendle et al. 2009) by minibatch Adam or SGD (optax), one ``jax.jit``-compiled
  ``lax.scan`` over epochs and minibatches, negatives sampled with ``jax.random``.
  A pure function of a key, the interactions and :class:`BPRHParams`, so
  ``jax.vmap`` over keys and/or hyper-parameters trains many models in one program.
* :func:`select_bpr` — picks ``l2``/``lr`` (a vmapped grid) and the number of epochs
  by Recall@K on a validation split.
* :func:`fit_ease` — EASE, the closed-form item-item model of Steck (2019).
* :func:`popularity` / :func:`popularity_embeddings` — the most-popular baseline.

Scores are consumed by :mod:`complemjax.ranking` (``topk_from_embeddings`` for
factor models and popularity, ``topk_from_score_fn`` with :func:`ease_score_fn`).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from complemjax._checks import check_finite, check_positive_int

__all__ = [
    "BPRConfig",
    "BPRHParams",
    "BPRParams",
    "BPRResult",
    "BPRSelection",
    "BPRState",
    "bpr_init",
    "bpr_train_epochs",
    "ease_score_fn",
    "fit_bpr",
    "fit_ease",
    "popularity",
    "popularity_embeddings",
    "select_bpr",
]


# ----------------------------------------------------------------------------- BPR
@dataclasses.dataclass(frozen=True)
class BPRConfig:
    """Static BPR-MF configuration (fixes shapes and control flow).

    Attributes:
      dim: embedding dimension d.
      n_epochs: passes over the training interactions.
      batch_size: positives per minibatch B; each epoch runs ``n // B`` minibatches over
        a fresh random permutation (the ``n mod B`` left-over positives of an epoch are
        skipped that epoch; ``B`` is capped at ``n``).
      optimizer: ``"adam"`` (optax ``scale_by_adam`` on the full tables, every step) or
        ``"sgd"`` (plain minibatch SGD, applied as a scatter-add to the sampled rows only:
        the same update as a dense SGD step, at a cost independent of the table sizes);
        both scaled by ``-hparams.lr``.
      init_scale: embeddings start as ``init_scale * N(0, 1)``.
      reject_positives: resample a negative that is a training positive of the user (up
        to ``n_neg_retries`` times; needs ``n_users * n_items < 2**31``).
      n_neg_retries: resampling rounds for ``reject_positives``.
    """

    dim: int = 64
    n_epochs: int = 30
    batch_size: int = 1024
    optimizer: str = "adam"
    init_scale: float = 0.1
    reject_positives: bool = True
    n_neg_retries: int = 4

    def __post_init__(self):
        check_positive_int("dim", self.dim)
        check_positive_int("n_epochs", self.n_epochs)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("n_neg_retries", self.n_neg_retries, minimum=0)
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"`optimizer` must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not self.init_scale > 0:
            raise ValueError(f"`init_scale` must be > 0, got {self.init_scale}")


@flax.struct.dataclass
class BPRHParams:
    """Dynamic BPR hyper-parameters (arrays; add a leading axis to vmap a grid).

    Attributes:
      lr: learning rate (step size after the Adam/SGD direction).
      l2: weight of ``||p_u||² + ||q_i||² + ||q_j||²`` per sampled triple.
    """

    lr: jax.Array | float = 1e-3
    l2: jax.Array | float = 1e-4


class BPRParams(NamedTuple):
    """Factor model parameters.

    Attributes:
      user_emb: ``[n_users, d]`` user factors p_u.
      item_emb: ``[n_items, d]`` item factors q_i.
    """

    user_emb: jax.Array
    item_emb: jax.Array


class BPRState(NamedTuple):
    """Training state carried across calls of :func:`bpr_train_epochs`.

    Attributes:
      params: :class:`BPRParams`.
      opt_state: optax state of the direction transform.
      key: PRNG key for the next epoch.
      epoch: int32 scalar, epochs done.
    """

    params: BPRParams
    opt_state: optax.OptState
    key: jax.Array
    epoch: jax.Array


class BPRResult(NamedTuple):
    """Output of :func:`fit_bpr`.

    Attributes:
      user_emb: ``[n_users, d]``.
      item_emb: ``[n_items, d]``.
      losses: ``[n_epochs]`` mean minibatch loss (BPR + l2 term) of each epoch.
    """

    user_emb: jax.Array
    item_emb: jax.Array
    losses: jax.Array


def _direction(config: BPRConfig) -> optax.GradientTransformation:
    return optax.scale_by_adam() if config.optimizer == "adam" else optax.identity()


def bpr_init(key, *, n_users: int, n_items: int, config: BPRConfig) -> BPRState:
    """Initial :class:`BPRState`: Gaussian factors ``init_scale * N(0, 1)``.

    Args:
      key: ``jax.random.key``.
      n_users, n_items: table sizes.
      config: :class:`BPRConfig`.
    """
    k_u, k_i, k_next = jax.random.split(key, 3)
    dtype = jnp.zeros(()).dtype  # float32, or float64 under x64
    params = BPRParams(
        user_emb=config.init_scale * jax.random.normal(k_u, (n_users, config.dim), dtype),
        item_emb=config.init_scale * jax.random.normal(k_i, (n_items, config.dim), dtype),
    )
    return BPRState(params, _direction(config).init(params), k_next, jnp.zeros((), jnp.int32))


def _bpr_loss(params: BPRParams, u, i, j, l2):
    return _bpr_rows_loss((params.user_emb[u], params.item_emb[i], params.item_emb[j]), l2)


def _bpr_rows_loss(rows, l2):
    p, qi, qj = rows
    x = jnp.sum(p * (qi - qj), axis=-1)
    reg = jnp.sum(p * p, -1) + jnp.sum(qi * qi, -1) + jnp.sum(qj * qj, -1)
    return jnp.mean(-jax.nn.log_sigmoid(x) + l2 * reg)


def _is_positive(sorted_keys, u, j, n_items):
    q = u * n_items + j
    pos = jnp.clip(jnp.searchsorted(sorted_keys, q), 0, sorted_keys.shape[0] - 1)
    return sorted_keys[pos] == q


@jax.jit(static_argnames=("n_items", "config", "n_epochs"))
def _train_epochs(state: BPRState, user_idx, item_idx, hparams, n_items, config, n_epochs):
    n = user_idx.shape[0]
    bsz = min(config.batch_size, n)
    n_batches = n // bsz
    tx = _direction(config)
    lr = jnp.asarray(hparams.lr)
    l2 = jnp.asarray(hparams.l2)
    user_idx = user_idx.astype(jnp.int32)
    item_idx = item_idx.astype(jnp.int32)
    sorted_keys = jnp.sort(user_idx * n_items + item_idx) if config.reject_positives else None

    def step(carry, batch):
        params, opt_state, key = carry
        key, k_neg = jax.random.split(key)
        u = user_idx[batch]
        i = item_idx[batch]
        keys = jax.random.split(k_neg, config.n_neg_retries + 1)
        j = jax.random.randint(keys[0], (bsz,), 0, n_items, dtype=jnp.int32)
        if config.reject_positives:
            for r in range(config.n_neg_retries):
                resample = jax.random.randint(keys[r + 1], (bsz,), 0, n_items, jnp.int32)
                j = jnp.where(_is_positive(sorted_keys, u, j, n_items), resample, j)
        if config.optimizer == "sgd":
            # the gradient is non-zero only on the gathered rows: update them in place
            rows = (params.user_emb[u], params.item_emb[i], params.item_emb[j])
            loss, (g_p, g_i, g_j) = jax.value_and_grad(_bpr_rows_loss)(rows, l2)
            step_ = lr.astype(g_p.dtype)
            params = BPRParams(
                params.user_emb.at[u].add(-step_ * g_p),
                params.item_emb.at[i].add(-step_ * g_i).at[j].add(-step_ * g_j),
            )
            return (params, opt_state, key), loss
        loss, grads = jax.value_and_grad(_bpr_loss)(params, u, i, j, l2)
        direction, opt_state = tx.update(grads, opt_state, params)
        params = jax.tree.map(lambda p, d: p - lr.astype(p.dtype) * d, params, direction)
        return (params, opt_state, key), loss

    def epoch(carry, _):
        params, opt_state, key = carry
        key, k_perm = jax.random.split(key)
        perm = jax.random.permutation(k_perm, n)[: n_batches * bsz].reshape(n_batches, bsz)
        (params, opt_state, key), losses = lax.scan(step, (params, opt_state, key), perm)
        return (params, opt_state, key), jnp.mean(losses)

    (params, opt_state, key), losses = lax.scan(
        epoch, (state.params, state.opt_state, state.key), None, length=n_epochs
    )
    return BPRState(params, opt_state, key, state.epoch + n_epochs), losses


def _check_pairs(user_idx, item_idx, n_users, n_items):
    n_users = check_positive_int("n_users", n_users)
    n_items = check_positive_int("n_items", n_items, minimum=2)
    u = jnp.asarray(user_idx)
    i = jnp.asarray(item_idx)
    for name, a in (("user_idx", u), ("item_idx", i)):
        if not jnp.issubdtype(a.dtype, jnp.integer) or a.ndim != 1:
            raise ValueError(f"`{name}` must be a 1-D integer array, got {a.dtype} {a.shape}")
    if u.shape != i.shape:
        raise ValueError(f"`user_idx` and `item_idx` must match, got {u.shape} and {i.shape}")
    if u.shape[0] == 0:
        raise ValueError("`user_idx` is empty: no training interactions")
    if not isinstance(u, jax.core.Tracer):
        if int(u.min()) < 0 or int(u.max()) >= n_users:
            raise ValueError(f"`user_idx` must lie in [0, {n_users})")
    if not isinstance(i, jax.core.Tracer):
        if int(i.min()) < 0 or int(i.max()) >= n_items:
            raise ValueError(f"`item_idx` must lie in [0, {n_items})")
    return u.astype(jnp.int32), i.astype(jnp.int32), n_users, n_items


def _check_config(config, n_users, n_items):
    if not isinstance(config, BPRConfig):
        raise ValueError(f"`config` must be a BPRConfig, got {type(config).__name__}")
    if config.reject_positives and n_users * n_items >= 2**31:
        raise ValueError(
            f"`config.reject_positives` needs n_users * n_items < 2**31, got {n_users}*{n_items}; "
            "set reject_positives=False (negatives may then be positives)"
        )


def bpr_train_epochs(
    state: BPRState,
    user_idx,
    item_idx,
    hparams: BPRHParams,
    *,
    n_items: int,
    config: BPRConfig,
    n_epochs: int,
) -> tuple[BPRState, jax.Array]:
    """Run ``n_epochs`` BPR epochs from ``state`` (resumable training; vmappable).

    See :func:`fit_bpr` for the objective. Returns the new state and ``[n_epochs]``
    mean minibatch losses.
    """
    n_epochs = check_positive_int("n_epochs", n_epochs)
    n_users = state.params.user_emb.shape[-2]
    u, i, _, n_items = _check_pairs(user_idx, item_idx, n_users, n_items)
    _check_config(config, n_users, n_items)
    return _train_epochs(state, u, i, hparams, n_items, config, n_epochs)


def fit_bpr(
    key,
    user_idx,
    item_idx,
    *,
    n_users: int,
    n_items: int,
    config: BPRConfig,
    hparams: BPRHParams,
) -> BPRResult:
    """Fit BPR matrix factorisation on implicit interactions.

    Minimises, over minibatches of B observed pairs (u, i) with one uniformly sampled
    negative item j per pair (resampled while (u, j) is a training positive, see
    :class:`BPRConfig`)::

        L = mean_b [ -log σ(p_u·q_i − p_u·q_j) + l2 (‖p_u‖² + ‖q_i‖² + ‖q_j‖²) ]

    with Adam or SGD at step size ``hparams.lr``. Score: ``s(u, i) = p_u · q_i``.

    Pure in ``(key, user_idx, item_idx, hparams)``; vmap over keys or over a stacked
    :class:`BPRHParams` to train many models in one compiled program.

    Args:
      key: ``jax.random.key`` (initialisation, permutations, negatives).
      user_idx: ``[n]`` int training user indices.
      item_idx: ``[n]`` int training item indices (each pair once).
      n_users, n_items: table sizes (static).
      config: :class:`BPRConfig` (static).
      hparams: :class:`BPRHParams` (dynamic).

    Returns:
      :class:`BPRResult` with ``user_emb [n_users, d]``, ``item_emb [n_items, d]``,
      ``losses [n_epochs]``.

    Example:
      >>> res = fit_bpr(jax.random.key(0), u, i, n_users=U, n_items=I,
      ...               config=BPRConfig(dim=32), hparams=BPRHParams(lr=1e-2, l2=1e-4))
      ... # doctest: +SKIP

    References:
      Rendle, Freudenthaler, Gantner, Schmidt-Thieme. BPR: Bayesian Personalized Ranking
      from Implicit Feedback. UAI 2009.
    """
    u, i, n_users, n_items = _check_pairs(user_idx, item_idx, n_users, n_items)
    _check_config(config, n_users, n_items)
    state = bpr_init(key, n_users=n_users, n_items=n_items, config=config)
    state, losses = _train_epochs(state, u, i, hparams, n_items, config, config.n_epochs)
    return BPRResult(state.params.user_emb, state.params.item_emb, losses)


class BPRSelection(NamedTuple):
    """Output of :func:`select_bpr`.

    Attributes:
      best: index of the chosen grid point.
      best_epoch: number of epochs of the chosen checkpoint.
      hparams: the chosen :class:`BPRHParams` (scalars).
      recall: ``[G, C]`` validation Recall@K of grid point g after ``epochs[c]`` epochs.
      epochs: ``[C]`` epochs at each checkpoint.
      user_emb, item_emb: embeddings of the chosen model at its chosen epoch.
      losses: ``[G, C * eval_every]`` training losses.
      k: the K of Recall@K.
    """

    best: int
    best_epoch: int
    hparams: BPRHParams
    recall: np.ndarray
    epochs: np.ndarray
    user_emb: jax.Array
    item_emb: jax.Array
    losses: np.ndarray
    k: int


def select_bpr(
    key,
    user_idx,
    item_idx,
    valid_sets,
    *,
    n_users: int,
    n_items: int,
    config: BPRConfig,
    grid: BPRHParams,
    eval_every: int = 5,
    k: int = 20,
) -> BPRSelection:
    """Choose BPR ``lr``/``l2`` and the number of epochs by validation Recall@K.

    Every grid point (a :class:`BPRHParams` whose fields share a leading axis G) is
    trained from the same initialisation in one vmapped program for ``config.n_epochs``
    epochs; every ``eval_every`` epochs each model ranks all items for every user
    (training items excluded, :func:`complemjax.ranking.topk_from_embeddings`) and
    Recall@K on ``valid_sets`` is recorded. The (grid point, epoch) with the highest
    recall wins (ties: the earlier epoch, then the lower grid index).

    Args:
      key: ``jax.random.key``.
      user_idx, item_idx: ``[n]`` training interactions.
      valid_sets: ``[n_users, L]`` padded validation item sets (``-1`` padding).
      n_users, n_items: table sizes.
      config: :class:`BPRConfig`; ``n_epochs`` is the maximum number of epochs.
      grid: :class:`BPRHParams` with ``[G]`` arrays.
      eval_every: epochs between validation checkpoints (must divide ``n_epochs``).
      k: cut-off of Recall@K.

    Returns:
      :class:`BPRSelection`.

    Example:
      >>> grid = BPRHParams(lr=jnp.array([1e-3, 1e-3, 1e-2]), l2=jnp.array([0., 1e-4, 1e-4]))
      >>> sel = select_bpr(key, u, i, split_valid_sets, n_users=U, n_items=I,
      ...                  config=BPRConfig(n_epochs=40), grid=grid)  # doctest: +SKIP
    """
    from complemjax import ranking

    u, i, n_users, n_items = _check_pairs(user_idx, item_idx, n_users, n_items)
    _check_config(config, n_users, n_items)
    eval_every = check_positive_int("eval_every", eval_every)
    if config.n_epochs % eval_every:
        raise ValueError(
            f"`eval_every`={eval_every} must divide `config.n_epochs`={config.n_epochs}"
        )
    lr = jnp.atleast_1d(jnp.asarray(grid.lr))
    l2 = jnp.atleast_1d(jnp.asarray(grid.l2))
    if lr.ndim != 1 or lr.shape != l2.shape:
        raise ValueError(
            f"`grid.lr` and `grid.l2` must be 1-D of equal length, got {lr.shape}, {l2.shape}"
        )
    check_finite("grid.lr", lr)
    check_finite("grid.l2", l2)
    n_grid = lr.shape[0]
    grid = BPRHParams(lr=lr, l2=l2)
    exclude = ranking.pad_item_sets(np.asarray(u), np.asarray(i), n_users)

    state0 = bpr_init(key, n_users=n_users, n_items=n_items, config=config)
    state = jax.tree.map(lambda x: jnp.broadcast_to(x, (n_grid, *x.shape)), state0)
    train = jax.vmap(
        lambda s, h: _train_epochs(s, u, i, h, n_items, config, eval_every), in_axes=(0, 0)
    )
    n_checks = config.n_epochs // eval_every
    recall = np.zeros((n_grid, n_checks))
    losses = []
    best = (-np.inf, 0, 0)
    best_emb = None
    for c in range(n_checks):
        state, loss_c = train(state, grid)
        losses.append(np.asarray(loss_c))
        for g in range(n_grid):
            top = ranking.topk_from_embeddings(
                state.params.user_emb[g], state.params.item_emb[g], k=k, exclude=exclude
            )
            rec = float(ranking.evaluate_topk(top.items, valid_sets, ks=(k,)).mean("recall")[0])
            recall[g, c] = rec
            if rec > best[0]:
                best = (rec, g, c)
                best_emb = (state.params.user_emb[g], state.params.item_emb[g])
    _, g_best, c_best = best
    if best_emb is None:  # every recall NaN: cannot select
        raise ValueError("validation Recall@K is NaN for every grid point (diverged training?)")
    return BPRSelection(
        best=int(g_best),
        best_epoch=int((c_best + 1) * eval_every),
        hparams=BPRHParams(lr=lr[g_best], l2=l2[g_best]),
        recall=recall,
        epochs=np.arange(1, n_checks + 1) * eval_every,
        user_emb=best_emb[0],
        item_emb=best_emb[1],
        losses=np.concatenate(losses, axis=1),
        k=k,
    )


# ----------------------------------------------------------------------------- EASE
def _gram(user_idx, item_idx, n_users, n_items) -> np.ndarray:
    import scipy.sparse as sp

    u = np.asarray(user_idx)
    i = np.asarray(item_idx)
    x = sp.csr_matrix((np.ones(u.size, np.float64), (u, i)), shape=(n_users, n_items))
    x.data[:] = 1.0  # binarise (duplicate pairs would otherwise add up)
    return (x.T @ x).toarray()


@jax.jit
def _ease_from_gram(g, l2):
    n = g.shape[0]
    p = jnp.linalg.inv(g + l2 * jnp.eye(n, dtype=g.dtype))
    b = -p / jnp.diag(p)[None, :]
    return b.at[jnp.diag_indices(n)].set(0.0)


def fit_ease(user_idx, item_idx, *, n_users: int, n_items: int, l2: float) -> jax.Array:
    """EASE item-item weights (Steck 2019), closed form.

    With the binary user-item matrix X ``[n_users, n_items]`` and
    ``P = (XᵀX + λI)⁻¹``: ``B_ij = −P_ij / P_jj`` for ``i ≠ j`` and ``B_ii = 0``; the
    score of user u is ``s_u = x_u B``. The Gram matrix ``XᵀX`` is computed with a
    sparse product on the host (never the dense X), then inverted in JAX: memory and
    time are ``O(n_items²)`` and ``O(n_items³)``, fine up to ~10k items.

    Args:
      user_idx, item_idx: ``[n]`` int training interactions.
      n_users, n_items: matrix sizes.
      l2: ridge weight λ > 0 (Steck reports a few hundred on ML-20M).

    Returns:
      ``B [n_items, n_items]``; rank with :func:`ease_score_fn`.

    References:
      Steck. Embarrassingly Shallow Autoencoders for Sparse Data. WWW 2019, eq. 8.
    """
    u, i, n_users, n_items = _check_pairs(user_idx, item_idx, n_users, n_items)
    if not np.isfinite(l2) or l2 <= 0:
        raise ValueError(f"`l2` must be a finite positive number, got {l2}")
    dtype = jnp.zeros(()).dtype
    g = jnp.asarray(_gram(u, i, n_users, n_items), dtype=dtype)
    return _ease_from_gram(g, jnp.asarray(l2, dtype))


def _ease_scores(args, users):
    b, sets = args
    n_items = b.shape[0]
    rows = sets[users]  # [c, L]
    valid = rows >= 0
    idx = jnp.where(valid, rows, n_items)  # out of range -> dropped
    x = jnp.zeros((users.shape[0], n_items), b.dtype)
    x = x.at[jnp.arange(users.shape[0])[:, None], idx].add(valid.astype(b.dtype), mode="drop")
    return x @ b


def ease_score_fn(b, history_sets) -> jax.tree_util.Partial:
    """Scoring function for :func:`complemjax.ranking.topk_from_score_fn`.

    ``score_fn(users) = X[users] B`` with X the multi-hot history built on the fly from
    the padded ``history_sets [n_users, L]`` (so memory is ``O(chunk × n_items)``).

    Example:
      >>> fn = ease_score_fn(B, train_sets)  # doctest: +SKIP
      >>> top = ranking.topk_from_score_fn(fn, n_users=U, n_items=I, k=20,
      ...                                  exclude=train_sets)  # doctest: +SKIP
    """
    b = jnp.asarray(b)
    if b.ndim != 2 or b.shape[0] != b.shape[1]:
        raise ValueError(f"`b` must be a square [n_items, n_items] matrix, got {b.shape}")
    sets = jnp.asarray(history_sets, jnp.int32)
    if sets.ndim != 2:
        raise ValueError(f"`history_sets` must be [n_users, L], got shape {sets.shape}")
    return jax.tree_util.Partial(_ease_scores, (b, sets))


# ----------------------------------------------------------------------------- popularity
def popularity(item_idx, *, n_items: int) -> jax.Array:
    """Item popularity ``[n_items]``: number of training interactions of each item."""
    n_items = check_positive_int("n_items", n_items)
    i = jnp.asarray(item_idx)
    if not jnp.issubdtype(i.dtype, jnp.integer) or i.ndim != 1:
        raise ValueError(f"`item_idx` must be a 1-D integer array, got {i.dtype} {i.shape}")
    dtype = jnp.zeros(()).dtype
    return jnp.zeros(n_items, dtype).at[i].add(1.0, mode="drop")


def popularity_embeddings(item_idx, *, n_users: int, n_items: int) -> tuple[jax.Array, jax.Array]:
    """Popularity as a rank-1 factor model: ``user_emb = 1 [n_users, 1]``, ``item_emb =
    popularity [n_items, 1]``, so ``ranking.topk_from_embeddings`` ranks by popularity
    (ties to the lower item index) with each user's history excluded."""
    pop = popularity(item_idx, n_items=n_items)
    n_users = check_positive_int("n_users", n_users)
    return jnp.ones((n_users, 1), pop.dtype), pop[:, None]

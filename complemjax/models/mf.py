"""BPR matrix factorisation (Rendle et al. 2009), fast and vmappable.

* :func:`fit_bpr` — factors trained with the BPR pairwise loss, a pure function of a key,
  the interactions and :class:`BPRHParams`, so ``jax.vmap`` over keys and/or
  hyper-parameters trains many models in one program.
* :class:`BPR` — the same model as a :class:`~complemjax.models.protocol.ModelFamily`
  for :func:`complemjax.models.protocol.select` / ``retrain``.
* :func:`select_bpr` — the protocol's selection with BPR's historical signature.

Speed (issue 15): a whole epoch is one ``lax.scan``; the epoch's positives (uniform with
replacement, as ``implicit`` does) and negatives (with rejection of training positives)
are drawn in bulk from raw random bits before the scan; with
``optimizer="lazy_adam"`` (default) or ``"sgd"`` a step reads and writes only the rows
of its minibatch, so its cost does not grow with the table sizes.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.typing import ArrayLike

from complemjax import _native
from complemjax._checks import check_positive_int
from complemjax._native import bpr as native_bpr
from complemjax.models import bpr
from complemjax.models._pairs import check_pairs

if TYPE_CHECKING:
    from complemjax.models.protocol import TrainData

__all__ = [
    "BPR",
    "BPRConfig",
    "BPRHParams",
    "BPRParams",
    "BPRResult",
    "BPRSelection",
    "BPRState",
    "LazyAdamState",
    "bpr_init",
    "bpr_train_epochs",
    "check_bpr_hparams",
    "fit_bpr",
    "select_bpr",
]

_OPTIMIZERS = ("lazy_adam", "adam", "sgd")
_KERNELS = ("auto", "xla", "native")
_B1, _B2, _EPS = 0.9, 0.999, 1e-8


@dataclasses.dataclass(frozen=True)
class BPRConfig:
    """Static BPR-MF configuration (fixes shapes and control flow).

    Attributes:
      dim: embedding dimension d.
      n_epochs: passes over the training interactions (:func:`fit_bpr`; the protocol's
        ``max_epochs`` replaces it in :func:`select_bpr` and :class:`BPR`).
      batch_size: positives per minibatch B; an epoch is ``E // B`` minibatches of
        entries drawn uniformly with replacement from the E interaction entries (``B`` is
        capped at E). Each epoch's draws are counter-based words of its own key
        (:func:`complemjax.models.bpr.draw_bpr_candidates`): the JAX step draws the epoch in
        bulk before its scan, the native kernel draws each batch where it uses it.
      optimizer: ``"lazy_adam"`` (default): Adam whose moments and parameters are
        updated on the minibatch rows only (the "lazy"/sparse Adam of TensorFlow's
        ``LazyAdam`` and PyTorch's ``SparseAdam``; a row repeated in a batch gets the
        summed gradient in the first moment and the summed squared gradients in the
        second); ``"adam"``: optax Adam on the full tables every step (dense; kept as
        the reference); ``"sgd"``: plain minibatch SGD applied to the sampled rows
        (identical to a dense SGD step). All use step size ``hparams.learning_rate``.
      init_scale: embeddings start as ``init_scale * N(0, 1)``.
      reject_positives: resample a negative that is a training positive of the user (up
        to ``n_neg_retries`` times; needs ``n_users * n_items < 2**31``).
      n_neg_retries: resampling rounds for ``reject_positives``.
      kernel: how the ``"lazy_adam"``/``"sgd"`` steps run. ``"xla"``: the pure-JAX step
        (any backend; the definition). ``"native"``: the C++ epoch kernel of
        :mod:`complemjax._native` (CPU, float32; every epoch in one call, with the same
        draws and update, summed in another order, so results agree with ``"xla"`` to
        float rounding, not bit for bit; one thread per vmapped seed). ``"auto"``
        (default): native when the program runs on a CPU in float32 and the kernel could
        be built, else xla.
      hogwild: native kernel only. ``False`` (default): one fit gives the same result on
        any number of threads, bit for bit (each minibatch in one pass on one thread, or
        in three barrier-separated phases on ``n >= 2`` threads). ``True``: the CPU
        threads claim one fit's minibatches in order and read and update the shared rows
        without locks (Hogwild, Recht et al. 2011, as ``implicit`` trains): faster on
        several cores, but a row may be read while another thread updates it, so results
        vary from run to run. On one thread, or under ``jax.vmap`` (one fit per thread),
        it is the default update; on platforms without the native kernel it has no
        effect. Needs a kernel other than ``"xla"``.
    """

    dim: int = 64
    n_epochs: int = 30
    batch_size: int = 1024
    optimizer: str = "lazy_adam"
    init_scale: float = 0.1
    reject_positives: bool = True
    n_neg_retries: int = 4
    kernel: str = "auto"
    hogwild: bool = False

    def __post_init__(self):
        check_positive_int("dim", self.dim)
        check_positive_int("n_epochs", self.n_epochs)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("n_neg_retries", self.n_neg_retries, minimum=0)
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if self.kernel not in _KERNELS:
            raise ValueError(f"`kernel` must be one of {_KERNELS}, got {self.kernel!r}")
        if not self.init_scale > 0:
            raise ValueError(f"`init_scale` must be > 0, got {self.init_scale}")
        if self.hogwild and (self.kernel == "xla" or self.optimizer == "adam"):
            raise ValueError(
                "`hogwild=True` needs the native kernel: kernel 'auto' or 'native' with "
                f"optimizer 'lazy_adam' or 'sgd', got kernel={self.kernel!r}, "
                f"optimizer={self.optimizer!r}"
            )


@flax.struct.dataclass
class BPRHParams:
    """Dynamic BPR hyper-parameters (arrays; add a leading axis to vmap a grid).

    Attributes:
      learning_rate: step size applied to the Adam/SGD direction, finite and > 0.
      l2: weight of ``||p_u||² + ||q_i||² + ||q_j||²`` per sampled triple, finite ≥ 0.
    """

    learning_rate: jax.Array | float = 1e-3
    l2: jax.Array | float = 1e-4


def check_bpr_hparams(hparams: BPRHParams) -> None:
    """Raise ValueError naming the field of BPR hyperparameters that is out of range.

    Raises unless ``learning_rate`` is finite > 0 and ``l2`` finite ≥ 0 (any shape; skipped under
    tracing).
    """
    if not isinstance(hparams, BPRHParams):
        raise ValueError(f"`hparams` must be a BPRHParams, got {type(hparams).__name__}")
    if any(isinstance(x, jax.core.Tracer) for x in (hparams.learning_rate, hparams.l2)):
        return
    lr, l2 = np.asarray(hparams.learning_rate, float), np.asarray(hparams.l2, float)
    if not (np.isfinite(lr).all() and (lr > 0).all()):
        raise ValueError(
            f"`hparams.learning_rate` must be finite and > 0, got {hparams.learning_rate}"
        )
    if not (np.isfinite(l2).all() and (l2 >= 0).all()):
        raise ValueError(f"`hparams.l2` must be finite and >= 0, got {hparams.l2}")


class BPRParams(NamedTuple):
    """Factor model parameters.

    Attributes:
      user_emb: ``[n_users, d]`` user factors p_u.
      item_emb: ``[n_items, d]`` item factors q_i.
    """

    user_emb: jax.Array
    item_emb: jax.Array


class LazyAdamState(NamedTuple):
    """Row-wise Adam state: ``moments`` holds ``[m | v]`` (``[rows, 2d]``) per table."""

    moments: BPRParams
    count: jax.Array


class BPRState(NamedTuple):
    """Training state carried across calls of :func:`bpr_train_epochs`.

    Attributes:
      params: :class:`BPRParams`.
      opt_state: optimizer state (:class:`LazyAdamState`, optax Adam state, or empty).
      key: PRNG key for the next epoch.
      epoch: int32 scalar, epochs done.
    """

    params: BPRParams
    opt_state: object
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


def _opt_init(config: BPRConfig, params: BPRParams):
    if config.optimizer == "adam":
        return optax.scale_by_adam().init(params)
    if config.optimizer == "lazy_adam":
        zeros = jax.tree.map(lambda p: jnp.zeros((p.shape[0], 2 * p.shape[1]), p.dtype), params)
        return LazyAdamState(zeros, jnp.zeros((), jnp.int32))
    return optax.EmptyState()


def bpr_init(key: jax.Array, *, n_users: int, n_items: int, config: BPRConfig) -> BPRState:
    """Initial :class:`BPRState`: Gaussian factors ``init_scale * N(0, 1)``.

    Args:
      key: ``jax.random.key``.
      n_users: number of users (rows of the user table).
      n_items: number of items (rows of the item table).
      config: :class:`BPRConfig`.
    """
    k_u, k_i, k_next = jax.random.split(key, 3)
    dtype = jnp.zeros(()).dtype  # float32, or float64 under x64
    params = BPRParams(
        user_emb=config.init_scale * jax.random.normal(k_u, (n_users, config.dim), dtype),
        item_emb=config.init_scale * jax.random.normal(k_i, (n_items, config.dim), dtype),
    )
    return BPRState(params, _opt_init(config, params), k_next, jnp.zeros((), jnp.int32))


def _bpr_loss(params: BPRParams, u, i, j, l2):
    return _bpr_rows_loss((params.user_emb[u], params.item_emb[i], params.item_emb[j]), l2)


def _bpr_rows_loss(rows, l2, w=None):
    """Weighted mean BPR loss with L2 of a batch of gathered rows.

    ``sum_b w_b [-log σ(p·(q_i − q_j)) + l2 (‖p‖² + ‖q_i‖² + ‖q_j‖²)] / max(Σw, 1)`` (the
    plain batch mean when ``w`` is None).
    """
    p, qi, qj = rows
    x = jnp.sum(p * (qi - qj), axis=-1)
    reg = jnp.sum(p * p, -1) + jnp.sum(qi * qi, -1) + jnp.sum(qj * qj, -1)
    return bpr.bpr_loss(x, w, l2 * reg)


def _take(table, idx):
    """``table[idx]`` without bounds handling: every index here was validated or drawn in range.

    ``promise_in_bounds`` drops XLA's clamping of each index (about 20% of a row scatter
    on CPU in a micro-benchmark, about 5% of a whole BPR epoch). Under ``jax.vmap`` XLA's
    batched gather/scatter is used as is: flattening the batch into one table with offset
    indices (a custom vmap rule) was measured slower on CPU (2 seeds × 10 epochs on
    MovieLens: 0.90 s vs 0.78 s).
    """
    return table.at[idx].get(mode="promise_in_bounds")


def _add_rows(table, idx, rows):
    """``table.at[idx].add(rows)`` for in-range ``idx`` (see :func:`_take`)."""
    return table.at[idx].add(rows, mode="promise_in_bounds")


def _row_counts(idx, n_rows, dtype):
    """How often each entry's row occurs in ``idx`` (O(n_rows) scalars, not rows × d)."""
    return _take(_add_rows(jnp.zeros(n_rows, dtype), idx, 1.0), idx)


def _lazy_adam_rows(table, mv, idx, g, lr, bc1, bc2):
    """Adam on the rows ``idx`` only.

    ``g [n, d]`` per-occurrence gradients and ``mv [N, 2d]`` the first and second moments side by
    side (one gather and one scatter for both).
    """
    d = table.shape[1]
    inv = 1.0 / _row_counts(idx, table.shape[0], g.dtype)[:, None]
    old = _take(mv, idx)
    delta = jnp.concatenate(
        [
            (1 - _B1) * g + (_B1 - 1) * old[:, :d] * inv,
            (1 - _B2) * g * g + (_B2 - 1) * old[:, d:] * inv,
        ],
        axis=1,
    )
    mv = _add_rows(mv, idx, delta)
    new = _take(mv, idx)
    step = (new[:, :d] / bc1) / (jnp.sqrt(new[:, d:] / bc2) + _EPS)
    return _add_rows(table, idx, -lr * step * inv), mv


@functools.partial(jax.jit, static_argnames=("n_items", "config", "n_epochs"))
def _train_epochs(state: BPRState, user_idx, item_idx, mask, hparams, n_items, config, n_epochs):
    n = user_idx.shape[0]
    bsz = min(config.batch_size, n)
    n_batches = n // bsz
    lr = jnp.asarray(hparams.learning_rate)
    l2 = jnp.asarray(hparams.l2)
    # the steps gather and scatter without bounds handling (_take/_add_rows): make every
    # index valid once here (checked inputs are unchanged; traced padding lands on row 0)
    n_users = state.params.user_emb.shape[0]
    user_idx = jnp.clip(user_idx.astype(jnp.int32), 0, n_users - 1)
    item_idx = jnp.clip(item_idx.astype(jnp.int32), 0, n_items - 1)
    if mask is not None:
        user_idx = jnp.where(mask, user_idx, 0)
        item_idx = jnp.where(mask, item_idx, 0)
    dtype = state.params.user_emb.dtype
    w_all = jnp.ones(n, dtype) if mask is None else jnp.asarray(mask).astype(dtype)
    sorted_keys = None
    if config.reject_positives:
        sorted_keys = bpr.positive_keys(
            user_idx, item_idx, n_users=n_users, n_items=n_items, mask=mask
        )
    grad_rows = jax.value_and_grad(_bpr_rows_loss)
    tx = optax.scale_by_adam()

    def step(carry, batch):
        params, opt_state = carry
        u, i, j, w = batch
        items = jnp.concatenate([i, j])
        q = _take(params.item_emb, items)
        rows = (_take(params.user_emb, u), q[: i.shape[0]], q[i.shape[0] :])
        if config.optimizer == "adam":
            loss, grads = jax.value_and_grad(
                lambda p: _bpr_rows_loss((p.user_emb[u], p.item_emb[i], p.item_emb[j]), l2, w)
            )(params)
            direction, opt_state = tx.update(grads, opt_state, params)
            params = jax.tree.map(lambda p, d: p - lr.astype(p.dtype) * d, params, direction)
            return (params, opt_state), loss
        loss, (g_p, g_i, g_j) = grad_rows(rows, l2, w)
        step_ = lr.astype(dtype)
        g_items = jnp.concatenate([g_i, g_j])
        if config.optimizer == "sgd":
            # the gradient is non-zero only on the gathered rows: update them in place
            params = BPRParams(
                _add_rows(params.user_emb, u, -step_ * g_p),
                _add_rows(params.item_emb, items, -step_ * g_items),
            )
            return (params, opt_state), loss
        t = opt_state.count + 1
        bc1 = (1 - _B1 ** t.astype(dtype)).astype(dtype)
        bc2 = (1 - _B2 ** t.astype(dtype)).astype(dtype)
        mom = opt_state.moments
        pu, mv_u = _lazy_adam_rows(params.user_emb, mom.user_emb, u, g_p, step_, bc1, bc2)
        pi, mv_i = _lazy_adam_rows(params.item_emb, mom.item_emb, items, g_items, step_, bc1, bc2)
        opt_state = LazyAdamState(BPRParams(mv_u, mv_i), t)
        return (BPRParams(pu, pi), opt_state), loss

    kernel = _resolve_kernel(config, dtype)
    positives = None
    if sorted_keys is not None and kernel != "xla":
        positives = (sorted_keys, native_bpr.user_key_offsets(sorted_keys, n_users, n_items))
    n_retries = config.n_neg_retries if sorted_keys is not None else 0

    def next_key(key, _):  # each epoch's draws come from its own split of the key
        return tuple(jax.random.split(key))

    key, epoch_keys = lax.scan(next_key, state.key, None, length=n_epochs)

    def xla_epochs(params, opt_state, epoch_keys):
        def epoch(carry, k_epoch):
            u, i, cand, w = bpr.draw_bpr_candidates(
                k_epoch, user_idx, item_idx, n_items=n_items, n_draws=n_batches * bsz,
                weights=w_all, n_neg_retries=n_retries,
            )  # fmt: skip
            j = cand[0]
            if sorted_keys is not None:
                j = bpr.resolve_negatives(cand, u, sorted_keys, n_items)
            batches = tuple(x.reshape(n_batches, bsz) for x in (u, i, j, w))
            carry, losses = lax.scan(step, carry, batches)
            return carry, jnp.mean(losses)

        return lax.scan(epoch, (params, opt_state), epoch_keys)

    def native_epochs(params, opt_state, epoch_keys):
        seeds = jax.vmap(bpr.bpr_seed)(epoch_keys)  # the kernel draws from the same words
        return _native_epochs(params, opt_state, (user_idx, item_idx, w_all), seeds, positives,
                              lr, l2, config, bsz, n_batches)  # fmt: skip

    if kernel == "auto":  # native where the program is lowered for a CPU, JAX elsewhere
        (params, opt_state), losses = lax.platform_dependent(
            state.params, state.opt_state, epoch_keys, cpu=native_epochs, default=xla_epochs
        )
    else:
        run = native_epochs if kernel == "native" else xla_epochs
        (params, opt_state), losses = run(state.params, state.opt_state, epoch_keys)
    return BPRState(params, opt_state, key, state.epoch + n_epochs), losses


def _resolve_kernel(config: BPRConfig, dtype) -> str:
    """``"xla"``, ``"native"`` or ``"auto"`` (decided per platform) for this trace."""
    if config.optimizer == "adam" or config.kernel == "xla":
        return "xla"
    if config.kernel == "native":
        return "native"
    if dtype != jnp.float32 or not _native.available():
        return "xla"
    return "auto"


def _native_epochs(
    params: BPRParams,
    opt_state,
    pairs,
    seeds,
    positives,
    lr,
    l2,
    config: BPRConfig,
    batch_size: int,
    n_batches: int,
):
    """All epochs in one call of the native kernel; ``((params, opt_state), epoch losses)``."""
    adam = config.optimizer == "lazy_adam"
    moments = (opt_state.moments.user_emb, opt_state.moments.item_emb) if adam else None
    steps = opt_state.count if adam else jnp.zeros((), jnp.int32)
    pu, pi, moments, steps, losses = native_bpr.bpr_epochs(
        params.user_emb, params.item_emb, moments, steps, pairs, seeds, positives, lr, l2,
        batch_size=batch_size, n_batches=n_batches, n_neg_retries=config.n_neg_retries,
        hogwild=config.hogwild,
    )  # fmt: skip
    dtype = params.user_emb.dtype
    params = BPRParams(pu.astype(dtype), pi.astype(dtype))
    if adam:
        opt_state = LazyAdamState(BPRParams(*moments), steps)
    return (params, opt_state), jnp.mean(losses, axis=1).astype(dtype)


def _check_config(config, n_users, n_items):
    if not isinstance(config, BPRConfig):
        raise ValueError(f"`config` must be a BPRConfig, got {type(config).__name__}")
    if config.kernel == "native" and not _native.available():
        raise ValueError(
            "`config.kernel='native'` but the native kernel could not be built (see the "
            "warning); use kernel='auto' or 'xla'"
        )
    if config.reject_positives and n_users * n_items >= 2**31:
        raise ValueError(
            f"`config.reject_positives` needs n_users * n_items < 2**31, got {n_users}*{n_items}; "
            "set reject_positives=False (negatives may then be positives)"
        )


def bpr_train_epochs(
    state: BPRState,
    user_idx: ArrayLike,
    item_idx: ArrayLike,
    hparams: BPRHParams,
    *,
    n_items: int,
    config: BPRConfig,
    n_epochs: int,
    mask: ArrayLike | None = None,
) -> tuple[BPRState, jax.Array]:
    """Run ``n_epochs`` BPR epochs from ``state`` (resumable training; vmappable).

    See :func:`fit_bpr` for the objective. Returns the new state and ``[n_epochs]``
    mean minibatch losses.
    """
    n_epochs = check_positive_int("n_epochs", n_epochs)
    check_bpr_hparams(hparams)
    n_users = state.params.user_emb.shape[-2]
    u, i, _, n_items = check_pairs(user_idx, item_idx, n_users, n_items, mask)
    _check_config(config, n_users, n_items)
    return _train_epochs(state, u, i, mask, hparams, n_items, config, n_epochs)


def fit_bpr(
    key: jax.Array,
    user_idx: ArrayLike,
    item_idx: ArrayLike,
    *,
    n_users: int,
    n_items: int,
    config: BPRConfig,
    hparams: BPRHParams,
    mask: ArrayLike | None = None,
) -> BPRResult:
    """Fit BPR matrix factorisation on implicit interactions.

    Minimises, over minibatches of B observed pairs (u, i) with one uniformly sampled
    negative item j per pair (resampled while (u, j) is a training positive, see
    :class:`BPRConfig`)::

        L = mean_b [ -log σ(p_u·q_i − p_u·q_j) + l2 (‖p_u‖² + ‖q_i‖² + ‖q_j‖²) ]

    with lazy (row-wise) Adam, dense Adam or SGD at step size ``hparams.learning_rate``.
    Score: ``s(u, i) = p_u · q_i``.

    Pure in ``(key, user_idx, item_idx, mask, hparams)``; vmap over keys, over a stacked
    :class:`BPRHParams` or over padded interaction arrays with their masks (e.g. a
    density grid) to train many models in one compiled program.

    Args:
      key: ``jax.random.key`` (initialisation, permutations, negatives).
      user_idx: ``[E]`` int training user indices.
      item_idx: ``[E]`` int training item indices (each real pair once).
      n_users: number of users, rows of the user table (static).
      n_items: number of items, rows of the item table (static).
      config: :class:`BPRConfig` (static).
      hparams: :class:`BPRHParams` (dynamic): ``learning_rate`` finite > 0, ``l2`` finite ≥ 0.
      mask: optional ``[E]`` bool, the real entries of padded arrays. Padded entries
        get weight 0 in the loss (the mean is over the real entries of a batch) and are
        never positives for the negative rejection; an epoch still runs ``E // B``
        batches of the padded length.

    Returns:
      :class:`BPRResult` with ``user_emb [n_users, d]``, ``item_emb [n_items, d]``,
      ``losses [n_epochs]``.

    Example:
      >>> res = fit_bpr(jax.random.key(0), u, i, n_users=U, n_items=I,
      ...               config=BPRConfig(dim=32), hparams=BPRHParams(learning_rate=1e-2, l2=1e-4))
      ... # doctest: +SKIP

    References:
      Rendle, Freudenthaler, Gantner, Schmidt-Thieme. BPR: Bayesian Personalized Ranking
      from Implicit Feedback. UAI 2009.
    """
    check_bpr_hparams(hparams)
    u, i, n_users, n_items = check_pairs(user_idx, item_idx, n_users, n_items, mask)
    _check_config(config, n_users, n_items)
    state = bpr_init(key, n_users=n_users, n_items=n_items, config=config)
    state, losses = _train_epochs(state, u, i, mask, hparams, n_items, config, config.n_epochs)
    return BPRResult(state.params.user_emb, state.params.item_emb, losses)


@dataclasses.dataclass(frozen=True)
class BPR:
    """BPR-MF as a :class:`~complemjax.models.protocol.ModelFamily`.

    Attributes:
      config: :class:`BPRConfig` (``n_epochs`` unused: the protocol sets the epochs).
      name: label in selection tables.
    """

    config: BPRConfig = BPRConfig()
    name: str = "BPR-MF"

    def check_hparams(self, hparams: BPRHParams) -> None:
        """Raise ValueError naming the field of ``hparams`` that is out of range."""
        check_bpr_hparams(hparams)

    def init(self, key: jax.Array, data: TrainData, hparams: BPRHParams) -> BPRState:
        """Initial :class:`BPRState` for the users and items of ``data``."""
        _check_config(self.config, data.n_users, data.n_items)
        return bpr_init(key, n_users=data.n_users, n_items=data.n_items, config=self.config)

    def train_epochs(
        self, state: BPRState, data: TrainData, hparams: BPRHParams, n_epochs: int
    ) -> tuple[BPRState, jax.Array]:
        """Run ``n_epochs`` epochs of BPR training; returns ``(state, losses [n_epochs])``."""
        return _train_epochs(
            state, data.user_idx, data.item_idx, data.mask, hparams, data.n_items,
            self.config, n_epochs,
        )  # fmt: skip

    def embeddings(
        self, state: BPRState, data: TrainData, hparams: BPRHParams
    ) -> tuple[jax.Array, jax.Array]:
        """``(user_emb [U, dim], item_emb [I, dim])``, the trained factors (dot-product scores)."""
        return state.params.user_emb, state.params.item_emb


class BPRSelection(NamedTuple):
    """Output of :func:`select_bpr`.

    Attributes:
      best: index of the chosen grid point.
      best_epoch: number of epochs of the chosen checkpoint.
      hparams: the chosen :class:`BPRHParams` (scalars).
      recall: ``[G, C]`` validation Recall@K of grid point g after ``epochs[c]`` epochs
        (NaN after early stopping).
      epochs: ``[C]`` epochs at each checkpoint.
      user_emb, item_emb: embeddings of the chosen model at its chosen epoch.
      losses: ``[G, epochs run]`` training losses.
      k: the K of Recall@K.
      selection: the full :class:`~complemjax.models.protocol.Selection` record.
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
    selection: object = None


def select_bpr(
    key: jax.Array,
    user_idx: ArrayLike,
    item_idx: ArrayLike,
    valid_sets: ArrayLike,
    *,
    n_users: int,
    n_items: int,
    config: BPRConfig,
    grid: BPRHParams,
    eval_every: int = 5,
    k: int = 20,
    patience: int | None = None,
    mask: ArrayLike | None = None,
) -> BPRSelection:
    """Choose BPR ``learning_rate``/``l2`` and the number of epochs by validation Recall@K.

    :func:`complemjax.models.protocol.select` with :class:`BPR`: every grid point (a
    :class:`BPRHParams` whose fields share a leading axis G) is trained from the same
    initialisation in one vmapped program for at most ``config.n_epochs`` epochs;
    every ``eval_every`` epochs each model ranks all items for every user (training
    items excluded) and Recall@K on ``valid_sets`` is recorded. The (grid point,
    epoch) with the highest recall wins (ties: the lower grid index, then the earlier
    epoch).

    Args:
      key: ``jax.random.key``.
      user_idx: ``[E]`` int users of the training interactions.
      item_idx: ``[E]`` int items of the training interactions.
      valid_sets: ``[n_users, L]`` padded validation item sets (``-1`` padding).
      n_users: number of users (rows of the user table).
      n_items: number of items (rows of the item table).
      config: :class:`BPRConfig`; ``n_epochs`` is the maximum number of epochs.
      grid: :class:`BPRHParams` with ``[G]`` arrays.
      eval_every: epochs between validation checkpoints (must divide ``n_epochs``).
      k: cut-off of Recall@K.
      patience: early stopping (evaluations without improvement); default none.
      mask: optional ``[E]`` bool of real entries.

    Returns:
      :class:`BPRSelection`.
    """
    from complemjax.models import protocol

    u, i, n_users, n_items = check_pairs(user_idx, item_idx, n_users, n_items, mask)
    _check_config(config, n_users, n_items)
    eval_every = check_positive_int("eval_every", eval_every)
    if config.n_epochs % eval_every:
        raise ValueError(
            f"`eval_every`={eval_every} must divide `config.n_epochs`={config.n_epochs}"
        )
    lr = jnp.atleast_1d(jnp.asarray(grid.learning_rate))
    l2 = jnp.atleast_1d(jnp.asarray(grid.l2))
    if lr.ndim != 1 or lr.shape != l2.shape:
        raise ValueError(
            "`grid.learning_rate` and `grid.l2` must be 1-D of equal length, got "
            f"{lr.shape}, {l2.shape}"
        )
    grid = BPRHParams(learning_rate=lr, l2=l2)
    check_bpr_hparams(grid)
    n_checks = config.n_epochs // eval_every
    patience = n_checks if patience is None else check_positive_int("patience", patience)
    data = protocol.make_train_data(u, i, n_users=n_users, n_items=n_items, mask=mask)
    sel = protocol.select(
        BPR(config), key, data, grid, valid_sets=valid_sets, exclude_sets=data.history,
        max_epochs=config.n_epochs, eval_every=eval_every, patience=patience, k=k,
    )  # fmt: skip
    return BPRSelection(
        best=sel.best_index, best_epoch=sel.best_epoch, hparams=sel.hparams,
        recall=sel.scores, epochs=sel.epochs, user_emb=sel.user_emb, item_emb=sel.item_emb,
        losses=sel.losses, k=sel.k, selection=sel,
    )  # fmt: skip

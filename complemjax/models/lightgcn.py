"""LightGCN (He et al., SIGIR 2020) as a :class:`~complemjax.models.protocol.ModelFamily`.

Model: ego (layer-0) embeddings ``E⁰ = [P; Q]`` propagated over the symmetric-normalised
user–item graph with layer-mean readout (:func:`complemjax.models.graph.propagate_mean`)::

    E = (1/(K+1)) Σ_{k=0..K} Â^k E⁰,   s(u, i) = e_u · e_i

Loss on a minibatch of B triples (u, i, j), as in the official code
(gusye1234/LightGCN-PyTorch, ``model.LightGCN.bpr_loss`` and ``procedure.BPR_train_original``)::

    L = mean_b softplus(e_u·e_j − e_u·e_i) + λ · ½ (‖e⁰_u‖² + ‖e⁰_i‖² + ‖e⁰_j‖²) / B

(the L2 penalty is on the *ego* rows of the batch, summed and divided by B), minimised by
Adam (β = 0.9, 0.999, ε = 1e-8) on the full tables, lr 1e-3, λ = 1e-4, B = 2048,
init N(0, 0.1²), full propagation at every step.

Sampling, as the official ``UniformSample_original``: each epoch draws ``n_train``
triples; the user uniformly over all users (users without training items contribute
nothing), the positive uniformly among the user's training items, the negative uniformly
over the catalogue, resampled while it is a training positive (``n_neg_retries`` rounds;
the official loop resamples until it succeeds).

Differences from the official code: the number of triples per epoch is the padded
length ``E`` of the interaction arrays (equal to ``n_train`` without padding); the epoch
is ``E // B`` full batches (the official code runs ``E // B + 1`` batches, the last one
partial); negative rejection stops after ``n_neg_retries`` rounds; selection uses a
validation split (the official code reports the best test epoch).

The pieces (:func:`lightgcn_init`, :func:`sample_triples`, :func:`lightgcn_loss`,
:func:`lightgcn_step`) are public so that RLMRec adds its alignment term on top and is
exactly this model at alignment weight 0.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.typing import ArrayLike

from complemjax._checks import check_positive_int
from complemjax.models import bpr
from complemjax.models.graph import propagate_mean
from complemjax.models.protocol import TrainData

__all__ = [
    "LightGCN",
    "LightGCNHParams",
    "LightGCNParams",
    "LightGCNState",
    "check_lightgcn_hparams",
    "lightgcn_init",
    "lightgcn_loss",
    "lightgcn_step",
    "n_steps_per_epoch",
    "positive_keys",
    "sample_triples",
]


@dataclasses.dataclass(frozen=True)
class LightGCN:
    """Static LightGCN configuration (a :class:`ModelFamily`).

    Attributes:
      dim: embedding dimension d (official 64).
      max_layers: K_max; ``LightGCNHParams.n_layers`` may be anything in ``[0, K_max]``.
      batch_size: triples per step B (official 2048; capped at the number of entries).
      init_scale: ego embeddings start as ``init_scale · N(0, 1)`` (official 0.1).
      n_neg_retries: rounds of rejecting negatives that are training positives.
      name: label in selection tables.
    """

    dim: int = 64
    max_layers: int = 3
    batch_size: int = 2048
    init_scale: float = 0.1
    n_neg_retries: int = 8
    name: str = "LightGCN"

    def __post_init__(self):
        check_positive_int("dim", self.dim)
        check_positive_int("max_layers", self.max_layers, minimum=0)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("n_neg_retries", self.n_neg_retries, minimum=0)
        if not self.init_scale > 0:
            raise ValueError(f"`init_scale` must be > 0, got {self.init_scale}")

    def check_hparams(self, hparams: LightGCNHParams) -> None:
        """Raise ValueError naming the field of LightGCN hyperparameters that is out of range.

        Requires learning_rate > 0, l2 ≥ 0, integer n_layers in ``[0, max_layers]`` (all
        finite).
        """
        check_lightgcn_hparams(hparams, self.max_layers)

    def init(self, key: jax.Array, data: TrainData, hparams: LightGCNHParams) -> LightGCNState:
        """Initial :class:`LightGCNState` (Gaussian embeddings, zero Adam moments) for ``data``."""
        return lightgcn_init(key, data, self)

    def train_epochs(
        self, state: LightGCNState, data: TrainData, hparams: LightGCNHParams, n_epochs: int
    ) -> tuple[LightGCNState, jax.Array]:
        """Run ``n_epochs`` epochs of BPR training; returns ``(state, losses [n_epochs])``."""
        return _train_epochs(self, state, data, hparams, n_epochs)

    def embeddings(
        self, state: LightGCNState, data: TrainData, hparams: LightGCNHParams
    ) -> tuple[jax.Array, jax.Array]:
        """``(user_emb [U, dim], item_emb [I, dim])``: means over ``hparams.n_layers`` layers."""
        p = state.params
        return propagate_mean(
            data.graph, p.user_emb, p.item_emb, hparams.n_layers, max_layers=self.max_layers
        )


@flax.struct.dataclass
class LightGCNHParams:
    """Dynamic LightGCN hyper-parameters (add a leading axis G to select over a grid).

    Attributes:
      learning_rate: Adam step size (official 1e-3), > 0.
      l2: weight λ of the ego-embedding penalty (official ``weight_decay`` 1e-4), ≥ 0.
      n_layers: propagation layers K in ``[0, config.max_layers]`` (official 3).
    """

    learning_rate: jax.Array | float = 1e-3
    l2: jax.Array | float = 1e-4
    n_layers: jax.Array | int = 3


def check_lightgcn_hparams(hparams: LightGCNHParams, max_layers: int) -> None:
    """Validate (possibly stacked) :class:`LightGCNHParams`; skipped under tracing."""
    lr = hparams.learning_rate
    if isinstance(lr, jax.core.Tracer):
        return
    lr, l2, nl = (np.asarray(x) for x in (hparams.learning_rate, hparams.l2, hparams.n_layers))
    if not (np.isfinite(lr).all() and (lr > 0).all()):
        raise ValueError(f"`hparams.learning_rate` must be finite and > 0, got {lr}")
    if not (np.isfinite(l2).all() and (l2 >= 0).all()):
        raise ValueError(f"`hparams.l2` must be finite and >= 0, got {l2}")
    if not np.issubdtype(nl.dtype, np.integer) or (nl < 0).any() or (nl > max_layers).any():
        raise ValueError(
            f"`hparams.n_layers` must be integers in [0, max_layers={max_layers}], got {nl}"
        )


class LightGCNParams(NamedTuple):
    """Ego embeddings: ``user_emb [n_users, d]``, ``item_emb [n_items, d]``."""

    user_emb: jax.Array
    item_emb: jax.Array


class LightGCNState(NamedTuple):
    """Training state: params, Adam state, PRNG key for the next epoch, epochs done."""

    params: LightGCNParams
    opt_state: optax.OptState
    key: jax.Array
    epoch: jax.Array


def lightgcn_init(key: jax.Array, data: TrainData, config: LightGCN) -> LightGCNState:
    """Initial state: ego embeddings ``init_scale · N(0, 1)``, zero Adam moments.

    The key is split as ``(users, items, next)``, so two models built from the same key
    (e.g. RLMRec at weight 0 and LightGCN) start from the same embeddings.
    """
    k_u, k_i, k_next = jax.random.split(key, 3)
    dtype = jnp.zeros(()).dtype
    nu, ni = data.graph.n_users, data.graph.n_items
    params = LightGCNParams(
        config.init_scale * jax.random.normal(k_u, (nu, config.dim), dtype),
        config.init_scale * jax.random.normal(k_i, (ni, config.dim), dtype),
    )
    return LightGCNState(
        params, optax.scale_by_adam().init(params), k_next, jnp.zeros((), jnp.int32)
    )


def positive_keys(data: TrainData) -> jax.Array:
    """Sorted ``u · n_items + i`` of the real training pairs (padding → ``-1``).

    For :func:`sample_triples`' rejection of positive negatives.
    """
    return bpr.positive_keys(
        data.user_idx,
        data.item_idx,
        n_users=data.graph.n_users,
        n_items=data.graph.n_items,
        mask=data.mask,
    )


def sample_triples(
    key: jax.Array, data: TrainData, sorted_keys: jax.Array, batch_size: int, n_neg_retries: int
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Official LightGCN sampling of B triples ``(u, i, j)`` and their weights.

    ``u`` uniform over all users; ``i`` uniform over ``u``'s training items (from
    ``data.history``); ``j`` uniform over items, resampled up to ``n_neg_retries`` times
    while ``(u, j)`` is a training pair. ``w_b = 1`` if ``u`` has training items else 0.

    Returns:
      ``(u, i, j, w)``, each ``[B]`` (int32, int32, int32, float).
    """
    nu, ni = data.graph.n_users, data.graph.n_items
    bits = jax.random.bits(key, (3 + n_neg_retries, batch_size), jnp.uint32)
    u = bpr.uniform_ints(bits[0], nu)
    deg = jnp.sum(data.history >= 0, axis=1).astype(jnp.int32)
    du = deg[u]
    pos = bpr.uniform_ints(bits[1], jnp.maximum(du, 1))
    i = jnp.maximum(data.history[u, pos], 0)
    j = bpr.uniform_ints(bits[2], ni)
    for r in range(n_neg_retries):
        again = bpr.uniform_ints(bits[3 + r], ni)
        j = jnp.where(bpr.is_positive(sorted_keys, u, j, ni), again, j)
    w = (du > 0).astype(jnp.zeros(()).dtype)
    return u, i, j, w


def lightgcn_loss(
    params: LightGCNParams,
    data: TrainData,
    hparams: LightGCNHParams,
    triples: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    max_layers: int,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """Official LightGCN minibatch loss (see the module docstring).

    Args:
      params: ego embeddings.
      data: :class:`TrainData` (its graph is used).
      hparams: :class:`LightGCNHParams` (``l2``, ``n_layers``).
      triples: ``(u, i, j, w)`` from :func:`sample_triples`.
      max_layers: static K_max.

    Returns:
      ``(loss, (bpr, reg))`` scalars; ``loss = bpr + l2 · reg``.
    """
    u, i, j, w = triples
    eu, ei = propagate_mean(
        data.graph, params.user_emb, params.item_emb, hparams.n_layers, max_layers=max_layers
    )
    pu = eu[u]
    x = jnp.sum(pu * ei[i], -1) - jnp.sum(pu * ei[j], -1)
    n = jnp.maximum(jnp.sum(w), 1.0)
    loss = bpr.bpr_loss(x, w)
    e0u, e0i, e0j = params.user_emb[u], params.item_emb[i], params.item_emb[j]
    sq = jnp.sum(e0u * e0u, -1) + jnp.sum(e0i * e0i, -1) + jnp.sum(e0j * e0j, -1)
    reg = 0.5 * jnp.sum(w * sq) / n
    return loss + hparams.l2 * reg, (loss, reg)


def lightgcn_step(
    params: LightGCNParams,
    opt_state: optax.OptState,
    grads: LightGCNParams,
    learning_rate: ArrayLike,
) -> tuple[LightGCNParams, optax.OptState]:
    """One Adam step (PyTorch/optax defaults) at a dynamic learning rate."""
    direction, opt_state = optax.scale_by_adam().update(grads, opt_state, params)
    lr = jnp.asarray(learning_rate)
    params = jax.tree.map(lambda p, d: p - lr.astype(p.dtype) * d, params, direction)
    return params, opt_state


def n_steps_per_epoch(data: TrainData, batch_size: int) -> tuple[int, int]:
    """``(steps, B)``: ``E // B`` steps of ``B = min(batch_size, E)`` triples."""
    e = data.user_idx.shape[0]
    b = min(batch_size, e)
    return max(e // b, 1), b


@functools.partial(jax.jit, static_argnames=("config", "n_epochs"))
def _train_epochs(config: LightGCN, state: LightGCNState, data: TrainData, hparams, n_epochs):
    steps, bsz = n_steps_per_epoch(data, config.batch_size)
    sorted_keys = positive_keys(data)
    grad = jax.value_and_grad(lightgcn_loss, has_aux=True)

    def step(carry, _):
        params, opt_state, key = carry
        key, k = jax.random.split(key)
        tr = sample_triples(k, data, sorted_keys, bsz, config.n_neg_retries)
        (loss, _), g = grad(params, data, hparams, tr, config.max_layers)
        params, opt_state = lightgcn_step(params, opt_state, g, hparams.learning_rate)
        return (params, opt_state, key), loss

    def epoch(carry, _):
        carry, losses = lax.scan(step, carry, None, length=steps)
        return carry, jnp.mean(losses)

    (params, opt_state, key), losses = lax.scan(
        epoch, (state.params, state.opt_state, state.key), None, length=n_epochs
    )
    return LightGCNState(params, opt_state, key, state.epoch + n_epochs), losses

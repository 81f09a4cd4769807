"""AlphaRec (Sheng et al., ICLR 2025): a recommender built only from LLM item embeddings.

No ID embeddings: every representation is a learned map of the language view. With item
text embeddings ``x_i`` (``[n_items, D]``) and ``x_u = mean_{i ∈ H(u)} x_i`` over the user's
training items::

    h_i = MLP(x_i),  h_u = MLP(x_u)        MLP = Linear(D, H) → LeakyReLU → Linear(H, d)
    [e_u; e_i] = (1/(K+1)) Σ_{k=0..K} Â^k [h_u; h_i]      (LightGCN propagation, K = 2)
    s(u, i) = cos(e_u, e_i)

trained with InfoNCE over N = 256 sampled negatives per (user, positive) pair::

    L = mean_b [ −log( exp(s(u_b, p_b)/τ) / (exp(s(u_b, p_b)/τ) + Σ_n exp(s(u_b, n_bn)/τ)) ) ]

and Adam at ``learning_rate`` (no weight decay, no L2 term).

Matched to the official code (``LehengTHU/AlphaRec``; files read with their stored commits):

* ``models/General/AlphaRec.py``: ``AlphaRec.__init__`` (``model_version == 'mlp'``:
  ``Linear → LeakyReLU → Linear``, the same ``self.mlp`` for users and items, users from
  ``data.user_cf_embeds``), ``compute`` (MLP, then ``n_layers`` sparse products with the
  symmetric-normalised graph and the layer *mean*), ``forward`` (``F.normalize`` of user,
  positive and negative rows under ``--train_norm``, ``numerator = exp(pos/τ)``,
  ``denominator = numerator + Σ exp(neg/τ)``, mean over the batch), ``predict`` (normalised
  rows under ``--pred_norm``); ``AlphaRec_Data.add_special_model_attr`` (user embedding =
  mean of the item embeddings of ``train_user_list[u]``).
* ``models/General/base/abstract_data.py`` (``TrainDataset.__getitem__``, ``__len__``,
  ``get_dataloader``): an epoch has ``n_observations`` samples in shuffled order, sample
  ``index`` is user ``users[index % n_users]`` (users are drawn evenly, not in proportion to
  their interactions), its positive is uniform over the user's training items and its
  ``neg_sample`` negatives are uniform over the items *not* in the user's training set, with
  replacement (``reckit.randint_choice(n_items, size, exclusion=train_user_list[u])``);
  ``drop_last=True``. ``getSparseGraph``: ``D^{-1/2} A D^{-1/2}`` with 0 for isolated nodes.
* ``models/General/base/abstract_RS.py`` (``set_optimizer``): ``torch.optim.Adam(lr)``, no
  weight decay; the ``--weight_decay``/``--regs`` arguments are never used by AlphaRec.
* ``parse.py`` and the README commands: ``lr = 5e-4``, ``batch_size = 4096``,
  ``hidden_size = 64``, ``n_layers = 2``, ``neg_sample = 256``, ``tau = 0.15`` (0.2 on
  Games), ``--train_norm --pred_norm --infonce 1 --model_version mlp``.

Where this differs (and why):

* MLP width. The official code sets ``H = multiplier · D`` so that the first layer has about
  4.7 M weights for every language model (``D = 3072 → H = 1536``; ``D = 768 → H = 6144``;
  ``D = 4096 → H = 1152``). For the 256-d WordLlama embeddings that rule gives ``H = 18432``,
  whose forward and backward pass over all ~10 k nodes at every step is too slow on the CPUs
  this library targets; ``hidden`` is a static field (default 1024, i.e. 4 D for D = 256)
  and ``hidden=None`` applies the official rule ``H = round(3072 · 1536 / D)``.
* Initialisation: PyTorch's ``nn.Linear`` default (``U(±1/√fan_in)`` for weights and
  biases), drawn with ``jax.random`` — the same distribution, not the same numbers.
* Epoch length: ``E // B`` batches where ``E`` is the length of the (possibly padded)
  interaction arrays; with unpadded data this is the official ``n_observations // B``.
* Users without training items (absent from the official data) get a zero semantic input
  and are never sampled as anchors.
* A user with every item in the training set has no valid negative; the official sampler
  fails there, here its "negatives" are item 0 onward (never happens on real data).

References:
  Sheng, Zhang, Zhang, Chen, Wang, Chua. Language Representations Can be What Recommenders
  Need: Findings and Potentials. ICLR 2025 (AlphaRec). https://github.com/LehengTHU/AlphaRec
  He et al. LightGCN. SIGIR 2020.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.typing import ArrayLike

from complemjax._checks import check_finite, check_in_range, check_positive_int
from complemjax.models.contrastive import (
    info_nce,
    mean_history_features,
    mlp2_apply,
    mlp2_init,
    unit_rows,
)
from complemjax.models.graph import Graph, propagate_mean
from complemjax.models.protocol import TrainData

__all__ = [
    "AlphaRec",
    "AlphaRecHParams",
    "AlphaRecState",
    "alpharec_embeddings",
    "alpharec_loss",
    "check_alpharec_hparams",
    "sample_negatives",
]

#: weights of the official first MLP layer for text-embedding-3-large (3072 → 1536).
_OFFICIAL_FIRST_LAYER = 3072 * 1536


@flax.struct.dataclass
class AlphaRecHParams:
    """Dynamic AlphaRec hyperparameters (arrays; stack G of them to vmap a grid).

    Attributes:
      temperature: InfoNCE temperature τ > 0 (official 0.15; 0.2 on Games).
      learning_rate: Adam step size > 0 (official 5e-4).
      n_layers: propagation layers K in ``[0, AlphaRec.max_layers]`` (official 2).
    """

    temperature: jax.Array | float = 0.15
    learning_rate: jax.Array | float = 5e-4
    n_layers: jax.Array | int = 2


def check_alpharec_hparams(hparams: AlphaRecHParams, max_layers: int) -> None:
    """Raise ValueError naming the field of AlphaRec hyperparameters that is out of range.

    Raises unless τ > 0, learning_rate > 0 (finite) and n_layers is an integer in
    ``[0, max_layers]``; works on one config or a stacked grid; skipped under tracing.
    """
    if isinstance(hparams.temperature, jax.core.Tracer):
        return
    check_in_range("hparams.temperature", hparams.temperature, 0.0, np.inf, lo_open=True,
                   hi_open=True)  # fmt: skip
    check_in_range("hparams.learning_rate", hparams.learning_rate, 0.0, np.inf, lo_open=True,
                   hi_open=True)  # fmt: skip
    nl = np.asarray(hparams.n_layers)
    if not np.issubdtype(nl.dtype, np.integer) or (nl < 0).any() or (nl > max_layers).any():
        raise ValueError(
            f"`hparams.n_layers` must be integers in [0, max_layers={max_layers}], got {nl}"
        )


class AlphaRecState(NamedTuple):
    """Training state (a pytree; vmappable over a leading config axis).

    Attributes:
      params: MLP parameters ``{"w1": [D, H], "b1": [H], "w2": [H, d], "b2": [d]}``.
      opt_state: optax Adam state.
      key: PRNG key for the next epoch.
      epoch: int32 scalar, epochs done.
    """

    params: dict
    opt_state: Any
    key: jax.Array
    epoch: jax.Array


def alpharec_embeddings(
    params: dict,
    user_features: jax.Array,
    item_features: jax.Array,
    graph: Graph,
    n_layers: ArrayLike,
    *,
    max_layers: int,
) -> tuple[jax.Array, jax.Array]:
    """Propagated (not yet normalised) representations ``(e_u [U, d], e_i [I, d])``.

    ``[e_u; e_i] = (1/(K+1)) Σ_{k≤K} Â^k [MLP(x_u); MLP(x_i)]``.

    Args:
      params: MLP parameters.
      user_features: ``[U, D]`` mean history embedding of each user.
      item_features: ``[I, D]`` LLM item embeddings.
      graph: :class:`~complemjax.models.graph.Graph` of the training interactions.
      n_layers: K, int scalar (may be traced) in ``[0, max_layers]``.
      max_layers: static bound on K.
    """
    return propagate_mean(
        graph,
        mlp2_apply(params, user_features),
        mlp2_apply(params, item_features),
        n_layers,
        max_layers=max_layers,
    )


def alpharec_loss(
    params: dict,
    user_features: jax.Array,
    item_features: jax.Array,
    graph: Graph,
    users: jax.Array,
    positives: jax.Array,
    negatives: jax.Array,
    temperature: ArrayLike,
    n_layers: ArrayLike,
    *,
    max_layers: int,
) -> jax.Array:
    """The official AlphaRec loss on one batch (InfoNCE with sampled negatives, cosine/τ).

    ``L = mean_b [ logsumexp([s_bp, s_b1 … s_bN] / τ) − s_bp / τ ]`` with
    ``s = cos(e_u, e_i)`` of the propagated representations.

    Args:
      params: MLP parameters.
      user_features: ``[U, D]`` mean history embedding of each user.
      item_features: ``[I, D]`` LLM item embeddings.
      graph: :class:`~complemjax.models.graph.Graph` of the training interactions.
      n_layers: K, int scalar (may be traced) in ``[0, max_layers]``.
      max_layers: static bound on K.
      users: ``[B]`` int anchor users.
      positives: ``[B]`` int positive items.
      negatives: ``[B, N]`` int sampled negative items.
      temperature: τ.

    Returns:
      scalar loss.
    """
    eu, ei = alpharec_embeddings(
        params, user_features, item_features, graph, n_layers, max_layers=max_layers
    )
    cand = jnp.concatenate([positives[:, None], negatives], axis=1)
    labels = jnp.zeros(users.shape, jnp.int32)
    return jnp.mean(info_nce(eu[users], ei, labels, temperature, candidate_idx=cand))


# ----------------------------------------------------------------------------- sampling
def _sorted_history(history, n_items: int):
    """Rows of ``history`` sorted with padding last, their sizes, and ``h_k − k`` offsets."""
    history = jnp.asarray(history, jnp.int32)
    length = history.shape[1]
    valid = history >= 0
    big = n_items + length  # > any real item, so padding sorts last and offsets stay > r
    h = jnp.sort(jnp.where(valid, history, big), axis=1)
    counts = jnp.sum(valid, axis=1).astype(jnp.int32)
    offsets = h - jnp.arange(length, dtype=jnp.int32)[None, :]
    return h, counts, offsets


def _count_leq(offsets, users, r):
    """``#{k : offsets[u, k] <= r}`` per query by a fixed-length vectorised binary search."""
    length = offsets.shape[1]
    lo = jnp.zeros(r.shape, jnp.int32)
    hi = jnp.full(r.shape, length, jnp.int32)
    rows = users.reshape(users.shape + (1,) * (r.ndim - users.ndim))
    for _ in range(int(length).bit_length()):
        active = lo < hi
        mid = (lo + hi) // 2
        le = offsets[rows, jnp.minimum(mid, length - 1)] <= r
        lo = jnp.where(active & le, mid + 1, lo)
        hi = jnp.where(active & ~le, mid, hi)
    return lo


def sample_negatives(
    key: jax.Array, history: ArrayLike, users: ArrayLike, n_items: int, n: int
) -> jax.Array:
    """``n`` items per user, uniform with replacement over the items *not* in its history.

    Exact, with no rejection loop: with the user's sorted training items ``h_0 < h_1 < …``,
    the ``r``-th item outside the history is ``r + #{k : h_k − k ≤ r}``, so drawing
    ``r ~ U{0, …, n_items − |H(u)| − 1}`` and mapping it gives the official
    ``reckit.randint_choice(n_items, n, exclusion=H(u))``.

    Args:
      key: PRNG key.
      history: ``[U, L]`` int padded training item sets (``-1`` padding, no repeats).
      users: ``[B]`` int.
      n_items: catalogue size.
      n: negatives per user.

    Returns:
      ``[B, n]`` int32 item indices.
    """
    _, counts, offsets = _sorted_history(history, n_items)
    return _negatives(key, counts, offsets, jnp.asarray(users, jnp.int32), n_items, n)


def _negatives(key, counts, offsets, users, n_items, n):
    free = jnp.maximum(n_items - counts[users], 1)
    r = jax.random.randint(key, (users.shape[0], n), 0, free[:, None], dtype=jnp.int32)
    return r + _count_leq(offsets, users, r)


# ----------------------------------------------------------------------------- family
def _check_data(data, name: str = "data"):
    x = data.item_features
    if x is None:
        raise ValueError(f"`{name}.item_features` is required (LLM item embeddings), got None")
    x = jnp.asarray(x)
    n_items = data.graph.n_items
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.floating) or x.shape[0] != n_items:
        raise ValueError(
            f"`{name}.item_features` must be a float [{n_items}, D] array, got {x.dtype} {x.shape}"
        )
    check_finite(f"{name}.item_features", x)
    h = jnp.asarray(data.history)
    if h.ndim != 2 or h.shape[0] != data.graph.n_users or not jnp.issubdtype(h.dtype, jnp.integer):
        raise ValueError(
            f"`{name}.history` must be int [{data.graph.n_users}, L], got {h.dtype} {h.shape}"
        )
    return x


@dataclasses.dataclass(frozen=True)
class AlphaRec:
    """The AlphaRec model family (static configuration; see the module docstring).

    Attributes:
      dim: output embedding size d (official ``hidden_size`` 64).
      hidden: MLP hidden width H; ``None`` = the official rule ``round(3072·1536 / D)``.
      max_layers: largest K allowed in :class:`AlphaRecHParams` (``max_layers`` products
        are computed, the layers above ``n_layers`` get weight 0, so K is vmappable).
      n_negatives: sampled negatives per positive N (official 256).
      batch_size: samples per step B (official 4096; capped at the number of interactions).
      name: family name used in reports.
    """

    dim: int = 64
    hidden: int | None = 1024
    max_layers: int = 3
    n_negatives: int = 256
    batch_size: int = 4096
    name: str = "alpharec"

    def __post_init__(self):
        check_positive_int("dim", self.dim)
        if self.hidden is not None:
            check_positive_int("hidden", self.hidden)
        check_positive_int("max_layers", self.max_layers, minimum=0)
        check_positive_int("n_negatives", self.n_negatives)
        check_positive_int("batch_size", self.batch_size)

    def check_hparams(self, hparams: AlphaRecHParams) -> None:
        """Validate one configuration or a stacked grid (see :func:`check_alpharec_hparams`)."""
        check_alpharec_hparams(hparams, self.max_layers)

    def hidden_width(self, d_in: int) -> int:
        """MLP hidden width for ``d_in``-dimensional item embeddings."""
        if self.hidden is not None:
            return self.hidden
        return max(1, round(_OFFICIAL_FIRST_LAYER / d_in))

    def init(self, key: jax.Array, data: TrainData, hparams: AlphaRecHParams) -> AlphaRecState:
        """Initial state: PyTorch-default MLP weights, fresh Adam moments.

        Args:
          key: PRNG key (split into an init key and the training stream).
          data: ``TrainData`` with ``item_features`` ``[n_items, D]``.
          hparams: :class:`AlphaRecHParams` (unused by the initialisation; validated).
        """
        x = _check_data(data)
        self.check_hparams(hparams)
        k_init, k_train = jax.random.split(key)
        params = mlp2_init(k_init, x.shape[1], self.hidden_width(x.shape[1]), self.dim, x.dtype)
        return AlphaRecState(
            params, optax.scale_by_adam().init(params), k_train, jnp.zeros((), jnp.int32)
        )

    def train_epochs(
        self, state: AlphaRecState, data: TrainData, hparams: AlphaRecHParams, n_epochs: int
    ) -> tuple[AlphaRecState, jax.Array]:
        """Run ``n_epochs`` epochs of the official sampler and loss (pure; vmappable).

        Returns:
          ``(state, losses [n_epochs])``, the mean batch loss of each epoch.
        """
        _check_data(data)
        self.check_hparams(hparams)
        n_epochs = check_positive_int("n_epochs", n_epochs)
        return _train_epochs(self, state, data, hparams, n_epochs)

    def embeddings(
        self, state: AlphaRecState, data: TrainData, hparams: AlphaRecHParams
    ) -> tuple[jax.Array, jax.Array]:
        """``(user_emb [U, d], item_emb [I, d])`` with unit-norm rows (score = cosine)."""
        _check_data(data)
        self.check_hparams(hparams)
        return _embeddings(self, state.params, data, hparams.n_layers)


def _features(data):
    x = jnp.asarray(data.item_features)
    xu = mean_history_features(x, data.user_idx, data.item_idx, data.mask, data.graph.n_users)
    return xu, x


@jax.jit(static_argnames=("family",))
def _embeddings(family: AlphaRec, params, data, n_layers):
    xu, xi = _features(data)
    eu, ei = alpharec_embeddings(params, xu, xi, data.graph, n_layers, max_layers=family.max_layers)
    return unit_rows(eu), unit_rows(ei)


@jax.jit(static_argnames=("family", "n_epochs"))
def _train_epochs(family: AlphaRec, state: AlphaRecState, data, hparams, n_epochs):
    graph = data.graph
    n_users, n_items = graph.n_users, graph.n_items
    xu, xi = _features(data)
    h_sorted, counts, offsets = _sorted_history(data.history, n_items)
    n_active = jnp.maximum(jnp.sum(counts > 0), 1)
    active = jnp.nonzero(counts > 0, size=n_users, fill_value=0)[0].astype(jnp.int32)
    n = data.user_idx.shape[0]
    bsz = min(family.batch_size, n)
    n_batches = n // bsz
    tx = optax.scale_by_adam()
    lr = jnp.asarray(hparams.learning_rate)
    tau = jnp.asarray(hparams.temperature)

    def loss_fn(params, users, pos, neg):
        return alpharec_loss(
            params, xu, xi, graph, users, pos, neg, tau, hparams.n_layers,
            max_layers=family.max_layers,
        )  # fmt: skip

    def step(carry, idx):
        params, opt_state, key = carry
        key, k_pos, k_neg = jax.random.split(key, 3)
        users = active[idx % n_active]
        slot = jax.random.randint(k_pos, (bsz,), 0, jnp.maximum(counts[users], 1))
        pos = h_sorted[users, slot]
        neg = _negatives(k_neg, counts, offsets, users, n_items, family.n_negatives)
        loss, grads = jax.value_and_grad(loss_fn)(params, users, pos, neg)
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
    return AlphaRecState(params, opt_state, key, state.epoch + n_epochs), losses

"""RLMRec-Con (Ren et al., WWW 2024): LightGCN plus contrastive alignment with semantic profiles.

The collaborative model is the LightGCN family of :mod:`complemjax.models.lightgcn`, unchanged
(same initialisation, sampler, BPR loss, L2 penalty and Adam). RLMRec-Con adds a learned map
of semantic profiles ``s_u``, ``s_i`` into the CF space and an InfoNCE term that pulls every
CF representation of the batch towards its own mapped profile::

    σ(s) = MLP(s)       MLP = Linear(D, (D + d)//2) → LeakyReLU → Linear((D + d)//2, d)
    L = L_LightGCN + w · (1/B) Σ_b [ ℓ(e_{u_b}; σ(s_{u_b}) | σ(s_u) for all users u)
                                   + ℓ(e_{i_b}; σ(s_{i_b}) | σ(s_{i_b'}) for b' in batch)
                                   + ℓ(e_{j_b}; σ(s_{j_b}) | σ(s_{j_b'}) for b' in batch) ]
    ℓ(a; p | C) = −cos(a, p)/τ + log Σ_{c ∈ C} exp(cos(a, c)/τ)

with ``(u_b, i_b, j_b)`` the LightGCN triples of the batch and ``e`` the propagated (layer-mean)
CF embeddings. Recommendation uses the CF embeddings alone (``e_u · e_i``). At ``w = 0`` the
CF parameters receive exactly the LightGCN gradients from the same key stream, so the model is
the backbone (``tests/test_models_rlmrec.py`` checks the embeddings against
:class:`~complemjax.models.lightgcn.LightGCN`).

Matched to the official code (``HKUDS/RLMRec``, ``encoder/``; files read at commit 0241795):

* ``models/general_cf/lightgcn_plus.py`` (``LightGCN_plus.__init__``, ``cal_loss``): one MLP
  ``Linear(D, (D+d)//2) → LeakyReLU → Linear(·, d)`` shared by user and item profiles,
  weights ``xavier_uniform_`` (biases PyTorch default); the three ``cal_infonce_loss`` terms
  with candidates *all users' mapped profiles* for the anchors, the *batch's* mapped
  positive profiles for the positives and the batch's mapped negative profiles for the
  negatives; ``kd_loss /= B``; ``kd_loss *= kd_weight``; ``loss = bpr + reg + kd``.
* ``models/loss_utils.py`` (``cal_infonce_loss``): rows normalised, ``−(n1·n2)/τ +
  log Σ exp(n1 · all2ᵀ / τ)``, summed over the batch
  (:func:`complemjax.models.contrastive.info_nce` computes the same per-row terms).
* ``config/modelconf/lightgcn_plus.yml``: ``kd_weight`` 1e-2 and ``kd_temperature`` 0.2
  (Amazon, Yelp), 1e-3 and 0.1 (Steam); ``embedding_size`` 32, ``layer_num`` 3, Adam lr 1e-3,
  batch 4096. Here ``w`` is chosen on validation from {0, 1e-3, 1e-2, 1e-1} and τ from
  {0.1, 0.2} (:func:`rlmrec_grid`).

Where this differs (and why):

* Semantic profiles: RLMRec encodes LLM-*generated* user and item profiles (text-embedding-
  ada-002 of GPT-3.5 summaries). Here item profiles are the item text embeddings
  (``TrainData.item_features``) and a user's profile is the mean embedding of the user's
  training items (:func:`~complemjax.models.contrastive.mean_history_features`). No LLM
  generation is run; a report must disclose this.
* Backbone: the backbone is this library's LightGCN (He et al.; official gusye1234 loss,
  user-uniform triple sampling, ego-embedding L2, layer-*mean* readout, no edge dropout), so
  that weight 0 is *exactly* the LightGCN baseline. RLMRec's own backbone sums the layers
  (a scale of ``K+1``, which leaves the cosine InfoNCE unchanged), drops 20% of the edges at
  each step (``keep_rate`` 0.8), samples one negative per training interaction per epoch and
  penalises ``reg_weight · Σ‖W‖²`` over *all* parameters, including the MLP (1e-7 there;
  here the MLP has no penalty).
* Users sampled without training items (possible only with such users in the data) get
  weight 0 in the alignment term as in the BPR term, but their (arbitrary) positive and
  negative rows stay in the in-batch candidate sets.

References:
  Ren, Wei, Xia, Su, Luo, Yin, Huang. Representation Learning with Large Language Models
  for Recommendation. WWW 2024. https://github.com/HKUDS/RLMRec
  He et al. LightGCN. SIGIR 2020.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.typing import ArrayLike

from complemjax._checks import check_finite, check_in_range, check_positive_int
from complemjax.models.contrastive import info_nce, mean_history_features, mlp2_apply, mlp2_init
from complemjax.models.graph import propagate_mean
from complemjax.models.lightgcn import (
    LightGCN,
    LightGCNHParams,
    LightGCNState,
    check_lightgcn_hparams,
    lightgcn_init,
    lightgcn_loss,
    lightgcn_step,
    n_steps_per_epoch,
    positive_keys,
    sample_triples,
)
from complemjax.models.protocol import TrainData, stack_hparams

__all__ = [
    "RLMRec",
    "RLMRecHParams",
    "RLMRecState",
    "rlmrec_align_loss",
    "rlmrec_grid",
]

#: folded into the model key to draw the MLP, so the backbone's key stream is untouched.
_MLP_STREAM = 0x524C4D


@flax.struct.dataclass
class RLMRecHParams:
    """Dynamic RLMRec-Con hyper-parameters (stack G of them to vmap a grid).

    Attributes:
      learning_rate: Adam step size (backbone and MLP), > 0.
      l2: LightGCN ego-embedding penalty λ, ≥ 0.
      n_layers: LightGCN layers K in ``[0, backbone.max_layers]``.
      align_weight: weight w of the alignment InfoNCE (official ``kd_weight``), ≥ 0; 0 is
        the backbone.
      temperature: τ of the alignment InfoNCE (official ``kd_temperature``), > 0.
    """

    learning_rate: jax.Array | float = 1e-3
    l2: jax.Array | float = 1e-4
    n_layers: jax.Array | int = 3
    align_weight: jax.Array | float = 1e-2
    temperature: jax.Array | float = 0.2

    def backbone(self) -> LightGCNHParams:
        """The LightGCN part of the configuration."""
        return LightGCNHParams(self.learning_rate, self.l2, self.n_layers)


class RLMRecState(NamedTuple):
    """Training state.

    Attributes:
      backbone: :class:`~complemjax.models.lightgcn.LightGCNState` (ego embeddings, their Adam
        state, the PRNG key of the sampler, epochs done) — the same pytree LightGCN carries.
      mlp: semantic map ``{"w1": [D, H], "b1": [H], "w2": [H, d], "b2": [d]}``.
      mlp_opt: Adam state of the map.
    """

    backbone: LightGCNState
    mlp: dict
    mlp_opt: Any


def rlmrec_align_loss(
    cf_users: jax.Array,
    cf_items: jax.Array,
    mlp: dict,
    user_profiles: jax.Array,
    item_profiles: jax.Array,
    triples: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    temperature: ArrayLike,
) -> jax.Array:
    """The RLMRec-Con alignment term (``kd_loss / kd_weight`` of the official code).

    ``(1/n) Σ_b w_b [ℓ_user(b) + ℓ_pos(b) + ℓ_neg(b)]`` with ``n = Σ_b w_b`` (= B when every
    sampled user has training items) and the three InfoNCE terms of the module docstring.

    Args:
      cf_users: ``[U, d]`` propagated CF user embeddings.
      cf_items: ``[I, d]`` propagated CF item embeddings.
      mlp: semantic map parameters.
      user_profiles: ``[U, D]`` user semantic profiles.
      item_profiles: ``[I, D]`` item semantic profiles.
      triples: ``(u, i, j, w)``, each ``[B]``, from
        :func:`complemjax.models.lightgcn.sample_triples`.
      temperature: τ > 0.

    Returns:
      scalar.
    """
    u, i, j, w = triples
    b = jnp.arange(u.shape[0])
    su = mlp2_apply(mlp, user_profiles)
    l_u = info_nce(cf_users[u], su, u, temperature)
    l_i = info_nce(cf_items[i], mlp2_apply(mlp, item_profiles[i]), b, temperature)
    l_j = info_nce(cf_items[j], mlp2_apply(mlp, item_profiles[j]), b, temperature)
    w = w.astype(l_u.dtype)
    return jnp.sum(w * (l_u + l_i + l_j)) / jnp.maximum(jnp.sum(w), 1.0)


def _profiles(data: TrainData):
    x = jnp.asarray(data.item_features)
    xu = mean_history_features(x, data.user_idx, data.item_idx, data.mask, data.graph.n_users)
    return xu, x


def _check_data(data: TrainData):
    if not isinstance(data, TrainData):
        raise ValueError(f"`data` must be a TrainData (make_train_data), got {type(data).__name__}")
    x = data.item_features
    if x is None:
        raise ValueError("`data.item_features` is required (semantic item profiles), got None")
    x = jnp.asarray(x)
    n_items = data.graph.n_items
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.floating) or x.shape[0] != n_items:
        raise ValueError(
            f"`data.item_features` must be a float [{n_items}, D] array, got {x.dtype} {x.shape}"
        )
    check_finite("data.item_features", x)
    return x


def check_rlmrec_hparams(hparams: RLMRecHParams, max_layers: int) -> None:
    """Validate one configuration or a stacked grid (skipped under tracing)."""
    if isinstance(hparams.align_weight, jax.core.Tracer):
        return
    check_lightgcn_hparams(hparams.backbone(), max_layers)
    check_in_range("hparams.align_weight", hparams.align_weight, 0.0, np.inf, hi_open=True)
    check_in_range(
        "hparams.temperature", hparams.temperature, 0.0, np.inf, lo_open=True, hi_open=True
    )


@dataclasses.dataclass(frozen=True)
class RLMRec:
    """The RLMRec-Con model family on a LightGCN backbone (static configuration).

    Attributes:
      backbone: the :class:`~complemjax.models.lightgcn.LightGCN` configuration (dim,
        max_layers, batch size, init scale, negative retries); use the one the LightGCN
        baseline uses so that weight 0 reproduces it.
      hidden: MLP hidden width; ``None`` = the official ``(D + d) // 2``.
      name: label in selection tables.
    """

    backbone: LightGCN = dataclasses.field(default_factory=LightGCN)
    hidden: int | None = None
    name: str = "RLMRec-Con"

    def __post_init__(self):
        if not isinstance(self.backbone, LightGCN):
            raise ValueError(f"`backbone` must be a LightGCN, got {type(self.backbone).__name__}")
        if self.hidden is not None:
            check_positive_int("hidden", self.hidden)

    def hidden_width(self, d_in: int) -> int:
        """MLP hidden width for ``d_in``-dimensional semantic profiles."""
        return self.hidden if self.hidden is not None else (d_in + self.backbone.dim) // 2

    def check_hparams(self, hparams: RLMRecHParams) -> None:
        """Raise ValueError naming the field of RLMRec hyperparameters that is out of range.

        Backbone fields as LightGCN; align_weight ≥ 0; temperature > 0.
        """
        check_rlmrec_hparams(hparams, self.backbone.max_layers)

    def init(self, key: jax.Array, data: TrainData, hparams: RLMRecHParams) -> RLMRecState:
        """Initial RLMRec state.

        Backbone state exactly as ``LightGCN.init(key, ...)``; the MLP from
        ``fold_in(key, ·)`` (xavier-uniform weights); zero Adam moments.
        """
        x = _check_data(data)
        self.check_hparams(hparams)
        bb = lightgcn_init(key, data, self.backbone)
        mlp = mlp2_init(
            jax.random.fold_in(key, _MLP_STREAM),
            x.shape[1],
            self.hidden_width(x.shape[1]),
            self.backbone.dim,
            bb.params.user_emb.dtype,
            weights="xavier_uniform",
        )
        return RLMRecState(bb, mlp, optax.scale_by_adam().init(mlp))

    def train_epochs(
        self, state: RLMRecState, data: TrainData, hparams: RLMRecHParams, n_epochs: int
    ) -> tuple[RLMRecState, jax.Array]:
        """``n_epochs`` epochs of LightGCN + ``align_weight`` · alignment (pure; vmappable).

        Returns:
          ``(state, losses [n_epochs])``, the mean total batch loss of each epoch.
        """
        _check_data(data)
        self.check_hparams(hparams)
        n_epochs = check_positive_int("n_epochs", n_epochs)
        return _train_epochs(self, state, data, hparams, n_epochs)

    def embeddings(
        self, state: RLMRecState, data: TrainData, hparams: RLMRecHParams
    ) -> tuple[jax.Array, jax.Array]:
        """The CF embeddings ``(user_emb [U, d], item_emb [I, d])`` (score = dot product)."""
        return self.backbone.embeddings(state.backbone, data, hparams.backbone())


def rlmrec_grid(
    base: LightGCNHParams | None = None,
    *,
    align_weights: Sequence[float] = (0.0, 1e-3, 1e-2, 1e-1),
    temperatures: Sequence[float] = (0.1, 0.2),
) -> RLMRecHParams:
    """The selection grid: every ``align_weight × temperature``, weight 0 once (τ is moot).

    Args:
      base: backbone hyper-parameters (learning rate, l2, layers; default LightGCN's).
      align_weights: candidate w (official 1e-3 and 1e-2 lie inside the default).
      temperatures: candidate τ (official 0.1 and 0.2).

    Returns:
      stacked :class:`RLMRecHParams` with a leading axis G (``1 + (nw − 1)·nτ`` with 0 in
      the weights).
    """
    base = LightGCNHParams() if base is None else base
    if not align_weights or not temperatures:
        raise ValueError("`align_weights` and `temperatures` must be non-empty")
    configs, seen = [], set()
    for w, t in itertools.product(align_weights, temperatures):
        key = (float(w), float(t) if w != 0 else None)
        if key in seen:
            continue
        seen.add(key)
        configs.append(
            RLMRecHParams(base.learning_rate, base.l2, base.n_layers, float(w), float(t))
        )
    return stack_hparams(configs)


@functools.partial(jax.jit, static_argnames=("family", "n_epochs"))
def _train_epochs(family: RLMRec, state: RLMRecState, data: TrainData, hparams, n_epochs):
    config = family.backbone
    steps, bsz = n_steps_per_epoch(data, config.batch_size)
    sorted_keys = positive_keys(data)
    xu, xi = _profiles(data)
    bhp = hparams.backbone()

    def loss_fn(params, mlp, triples):
        base, _ = lightgcn_loss(params, data, bhp, triples, config.max_layers)
        eu, ei = propagate_mean(
            data.graph, params.user_emb, params.item_emb, bhp.n_layers,
            max_layers=config.max_layers,
        )  # fmt: skip
        align = rlmrec_align_loss(eu, ei, mlp, xu, xi, triples, hparams.temperature)
        return base + hparams.align_weight * align

    grad = jax.value_and_grad(loss_fn, argnums=(0, 1))

    # the same carry, key use and step as LightGCN's _train_epochs, plus the MLP
    def step(carry, _):
        params, opt_state, key, mlp, mlp_opt = carry
        key, k = jax.random.split(key)
        tr = sample_triples(k, data, sorted_keys, bsz, config.n_neg_retries)
        loss, (g, g_mlp) = grad(params, mlp, tr)
        params, opt_state = lightgcn_step(params, opt_state, g, hparams.learning_rate)
        mlp, mlp_opt = lightgcn_step(mlp, mlp_opt, g_mlp, hparams.learning_rate)
        return (params, opt_state, key, mlp, mlp_opt), loss

    def epoch(carry, _):
        carry, losses = lax.scan(step, carry, None, length=steps)
        return carry, jnp.mean(losses)

    bb = state.backbone
    carry = (bb.params, bb.opt_state, bb.key, state.mlp, state.mlp_opt)
    (params, opt_state, key, mlp, mlp_opt), losses = lax.scan(epoch, carry, None, length=n_epochs)
    new_bb = LightGCNState(params, opt_state, key, bb.epoch + n_epochs)
    return RLMRecState(new_bb, mlp, mlp_opt), losses

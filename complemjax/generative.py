"""The shared-plus-private generative model of a semantic and a collaborative view.

Each item ``i`` has three independent latent blocks: shared factors ``s_i`` (dim
``d_shared``), semantic-private factors ``p_i`` (``d_sem_private``) and
collaborative-private factors ``q_i`` (``d_cf_private``). The two views are::

    z^x_i = sqrt(rho_x) A s_i + sqrt(1 - rho_x) B p_i          (pre-activation, [D_x])
    z^y_i = sqrt(rho_y) C s_i + sqrt(1 - rho_y) D q_i          (pre-activation, [D_y])
    x_i   = f_x(z^x_i) + e^x_i,    e^x ~ N(0, sigma_x^2 I)      (semantic view)
    y_i   = f_y(z^y_i) + e^y_i,    e^y ~ N(0, sigma_y^2 I)      (collaborative view)

Latents are Gaussian with a power-law spectrum ``lambda_j ∝ j^(-decay)`` normalised to
mean 1 (``decay = 0`` gives standard normal latents). The mixing matrices are Gaussian
and rescaled so that each signal block has average per-dimension variance exactly 1:
``tr(A Λ_s Aᵀ) = D_x`` and likewise for B, C, D. ``rho`` is therefore exactly the share
of the pre-activation signal variance that is driven by the shared factors.

The map ``f`` is the identity mixed with one random sine-feature layer::

    f(z) = sqrt(1 - eta) z + sqrt(eta) W2 sin(omega W1 z + b)

with ``W1 ~ N(0, 1/D)`` ``[width, D]``, ``b ~ U(0, 2π)``, ``W2 ~ N(0, 2/width)``. The
knob ``eta`` (``nonlinearity``) moves from the linear-Gaussian case (``eta = 0``) to a
purely nonlinear map; ``omega`` (``frequency``) sets how rough the map is. Small
``omega`` makes the sine nearly linear; large ``omega`` makes it highly oscillatory.

**Network family** (``ViewsConfig(cf_map="network")``): the semantic view is
linear-Gaussian, ``x = sqrt(rho_x) A s + sqrt(1 - rho_x) B p + e^x``, and the
collaborative view is::

    y = sqrt(rho_y) g(s) + sqrt(1 - rho_y) D q + e^y,
    g(s) = sqrt(1 - eta) C s + sqrt(eta) G(s),
    G(s) = (N(s) - m) / k,  N(s) = h_L W_out,  h_l = tanh(omega h_{l-1} W_l + b_l),  h_0 = s

a smooth random network of the shared factors only (``net_depth`` layers of
``net_width`` units, ``W_l ~ N(0, 1/fan_in)``, ``b_l ~ N(0, 1)``; ``omega`` =
``frequency`` is the gain of every layer, so the Lipschitz constant of ``N`` is at most
``omega^L Π ||W_l|| ||W_out||``), centred and scaled (``m``, ``k``) on reference draws of
``s`` to unit average per-dimension variance. Private parts enter additively, so
``y_shared = sqrt(rho_y) g(s)`` exactly, and ``(s, p) | x`` is Gaussian in closed form
(:func:`latent_posterior`): the Bayes predictor ``E[y | x]`` is a Monte Carlo average over
that posterior (:func:`bayes_predict`) and its R² is the ceiling of any probe
(:func:`bayes_ceiling`).

**Correlated privates.** ``private_correlation = c`` makes the collaborative-private
factors ``q_j <- c p_j + sqrt(1 - c²) q_j`` (``j < min(d_p, d_q)``), so a share
``Var(E[y_private | x]) / Var(y_private)`` (:func:`population_stats`) of the private part
becomes recoverable from x; with ``c = 0`` it is exactly zero (an identity of the model).

**Attribution.** Each view is split exactly into three additive parts::

    x = x_shared + x_private + x_noise,
    x_shared  = E[f_x(z^x) | s]            (the part that is a function of s alone)
    x_private = f_x(z^x) - x_shared         (driven by the private factors)
    x_noise   = e^x

For the sine layer the conditional expectation is closed-form: if ``r ~ N(0, Σ_r)``
then ``E[sin(a + w·r)] = sin(a) exp(-wᵀΣ_r w / 2)``. In the linear case
``x_shared = sqrt(rho) A s`` and ``x_private = sqrt(1 - rho) B p``.

**Shift.** :func:`sample_split` draws one pool of items, splits it into train and test
(optionally by a soft selection on ``s_1``) and applies test-time shift operators to the
test latents: a mean shift and rescaling of the shared latent, a rescaling of the private
latents, and extra collaborative noise for cold items (whose collaborative embedding is
estimated from few interactions). Every operator is the identity at strength 0.

**Population quantities** (linear-Gaussian, ``eta = 0``) for given mixing matrices:
each view's shared-variance fraction ``rho / (1 + sigma^2)`` and the ceiling of any
linear probe from x to y, ``R²* = tr(Σ_yx Σ_xx⁻¹ Σ_xy) / tr(Σ_yy)``.

**Users and interactions** (:func:`sample_interactions`): users prefer items through
the shared factors and both private blocks, with a per-user private reliance; interactions
are sampled without replacement (Gumbel top-k) at a target density with a popularity
skew, and split per user into train and test.

References:
    Rethinking Semantic Collaborative Integration: Why Alignment Is Not Enough
    (SIGIR 2026, arXiv 2604.22195), the shared-plus-private view of the two spaces.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct
from jax.typing import ArrayLike

from complemjax import _checks

__all__ = [
    "BayesCeiling",
    "BayesPrediction",
    "LatentPosterior",
    "Latents",
    "Mixing",
    "PopulationStats",
    "Shift",
    "Split",
    "SyntheticInteractions",
    "UserKnobs",
    "UsersConfig",
    "Views",
    "ViewsConfig",
    "ViewsKnobs",
    "bayes_ceiling",
    "bayes_predict",
    "latent_posterior",
    "population_stats",
    "render_views",
    "sample_interactions",
    "sample_latents",
    "sample_mixing",
    "sample_split",
    "sample_views",
]


# --------------------------------------------------------------------------- configs


@dataclasses.dataclass(frozen=True)
class ViewsConfig:
    """Static configuration (fixes shapes) of the two-view model.

    Attributes:
        d_shared: number of shared latent factors ``s``.
        d_sem_private: number of semantic-private factors ``p``.
        d_cf_private: number of collaborative-private factors ``q``.
        dim_sem: dimension ``D_x`` of the semantic view.
        dim_cf: dimension ``D_y`` of the collaborative view.
        n_features: width of the random sine-feature layer of ``f`` (``"sine"`` family).
        cf_map: ``"sine"`` (both views through the sine-feature map ``f``) or
            ``"network"`` (linear-Gaussian semantic view; the collaborative shared part is
            a smooth random tanh network of ``s`` alone, see the module docstring).
        net_depth: hidden layers of the random network (``"network"`` family).
        net_width: hidden units per layer of the random network.
        n_reference: reference draws of ``s`` used to centre and scale the network and
            to compute its linear ceiling ``R²*`` (``"network"`` family).
    """

    d_shared: int = 8
    d_sem_private: int = 8
    d_cf_private: int = 8
    dim_sem: int = 64
    dim_cf: int = 64
    n_features: int = 256
    cf_map: str = "sine"
    net_depth: int = 2
    net_width: int = 64
    n_reference: int = 4096

    def __post_init__(self):
        for name in ("d_shared", "d_sem_private", "d_cf_private", "dim_sem", "dim_cf"):
            _checks.check_positive_int(name, getattr(self, name))
        _checks.check_positive_int("n_features", self.n_features)
        _checks.check_positive_int("net_depth", self.net_depth)
        _checks.check_positive_int("net_width", self.net_width)
        _checks.check_positive_int("n_reference", self.n_reference, minimum=2)
        if self.cf_map not in ("sine", "network"):
            raise ValueError(f"`cf_map` must be 'sine' or 'network', got {self.cf_map!r}")


@struct.dataclass
class ViewsKnobs:
    """Dynamic knobs of the two-view model (a pytree: every field can be vmapped).

    Attributes:
        shared_fraction_sem: ``rho_x`` in [0, 1], shared share of the semantic signal.
        shared_fraction_cf: ``rho_y`` in [0, 1], shared share of the collaborative signal.
        noise_sem: ``sigma_x^2``, noise variance per dimension (signal variance is 1).
        noise_cf: ``sigma_y^2``.
        nonlinearity: ``eta`` in [0, 1]; 0 is the linear-Gaussian model.
        frequency: ``omega`` > 0, roughness of the nonlinear map: the sine frequency, or
            the gain of every hidden layer of the random network (its Lipschitz scale).
        spectrum_decay: ``decay`` >= 0 of the latent spectrum ``lambda_j ∝ j^-decay``.
        private_correlation: ``c`` in [-1, 1], correlation between ``p_j`` and ``q_j``
            for ``j < min(d_p, d_q)`` (0: independent private blocks).
    """

    shared_fraction_sem: float | jax.Array = 0.5
    shared_fraction_cf: float | jax.Array = 0.5
    noise_sem: float | jax.Array = 0.1
    noise_cf: float | jax.Array = 0.1
    nonlinearity: float | jax.Array = 0.0
    frequency: float | jax.Array = 1.0
    spectrum_decay: float | jax.Array = 0.0
    private_correlation: float | jax.Array = 0.0

    def validate(self) -> ViewsKnobs:
        """Check ranges on concrete values (no-op under tracing); returns ``self``."""
        _checks.check_in_range("shared_fraction_sem", self.shared_fraction_sem, 0.0, 1.0)
        _checks.check_in_range("shared_fraction_cf", self.shared_fraction_cf, 0.0, 1.0)
        _checks.check_in_range("noise_sem", self.noise_sem, 0.0, math.inf)
        _checks.check_in_range("noise_cf", self.noise_cf, 0.0, math.inf)
        _checks.check_in_range("nonlinearity", self.nonlinearity, 0.0, 1.0)
        _checks.check_in_range("frequency", self.frequency, 0.0, math.inf)
        _checks.check_in_range("spectrum_decay", self.spectrum_decay, 0.0, math.inf)
        _checks.check_in_range("private_correlation", self.private_correlation, -1.0, 1.0)
        return self


@struct.dataclass
class Shift:
    """Test-time shift operators (a pytree). All defaults are the identity.

    Attributes:
        shared_mean: offset added to the first shared latent ``s_1`` of test items.
        shared_scale: multiplier of every shared latent of test items.
        private_scale: multiplier of the private latents ``p`` and ``q`` of test items.
        selection: ``lambda`` in [0, 1]; the pool is split by the score
            ``lambda * s_1 + (1 - lambda) * u`` (``u`` standard normal): train items get
            the lowest scores. 0 is a random split, 1 trains on ``s_1`` below its median
            and tests above it.
        cf_noise_scale: multiplier of the collaborative noise std of test items
            (cold items have collaborative embeddings estimated from few interactions).
        selection_cf_private: ``mu`` in [0, 1] with ``lambda + mu <= 1``; weight of the
            first collaborative-private latent ``q_1`` in the selection score
            ``lambda s_1 + mu q_1 + (1 - lambda - mu) u`` (selection the semantic view
            cannot see).
        concept: ``kappa`` in [0, 1], concept shift of the shared -> collaborative map on
            test items: ``C <- sqrt(1 - kappa) C + sqrt(kappa) C'`` and (network family)
            ``G <- sqrt(1 - kappa) G + sqrt(kappa) G'`` with independent ``C'``, ``G'``.
    """

    shared_mean: float | jax.Array = 0.0
    shared_scale: float | jax.Array = 1.0
    private_scale: float | jax.Array = 1.0
    selection: float | jax.Array = 0.0
    cf_noise_scale: float | jax.Array = 1.0
    selection_cf_private: float | jax.Array = 0.0
    concept: float | jax.Array = 0.0

    def validate(self) -> Shift:
        """Check every field is in range (ValueError naming it otherwise); returns ``self``."""
        _checks.check_in_range("shared_scale", self.shared_scale, 0.0, math.inf)
        _checks.check_in_range("private_scale", self.private_scale, 0.0, math.inf)
        _checks.check_in_range("selection", self.selection, 0.0, 1.0)
        _checks.check_in_range("cf_noise_scale", self.cf_noise_scale, 0.0, math.inf)
        _checks.check_in_range("selection_cf_private", self.selection_cf_private, 0.0, 1.0)
        _checks.check_in_range(
            "selection + selection_cf_private",
            jnp.asarray(self.selection) + jnp.asarray(self.selection_cf_private),
            0.0,
            1.0,
        )
        _checks.check_in_range("concept", self.concept, 0.0, 1.0)
        return self


# --------------------------------------------------------------------------- outputs


class Mixing(NamedTuple):
    """Random mixing matrices and sine features (the "world" of one seed)."""

    A: jax.Array  # [D_x, d_s]
    B: jax.Array  # [D_x, d_p]
    C: jax.Array  # [D_y, d_s]
    D: jax.Array  # [D_y, d_q]
    W1_x: jax.Array  # [width, D_x]
    b_x: jax.Array  # [width]
    W2_x: jax.Array  # [D_x, width]
    W1_y: jax.Array  # [width, D_y]
    b_y: jax.Array  # [width]
    W2_y: jax.Array  # [D_y, width]
    # "network" family only (None for "sine"):
    net: tuple | None = None  # ((W_1, b_1), ..., (W_L, b_L), W_out): the shared map G
    net_alt: tuple | None = None  # an independent G' (concept shift)
    C_alt: jax.Array | None = None  # [D_y, d_s] an independent C' (concept shift)
    ref_s: jax.Array | None = None  # [n_reference, d_s] standard-normal reference draws


class Latents(NamedTuple):
    """Item latents (standard normal before spectrum scaling)."""

    s: jax.Array  # [n, d_s] shared
    p: jax.Array  # [n, d_p] semantic-private
    q: jax.Array  # [n, d_q] collaborative-private


class Views(NamedTuple):
    """Both views and their exact additive decomposition, for ``n`` items."""

    x: jax.Array  # [n, D_x] semantic view = x_shared + x_private + x_noise
    y: jax.Array  # [n, D_y] collaborative view = y_shared + y_private + y_noise
    x_shared: jax.Array  # [n, D_x]
    x_private: jax.Array  # [n, D_x]
    x_noise: jax.Array  # [n, D_x]
    y_shared: jax.Array  # [n, D_y]
    y_private: jax.Array  # [n, D_y]
    y_noise: jax.Array  # [n, D_y]
    latents: Latents


class Split(NamedTuple):
    """Train and (possibly shifted) test items drawn from one world."""

    train: Views
    test: Views
    mixing: Mixing


class PopulationStats(NamedTuple):
    """Closed-form population quantities of the linear-Gaussian model.

    ``r2_ceiling`` and ``private_recoverable`` are NaN for the sine family when
    ``nonlinearity > 0`` (no closed form).
    """

    shared_fraction_sem: jax.Array  # share of Var(x) driven by s
    shared_fraction_cf: jax.Array  # share of Var(y) driven by s
    r2_ceiling: jax.Array  # R²* of the best linear probe x -> y
    private_recoverable: jax.Array  # Var(E[y_private | x]) / Var(y_private)


# --------------------------------------------------------------------------- sampling


def _spectrum(d: int, decay) -> jax.Array:
    """Latent variances ``lambda_j ∝ j^-decay``, normalised to mean 1. Shape ``[d]``."""
    j = jnp.arange(1, d + 1, dtype=jnp.result_type(float))
    lam = j ** (-jnp.asarray(decay, dtype=j.dtype))
    return lam * (d / jnp.sum(lam))


def _normalise(M: jax.Array, lam: jax.Array) -> jax.Array:
    """Rescale ``M`` so that ``tr(M diag(lam) Mᵀ) = rows(M)``."""
    power = jnp.sum(M**2 * lam[None, :])
    return M * jnp.sqrt(M.shape[0] / power)


def sample_mixing(key: jax.Array, config: ViewsConfig) -> Mixing:
    """Draw the mixing matrices and sine features of one world.

    Args:
        key: PRNG key.
        config: static shapes.

    Returns:
        :class:`Mixing` with raw Gaussian mixing matrices (rescaled at render time to
        the latent spectrum) and sine features ``W1 ~ N(0, 1/D)``, ``b ~ U(0, 2π)``,
        ``W2 ~ N(0, 2/width)``.
    """
    return _sample_mixing_impl(key, config)


@functools.partial(jax.jit, static_argnums=1)
def _sample_mixing_impl(key: jax.Array, c: ViewsConfig) -> Mixing:
    ks = jax.random.split(key, 14)
    normal = jax.random.normal
    w = c.n_features
    net = net_alt = ref = None
    if c.cf_map == "network":
        net = _init_net(ks[10], c)
        net_alt = _init_net(ks[11], c)
        ref = normal(ks[12], (c.n_reference, c.d_shared))
    return Mixing(
        A=normal(ks[0], (c.dim_sem, c.d_shared)),
        B=normal(ks[1], (c.dim_sem, c.d_sem_private)),
        C=normal(ks[2], (c.dim_cf, c.d_shared)),
        D=normal(ks[3], (c.dim_cf, c.d_cf_private)),
        W1_x=normal(ks[4], (w, c.dim_sem)) / math.sqrt(c.dim_sem),
        b_x=jax.random.uniform(ks[5], (w,), maxval=2 * math.pi),
        W2_x=normal(ks[6], (c.dim_sem, w)) * math.sqrt(2.0 / w),
        W1_y=normal(ks[7], (w, c.dim_cf)) / math.sqrt(c.dim_cf),
        b_y=jax.random.uniform(ks[8], (w,), maxval=2 * math.pi),
        W2_y=normal(ks[9], (c.dim_cf, w)) * math.sqrt(2.0 / w),
        net=net,
        net_alt=net_alt,
        C_alt=normal(ks[13], (c.dim_cf, c.d_shared)),
        ref_s=ref,
    )


def _init_net(key: jax.Array, c: ViewsConfig) -> tuple:
    """Random tanh network ``d_s -> width^depth -> D_y``.

    ``W_l ~ N(0, 1/fan_in)``, ``b_l ~ N(0, 1)``, ``W_out ~ N(0, 1/width)``.
    """
    keys = jax.random.split(key, 2 * c.net_depth + 1)
    layers, fan = [], c.d_shared
    for layer in range(c.net_depth):
        W = jax.random.normal(keys[2 * layer], (fan, c.net_width)) / math.sqrt(fan)
        b = jax.random.normal(keys[2 * layer + 1], (c.net_width,))
        layers.append((W, b))
        fan = c.net_width
    return (*layers, jax.random.normal(keys[-1], (fan, c.dim_cf)) / math.sqrt(fan))


def _net_raw(net: tuple, omega, s: jax.Array) -> jax.Array:
    """``h_l = tanh(omega h_{l-1} W_l + b_l)``, output ``h_L W_out``; ``s [..., d_s]``."""
    h = s
    for W, b in net[:-1]:
        h = jnp.tanh(omega * (h @ W) + b)
    return h @ net[-1]


def _net_stats(net: tuple, omega, ref: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Centre ``[D_y]`` and scale of the raw network over the reference draws."""
    r = _net_raw(net, omega, ref)
    m = jnp.mean(r, axis=0)
    scale = jnp.sqrt(jnp.mean(jnp.sum((r - m) ** 2, axis=1)) / r.shape[1])
    return m, scale


def _shared_map(m: Mixing, knobs: ViewsKnobs, concept=0.0):
    """``g(s)`` of the network family for spectrum-scaled ``s`` (a closure), and ``C``.

    ``g(s) = sqrt(1 - eta) C s + sqrt(eta) G(s)``, ``G = (N(s) - m) / scale`` with ``m``
    and ``scale`` from the reference draws (unit average per-dimension variance).
    """
    lam_s = _spectrum(m.A.shape[1], knobs.spectrum_decay)
    kappa = jnp.asarray(concept)
    C = _normalise(m.C, lam_s)
    C = jnp.sqrt(1.0 - kappa) * C + jnp.sqrt(kappa) * _normalise(m.C_alt, lam_s)
    omega = jnp.asarray(knobs.frequency)
    ref = m.ref_s * jnp.sqrt(lam_s)
    m1, sc1 = _net_stats(m.net, omega, ref)
    m2, sc2 = _net_stats(m.net_alt, omega, ref)
    eta = jnp.asarray(knobs.nonlinearity)

    def g(s):
        G = (_net_raw(m.net, omega, s) - m1) / sc1
        G_alt = (_net_raw(m.net_alt, omega, s) - m2) / sc2
        G = jnp.sqrt(1.0 - kappa) * G + jnp.sqrt(kappa) * G_alt
        return jnp.sqrt(1.0 - eta) * (s @ C.T) + jnp.sqrt(eta) * G

    return g


def _correlated_q(p: jax.Array, q: jax.Array, c) -> jax.Array:
    """``q_j <- c p_j + sqrt(1 - c²) q_j`` for ``j < min(d_p, d_q)``; other ``q_j`` unchanged."""
    k = min(p.shape[-1], q.shape[-1])
    c = jnp.asarray(c, q.dtype)
    head = c * p[..., :k] + jnp.sqrt(1.0 - c**2) * q[..., :k]
    return jnp.concatenate([head, q[..., k:]], axis=-1)


def sample_latents(key: jax.Array, config: ViewsConfig, n: int) -> Latents:
    """Draw ``n`` items' standard-normal latents ``s, p, q`` (spectrum applied later)."""
    _checks.check_positive_int("n", n)
    ks, kp, kq = jax.random.split(key, 3)
    return Latents(
        s=jax.random.normal(ks, (n, config.d_shared)),
        p=jax.random.normal(kp, (n, config.d_sem_private)),
        q=jax.random.normal(kq, (n, config.d_cf_private)),
    )


def _one_view(lat_shared, lat_private, M_s, M_p, W1, b, W2, rho, eta, omega, noise_std, e):
    """Render one view and its decomposition. Latents already spectrum-scaled."""
    rho = jnp.asarray(rho)
    a = jnp.sqrt(rho) * lat_shared @ M_s.T  # [n, D] shared-driven pre-activation
    r = jnp.sqrt(1.0 - rho) * lat_private @ M_p.T  # [n, D] private-driven pre-activation
    z = a + r
    eta = jnp.asarray(eta)
    # Var of (W1 r)_j given s: (1 - rho) ||(W1 M_p)_j||^2 (M_p already spectrum-scaled).
    v = (1.0 - rho) * jnp.sum((W1 @ M_p) ** 2, axis=1)  # [width]
    h_full = jnp.sin(omega * z @ W1.T + b)  # [n, width]
    h_cond = jnp.sin(omega * a @ W1.T + b) * jnp.exp(-0.5 * omega**2 * v)
    lin, nl = jnp.sqrt(1.0 - eta), jnp.sqrt(eta)
    full = lin * z + nl * h_full @ W2.T
    shared = lin * a + nl * h_cond @ W2.T
    noise = noise_std * e
    return full + noise, shared, full - shared, noise


def render_views(
    mixing: Mixing,
    latents: Latents,
    knobs: ViewsKnobs,
    *,
    noise_key: jax.Array,
    cf_noise_scale: float | jax.Array = 1.0,
    concept: float | jax.Array = 0.0,
) -> Views:
    """Map latents to both views with their exact shared/private/noise decomposition.

    The private correlation of ``knobs`` is applied here: the collaborative-private
    factors entering ``y`` are ``q_j <- c p_j + sqrt(1 - c²) q_j`` (``j < min(d_p, d_q)``);
    ``latents`` (returned inside :class:`Views`) stay the independent draws.

    Args:
        mixing: world from :func:`sample_mixing`.
        latents: standard-normal latents ``[n, d]`` from :func:`sample_latents`.
        knobs: dynamic model knobs.
        noise_key: PRNG key of the observation noise.
        cf_noise_scale: multiplier of the collaborative noise std.
        concept: ``kappa`` of the concept shift of the shared -> collaborative map (see
            :class:`Shift`); 0 is the training map.

    Returns:
        :class:`Views` with ``x = x_shared + x_private + x_noise`` (and likewise ``y``).
    """
    m = mixing
    lam_s = _spectrum(m.A.shape[1], knobs.spectrum_decay)
    lam_p = _spectrum(m.B.shape[1], knobs.spectrum_decay)
    lam_q = _spectrum(m.D.shape[1], knobs.spectrum_decay)
    # Scaled latents: s * sqrt(lam); mixing normalised so each block has unit power.
    A, B = _normalise(m.A, lam_s), _normalise(m.B, lam_p)
    kappa = jnp.asarray(concept)
    C = _normalise(m.C, lam_s)
    C = jnp.sqrt(1.0 - kappa) * C + jnp.sqrt(kappa) * _normalise(m.C_alt, lam_s)
    D = _normalise(m.D, lam_q)
    s = latents.s * jnp.sqrt(lam_s)
    q = _correlated_q(latents.p, latents.q, knobs.private_correlation)
    # Private latents stay standard normal; their spectrum is folded into the mixing so
    # that the conditional variance given s is (1 - rho) ||W1 B_eff||^2 row-wise.
    B_eff, D_eff = B * jnp.sqrt(lam_p), D * jnp.sqrt(lam_q)
    ex_key, ey_key = jax.random.split(noise_key)
    n = s.shape[0]
    e_x = jax.random.normal(ex_key, (n, A.shape[0]), dtype=s.dtype)
    e_y = jax.random.normal(ey_key, (n, C.shape[0]), dtype=s.dtype)
    sx = jnp.sqrt(jnp.asarray(knobs.noise_sem))
    sy = jnp.sqrt(jnp.asarray(knobs.noise_cf)) * cf_noise_scale
    if m.net is not None:  # network family: linear-Gaussian x, y_shared = sqrt(rho_y) g(s)
        rx, ry = jnp.asarray(knobs.shared_fraction_sem), jnp.asarray(knobs.shared_fraction_cf)
        xs = jnp.sqrt(rx) * s @ A.T
        xp = jnp.sqrt(1.0 - rx) * latents.p @ B_eff.T
        xn = sx * e_x
        ys = jnp.sqrt(ry) * _shared_map(m, knobs, concept)(s)
        yp = jnp.sqrt(1.0 - ry) * q @ D_eff.T
        yn = sy * e_y
        return Views(xs + xp + xn, ys + yp + yn, xs, xp, xn, ys, yp, yn, latents)
    x, xs, xp, xn = _one_view(
        s, latents.p, A, B_eff, m.W1_x, m.b_x, m.W2_x,
        knobs.shared_fraction_sem, knobs.nonlinearity, knobs.frequency, sx, e_x,
    )  # fmt: skip
    y, ys, yp, yn = _one_view(
        s, q, C, D_eff, m.W1_y, m.b_y, m.W2_y,
        knobs.shared_fraction_cf, knobs.nonlinearity, knobs.frequency, sy, e_y,
    )  # fmt: skip
    return Views(x, y, xs, xp, xn, ys, yp, yn, latents)


def sample_views(key: jax.Array, config: ViewsConfig, knobs: ViewsKnobs, n: int) -> Views:
    """Draw a world and ``n`` items from it; jit with ``config`` and ``n`` static.

    Example:
        >>> cfg = ViewsConfig()
        >>> v = sample_views(jax.random.key(0), cfg, ViewsKnobs(), 100)
        >>> v.x.shape, v.y.shape
        ((100, 64), (100, 64))
    """
    knobs.validate()
    _checks.check_positive_int("n", n)
    return _sample_views_impl(key, config, knobs, n)


@functools.partial(jax.jit, static_argnums=(1, 3))
def _sample_views_impl(key: jax.Array, config: ViewsConfig, knobs: ViewsKnobs, n: int) -> Views:
    k_mix, k_lat, k_noise = jax.random.split(key, 3)
    mixing = _sample_mixing_impl(k_mix, config)
    latents = sample_latents(k_lat, config, n)
    return render_views(mixing, latents, knobs, noise_key=k_noise)


def _take(lat: Latents, idx: jax.Array) -> Latents:
    return Latents(lat.s[idx], lat.p[idx], lat.q[idx])


def sample_split(
    key: jax.Array,
    config: ViewsConfig,
    knobs: ViewsKnobs,
    *,
    n_train: int,
    n_test: int,
    shift: Shift | None = None,
) -> Split:
    """Draw a world, a pool of ``n_train + n_test`` items, split it and shift the test part.

    The pool is ordered by the selection score ``lambda s_1 + mu q_1 + (1 - lambda - mu) u``
    (``u ~ N(0, 1)``, independent of the items; ``q_1`` the first collaborative-private
    factor after the private correlation); the ``n_train`` lowest scores train.
    Test latents are then transformed: ``s <- shared_scale * s + shared_mean * e_1``,
    ``(p, q) <- private_scale * (p, q)``, and the collaborative noise std is multiplied
    by ``cf_noise_scale``; ``concept`` changes the shared -> collaborative map of the test
    items (:class:`Shift`). With ``Shift()`` (all identities, selection 0) the split is a
    random split of i.i.d. items, and the same key gives bit-identical results with or
    without passing a shift.

    Args:
        key: PRNG key; split once into world, latent, selection and noise keys.
        config: static shapes.
        knobs: dynamic model knobs.
        n_train: number of training items (static).
        n_test: number of test items (static).
        shift: test-time shift operators.

    Returns:
        :class:`Split` with train and test :class:`Views` and the world's mixing.
    """
    _checks.check_positive_int("n_train", n_train, minimum=2)
    _checks.check_positive_int("n_test", n_test)
    shift = Shift() if shift is None else shift
    knobs.validate()
    shift.validate()
    return _sample_split_impl(key, config, knobs, n_train, n_test, shift)


@functools.partial(jax.jit, static_argnums=(1, 3, 4))
def _sample_split_impl(
    key: jax.Array, config: ViewsConfig, knobs: ViewsKnobs, n_train: int, n_test: int, shift: Shift
) -> Split:
    k_mix, k_lat, k_sel, k_ntr, k_nte = jax.random.split(key, 5)
    mixing = _sample_mixing_impl(k_mix, config)
    pool = sample_latents(k_lat, config, n_train + n_test)
    lam, mu = jnp.asarray(shift.selection), jnp.asarray(shift.selection_cf_private)
    q1 = _correlated_q(pool.p, pool.q, knobs.private_correlation)[:, 0]
    score = (
        lam * pool.s[:, 0]
        + mu * q1
        + (1.0 - lam - mu) * jax.random.normal(k_sel, (n_train + n_test,))
    )
    order = jnp.argsort(score)
    train_lat = _take(pool, order[:n_train])
    test_lat = _take(pool, order[n_train:])
    s_t = test_lat.s * shift.shared_scale
    s_t = s_t.at[:, 0].add(shift.shared_mean)
    test_lat = Latents(s_t, test_lat.p * shift.private_scale, test_lat.q * shift.private_scale)
    train = render_views(mixing, train_lat, knobs, noise_key=k_ntr)
    test = render_views(
        mixing,
        test_lat,
        knobs,
        noise_key=k_nte,
        cf_noise_scale=shift.cf_noise_scale,
        concept=shift.concept,
    )
    return Split(train, test, mixing)


# --------------------------------------------------------------------------- population


def _linear_parts(mixing: Mixing, knobs: ViewsKnobs):
    """Spectrum-scaled mixing: ``H_s [D_x, d_s]``, ``H_p [D_x, d_p]``, ``D_eff``, ``lam_s``.

    ``x = H_s s + H_p p + e`` in standard-normal latent coordinates (linear semantic view).
    """
    lam_s = _spectrum(mixing.A.shape[1], knobs.spectrum_decay)
    lam_p = _spectrum(mixing.B.shape[1], knobs.spectrum_decay)
    lam_q = _spectrum(mixing.D.shape[1], knobs.spectrum_decay)
    rx = jnp.asarray(knobs.shared_fraction_sem)
    H_s = jnp.sqrt(rx) * _normalise(mixing.A, lam_s) * jnp.sqrt(lam_s)
    H_p = jnp.sqrt(1.0 - rx) * _normalise(mixing.B, lam_p) * jnp.sqrt(lam_p)
    D_eff = _normalise(mixing.D, lam_q) * jnp.sqrt(lam_q)
    return H_s, H_p, D_eff, lam_s


def _pq_cov(d_q: int, d_p: int, c, dtype) -> jax.Array:
    """``Cov(q_eff, p) = c [I_k 0; 0 0]``, ``[d_q, d_p]``, ``k = min(d_p, d_q)``."""
    return jnp.asarray(c, dtype) * jnp.eye(d_q, d_p, dtype=dtype)


def population_stats(mixing: Mixing, knobs: ViewsKnobs) -> PopulationStats:
    """Population quantities of the model for one world (closed form where linear).

    With ``Λ`` the latent spectra and mixing matrices normalised as in the module
    docstring, ``H_s = sqrt(rho_x) A Λ_s^½``, ``H_p = sqrt(1 - rho_x) B Λ_p^½``,
    ``D_e = D Λ_q^½`` and ``K = Cov(q, p) = c [I 0; 0 0]`` (private correlation ``c``)::

        Σ_xx = H_s H_sᵀ + H_p H_pᵀ + sigma_x² I
        Σ_yx = Cov(y_shared, s) H_sᵀ + sqrt(1 - rho_y) D_e K H_pᵀ
        shared fraction of x = rho_x / (1 + sigma_x²)
        R²* = tr(Σ_yx Σ_xx⁻¹ Σ_xy) / tr(Σ_yy)
        private_recoverable = tr(P Σ_xx⁻¹ Pᵀ) / tr(Var(y_private)),
                              P = sqrt(1 - rho_y) D_e K H_pᵀ

    ``private_recoverable = Var(E[y_private | x]) / Var(y_private)`` is the share of the
    collaborative-private part that any predictor from ``x`` can recover (it is linear in
    ``x`` because ``(p, q, x)`` are jointly Gaussian); it is exactly 0 when ``c = 0``.

    Sine family (``cf_map="sine"``): ``Cov(y_shared, s) = sqrt(rho_y) C Λ_s^½``; ``R²*``
    and ``private_recoverable`` are NaN when ``nonlinearity > 0`` (no closed form).
    Network family: ``Cov(y_shared, s)``, ``tr Var(y_shared)`` are Monte Carlo averages
    over the world's ``n_reference`` reference draws of ``s`` (relative error about
    ``n_reference^-½``); everything else is exact.

    Args:
        mixing: the world (mixing matrices) from :func:`sample_mixing`.
        knobs: dynamic knobs.

    Returns:
        :class:`PopulationStats`.
    """
    H_s, H_p, D_eff, lam_s = _linear_parts(mixing, knobs)
    ry = jnp.asarray(knobs.shared_fraction_cf)
    dtype = H_s.dtype
    D_x, D_y = H_s.shape[0], D_eff.shape[0]
    K = _pq_cov(D_eff.shape[1], H_p.shape[1], knobs.private_correlation, dtype)
    sxx = H_s @ H_s.T + H_p @ H_p.T + knobs.noise_sem * jnp.eye(D_x, dtype=dtype)
    if mixing.net is None:
        C = _normalise(mixing.C, lam_s)
        cov_ys = jnp.sqrt(ry) * C * jnp.sqrt(lam_s)  # [D_y, d_s]
        tr_shared = ry * jnp.sum((C * lam_s) * C)
        nonlinear = jnp.asarray(knobs.nonlinearity) > 0
    else:
        ref = mixing.ref_s
        g = jnp.sqrt(ry) * _shared_map(mixing, knobs)(ref * jnp.sqrt(lam_s))  # [R, D_y]
        gc = g - jnp.mean(g, axis=0)
        cov_ys = gc.T @ (ref - jnp.mean(ref, axis=0)) / (ref.shape[0] - 1)
        tr_shared = jnp.sum(gc**2) / (ref.shape[0] - 1)
        nonlinear = jnp.zeros((), bool)
    P = jnp.sqrt(1.0 - ry) * D_eff @ K @ H_p.T  # [D_y, D_x]
    syx = cov_ys @ H_s.T + P
    tr_private = (1.0 - ry) * jnp.sum(D_eff**2)
    tr_yy = tr_shared + tr_private + knobs.noise_cf * D_y
    sxx_inv = jnp.linalg.pinv(sxx, hermitian=True)
    r2 = jnp.trace(syx @ sxx_inv @ syx.T) / tr_yy
    priv = jnp.trace(P @ sxx_inv @ P.T) / tr_private
    r2 = jnp.where(nonlinear, jnp.nan, r2)
    priv = jnp.where(nonlinear, jnp.nan, priv)
    return PopulationStats(
        shared_fraction_sem=jnp.sum(H_s**2) / jnp.trace(sxx),
        shared_fraction_cf=tr_shared / tr_yy,
        r2_ceiling=r2,
        private_recoverable=priv,
    )


# --------------------------------------------------------------------------- Bayes


class LatentPosterior(NamedTuple):
    """Gaussian posterior of the standard-normal latents ``(s, p)`` given ``x``."""

    mean_s: jax.Array  # [n, d_s]
    mean_p: jax.Array  # [n, d_p]
    cov_s: jax.Array  # [d_s, d_s] (the same for every item)


class BayesPrediction(NamedTuple):
    """Bayes predictors ``E[y | x]`` and ``E[y_shared | x]`` with their Monte Carlo error."""

    y: jax.Array  # [n, D_y] E[y | x] = E[y_shared | x] + E[y_private | x]
    y_shared: jax.Array  # [n, D_y] E[y_shared | x]
    mc_var: jax.Array  # [n] sum over dims of the MC variance of the estimate (0 if exact)


class BayesCeiling(NamedTuple):
    """R² of the Bayes predictor on a sample of items (see :func:`bayes_ceiling`)."""

    r2: jax.Array  # [] bounds the R² of any x-based predictor of y
    r2_shared: jax.Array  # [] bounds the R² of any x-based predictor of y_shared


def latent_posterior(mixing: Mixing, knobs: ViewsKnobs, x: ArrayLike) -> LatentPosterior:
    """Posterior of the latents given the linear-Gaussian semantic view (closed form).

    With ``x = H z + e``, ``z = (s, p) ~ N(0, I)``, ``e ~ N(0, sigma_x² I)`` (network
    family, or the sine family at ``nonlinearity = 0``)::

        Cov(z | x) = sigma_x² (Hᵀ H + sigma_x² I)⁻¹
        E[z | x]   = (Hᵀ H + sigma_x² I)⁻¹ Hᵀ x

    (the noise-free limit ``sigma_x² = 0`` needs ``H`` of full column rank). Only the
    in-distribution prior ``N(0, I)`` is used: under a test shift of the latents this is
    not the posterior of the shifted items.

    Args:
        mixing: the world.
        knobs: dynamic knobs (the semantic view's ``rho_x``, ``sigma_x²``, spectrum).
        x: ``[n, D_x]`` semantic embeddings.

    Returns:
        :class:`LatentPosterior`.
    """
    x = _checks.check_matrix("x", x)
    if x.shape[1] != mixing.A.shape[0]:
        raise ValueError(f"`x` must have {mixing.A.shape[0]} columns, got shape {x.shape}")
    return _posterior_impl(mixing, knobs, x)


@jax.jit
def _posterior_impl(mixing, knobs, x):
    H_s, H_p, _, _ = _linear_parts(mixing, knobs)
    H = jnp.concatenate([H_s, H_p], axis=1)
    d_s = H_s.shape[1]
    sig2 = jnp.asarray(knobs.noise_sem, H.dtype)
    prec = H.T @ H + sig2 * jnp.eye(H.shape[1], dtype=H.dtype)
    mean = jnp.linalg.solve(prec, H.T @ x.T).T  # [n, d_s + d_p]
    cov = sig2 * jnp.linalg.inv(prec)
    cov = 0.5 * (cov + cov.T)
    return LatentPosterior(mean[:, :d_s], mean[:, d_s:], cov[:d_s, :d_s])


def bayes_predict(
    key: jax.Array, mixing: Mixing, knobs: ViewsKnobs, x: ArrayLike, *, n_mc: int = 64
) -> BayesPrediction:
    """The Bayes predictor ``E[y | x]`` (minimum-MSE prediction of y from x).

    ``E[y | x] = sqrt(rho_y) E[g(s) | x] + sqrt(1 - rho_y) D_e c E[p_{1..k} | x]``, with
    ``s | x ~ N(m(x), Σ)`` from :func:`latent_posterior`. Network family:
    ``E[g(s) | x] ≈ (1/M) Σ_m g(m(x) + L ε_m)``, ``L Lᵀ = Σ``, ``ε_m ~ N(0, I)``
    (``M = n_mc`` draws shared by all items); ``mc_var`` is the unbiased estimate of the
    Monte Carlo variance ``tr Var(g | x) / M`` per item, so that ``E||y − ŷ_M||² −
    mc_var`` estimates the MSE of the exact predictor. Sine family: closed form
    ``sqrt(rho_y) C Λ^½ m(x)`` (exact only when ``nonlinearity = 0``; NaN otherwise).

    Args:
        key: PRNG key of the Monte Carlo draws.
        mixing: the world.
        knobs: dynamic knobs.
        x: ``[n, D_x]``.
        n_mc: Monte Carlo draws (static, ``>= 2``).

    Returns:
        :class:`BayesPrediction`.
    """
    _checks.check_positive_int("n_mc", n_mc, minimum=2)
    post = latent_posterior(mixing, knobs, x)
    return _bayes_impl(key, mixing, knobs, post, n_mc)


@functools.partial(jax.jit, static_argnums=4)
def _bayes_impl(key, mixing, knobs, post, n_mc):
    H_s, H_p, D_eff, lam_s = _linear_parts(mixing, knobs)
    ry = jnp.asarray(knobs.shared_fraction_cf)
    K = _pq_cov(D_eff.shape[1], H_p.shape[1], knobs.private_correlation, H_s.dtype)
    y_priv = jnp.sqrt(1.0 - ry) * post.mean_p @ (D_eff @ K).T
    if mixing.net is None:
        C = _normalise(mixing.C, lam_s) * jnp.sqrt(lam_s)
        y_sh = jnp.sqrt(ry) * post.mean_s @ C.T
        y_sh = jnp.where(jnp.asarray(knobs.nonlinearity) > 0, jnp.nan, y_sh)
        mc_var = jnp.zeros(y_sh.shape[0], y_sh.dtype)
    else:
        d_s = H_s.shape[1]
        L = jnp.linalg.cholesky(post.cov_s + 1e-12 * jnp.eye(d_s, dtype=H_s.dtype))
        eps = jax.random.normal(key, (n_mc, d_s), H_s.dtype)
        g = _shared_map(mixing, knobs)
        draws = post.mean_s[:, None, :] + (eps @ L.T)[None]  # [n, M, d_s]
        vals = jnp.sqrt(ry) * g(draws * jnp.sqrt(lam_s))  # [n, M, D_y]
        y_sh = jnp.mean(vals, axis=1)
        mc_var = jnp.sum(jnp.var(vals, axis=1, ddof=1), axis=1) / n_mc
    return BayesPrediction(y_sh + y_priv, y_sh, mc_var)


def bayes_ceiling(
    key: jax.Array, mixing: Mixing, knobs: ViewsKnobs, views: Views, *, n_mc: int = 64
) -> BayesCeiling:
    """R² of the Bayes predictor on held-out items: the ceiling of any probe from x.

    ``r2 = 1 − (Σ_i ||y_i − ŷ_i||² − Σ_i mc_var_i) / Σ_i ||y_i − ȳ||²`` with
    ``ŷ = E[y | x]`` (:func:`bayes_predict`), and ``r2_shared`` the same for
    ``y_shared`` against ``E[y_shared | x]``. At infinite n, ``r2`` bounds the
    variance-weighted R² of every predictor of ``y`` built from ``x`` (``E[y | x]``
    minimises the MSE), and ``r2_shared`` bounds the R² of every predictor of
    ``y_shared``. When the private blocks are independent (``c = 0``),
    ``E[y | x] = E[y_shared | x]``. Use in-distribution items only (the posterior uses
    the training prior).

    Args:
        key: PRNG key of the Monte Carlo draws.
        mixing: the world.
        knobs: dynamic knobs.
        views: held-out items (:class:`Views`) of that world.
        n_mc: Monte Carlo draws.

    Returns:
        :class:`BayesCeiling`.
    """
    pred = bayes_predict(key, mixing, knobs, views.x, n_mc=n_mc)

    def r2(t, p):
        sse = jnp.sum((t - p) ** 2) - jnp.sum(pred.mc_var)
        return 1.0 - sse / jnp.sum((t - jnp.mean(t, axis=0)) ** 2)

    return BayesCeiling(r2(views.y, pred.y), r2(views.y_shared, pred.y_shared))


# --------------------------------------------------------------------------- users


@dataclasses.dataclass(frozen=True)
class UsersConfig:
    """Static configuration of synthetic users and their interactions.

    Attributes:
        n_users: number of users.
        max_interactions: cap ``m`` on interactions per user (fixes array shapes).
        test_fraction: share of each user's interactions held out for test (at least one
            is held out, at least one kept for training).
        user_chunk: users per chunk when sampling (bounds memory to ``chunk × items``).
    """

    n_users: int = 1000
    max_interactions: int = 64
    test_fraction: float = 0.2
    user_chunk: int = 512

    def __post_init__(self):
        _checks.check_positive_int("n_users", self.n_users)
        _checks.check_positive_int("max_interactions", self.max_interactions, minimum=2)
        _checks.check_positive_int("user_chunk", self.user_chunk)
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"`test_fraction` must lie in (0, 1), got {self.test_fraction}")


@struct.dataclass
class UserKnobs:
    """Dynamic knobs of synthetic users (a pytree).

    Attributes:
        private_reliance: mean ``pi`` in [0, 1] of each user's reliance on private factors.
        reliance_spread: concentration-free spread of ``pi_u`` across users: ``pi_u`` is
            ``sigmoid(logit(pi) + spread * N(0, 1))``.
        density: target mean number of interactions per user divided by the number of
            items (capped by ``max_interactions``).
        activity_spread: std of log activity across users (lognormal activity).
        popularity_skew: std of the log-popularity item bias added to the logits.
        temperature: inverse sharpness ``tau`` of preferences (logits are affinity/tau).
        popularity_cf_private: ``t`` in [-1, 1], ties item popularity to the first
            collaborative-private factor: ``beta_i = skew (t q_i1 + sqrt(1 - t²) u_i)``.
    """

    private_reliance: float | jax.Array = 0.5
    reliance_spread: float | jax.Array = 1.0
    density: float | jax.Array = 0.01
    activity_spread: float | jax.Array = 0.5
    popularity_skew: float | jax.Array = 1.0
    temperature: float | jax.Array = 0.5
    popularity_cf_private: float | jax.Array = 0.0

    def validate(self) -> UserKnobs:
        """Check every field is in range (ValueError naming it otherwise); returns ``self``."""
        _checks.check_in_range("private_reliance", self.private_reliance, 0.0, 1.0)
        _checks.check_in_range("reliance_spread", self.reliance_spread, 0.0, math.inf)
        _checks.check_in_range("density", self.density, 0.0, 1.0, lo_open=True)
        _checks.check_in_range("activity_spread", self.activity_spread, 0.0, math.inf)
        _checks.check_in_range("popularity_skew", self.popularity_skew, 0.0, math.inf)
        _checks.check_in_range("temperature", self.temperature, 0.0, math.inf, lo_open=True)
        _checks.check_in_range("popularity_cf_private", self.popularity_cf_private, -1.0, 1.0)
        return self


class SyntheticInteractions(NamedTuple):
    """Synthetic interactions as padded per-user item sets (``-1`` = padding).

    ``train`` and ``test`` follow the project-wide contract for item sets: int32
    ``[n_users, max_len]`` with valid item indices first and ``-1`` afterwards.
    """

    train: jax.Array  # [n_users, m] int32
    test: jax.Array  # [n_users, m] int32
    reliance: jax.Array  # [n_users] pi_u
    n_interactions: jax.Array  # [n_users] total sampled per user
    item_bias: jax.Array  # [n_items] log-popularity bias


def sample_interactions(
    key: jax.Array,
    latents: Latents,
    config: UsersConfig,
    knobs: UserKnobs,
) -> SyntheticInteractions:
    """Sample users, their interactions with the items, and a per-user train/test split.

    User ``u`` has preference vectors ``(a_u, b_u, c_u) ~ N(0, I)`` over the shared,
    semantic-private and collaborative-private blocks and a private reliance ``pi_u``.
    Its affinity for item ``i`` is::

        aff_ui = sqrt(1 - pi_u) <a_u, s_i>/sqrt(d_s)
                 + sqrt(pi_u / 2) (<b_u, p_i>/sqrt(d_p) + <c_u, q_i>/sqrt(d_q))

    and items are drawn without replacement with probabilities proportional to
    ``exp(aff_ui / tau + beta_i)``, ``beta_i = skew (t q_i1 + sqrt(1 - t²) u_i)``,
    ``u_i ~ N(0, 1)`` (Gumbel top-k; ``t = popularity_cf_private``, 0 by default).
    User ``u`` draws ``n_u = clip(round(density * n_items * LogNormal(0, spread)), 2, m)``
    items; ``max(1, round(test_fraction * n_u))`` of them, chosen at random, are test.
    Users are processed in chunks of ``user_chunk`` so memory is ``chunk × items``.

    Args:
        key: PRNG key.
        latents: item latents ``[n_items, d]`` (unscaled, as from :func:`sample_latents`).
        config: static user configuration.
        knobs: dynamic user knobs.

    Returns:
        :class:`SyntheticInteractions` with padded ``train`` and ``test`` sets.
    """
    knobs.validate()
    c = config
    n_items = latents.s.shape[0]
    m = c.max_interactions
    if m > n_items:
        raise ValueError(f"`max_interactions` ({m}) exceeds the number of items ({n_items})")
    k_pref, k_rel, k_act, k_bias, k_draw, k_split = jax.random.split(key, 6)
    d_s, d_p, d_q = latents.s.shape[1], latents.p.shape[1], latents.q.shape[1]
    pref = jax.random.normal(k_pref, (c.n_users, d_s + d_p + d_q))
    logit = jnp.log(knobs.private_reliance) - jnp.log1p(-knobs.private_reliance)
    pi = jax.nn.sigmoid(logit + knobs.reliance_spread * jax.random.normal(k_rel, (c.n_users,)))
    act = jnp.exp(knobs.activity_spread * jax.random.normal(k_act, (c.n_users,)))
    n_u = jnp.clip(jnp.round(knobs.density * n_items * act), 2, m).astype(jnp.int32)
    t = jnp.asarray(knobs.popularity_cf_private)
    u_bias = jax.random.normal(k_bias, (n_items,))
    bias = knobs.popularity_skew * (t * latents.q[:, 0] + jnp.sqrt(1.0 - t**2) * u_bias)
    item_feats = jnp.concatenate(
        [latents.s / math.sqrt(d_s), latents.p / math.sqrt(d_p), latents.q / math.sqrt(d_q)],
        axis=1,
    )  # [n_items, d_s + d_p + d_q]

    def weights(pi_u):
        w_s = jnp.sqrt(1.0 - pi_u)
        w_pq = jnp.sqrt(pi_u / 2.0)
        return jnp.concatenate(
            [jnp.full((d_s,), w_s), jnp.full((d_p,), w_pq), jnp.full((d_q,), w_pq)]
        )

    n_chunks = -(-c.n_users // c.user_chunk)
    users = jnp.arange(n_chunks * c.user_chunk).reshape(n_chunks, c.user_chunk)

    def draw_chunk(u_idx):
        u_safe = jnp.minimum(u_idx, c.n_users - 1)
        w = jax.vmap(weights)(pi[u_safe]) * pref[u_safe]  # [chunk, d]
        logits = (w @ item_feats.T) / knobs.temperature + bias[None, :]
        gumbel = jax.vmap(lambda u: jax.random.gumbel(jax.random.fold_in(k_draw, u), (n_items,)))(
            u_idx
        )
        _, items = jax.lax.top_k(logits + gumbel, m)  # [chunk, m], sampled w/o replacement
        return items.astype(jnp.int32)

    drawn = jax.lax.map(draw_chunk, users).reshape(-1, m)[: c.n_users]
    # Random per-user split: permute each user's first n_u draws, first n_test are test.
    pos = jnp.arange(m)[None, :]
    valid = pos < n_u[:, None]
    n_test = jnp.maximum(1, jnp.round(c.test_fraction * n_u)).astype(jnp.int32)
    n_test = jnp.minimum(n_test, n_u - 1)
    rnd = jax.random.uniform(k_split, (c.n_users, m))
    order = jnp.argsort(jnp.where(valid, rnd, 2.0), axis=1)  # valid first, random order
    shuffled = jnp.take_along_axis(drawn, order, axis=1)
    is_test = pos < n_test[:, None]
    is_train = (pos >= n_test[:, None]) & valid
    test = jnp.sort(jnp.where(is_test, shuffled, n_items), axis=1)
    train = jnp.sort(jnp.where(is_train, shuffled, n_items), axis=1)
    test = jnp.where(test == n_items, -1, test).astype(jnp.int32)
    train = jnp.where(train == n_items, -1, train).astype(jnp.int32)
    return SyntheticInteractions(train, test, pi, n_u, bias)

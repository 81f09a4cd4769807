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
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from complemjax import _checks

__all__ = [
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
        n_features: width of the random sine-feature layer of ``f``.
    """

    d_shared: int = 8
    d_sem_private: int = 8
    d_cf_private: int = 8
    dim_sem: int = 64
    dim_cf: int = 64
    n_features: int = 256

    def __post_init__(self):
        for name in ("d_shared", "d_sem_private", "d_cf_private", "dim_sem", "dim_cf"):
            _checks.check_positive_int(name, getattr(self, name))
        _checks.check_positive_int("n_features", self.n_features)


@struct.dataclass
class ViewsKnobs:
    """Dynamic knobs of the two-view model (a pytree: every field can be vmapped).

    Attributes:
        shared_fraction_sem: ``rho_x`` in [0, 1], shared share of the semantic signal.
        shared_fraction_cf: ``rho_y`` in [0, 1], shared share of the collaborative signal.
        noise_sem: ``sigma_x^2``, noise variance per dimension (signal variance is 1).
        noise_cf: ``sigma_y^2``.
        nonlinearity: ``eta`` in [0, 1]; 0 is the linear-Gaussian model.
        frequency: ``omega`` > 0, roughness of the nonlinear map.
        spectrum_decay: ``decay`` >= 0 of the latent spectrum ``lambda_j ∝ j^-decay``.
    """

    shared_fraction_sem: float | jax.Array = 0.5
    shared_fraction_cf: float | jax.Array = 0.5
    noise_sem: float | jax.Array = 0.1
    noise_cf: float | jax.Array = 0.1
    nonlinearity: float | jax.Array = 0.0
    frequency: float | jax.Array = 1.0
    spectrum_decay: float | jax.Array = 0.0

    def validate(self) -> ViewsKnobs:
        """Check ranges on concrete values (no-op under tracing); returns ``self``."""
        _checks.check_in_range("shared_fraction_sem", self.shared_fraction_sem, 0.0, 1.0)
        _checks.check_in_range("shared_fraction_cf", self.shared_fraction_cf, 0.0, 1.0)
        _checks.check_in_range("noise_sem", self.noise_sem, 0.0, math.inf)
        _checks.check_in_range("noise_cf", self.noise_cf, 0.0, math.inf)
        _checks.check_in_range("nonlinearity", self.nonlinearity, 0.0, 1.0)
        _checks.check_in_range("frequency", self.frequency, 0.0, math.inf)
        _checks.check_in_range("spectrum_decay", self.spectrum_decay, 0.0, math.inf)
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
    """

    shared_mean: float | jax.Array = 0.0
    shared_scale: float | jax.Array = 1.0
    private_scale: float | jax.Array = 1.0
    selection: float | jax.Array = 0.0
    cf_noise_scale: float | jax.Array = 1.0

    def validate(self) -> Shift:
        _checks.check_in_range("shared_scale", self.shared_scale, 0.0, math.inf)
        _checks.check_in_range("private_scale", self.private_scale, 0.0, math.inf)
        _checks.check_in_range("selection", self.selection, 0.0, 1.0)
        _checks.check_in_range("cf_noise_scale", self.cf_noise_scale, 0.0, math.inf)
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

    ``r2_ceiling`` is NaN when ``nonlinearity > 0`` (no closed form).
    """

    shared_fraction_sem: jax.Array  # share of Var(x) driven by s
    shared_fraction_cf: jax.Array  # share of Var(y) driven by s
    r2_ceiling: jax.Array  # R²* of the best linear probe x -> y


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
    c = config
    ks = jax.random.split(key, 10)
    normal = jax.random.normal
    w = c.n_features
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
    )


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
) -> Views:
    """Map latents to both views with their exact shared/private/noise decomposition.

    Args:
        mixing: world from :func:`sample_mixing`.
        latents: standard-normal latents ``[n, d]`` from :func:`sample_latents`.
        knobs: dynamic model knobs.
        noise_key: PRNG key of the observation noise.
        cf_noise_scale: multiplier of the collaborative noise std.

    Returns:
        :class:`Views` with ``x = x_shared + x_private + x_noise`` (and likewise ``y``).
    """
    m = mixing
    lam_s = _spectrum(m.A.shape[1], knobs.spectrum_decay)
    lam_p = _spectrum(m.B.shape[1], knobs.spectrum_decay)
    lam_q = _spectrum(m.D.shape[1], knobs.spectrum_decay)
    # Scaled latents: s * sqrt(lam); mixing normalised so each block has unit power.
    A, B = _normalise(m.A, lam_s), _normalise(m.B, lam_p)
    C, D = _normalise(m.C, lam_s), _normalise(m.D, lam_q)
    s = latents.s * jnp.sqrt(lam_s)
    # Private latents stay standard normal; their spectrum is folded into the mixing so
    # that the conditional variance given s is (1 - rho) ||W1 B_eff||^2 row-wise.
    B_eff, D_eff = B * jnp.sqrt(lam_p), D * jnp.sqrt(lam_q)
    ex_key, ey_key = jax.random.split(noise_key)
    n = s.shape[0]
    e_x = jax.random.normal(ex_key, (n, A.shape[0]), dtype=s.dtype)
    e_y = jax.random.normal(ey_key, (n, C.shape[0]), dtype=s.dtype)
    sx = jnp.sqrt(jnp.asarray(knobs.noise_sem))
    sy = jnp.sqrt(jnp.asarray(knobs.noise_cf)) * cf_noise_scale
    x, xs, xp, xn = _one_view(
        s, latents.p, A, B_eff, m.W1_x, m.b_x, m.W2_x,
        knobs.shared_fraction_sem, knobs.nonlinearity, knobs.frequency, sx, e_x,
    )  # fmt: skip
    y, ys, yp, yn = _one_view(
        s, latents.q, C, D_eff, m.W1_y, m.b_y, m.W2_y,
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
    k_mix, k_lat, k_noise = jax.random.split(key, 3)
    mixing = sample_mixing(k_mix, config)
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

    The pool is ordered by the selection score ``lambda * s_1 + (1 - lambda) * u``
    (``u ~ N(0, 1)``, independent of the items); the ``n_train`` lowest scores train.
    Test latents are then transformed: ``s <- shared_scale * s + shared_mean * e_1``,
    ``(p, q) <- private_scale * (p, q)``, and the collaborative noise std is multiplied
    by ``cf_noise_scale``. With ``Shift()`` (all identities, selection 0) the split is a
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
    k_mix, k_lat, k_sel, k_ntr, k_nte = jax.random.split(key, 5)
    mixing = sample_mixing(k_mix, config)
    pool = sample_latents(k_lat, config, n_train + n_test)
    lam = jnp.asarray(shift.selection)
    score = lam * pool.s[:, 0] + (1.0 - lam) * jax.random.normal(k_sel, (n_train + n_test,))
    order = jnp.argsort(score)
    train_lat = _take(pool, order[:n_train])
    test_lat = _take(pool, order[n_train:])
    s_t = test_lat.s * shift.shared_scale
    s_t = s_t.at[:, 0].add(shift.shared_mean)
    test_lat = Latents(s_t, test_lat.p * shift.private_scale, test_lat.q * shift.private_scale)
    train = render_views(mixing, train_lat, knobs, noise_key=k_ntr)
    test = render_views(
        mixing, test_lat, knobs, noise_key=k_nte, cf_noise_scale=shift.cf_noise_scale
    )
    return Split(train, test, mixing)


# --------------------------------------------------------------------------- population


def population_stats(mixing: Mixing, knobs: ViewsKnobs) -> PopulationStats:
    """Closed-form population quantities of the linear-Gaussian model for one world.

    With ``Λ`` the latent spectra and mixing matrices normalised as in the module
    docstring::

        Σ_xx = rho_x A Λ_s Aᵀ + (1 - rho_x) B Λ_p Bᵀ + sigma_x² I
        Σ_yy = rho_y C Λ_s Cᵀ + (1 - rho_y) D Λ_q Dᵀ + sigma_y² I
        Σ_yx = sqrt(rho_x rho_y) C Λ_s Aᵀ
        shared fraction of x = rho_x tr(A Λ_s Aᵀ) / tr(Σ_xx) = rho_x / (1 + sigma_x²)
        R²* = tr(Σ_yx Σ_xx⁻¹ Σ_xy) / tr(Σ_yy)

    ``R²*`` is the variance-weighted R² of the best linear (affine) probe from x to y
    at infinite n, computed with a pseudo-inverse. It is NaN when ``nonlinearity > 0``.

    Args:
        mixing: the world (mixing matrices) from :func:`sample_mixing`.
        knobs: dynamic knobs.

    Returns:
        :class:`PopulationStats`.
    """
    lam_s = _spectrum(mixing.A.shape[1], knobs.spectrum_decay)
    lam_p = _spectrum(mixing.B.shape[1], knobs.spectrum_decay)
    lam_q = _spectrum(mixing.D.shape[1], knobs.spectrum_decay)
    A, B = _normalise(mixing.A, lam_s), _normalise(mixing.B, lam_p)
    C, D = _normalise(mixing.C, lam_s), _normalise(mixing.D, lam_q)
    rx, ry = jnp.asarray(knobs.shared_fraction_sem), jnp.asarray(knobs.shared_fraction_cf)
    sxx_s = (A * lam_s) @ A.T
    syy_s = (C * lam_s) @ C.T
    sxx = rx * sxx_s + (1 - rx) * (B * lam_p) @ B.T + knobs.noise_sem * jnp.eye(A.shape[0])
    syy = ry * syy_s + (1 - ry) * (D * lam_q) @ D.T + knobs.noise_cf * jnp.eye(C.shape[0])
    syx = jnp.sqrt(rx * ry) * (C * lam_s) @ A.T
    r2 = jnp.trace(syx @ jnp.linalg.pinv(sxx, hermitian=True) @ syx.T) / jnp.trace(syy)
    r2 = jnp.where(jnp.asarray(knobs.nonlinearity) > 0, jnp.nan, r2)
    return PopulationStats(
        shared_fraction_sem=rx * jnp.trace(sxx_s) / jnp.trace(sxx),
        shared_fraction_cf=ry * jnp.trace(syy_s) / jnp.trace(syy),
        r2_ceiling=r2,
    )


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
    """

    private_reliance: float | jax.Array = 0.5
    reliance_spread: float | jax.Array = 1.0
    density: float | jax.Array = 0.01
    activity_spread: float | jax.Array = 0.5
    popularity_skew: float | jax.Array = 1.0
    temperature: float | jax.Array = 0.5

    def validate(self) -> UserKnobs:
        _checks.check_in_range("private_reliance", self.private_reliance, 0.0, 1.0)
        _checks.check_in_range("reliance_spread", self.reliance_spread, 0.0, math.inf)
        _checks.check_in_range("density", self.density, 0.0, 1.0, lo_open=True)
        _checks.check_in_range("activity_spread", self.activity_spread, 0.0, math.inf)
        _checks.check_in_range("popularity_skew", self.popularity_skew, 0.0, math.inf)
        _checks.check_in_range("temperature", self.temperature, 0.0, math.inf, lo_open=True)
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
    ``exp(aff_ui / tau + beta_i)``, ``beta_i ~ popularity_skew * N(0, 1)`` (Gumbel top-k).
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
    bias = knobs.popularity_skew * jax.random.normal(k_bias, (n_items,))
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

"""Inference over users and seeds: cluster bootstrap, paired tests, Holm, verdicts.

Data shape. A study evaluates every method on ``S`` seeds (split and initialisation)
and, in each seed, on the users with a non-empty test set. A per-user metric is an
``[S, U]`` array with an ``[S, U]`` bool ``mask`` (user ``u`` evaluated in seed ``s``).
The same users appear in every seed, so the ``S`` rows are **not** independent: a user
who is easy for a method in seed 0 is easy in seed 1 too. The unit of resampling is
therefore the user (a cluster of up to ``S`` rows), never the user × seed row.

Statistics. Every pooled statistic here is a ratio of sums over evaluated user × seed
pairs,

    θ = Σ_u N_u / Σ_u D_u,   N_u = Σ_s m_su num_su,   D_u = Σ_s m_su den_su,

which covers the pooled mean (``num = x``, ``den = 1``), the paired mean difference
(``num = a − b``, ``den = 1``), ratios such as the unique-hit share
(``Σ unique / Σ |union|``) and the relative difference ``Σ a / Σ b − 1``.

Cluster bootstrap. Resample ``n`` evaluated users with replacement (counts ``c_u``),
keeping all of a user's seeds: ``θ* = Σ c_u N_u / Σ c_u D_u``. Resamples are vmapped in
chunks (:func:`resample_map`, the one bootstrap primitive of the package, also used by
``complementarity.compare_rankers`` and ``similarity.bootstrap_interval``). Intervals:

* ``"percentile"``: the ``(1 ∓ level)/2`` quantiles of ``θ*`` (Efron & Tibshirani 1993,
  §13.3); first-order accurate, undercovers for skewed per-user metrics at small n.
* ``"bca"``: bias-corrected and accelerated (Efron 1987; Efron & Tibshirani §14.3) with
  the acceleration from the leave-one-*user*-out jackknife, closed form for a ratio of
  sums, so it costs nothing extra; second-order accurate and transformation-respecting.
* ``"studentized"``: bootstrap-t with the delta-method (linearisation) standard error
  of a ratio, ``se(θ) = sqrt(Σ c_u (N_u − θ D_u)²) / Σ c_u D_u``, recomputed in every
  resample (Davison & Hinkley 1997, §5.2); second-order accurate.

Measured coverage of nominal 95% intervals (``tests/test_stats.py``, slow tests: 60
simulated users with skewed (Gamma) per-user effects, 5 seeds with intra-user
correlation ≈ 0.96, a ratio of Poisson/binomial counts with user-varying rates; R = 2,000
replications, 1,000 resamples; mean / paired difference / ratio of sums): percentile
0.944 / 0.940 / 0.928, BCa 0.938 / 0.933 / 0.928, studentized 0.950 / 0.946 / 0.947,
against the ±3-SE band [0.935, 0.965]; treating user × seed rows as independent (the
negative control) gives 0.64 / 0.63 / 0.75. ``"studentized"`` is therefore the default:
the only one of the three inside the band for every statistic at this size. With
heavier-tailed denominators (exponential per seed) the studentized ratio interval fell
to 0.933 and the percentile one to 0.916 at 60 users: for ratios over few users, read
intervals as approximate.

Paired tests. For methods ``a`` and ``b`` on the same users and seeds, the per-user
difference ``d_u = Σ_s m_su (a_su − b_su)``:

* :func:`sign_flip_test` (recommended for the studies): under H0 the two methods'
  labels are exchangeable within a user, so ``d_u`` is symmetric about 0; flipping the
  sign of each user's difference jointly for all its seeds gives the null distribution
  of ``Σ_u d_u``. It uses the between-user variability (hundreds of clusters).
* :func:`seed_t_test`: a one-sample t over the ``S`` per-seed mean differences
  (``S − 1`` degrees of freedom). Because the *same* users enter every seed, the user
  component of the difference is a constant shared by all seeds and is absent from the
  seed-to-seed variance: the seed t answers "would another training run of these models
  on these users differ?", not "do users in general gain?", and it over-rejects the
  population null when users differ (shown in the tests). With 5 seeds it also has 4
  degrees of freedom. Report it beside the sign-flip p as a check on training noise.

Measured under the null (60 users, 5 seeds, user-specific method effects, R = 2,000):
the sign-flip test rejects at α = 0.05 in 5.2% of replications and
:func:`cluster_ratio_test` in 5.2%, the seed t in 81%.

What neither captures: the cluster methods condition on the seeds, so seed-level
variance (e.g. a model that is much better in one training run than another) is not in
their intervals; the seed t shows it.

A ratio against a threshold other than a paired zero (``θ < 0.5``) is tested by
:func:`cluster_ratio_test` (a t test on the linearised per-user values).

Multiplicity: :func:`holm` adjusts a family of p-values (methods × variants).
Power: :func:`minimum_detectable_effect` gives the smallest true mean difference the
paired test detects with the given power, so "inconclusive" has a size.

Verdicts. Each claim of the paper is pre-registered as a frozen :class:`Claim` (the
constants :data:`C1` … :data:`C5` below, fixed in the code before results are seen):
statistic, null reference, α, threshold, direction and equivalence margin.
:func:`verdict` applies one documented rule; :func:`verdict_table` prints the table that
opens the report.

Example (a study's verdict for C4; ``recall_*`` are ``[S, U]`` per-user Recall@20):

    >>> pc = paired_comparison(key, recall_fusion, recall_align, evaluated,
    ...                        alternative="greater")                    # doctest: +SKIP
    >>> p_adj = holm([pc.sign_flip.p_value, *other_p_values])           # doctest: +SKIP
    >>> row = ClaimResult(C4, pc.mean_diff.estimate, pc.mean_diff.low, pc.mean_diff.high,
    ...                   p_adj[0], note=f"MDE {pc.mde:.3f}")           # doctest: +SKIP
    >>> print(verdict_table([row, ...]))                                 # doctest: +SKIP

References:
    Efron, B. (1987). Better bootstrap confidence intervals. JASA 82(397).
    Efron, B. & Tibshirani, R. (1993). An Introduction to the Bootstrap. Chapman & Hall.
    Davison, A. C. & Hinkley, D. V. (1997). Bootstrap Methods and their Application.
    Field, C. A. & Welsh, A. H. (2007). Bootstrapping clustered data. JRSS-B 69(3).
    Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scand. J.
    Statist. 6(2).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from jax import lax
from jax.typing import ArrayLike
from scipy import stats as _sps

from complemjax._checks import check_in_range, check_positive_int

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "C1",
    "C2",
    "C3",
    "C4",
    "C5",
    "CLAIMS",
    "BootstrapResult",
    "Claim",
    "ClaimResult",
    "PairedComparison",
    "RatioTest",
    "SeedSummary",
    "SeedTTest",
    "SignFlipTest",
    "cluster_bootstrap",
    "cluster_ratio_test",
    "holm",
    "minimum_detectable_effect",
    "paired_comparison",
    "resample_map",
    "seed_interval",
    "seed_summary",
    "seed_t_test",
    "sign_flip_test",
    "summarize",
    "verdict",
    "verdict_table",
]

Method = Literal["percentile", "bca", "studentized"]
Alternative = Literal["two-sided", "greater", "less"]
_METHODS = ("percentile", "bca", "studentized")
_ALTERNATIVES = ("two-sided", "greater", "less")


# --------------------------------------------------------------------------- results


class SeedSummary(NamedTuple):
    """Mean and Student-t interval over seeds, from finite values only.

    Attributes:
        mean: mean of the finite values (NaN if none).
        low: lower bound (NaN with fewer than 2 finite values).
        high: upper bound.
        n: number of finite values used.
        n_dropped: number of NaN / inf values dropped.
    """

    mean: float
    low: float
    high: float
    n: int
    n_dropped: int


class BootstrapResult(NamedTuple):
    """A cluster-bootstrap interval of a ratio of sums.

    Attributes:
        estimate: ``[]`` the statistic on the data.
        low: ``[]`` lower interval bound.
        high: ``[]`` upper interval bound.
        se: ``[]`` bootstrap standard error (sd of the finite replicates).
        samples: ``[n_boot]`` the statistic on each resample (NaN where a resample's
            denominator is 0).
    """

    estimate: jax.Array
    low: jax.Array
    high: jax.Array
    se: jax.Array
    samples: jax.Array


class SignFlipTest(NamedTuple):
    """Cluster sign-flip permutation test of a paired difference.

    Attributes:
        statistic: ``[]`` observed pooled mean difference ``Σ_u d_u / Σ_u n_u``.
        p_value: ``[]`` Monte-Carlo p, ``(1 + #{T* as or more extreme}) / (1 + P)``.
        null: ``[n_permutations]`` the statistic under random joint sign flips.
    """

    statistic: jax.Array
    p_value: jax.Array
    null: jax.Array


class SeedTTest(NamedTuple):
    """One-sample t test over the per-seed mean differences.

    Attributes:
        mean: mean over seeds of the per-seed mean difference.
        low: lower bound of the Student-t interval over seeds.
        high: upper bound.
        t: t statistic ``mean / (sd / sqrt(S))``.
        p_value: p from Student t with ``S − 1`` degrees of freedom.
        n_seeds: seeds with at least one evaluated user.
    """

    mean: float
    low: float
    high: float
    t: float
    p_value: float
    n_seeds: int


class RatioTest(NamedTuple):
    """Cluster-robust (delta-method) t test of a ratio of sums against a threshold.

    Attributes:
        estimate: ``Σ N / Σ D``.
        t: ``mean(z) / (sd(z) / sqrt(n))`` with ``z_u = N_u − threshold · D_u``.
        p_value: from Student t with ``n − 1`` degrees of freedom.
        n_clusters: evaluated users (clusters).
    """

    estimate: float
    t: float
    p_value: float
    n_clusters: int


class PairedComparison(NamedTuple):
    """Everything the report prints for one paired comparison ``a − b``.

    Attributes:
        mean_diff: cluster-bootstrap result of the pooled mean of ``a − b``.
        rel_diff: cluster-bootstrap result of ``Σ a / Σ b − 1`` (NaN if ``Σ b = 0``).
        sign_flip: the cluster sign-flip test (the recommended p-value).
        seed_t: the t test over per-seed mean differences (a check on seed noise).
        mde: minimum detectable mean difference of the paired test (same α, power).
        sd_user: sd over users of each user's mean difference across its seeds.
        n_users: evaluated users (clusters).
        n_seeds: seeds.
    """

    mean_diff: BootstrapResult
    rel_diff: BootstrapResult
    sign_flip: SignFlipTest
    seed_t: SeedTTest
    mde: float
    sd_user: float
    n_users: int
    n_seeds: int


# --------------------------------------------------------------------------- checks


def _check_key(key) -> jax.Array:
    if key is None or not isinstance(key, jax.Array):
        raise ValueError(
            f"`key` must be a jax.random.key (or PRNGKey) array, got {type(key).__name__}"
        )
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"`key` must be a single key of shape (), got shape {key.shape}")
    elif key.shape != (2,) or key.dtype != jnp.uint32:
        raise ValueError(
            f"`key` must be a jax.random.key or a uint32 PRNGKey of shape (2,), got "
            f"dtype {key.dtype} shape {key.shape}"
        )
    return key


def _check_mask(mask, shape) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise ValueError(f"`mask` must be a bool array, got dtype {m.dtype}")
    if m.shape != tuple(shape):
        raise ValueError(f"`mask` must have shape {tuple(shape)} like the values, got {m.shape}")
    return m


def _check_values(name: str, x, mask=None, shape=None) -> np.ndarray:
    """``[S, U]`` float host array; entries under ``mask`` must be finite."""
    if x is None:
        raise ValueError(f"`{name}` is required, got None")
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"`{name}` must be a real array, got dtype {a.dtype}")
    if a.ndim != 2:
        hint = "; use x[None] for one seed" if a.ndim == 1 else ""
        raise ValueError(f"`{name}` must be [S, U] (seeds × users), got shape {a.shape}{hint}")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)}, got {a.shape}")
    a = a.astype(np.float64)
    m = np.ones(a.shape, bool) if mask is None else mask
    bad = m & ~np.isfinite(a)
    if bad.any():
        raise ValueError(
            f"`{name}` has {int(bad.sum())} NaN/inf values at evaluated (masked) entries "
            f"of shape {a.shape}; mask them out or drop those users"
        )
    return np.where(m, a, 0.0)


def _paired_inputs(a, b, mask, a_name="a", b_name="b"):
    """Validate ``a`` ``[S, U]``, optional ``b`` and ``mask``.

    Returns host float64 arrays, zeroed outside the mask, and the bool mask.
    """
    a0 = _check_values(a_name, a, np.zeros(np.shape(a), bool))  # dtype and shape only
    m = _check_mask(mask, a0.shape)
    a_arr = _check_values(a_name, a, m)
    b_arr = None if b is None else _check_values(b_name, b, m, a0.shape)
    return a_arr, b_arr, m


def _check_method(method) -> str:
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}")
    return method


def _check_alternative(alternative) -> str:
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"`alternative` must be one of {_ALTERNATIVES}, got {alternative!r}")
    return alternative


def _cluster_sums(num: np.ndarray, den: np.ndarray, mask: np.ndarray):
    """Per-user sums ``N_u, D_u`` over evaluated seeds, restricted to evaluated users."""
    users = mask.any(axis=0)
    if not users.any():
        raise ValueError(f"`mask` selects no user (shape {mask.shape})")
    N = (num * mask).sum(axis=0)[users]
    D = (den * mask).sum(axis=0)[users]
    return N, D


# --------------------------------------------------------------------------- seed summaries


def seed_summary(values: Sequence[float], level: float = 0.95) -> SeedSummary:
    """Mean and two-sided Student-t interval over seeds, from the finite values only.

    ``mean ± t_{(1+level)/2, n−1} · sd / sqrt(n)`` over the ``n`` finite values; NaN and
    inf entries are dropped first and counted in ``n_dropped`` so that a summary never
    silently speaks for runs that failed. NaN bounds when ``n < 2``; NaN mean when
    ``n = 0``.

    Args:
        values: ``[n_runs]`` one value per seed.
        level: interval coverage in ``(0, 1)``.

    Returns:
        :class:`SeedSummary` ``(mean, low, high, n, n_dropped)``.
    """
    check_in_range("level", level, 0.0, 1.0, lo_open=True, hi_open=True)
    v = np.asarray(values, dtype=float).ravel()
    ok = np.isfinite(v)
    n_dropped = int((~ok).sum())
    v = v[ok]
    if v.size == 0:
        return SeedSummary(math.nan, math.nan, math.nan, 0, n_dropped)
    mean = float(v.mean())
    if v.size < 2:
        return SeedSummary(mean, math.nan, math.nan, 1, n_dropped)
    half = float(_sps.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return SeedSummary(mean, mean - half, mean + half, int(v.size), n_dropped)


def seed_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t interval of ``values`` (one value per seed).

    ``mean ± t_{(1+level)/2, n-1} · sd / sqrt(n)``; NaN bounds when fewer than 2 values.
    Non-finite entries are dropped first; :func:`seed_summary` also says how many.

    Returns:
        ``(mean, low, high)``.
    """
    s = seed_summary(values, level)
    return (s.mean, s.low, s.high)


def summarize(
    df: pd.DataFrame, by: Sequence[str], values: Sequence[str], level: float = 0.95
) -> pd.DataFrame:
    """Mean and seed interval of each column in ``values`` for each group of ``by``.

    Computed from finite values only (:func:`seed_summary`).

    Returns:
        A long pandas table with columns
        ``[*by, metric, mean, ci_low, ci_high, n_seeds, n_dropped]`` where ``n_seeds``
        counts the finite values used and ``n_dropped`` the NaN/inf values left out.
    """
    import pandas as pd

    missing = [c for c in [*by, *values] if c not in df.columns]
    if missing:
        raise ValueError(f"`df` lacks columns {missing}; it has {list(df.columns)}")
    rows = []
    for keys, group in df.groupby(list(by), sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for metric in values:
            s = seed_summary(pd.to_numeric(group[metric], errors="coerce").to_numpy(), level)
            rows.append((*keys, metric, s.mean, s.low, s.high, s.n, s.n_dropped))
    cols = [*by, "metric", "mean", "ci_low", "ci_high", "n_seeds", "n_dropped"]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- bootstrap primitive


def resample_map(
    key: jax.Array,
    fn: Callable[[jax.Array], object],
    n: int,
    *,
    n_boot: int,
    batch_size: int | None = None,
) -> Any:
    """Evaluate ``fn`` on ``n_boot`` bootstrap resamples of ``n`` indices.

    Resample ``b`` draws ``idx_b = randint(keys[b], (n,), 0, n)`` with
    ``keys = jax.random.split(key, n_boot)`` (uniform, with replacement) and returns
    ``fn(idx_b)``; ``batch_size`` resamples are vmapped together (``lax.map``), so memory
    is ``O(batch_size × n)``. This is the package's one bootstrap primitive: the cluster
    bootstrap here resamples users, ``similarity.bootstrap_interval`` items and
    ``complementarity.compare_rankers`` evaluated users.

    Traceable (no input checks): call it inside jitted code; ``n``, ``n_boot`` and
    ``batch_size`` are static.

    Args:
        key: ``jax.random.key``.
        fn: ``idx [n] int32 -> pytree`` of arrays.
        n: number of units to resample.
        n_boot: number of resamples.
        batch_size: resamples vmapped together; ``None`` = all at once.

    Returns:
        ``fn``'s pytree with a leading ``[n_boot]`` axis.
    """
    keys = jax.random.split(key, n_boot)
    return lax.map(lambda k: fn(jax.random.randint(k, (n,), 0, n)), keys, batch_size=batch_size)


def _counts(idx, n: int, dtype):
    return jnp.zeros((n,), dtype).at[idx].add(1.0)


def _ratio_se(c, N, D, theta):
    """Delta-method standard error of ``Σ c N / Σ c D`` at ``theta``."""
    r = N - theta * D
    return jnp.sqrt(jnp.sum(c * r * r)) / jnp.sum(c * D)


@functools.partial(jax.jit, static_argnames=("n_boot", "batch_size", "method"))
def _cluster_bootstrap_impl(key, N, D, level, *, n_boot: int, batch_size: int, method: str):
    """Cluster bootstrap of ``Σ N / Σ D`` over the ``n`` entries of ``N`` and ``D`` ``[n]``."""
    n = N.shape[0]
    dtype = N.dtype
    est = jnp.sum(N) / jnp.sum(D)

    def one(idx):
        c = _counts(idx, n, dtype)
        theta = jnp.sum(c * N) / jnp.sum(c * D)
        return theta, _ratio_se(c, N, D, theta)

    samples, ses = resample_map(key, one, n, n_boot=n_boot, batch_size=batch_size)
    ok = jnp.isfinite(samples)
    n_ok = jnp.maximum(jnp.sum(ok), 1)
    mean_s = jnp.sum(jnp.where(ok, samples, 0.0)) / n_ok
    se = jnp.sqrt(jnp.sum(jnp.where(ok, (samples - mean_s) ** 2, 0.0)) / jnp.maximum(n_ok - 1, 1))
    lo_q, hi_q = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    # Non-finite replicates are dropped: nanquantile over the finite ones.
    finite = jnp.where(ok, samples, jnp.nan)
    if method == "percentile":
        low, high = jnp.nanquantile(finite, jnp.stack([lo_q, hi_q]))
    elif method == "bca":
        # Bias correction z0 from the share of replicates below the estimate (ties half).
        below = jnp.sum(jnp.where(ok, samples < est, False)) + 0.5 * jnp.sum(
            jnp.where(ok, samples == est, False)
        )
        prop = jnp.clip(below / n_ok, 0.5 / n_ok, 1.0 - 0.5 / n_ok)
        z0 = jax.scipy.special.ndtri(prop)
        # Acceleration from the leave-one-cluster-out jackknife (closed form for a ratio).
        jack = (jnp.sum(N) - N) / (jnp.sum(D) - D)
        jack = jnp.where(jnp.isfinite(jack), jack, jnp.nan)
        dev = jnp.nanmean(jack) - jack
        accel = jnp.nansum(dev**3) / (6.0 * jnp.nansum(dev**2) ** 1.5)
        accel = jnp.where(jnp.isfinite(accel), accel, 0.0)
        z = jax.scipy.special.ndtri(jnp.stack([lo_q, hi_q]))
        adj = jax.scipy.stats.norm.cdf(z0 + (z0 + z) / (1.0 - accel * (z0 + z)))
        low, high = jnp.nanquantile(finite, adj)
    else:  # studentized
        se_hat = _ratio_se(jnp.ones_like(N), N, D, est)
        t = jnp.where(ok & (ses > 0), (samples - est) / ses, jnp.nan)
        t_lo, t_hi = jnp.nanquantile(t, jnp.stack([lo_q, hi_q]))
        low, high = est - t_hi * se_hat, est - t_lo * se_hat
    return BootstrapResult(est, low, high, se, samples)


def cluster_bootstrap(
    key: jax.Array,
    num: ArrayLike,
    den: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    method: Method = "studentized",
    batch_size: int | None = 256,
) -> BootstrapResult:
    """Cluster-bootstrap interval of a ratio of sums, resampling users with all their seeds.

    ``θ = Σ_{s,u} m_su num_su / Σ_{s,u} m_su den_su``. Each resample draws the ``n``
    users with at least one evaluated seed with replacement and keeps every evaluated
    seed of each drawn user: ``θ* = Σ_u c_u N_u / Σ_u c_u D_u`` with
    ``N_u = Σ_s m_su num_su``. Special cases: the pooled mean (``den=None``, i.e. 1), the
    paired mean difference (``num = a − b``), a share such as unique hits
    (``num = unique``, ``den = |union|``), the relative difference (``num = a``,
    ``den = b``, subtract 1). Cost ``O(n_boot × n)``; memory ``O(batch_size × n)``.

    Args:
        key: ``jax.random.key`` (first, as everywhere).
        num: ``[S, U]`` numerator values per seed and user (a per-user metric).
        den: ``[S, U]`` denominators, or ``None`` for 1 (a mean).
        mask: ``[S, U]`` bool, user evaluated in that seed; ``None`` = all. Entries
            outside the mask may be NaN; entries inside must be finite.
        n_boot: resamples.
        level: interval coverage in ``(0, 1)``.
        method: ``"studentized"`` (default), ``"bca"`` or ``"percentile"`` (see the
            module docstring for their measured coverage).
        batch_size: resamples vmapped together; ``None`` = all at once.

    Returns:
        :class:`BootstrapResult`; the interval is over users (clusters), pooled over
        seeds, conditional on the seeds.

    Example:
        >>> r = cluster_bootstrap(jax.random.key(0), recall_a - recall_b, mask=evaluated)
    """
    key = _check_key(key)
    n_arr, d_arr, m = _paired_inputs(num, den, mask, "num", "den")
    d_arr = m.astype(np.float64) if d_arr is None else d_arr
    n_boot = check_positive_int("n_boot", n_boot, minimum=2)
    check_in_range("level", level, 0.0, 1.0, lo_open=True, hi_open=True)
    method = _check_method(method)
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    N, D = _cluster_sums(n_arr, d_arr, m)
    if D.sum() == 0:
        raise ValueError("`den` sums to 0 over the evaluated entries; the ratio is undefined")
    dtype = jnp.result_type(float)
    return _cluster_bootstrap_impl(
        key,
        jnp.asarray(N, dtype),
        jnp.asarray(D, dtype),
        jnp.asarray(level, dtype),
        n_boot=n_boot,
        batch_size=min(batch_size or n_boot, n_boot),
        method=method,
    )


# --------------------------------------------------------------------------- paired tests


@functools.partial(jax.jit, static_argnames=("n_permutations", "batch_size", "alternative"))
def _sign_flip_impl(key, d, n_pairs, *, n_permutations: int, batch_size: int, alternative: str):
    """Sign-flip test of ``Σ d`` with ``d`` ``[n]`` per-cluster sums."""
    obs = jnp.sum(d) / n_pairs
    keys = jax.random.split(key, n_permutations)

    def one(k):
        eps = jax.random.rademacher(k, d.shape, d.dtype)
        return jnp.sum(eps * d) / n_pairs

    null = lax.map(one, keys, batch_size=batch_size)
    # A small tolerance so that exact ties (e.g. the identity flip) count as extreme.
    tol = 1e-6 * jnp.maximum(jnp.abs(obs), jnp.finfo(d.dtype).tiny)
    if alternative == "two-sided":
        extreme = jnp.abs(null) >= jnp.abs(obs) - tol
    elif alternative == "greater":
        extreme = null >= obs - tol
    else:
        extreme = null <= obs + tol
    p = (1.0 + jnp.sum(extreme)) / (1.0 + n_permutations)
    return SignFlipTest(obs, p, null)


def sign_flip_test(
    key: jax.Array,
    a: ArrayLike,
    b: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    n_permutations: int = 5000,
    alternative: Alternative = "two-sided",
    batch_size: int | None = 512,
) -> SignFlipTest:
    """Cluster sign-flip permutation test of the paired difference ``a − b``.

    Per user ``d_u = Σ_s m_su (a_su − b_su)`` (its differences summed over its evaluated
    seeds) and the statistic ``T = Σ_u d_u / Σ_{s,u} m_su`` (the pooled mean difference).
    Under H0 the labels ``a``/``b`` are exchangeable within a user, so ``d_u`` is
    symmetric about 0; each permutation flips the sign of every user's ``d_u`` (all its
    seeds jointly) with independent Rademacher signs. ``p = (1 + #{T* at least as extreme
    as T}) / (1 + n_permutations)`` (Monte-Carlo, exact level; Phipson & Smyth 2010).

    Args:
        key: ``jax.random.key``.
        a: ``[S, U]`` per-user metric of method A.
        b: ``[S, U]`` per-user metric of method B (same users and seeds).
        mask: ``[S, U]`` bool, user evaluated in that seed; ``None`` = all.
        n_permutations: random sign-flip vectors.
        alternative: ``"two-sided"``, ``"greater"`` (A > B) or ``"less"``.
        batch_size: permutations vmapped together.

    Returns:
        :class:`SignFlipTest` ``(statistic, p_value, null [n_permutations])``.

    References:
        Good, P. (2005). Permutation, Parametric and Bootstrap Tests of Hypotheses, §3.
        Phipson, B. & Smyth, G. (2010). Permutation p-values should never be zero.
    """
    key = _check_key(key)
    if b is None:
        raise ValueError("`b` is required, got None")
    a_arr, b_arr, m = _paired_inputs(a, b, mask)
    n_permutations = check_positive_int("n_permutations", n_permutations)
    alternative = _check_alternative(alternative)
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    d, _ = _cluster_sums(a_arr - b_arr, np.ones_like(a_arr), m)
    dtype = jnp.result_type(float)
    return _sign_flip_impl(
        key,
        jnp.asarray(d, dtype),
        jnp.asarray(m.sum(), dtype),
        n_permutations=n_permutations,
        batch_size=min(batch_size or n_permutations, n_permutations),
        alternative=alternative,
    )


def seed_t_test(
    a: ArrayLike,
    b: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    level: float = 0.95,
    alternative: Alternative = "two-sided",
) -> SeedTTest:
    """One-sample Student t over the per-seed mean paired differences.

    ``d̄_s = Σ_u m_su (a_su − b_su) / Σ_u m_su`` for each seed with an evaluated user;
    ``t = mean(d̄) / (sd(d̄) / sqrt(S))`` with ``S − 1`` degrees of freedom. Captures the
    seed-to-seed (training and split) variability, not the between-user variability
    (the same users are in every seed): see the module docstring before using it as the
    test of a claim about users.

    Args:
        a: ``[S, U]`` per-user metric of method A.
        b: ``[S, U]`` per-user metric of method B.
        mask: ``[S, U]`` bool or ``None``.
        level: interval coverage.
        alternative: ``"two-sided"``, ``"greater"`` (A > B) or ``"less"``, as
            :func:`sign_flip_test`.

    Returns:
        :class:`SeedTTest`; NaN interval, t and p when fewer than 2 seeds or zero spread.
    """
    if b is None:
        raise ValueError("`b` is required, got None")
    a_arr, b_arr, m = _paired_inputs(a, b, mask)
    check_in_range("level", level, 0.0, 1.0, lo_open=True, hi_open=True)
    alternative = _check_alternative(alternative)
    cnt = m.sum(axis=1)
    keep = cnt > 0
    if not keep.any():
        raise ValueError(f"`mask` selects no user (shape {m.shape})")
    dbar = ((a_arr - b_arr) * m).sum(axis=1)[keep] / cnt[keep]
    s = seed_summary(dbar, level)
    n = dbar.size
    sd = float(dbar.std(ddof=1)) if n > 1 else math.nan
    if n < 2 or not sd > 0:
        return SeedTTest(s.mean, s.low, s.high, math.nan, math.nan, n)
    t = s.mean / (sd / math.sqrt(n))
    return SeedTTest(s.mean, s.low, s.high, float(t), _t_p_value(t, n - 1, alternative), n)


def cluster_ratio_test(
    num: ArrayLike,
    den: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    *,
    threshold: float = 0.0,
    alternative: Alternative = "two-sided",
) -> RatioTest:
    """Test ``H0: Σ num / Σ den = threshold`` with users as clusters (all seeds kept).

    The ratio ``θ = Σ_u N_u / Σ_u D_u`` exceeds ``t`` iff the linearised per-user values
    ``z_u = N_u − t D_u`` have a positive sum, so the test is a one-sample Student t on
    the ``n`` independent ``z_u`` (a cluster-robust, delta-method test; Davison & Hinkley
    1997 §5.2): ``T = mean(z) / (sd(z) / sqrt(n))``, ``n − 1`` degrees of freedom. Use it
    for claims that compare a ratio with a threshold other than a paired zero (e.g.
    ``overlap(sem, CF) / overlap(CF, CF seed) < 0.5``: ``num`` the semantic overlap,
    ``den`` the seed-reference overlap), where sign flips do not apply.

    Args:
        num: ``[S, U]`` numerators.
        den: ``[S, U]`` denominators or ``None`` (1: a mean).
        mask: ``[S, U]`` bool or ``None``.
        threshold: the null value ``t``.
        alternative: ``"two-sided"``, ``"greater"`` (θ > t) or ``"less"``.

    Returns:
        :class:`RatioTest`; NaN t and p when the ``z_u`` have no spread.
    """
    n_arr, d_arr, m = _paired_inputs(num, den, mask, "num", "den")
    d_arr = m.astype(np.float64) if d_arr is None else d_arr
    if not (isinstance(threshold, int | float | np.floating | np.integer)):
        raise ValueError(f"`threshold` must be a number, got {threshold!r}")
    if not math.isfinite(threshold):
        raise ValueError(f"`threshold` must be finite, got {threshold}")
    alternative = _check_alternative(alternative)
    N, D = _cluster_sums(n_arr, d_arr, m)
    if D.sum() == 0:
        raise ValueError("`den` sums to 0 over the evaluated entries; the ratio is undefined")
    est = float(N.sum() / D.sum())
    z = N - threshold * D
    n = z.size
    sd = float(z.std(ddof=1)) if n > 1 else math.nan
    if not sd > 0:
        return RatioTest(est, math.nan, math.nan, n)
    t = float(z.mean() / (sd / math.sqrt(n)))
    return RatioTest(est, t, _t_p_value(t, n - 1, alternative), n)


def _t_p_value(t: float, df: int, alternative: str) -> float:
    if alternative == "two-sided":
        return float(2.0 * _sps.t.sf(abs(t), df))
    if alternative == "greater":
        return float(_sps.t.sf(t, df))
    return float(_sps.t.cdf(t, df))


def holm(pvalues: npt.ArrayLike) -> np.ndarray:
    """Holm–Bonferroni step-down adjusted p-values (controls the family-wise error).

    Sort ``p_(1) ≤ … ≤ p_(m)``; ``p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j))``,
    returned in the input order. Reject ``H_i`` at level α iff ``p̃_i < α`` (equivalently
    ≤). Ties keep a stable order.

    Args:
        pvalues: ``[m]`` p-values in ``[0, 1]`` (no NaN: decide what a missing test
            means before adjusting).

    Returns:
        ``[m]`` float64 adjusted p-values.

    References:
        Holm, S. (1979). Scand. J. Statist. 6(2), 65–70.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"`pvalues` must be 1-D [m], got shape {p.shape}")
    if np.isnan(p).any():
        raise ValueError(f"`pvalues` has {int(np.isnan(p).sum())} NaN entries of {p.size}")
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"`pvalues` must lie in [0, 1], got min {p.min()} max {p.max()}")
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adj = np.maximum.accumulate(scaled)
    out = np.empty(m)
    out[order] = adj
    return out


def minimum_detectable_effect(
    sd: float,
    n_clusters: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
) -> float:
    """Smallest true mean paired difference the paired test detects with ``power``.

    ``MDE = (t_{1−α/2, n−1} + t_{power, n−1}) · sd / sqrt(n)`` (two-sided; ``t_{1−α}``
    one-sided), the usual normal-approximation power formula with Student quantiles
    (Cohen 1988, ch. 2), where ``sd`` is the standard deviation over users of each
    user's mean difference across its seeds and ``n`` the number of users (clusters). A
    true effect smaller than this is likely to come out "inconclusive". Under Holm with
    ``m`` claims, pass ``alpha / m`` for the strictest step.

    Args:
        sd: per-user difference standard deviation (> 0).
        n_clusters: number of users, ``≥ 2``.
        alpha: test level in ``(0, 1)``.
        power: target power in ``(0, 1)``.
        alternative: ``"two-sided"`` or one-sided (``"greater"``/``"less"``, same size).

    Returns:
        The MDE in the units of the metric (``≥ 0``).
    """
    if not (isinstance(sd, int | float | np.floating | np.integer) and math.isfinite(sd)):
        raise ValueError(f"`sd` must be a finite number, got {sd!r}")
    if sd < 0:
        raise ValueError(f"`sd` must be >= 0, got {sd}")
    n = check_positive_int("n_clusters", n_clusters, minimum=2)
    check_in_range("alpha", alpha, 0.0, 1.0, lo_open=True, hi_open=True)
    check_in_range("power", power, 0.0, 1.0, lo_open=True, hi_open=True)
    alternative = _check_alternative(alternative)
    q = 1.0 - alpha / 2.0 if alternative == "two-sided" else 1.0 - alpha
    return float((_sps.t.ppf(q, n - 1) + _sps.t.ppf(power, n - 1)) * sd / math.sqrt(n))


def paired_comparison(
    key: jax.Array,
    a: ArrayLike,
    b: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    n_boot: int = 2000,
    n_permutations: int = 5000,
    level: float = 0.95,
    method: Method = "studentized",
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    power: float = 0.8,
) -> PairedComparison:
    """Effect sizes with cluster-bootstrap intervals, the paired tests and the MDE of ``a − b``.

    Mean difference ``Σ m (a − b) / Σ m`` and relative difference ``Σ m a / Σ m b − 1``,
    each with a cluster-bootstrap interval over users (:func:`cluster_bootstrap`); the
    cluster sign-flip test (:func:`sign_flip_test`, the p-value to use), the seed t
    (:func:`seed_t_test`, a check on training noise), and the MDE of the paired test
    from the observed per-user sd (:func:`minimum_detectable_effect`).

    Args:
        key: ``jax.random.key``; split into bootstrap and permutation keys.
        a: ``[S, U]`` per-user metric of method A.
        b: ``[S, U]`` per-user metric of method B.
        mask: ``[S, U]`` bool or ``None``.
        n_boot: bootstrap resamples (:func:`cluster_bootstrap`).
        n_permutations: random sign-flip vectors (:func:`sign_flip_test`).
        level: interval coverage in ``(0, 1)`` (bootstrap intervals and seed t).
        method: bootstrap interval, ``"studentized"``, ``"bca"`` or ``"percentile"``.
        alternative: ``"two-sided"``, ``"greater"`` (A > B) or ``"less"``, for the tests
            and the MDE.
        alpha: test level of the MDE (:func:`minimum_detectable_effect`).
        power: target power of the MDE.

    Returns:
        :class:`PairedComparison`.
    """
    key = _check_key(key)
    if b is None:
        raise ValueError("`b` is required, got None")
    a_arr, b_arr, m = _paired_inputs(a, b, mask)
    k_mean, k_rel, k_perm = jax.random.split(key, 3)
    mean_diff = cluster_bootstrap(
        k_mean, a_arr - b_arr, None, m, n_boot=n_boot, level=level, method=method
    )
    if (b_arr * m).sum() != 0:
        r = cluster_bootstrap(k_rel, a_arr, b_arr, m, n_boot=n_boot, level=level, method=method)
        rel_diff = BootstrapResult(r.estimate - 1, r.low - 1, r.high - 1, r.se, r.samples - 1)
    else:
        nan = jnp.asarray(jnp.nan)
        rel_diff = BootstrapResult(nan, nan, nan, nan, jnp.full((n_boot,), jnp.nan))
    flip = sign_flip_test(
        k_perm, a_arr, b_arr, m, n_permutations=n_permutations, alternative=alternative
    )
    seed_t = seed_t_test(a_arr, b_arr, m, level=level, alternative=alternative)
    users = m.any(axis=0)
    per_user = ((a_arr - b_arr) * m).sum(axis=0)[users] / m.sum(axis=0)[users]
    n_users = int(users.sum())
    sd_user = float(per_user.std(ddof=1)) if n_users > 1 else math.nan
    mde = (
        minimum_detectable_effect(
            sd_user, n_users, alpha=alpha, power=power, alternative=alternative
        )
        if n_users > 1
        else math.nan
    )
    return PairedComparison(
        mean_diff, rel_diff, flip, seed_t, mde, sd_user, n_users, int(m.shape[0])
    )


# --------------------------------------------------------------------------- verdicts


@dataclasses.dataclass(frozen=True)
class Claim:
    """A pre-registered claim: what is measured, against what, and what decides it.

    Attributes:
        id: short id, e.g. ``"C1"``.
        statement: the claim in words.
        statistic: the statistic (the effect) and how it is computed.
        null_reference: what the effect is measured against.
        interval: what the interval is over (e.g. "cluster bootstrap over users, pooled
            over seeds").
        test: the test whose (Holm-adjusted) p-value decides the claim.
        alpha: family-wise level for the (Holm-adjusted) p-value.
        threshold: the value the effect must exceed (``direction="greater"``) or fall
            below (``"less"``).
        direction: ``"greater"`` or ``"less"``.
        margin: equivalence margin (≥ 0, units of the effect): the claim is "not
            supported" when the whole interval lies on the wrong side of
            ``threshold ± margin``.
    """

    id: str
    statement: str
    statistic: str
    null_reference: str
    interval: str
    test: str = ""
    alpha: float = 0.05
    threshold: float = 0.0
    direction: Literal["greater", "less"] = "greater"
    margin: float = 0.0

    def __post_init__(self):
        if self.direction not in ("greater", "less"):
            raise ValueError(f"`direction` must be 'greater' or 'less', got {self.direction!r}")
        check_in_range("alpha", self.alpha, 0.0, 1.0, lo_open=True, hi_open=True)
        if not (math.isfinite(self.threshold) and math.isfinite(self.margin)):
            raise ValueError(
                f"`threshold` and `margin` must be finite, got {self.threshold}, {self.margin}"
            )
        if self.margin < 0:
            raise ValueError(f"`margin` must be >= 0, got {self.margin}")


def verdict(claim: Claim, effect: float, interval: tuple[float, float], p_adjusted: float) -> str:
    """The pre-registered decision rule for one claim.

    With ``[lo, hi]`` the interval, ``t`` the threshold and ``δ`` the margin, for
    ``direction="greater"`` (mirror for ``"less"``):

    * **supported** if ``lo > t`` (the interval excludes the threshold in the claimed
      direction) **and** ``p_adjusted < α``;
    * **not supported** if ``hi ≤ t + δ`` (the interval lies on the other side of the
      threshold, or within the equivalence margin above it: any effect it allows is
      practically no larger than the threshold);
    * **inconclusive** otherwise, and whenever the effect, a bound or p is NaN.

    Args:
        claim: the :class:`Claim`.
        effect: point estimate.
        interval: ``(low, high)``.
        p_adjusted: Holm-adjusted p-value of the claim's test (use NaN for a claim
            without a test; it can then not be "supported").

    Returns:
        ``"supported"``, ``"not supported"`` or ``"inconclusive"``.
    """
    if not isinstance(claim, Claim):
        raise ValueError(f"`claim` must be a Claim, got {type(claim).__name__}")
    if len(interval) != 2:
        raise ValueError(f"`interval` must be (low, high), got {interval!r}")
    lo, hi = (float(x) for x in interval)
    effect, p = float(effect), float(p_adjusted)
    if any(math.isnan(x) for x in (effect, lo, hi)):
        return "inconclusive"
    if lo > hi:
        raise ValueError(f"`interval` must have low <= high, got ({lo}, {hi})")
    t, d = claim.threshold, claim.margin
    if claim.direction == "greater":
        beyond, other_side = lo > t, hi <= t + d
    else:
        beyond, other_side = hi < t, lo >= t - d
    if beyond and not math.isnan(p) and p < claim.alpha:
        return "supported"
    if other_side:
        return "not supported"
    return "inconclusive"


class ClaimResult(NamedTuple):
    """One measured claim, a row of :func:`verdict_table`.

    Attributes:
        claim: the pre-registered :class:`Claim`.
        effect: point estimate of the claim's statistic.
        low: lower interval bound. high: upper interval bound.
        p_adjusted: Holm-adjusted p-value (NaN if no test).
        note: optional free text (e.g. the MDE, the variant).
    """

    claim: Claim
    effect: float
    low: float
    high: float
    p_adjusted: float
    note: str = ""


def _fmt(x: float, digits: int) -> str:
    return "n/a" if x is None or math.isnan(float(x)) else f"{float(x):.{digits}f}"


def _fmt_p(p: float) -> str:
    if p is None or math.isnan(float(p)):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def verdict_table(rows: Sequence[ClaimResult], *, digits: int = 3) -> str:
    """The markdown verdict table that opens the report, with a legend.

    Columns: claim, statistic, null reference, effect [interval], p (Holm), verdict;
    then a legend with each claim's statement, what its interval is over, its α,
    threshold and direction, and the decision rule of :func:`verdict`.

    Args:
        rows: one :class:`ClaimResult` per claim.
        digits: decimals of effects.

    Returns:
        Markdown text.
    """
    rows = list(rows)
    for i, r in enumerate(rows):
        if not isinstance(r, ClaimResult):
            raise ValueError(f"`rows[{i}]` must be a ClaimResult, got {type(r).__name__}")
    out = [
        "| claim | statistic | null reference | effect [interval] | p (Holm) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r.claim
        v = verdict(c, r.effect, (r.low, r.high), r.p_adjusted)
        eff = f"{_fmt(r.effect, digits)} [{_fmt(r.low, digits)}, {_fmt(r.high, digits)}]"
        note = f" ({r.note})" if r.note else ""
        out.append(
            f"| {c.id} | {c.statistic} | {c.null_reference} | {eff}{note} | "
            f"{_fmt_p(r.p_adjusted)} | **{v}** |"
        )
    out += ["", "Legend:"]
    for r in rows:
        c = r.claim
        sign = ">" if c.direction == "greater" else "<"
        out.append(
            f"- **{c.id}** — {c.statement} Claimed: effect {sign} {c.threshold:g} "
            f"(α = {c.alpha:g}, equivalence margin {c.margin:g}). Interval: {c.interval}."
        )
    out.append(
        "- Rule (pre-registered): *supported* if the interval excludes the threshold in the "
        "claimed direction and the Holm-adjusted p < α; *not supported* if the interval lies "
        "on the other side of the threshold or within the equivalence margin of it; "
        "*inconclusive* otherwise."
    )
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- claims
# Pre-registered before the real-data results of issue 10 were computed. Do not edit the
# thresholds, directions or margins after seeing results; add a new claim id instead.

_OVER_USERS = "95% cluster bootstrap-t over users (all of a user's seeds kept), pooled over seeds"
_OVER_SEEDS = "95% Student-t interval over seeds"

C1 = Claim(
    id="C1",
    statement="The semantic and collaborative views agree little at the item level: their "
    "top-20 lists overlap less than half as much as two seeds of the same CF model do.",
    statistic="overlap@20(semantic, CF) / overlap@20(CF, CF other seed), ratio of sums over users",
    null_reference="the same CF model with another seed",
    interval=_OVER_USERS,
    test="cluster_ratio_test(sem_overlap, seed_overlap, threshold=0.5, alternative='less')",
    threshold=0.5,
    direction="less",
)
C2 = Claim(
    id="C2",
    statement="Each view has unique hits and oracle fusion gains are large: the "
    "semantic + CF oracle-merge gain exceeds that of an accuracy-matched CF + CF pair.",
    statistic="per-user oracle-merge Recall@20 gain (semantic + CF) minus gain "
    "(accuracy-matched CF + CF), paired per user",
    null_reference="CF + a CF ranker degraded to the semantic ranker's validation recall",
    interval=_OVER_USERS,
    test="sign_flip_test(gain_sem_cf, gain_matched_cf_cf, alternative='greater')",
    threshold=0.0,
    direction="greater",
    margin=0.005,
)
C3 = Claim(
    id="C3",
    statement="Low-capacity alignment probes recover only the shared components: a ridge "
    "probe from the semantic view explains less than half of what the CF-seed probe does.",
    statistic="ridge probe R²(semantic → CF) / R²(CF other seed → CF), on held-out items",
    null_reference="the same probe from the same CF model with another seed",
    interval=_OVER_SEEDS,
    test="one-sample t over seeds of the ratio against 0.5 "
    "(seed_t_test(ratio[:, None], np.full((S, 1), 0.5), alternative='less'))",
    threshold=0.5,
    direction="less",
)
C4 = Claim(
    id="C4",
    statement="Complementarity-aware fusion beats alignment-centric integration "
    "(RLMRec-Con, AlphaRec), each selected on validation.",
    statistic="per-user Recall@20 of the validation-best fusion minus the validation-best "
    "alignment-centric model, paired per user",
    null_reference="the validation-best alignment-centric model",
    interval=_OVER_USERS,
    test="sign_flip_test(recall_fusion, recall_alignment, alternative='greater')",
    threshold=0.0,
    direction="greater",
    margin=0.005,
)
C5 = Claim(
    id="C5",
    statement="Enforcing alignment distorts local structure: the CF embeddings of "
    "RLMRec-Con at its validation-selected weight keep fewer mutual 10-NN of the weight-0 "
    "embeddings than another seed of the weight-0 model does.",
    statistic="per-item mutual-kNN@10 to the weight-0 embeddings (selected weight) minus "
    "(weight 0, other seed), paired per item",
    null_reference="the weight-0 (backbone) model with another seed",
    interval="95% cluster bootstrap-t over items, pooled over seeds",
    test="sign_flip_test over items (units = items), alternative='less'",
    threshold=0.0,
    direction="less",
    margin=0.02,
)
CLAIMS: tuple[Claim, ...] = (C1, C2, C3, C4, C5)

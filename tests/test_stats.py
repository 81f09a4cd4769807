"""Tests for complemjax.stats: NumPy references, hand-worked cases and coverage.

Coverage tests simulate users with a known population truth, whose seeds are strongly
correlated (a large per-user effect shared by all seeds), and check that nominal 95%
intervals cover the truth within ±3 binomial standard errors of 95% over R replications
(slow: R = 2000; fast: fewer replications, ±4 SE), that the paired tests reject at ≈ 5%
under the null, and that deliberately broken procedures (user × seed rows treated as
independent; a normal quantile with 5 seeds; the seed t for a claim about users) fail
the same check.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from complemjax import report
from complemjax import stats as st

# --------------------------------------------------------------------------- helpers


def _np_resample_counts(key, n, n_boot):
    """Counts of each unit in each resample (the draws of ``resample_map``'s key scheme)."""
    keys = jax.random.split(key, n_boot)
    idx = np.asarray(jax.vmap(lambda k: jax.random.randint(k, (n,), 0, n))(keys))
    out = np.zeros((n_boot, n))
    for b in range(n_boot):
        np.add.at(out[b], idx[b], 1.0)
    return out


def _np_bca(samples, N, D, level):
    est = N.sum() / D.sum()
    B = samples.size
    prop = (np.sum(samples < est) + 0.5 * np.sum(samples == est)) / B
    prop = np.clip(prop, 0.5 / B, 1 - 0.5 / B)
    z0 = sps.norm.ppf(prop)
    jack = np.array([(N.sum() - N[i]) / (D.sum() - D[i]) for i in range(N.size)])
    dev = jack.mean() - jack
    a = (dev**3).sum() / (6 * ((dev**2).sum()) ** 1.5)
    z = sps.norm.ppf([(1 - level) / 2, (1 + level) / 2])
    adj = sps.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
    return np.quantile(samples, adj)


def _data(rng, S=4, U=30):
    user = rng.gamma(2.0, size=U)
    a = user + 0.3 * rng.normal(size=(S, U))
    b = user + 0.1 + 0.3 * rng.normal(size=(S, U))
    mask = rng.random((S, U)) > 0.2
    return a.astype(np.float32), b.astype(np.float32), mask


# --------------------------------------------------------------------------- seed summaries


def test_seed_interval_matches_scipy_and_drops_nonfinite():
    v = np.array([0.5, 0.6, 0.55, 0.7, np.nan, np.inf])
    s = st.seed_summary(v, 0.9)
    ok = v[np.isfinite(v)]
    lo, hi = sps.t.interval(0.9, ok.size - 1, loc=ok.mean(), scale=sps.sem(ok))
    assert s.n == 4 and s.n_dropped == 2
    np.testing.assert_allclose([s.mean, s.low, s.high], [ok.mean(), lo, hi], rtol=1e-12)
    assert st.seed_interval(v, 0.9) == (s.mean, s.low, s.high)
    assert report.seed_interval is st.seed_interval  # one owner, old import path works
    assert report.summarize is st.summarize
    empty = st.seed_summary([np.nan, np.nan])
    assert math.isnan(empty.mean) and empty.n == 0 and empty.n_dropped == 2
    with pytest.raises(ValueError, match="level"):
        st.seed_summary([1.0, 2.0], level=1.0)


def test_summarize_counts_dropped_runs():
    # Issue 13 item 7: a NaN must not silently change the headline; it is counted.
    df = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 3, "m": [1.0, 2.0, np.nan, 3.0, 4.0, 5.0, 6.0]})
    s = st.summarize(df, ["g"], ["m"]).set_index("g")
    assert s.loc["a", "n_seeds"] == 3 and s.loc["a", "n_dropped"] == 1
    assert s.loc["a", "mean"] == pytest.approx(2.0)
    assert s.loc["b", "n_dropped"] == 0
    with pytest.raises(ValueError, match="lacks columns"):
        st.summarize(df, ["nope"], ["m"])


# --------------------------------------------------------------------------- bootstrap


def test_resample_map_matches_loop():
    key = jax.random.key(3)
    out = st.resample_map(key, lambda idx: idx.sum(), 7, n_boot=5, batch_size=2)
    keys = jax.random.split(key, 5)
    loop = [int(jax.random.randint(k, (7,), 0, 7).sum()) for k in keys]
    np.testing.assert_array_equal(np.asarray(out), loop)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["percentile", "bca", "studentized"])
def test_cluster_bootstrap_matches_numpy(rng, method):
    a, b, mask = _data(rng)
    mask[:, 3] = False  # a user never evaluated is not a cluster
    a[:, 3] = np.nan  # and its values are never read
    num, den = a - b + 2.0, np.abs(b) + 0.5
    key = jax.random.key(1)
    r = st.cluster_bootstrap(key, num, den, mask, n_boot=300, level=0.9, method=method)
    users = mask.any(0)
    N = np.where(mask, num, 0).astype(np.float64).sum(0)[users]
    D = np.where(mask, den, 0).astype(np.float64).sum(0)[users]
    est = N.sum() / D.sum()
    c = _np_resample_counts(key, N.size, 300)
    samples = (c @ N) / (c @ D)
    assert float(r.estimate) == pytest.approx(est, rel=1e-5)
    np.testing.assert_allclose(r.samples, samples, rtol=1e-4)
    assert float(r.se) == pytest.approx(samples.std(ddof=1), rel=1e-3)
    s = np.asarray(r.samples, dtype=np.float64)
    if method == "percentile":
        ref = np.quantile(s, [0.05, 0.95])
    elif method == "bca":
        ref = _np_bca(s, N, D, 0.9)
    else:
        ses = np.sqrt((c * (N[None] - samples[:, None] * D[None]) ** 2).sum(1)) / (c @ D)
        se_hat = np.sqrt(((N - est * D) ** 2).sum()) / D.sum()
        t = (samples - est) / ses
        q = np.quantile(t, [0.05, 0.95])
        ref = [est - q[1] * se_hat, est - q[0] * se_hat]
    np.testing.assert_allclose([r.low, r.high], ref, rtol=2e-3)
    assert r.low <= r.estimate <= r.high


@pytest.mark.slow
def test_cluster_bootstrap_invariances_and_jit(rng):
    a, _, mask = _data(rng, S=3, U=20)
    key = jax.random.key(2)
    r = st.cluster_bootstrap(key, a, mask=mask, n_boot=200, method="percentile")
    # A mean is a ratio with den = 1 and equals the pooled mean over evaluated pairs.
    assert float(r.estimate) == pytest.approx(a[mask].mean(), rel=1e-5)
    # Affine equivariance of the percentile interval (scale 3, shift 1).
    r2 = st.cluster_bootstrap(key, 3 * a + 1, mask=mask, n_boot=200, method="percentile")
    np.testing.assert_allclose([r2.low, r2.high], [3 * r.low + 1, 3 * r.high + 1], rtol=1e-4)
    # A shared per-user shift across seeds changes nothing about a paired difference.
    shift = rng.normal(size=(1, 20)).astype(np.float32)
    d1 = st.cluster_bootstrap(key, a - a[::-1], mask=np.ones_like(mask), n_boot=200)
    d2 = st.cluster_bootstrap(
        key, (a + shift) - (a[::-1] + shift), mask=np.ones_like(mask), n_boot=200
    )
    np.testing.assert_allclose([d1.low, d1.high], [d2.low, d2.high], atol=1e-5)
    # jit == eager; a second call does not retrace.
    with jax.disable_jit():
        e = st.cluster_bootstrap(key, a, mask=mask, n_boot=40, method="bca")
    j = st.cluster_bootstrap(key, a, mask=mask, n_boot=40, method="bca")
    np.testing.assert_allclose([e.low, e.high], [j.low, j.high], rtol=1e-4)
    n_cache = st._cluster_bootstrap_impl._cache_size()
    st.cluster_bootstrap(jax.random.key(9), a, mask=mask, n_boot=40, method="bca")
    assert st._cluster_bootstrap_impl._cache_size() == n_cache
    # Another key gives other samples.
    other = st.cluster_bootstrap(jax.random.key(5), a, mask=mask, n_boot=40, method="bca")
    assert not np.array_equal(other.samples, j.samples)


def test_cluster_bootstrap_keeps_a_users_seeds_together():
    # Two seeds identical: the cluster bootstrap must give the same interval as one seed
    # (duplicating a user's rows adds no information), unlike row resampling.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 40)).astype(np.float32)
    key = jax.random.key(0)
    one = st.cluster_bootstrap(key, x, n_boot=400, method="percentile")
    two = st.cluster_bootstrap(key, np.concatenate([x, x]), n_boot=400, method="percentile")
    np.testing.assert_allclose([one.low, one.high], [two.low, two.high], rtol=1e-5)


def test_cluster_bootstrap_validation():
    x = np.ones((2, 5), np.float32)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="key"):
        st.cluster_bootstrap(None, x)
    with pytest.raises(ValueError, match=r"\[S, U\]"):
        st.cluster_bootstrap(key, np.ones(5))
    with pytest.raises(ValueError, match="mask"):
        st.cluster_bootstrap(key, x, mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="mask"):
        st.cluster_bootstrap(key, x, mask=np.ones((2, 5)))
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        st.cluster_bootstrap(key, bad)
    st.cluster_bootstrap(key, bad, mask=~np.isnan(bad), n_boot=10)  # masked NaN is fine
    with pytest.raises(ValueError, match="den"):
        st.cluster_bootstrap(key, x, np.zeros_like(x))
    with pytest.raises(ValueError, match="method"):
        st.cluster_bootstrap(key, x, method="basic")
    with pytest.raises(ValueError, match="n_boot"):
        st.cluster_bootstrap(key, x, n_boot=1)
    with pytest.raises(ValueError, match="no user"):
        st.cluster_bootstrap(key, x, mask=np.zeros((2, 5), bool))


# --------------------------------------------------------------------------- paired tests


@pytest.mark.slow
def test_sign_flip_matches_numpy(rng):
    a, b, mask = _data(rng, S=3, U=15)
    key = jax.random.key(4)
    r = st.sign_flip_test(key, a, b, mask, n_permutations=200, batch_size=64)
    d = np.where(mask, a.astype(np.float64) - b, 0).sum(0)[mask.any(0)]
    n_pairs = mask.sum()
    keys = jax.random.split(key, 200)
    null = np.array(
        [(np.asarray(jax.random.rademacher(k, d.shape, jnp.float32)) * d).sum() for k in keys]
    )
    null /= n_pairs
    obs = d.sum() / n_pairs
    np.testing.assert_allclose(r.null, null, rtol=1e-4, atol=1e-6)
    assert float(r.statistic) == pytest.approx(obs, rel=1e-5)
    p = (1 + np.sum(np.abs(null) >= np.abs(obs) * (1 - 1e-6))) / 201
    assert float(r.p_value) == pytest.approx(p)
    # Swapping the methods flips the statistic; the two-sided p is unchanged.
    s = st.sign_flip_test(key, b, a, mask, n_permutations=200, batch_size=64)
    assert float(s.statistic) == pytest.approx(-obs, rel=1e-5)
    assert float(s.p_value) == pytest.approx(float(r.p_value))
    c = a + 0.5 + 0.1 * rng.normal(size=a.shape).astype(np.float32)  # c > a
    g = st.sign_flip_test(key, a, c, mask, n_permutations=200, alternative="greater")
    lo = st.sign_flip_test(key, a, c, mask, n_permutations=200, alternative="less")
    assert float(lo.p_value) < 0.05 < float(g.p_value)
    with pytest.raises(ValueError, match="alternative"):
        st.sign_flip_test(key, a, b, alternative="both")
    with pytest.raises(ValueError, match="shape"):
        st.sign_flip_test(key, a, b[:, :3])


def test_seed_t_test_matches_scipy(rng):
    a, b, mask = _data(rng, S=5, U=25)
    r = st.seed_t_test(a, b, mask)
    dbar = np.array([(a[s][mask[s]].astype(np.float64) - b[s][mask[s]]).mean() for s in range(5)])
    ref = sps.ttest_1samp(dbar, 0.0)
    assert r.t == pytest.approx(ref.statistic, rel=1e-6)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert r.n_seeds == 5
    ref_g = sps.ttest_1samp(dbar, 0.0, alternative="greater")
    assert st.seed_t_test(a, b, mask, alternative="greater").p_value == pytest.approx(
        ref_g.pvalue, rel=1e-6
    )
    one = st.seed_t_test(a[:1], b[:1])
    assert math.isnan(one.p_value) and one.n_seeds == 1


def test_cluster_ratio_test_matches_numpy(rng):
    a, b, mask = _data(rng, S=3, U=25)
    num, den = np.abs(a), np.abs(b) + 1.0
    r = st.cluster_ratio_test(num, den, mask, threshold=0.6, alternative="less")
    N = np.where(mask, num, 0).astype(np.float64).sum(0)[mask.any(0)]
    D = np.where(mask, den, 0).astype(np.float64).sum(0)[mask.any(0)]
    ref = sps.ttest_1samp(N - 0.6 * D, 0.0, alternative="less")
    assert r.estimate == pytest.approx(N.sum() / D.sum(), rel=1e-6)
    assert r.t == pytest.approx(ref.statistic, rel=1e-5)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-5)
    with pytest.raises(ValueError, match="threshold"):
        st.cluster_ratio_test(num, den, threshold=float("nan"))


def test_holm_hand_worked_and_numpy_reference():
    # Hand-worked: sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005=0.02, 3*0.01=0.03,
    # 2*0.03=0.06, max(1*0.04, 0.06)=0.06; back in input order.
    np.testing.assert_allclose(st.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(st.holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform(size=7) ** 3
        m = p.size
        order = np.argsort(p)
        ref = np.empty(m)
        running = 0.0
        for i, j in enumerate(order):
            running = max(running, min(1.0, (m - i) * p[j]))
            ref[j] = running
        np.testing.assert_allclose(st.holm(p), ref)
        assert (st.holm(p) >= p).all()
    assert st.holm([]).size == 0
    with pytest.raises(ValueError, match="NaN"):
        st.holm([0.1, np.nan])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        st.holm([0.1, 1.5])


def test_minimum_detectable_effect():
    mde = st.minimum_detectable_effect(0.2, 400, alpha=0.05, power=0.8)
    ref = (sps.t.ppf(0.975, 399) + sps.t.ppf(0.8, 399)) * 0.2 / math.sqrt(400)
    assert mde == pytest.approx(ref)
    assert mde == pytest.approx((1.96 + 0.8416) * 0.01, rel=0.01)  # normal limit
    assert st.minimum_detectable_effect(0.4, 400) == pytest.approx(2 * mde)
    assert st.minimum_detectable_effect(0.2, 1600) < mde
    one = st.minimum_detectable_effect(0.2, 400, alternative="greater")
    assert one < mde
    with pytest.raises(ValueError, match="n_clusters"):
        st.minimum_detectable_effect(0.2, 1)
    with pytest.raises(ValueError, match="sd"):
        st.minimum_detectable_effect(float("nan"), 10)


def test_mde_has_the_stated_power():
    # At the MDE the paired (one-sample t over users) test rejects ≈ 80% of the time.
    rng = np.random.default_rng(7)
    n, sd, R = 50, 1.0, 4000
    mde = st.minimum_detectable_effect(sd, n, alpha=0.05, power=0.8)
    x = mde + sd * rng.normal(size=(R, n))
    p = sps.ttest_1samp(x, 0.0, axis=1).pvalue
    assert abs((p < 0.05).mean() - 0.8) < 3 * math.sqrt(0.8 * 0.2 / R) + 0.01


def test_paired_comparison(rng):
    a, b, mask = _data(rng, S=4, U=60)
    r = st.paired_comparison(jax.random.key(0), a, b, mask, n_boot=300, n_permutations=300)
    d = np.where(mask, a.astype(np.float64) - b, 0)
    assert float(r.mean_diff.estimate) == pytest.approx(d.sum() / mask.sum(), rel=1e-4)
    rel = np.where(mask, a, 0).sum() / np.where(mask, b, 0).sum() - 1
    assert float(r.rel_diff.estimate) == pytest.approx(rel, rel=1e-4)
    assert r.mean_diff.high < 0 and float(r.sign_flip.p_value) < 0.05  # b = a + 0.1
    per_user = d.sum(0)[mask.any(0)] / mask.sum(0)[mask.any(0)]
    assert r.sd_user == pytest.approx(per_user.std(ddof=1))
    assert r.mde == pytest.approx(st.minimum_detectable_effect(r.sd_user, r.n_users))
    assert r.n_users == int(mask.any(0).sum()) and r.n_seeds == 4


# --------------------------------------------------------------------------- verdicts


def test_verdict_rule():
    c = st.Claim("X", "s", "stat", "null", "over users", threshold=0.0, margin=0.01)
    assert st.verdict(c, 0.05, (0.02, 0.08), 0.01) == "supported"
    assert st.verdict(c, 0.05, (0.02, 0.08), 0.2) == "inconclusive"  # p too large
    assert st.verdict(c, -0.05, (-0.08, -0.02), 0.01) == "not supported"
    assert st.verdict(c, 0.0, (-0.005, 0.008), 0.5) == "not supported"  # within margin
    assert st.verdict(c, 0.01, (-0.01, 0.03), 0.3) == "inconclusive"
    assert st.verdict(c, np.nan, (0.1, 0.2), 0.01) == "inconclusive"
    assert st.verdict(c, 0.05, (0.02, 0.08), np.nan) == "inconclusive"
    less = dataclass_replace(c, direction="less", threshold=0.5, margin=0.0)
    assert st.verdict(less, 0.2, (0.1, 0.3), 0.001) == "supported"
    assert st.verdict(less, 0.7, (0.6, 0.8), 0.9) == "not supported"
    assert st.verdict(less, 0.45, (0.3, 0.6), 0.04) == "inconclusive"
    with pytest.raises(ValueError, match="low <= high"):
        st.verdict(c, 0.0, (0.1, -0.1), 0.5)
    with pytest.raises(ValueError, match="direction"):
        st.Claim("X", "s", "stat", "null", "i", direction="up")
    with pytest.raises(ValueError, match="margin"):
        st.Claim("X", "s", "stat", "null", "i", margin=-1.0)


def dataclass_replace(c, **kw):
    import dataclasses

    return dataclasses.replace(c, **kw)


def test_claims_are_frozen_and_complete():
    assert [c.id for c in st.CLAIMS] == ["C1", "C2", "C3", "C4", "C5"]
    for c in st.CLAIMS:
        assert c.statement and c.statistic and c.null_reference and c.interval and c.test
        with pytest.raises(AttributeError):
            c.threshold = 1.0


def test_verdict_table():
    rows = [
        st.ClaimResult(st.C2, 0.02, 0.01, 0.03, 0.001, note="MDE 0.004"),
        st.ClaimResult(st.C4, -0.03, -0.04, -0.02, 1.0),
        st.ClaimResult(st.C1, 0.4, 0.2, 0.6, 0.2),
    ]
    md = st.verdict_table(rows)
    lines = md.splitlines()
    assert lines[0] == (
        "| claim | statistic | null reference | effect [interval] | p (Holm) | verdict |"
    )
    assert "| C2 |" in lines[2] and "**supported**" in lines[2] and "MDE 0.004" in lines[2]
    assert "0.020 [0.010, 0.030]" in lines[2]
    assert "**not supported**" in lines[3]
    assert "**inconclusive**" in lines[4]
    assert "Legend:" in md and st.C1.interval in md and "Holm-adjusted" in md
    with pytest.raises(ValueError, match="ClaimResult"):
        st.verdict_table([("C1", 0.1)])


# --------------------------------------------------------------------------- coverage
# Simulated users with a known population truth. Each replication draws new users; a
# large per-user effect is shared by all S seeds (intra-user correlation ≈ 0.96), the
# per-user effects are skewed (Gamma), and ratios have user-varying denominators.

_TRUE_MEAN = 2.0  # E[Gamma(2, 1)]
_TRUE_DIFF = 0.2  # E[v_a] − E[v_b] = 0.5 − 0.3
_TRUE_RATIO = 2.0 / 7.0  # E[Beta(2, 5)], independent of the denominators


def _gamma2(key, shape):
    """Gamma(2, 1) draws as a sum of two exponentials (cheap to compile, skewed)."""
    return jax.random.exponential(key, (2, *shape)).sum(0)


def _simulate(key, S, U, counts=True):
    """Per-user metric x, paired difference a − b, and a ratio's num / den, all ``[S, U]``.

    ``counts=False`` (the fast tests) swaps the Poisson/binomial/Beta samplers, slow to
    compile, for light-tailed continuous ones with the same truth.
    """
    k = jax.random.split(key, 9)
    user = _gamma2(k[0], (U,))
    x = user[None] + 0.3 * jax.random.normal(k[1], (S, U))
    va = 0.5 * jax.random.exponential(k[2], (U,))  # skewed method effects, mean 0.5
    vb = 0.3 + 0.3 * jax.random.normal(k[3], (U,))  # mean 0.3
    a = user[None] + va[None] + 0.2 * jax.random.normal(k[4], (S, U))
    b = user[None] + vb[None] + 0.2 * jax.random.normal(k[5], (S, U))
    # Ratio of counts (e.g. unique hits / |union of hits|): Poisson denominators with
    # user-varying, skewed rates; binomial numerators with per-user shares p.
    lam = 3.0 * jax.random.exponential(k[6], (U,))
    if not counts:  # E[p] = 2/7 as for Beta(2, 5); E[num | den, p] = den · p
        p = (4.0 / 7.0) * jax.random.uniform(k[7], (U,))
        den = 1.0 + lam[None] * (0.5 + jax.random.uniform(k[8], (S, U)))
        num = den * p[None] * 2.0 * jax.random.uniform(jax.random.fold_in(k[8], 1), (S, U))
        return x, a - b, num, den
    p = jax.random.beta(k[7], 2.0, 5.0, (U,))
    den = 1.0 + jax.random.poisson(k[8], jnp.broadcast_to(lam, (S, U))).astype(jnp.float32)
    num = jax.random.binomial(jax.random.fold_in(k[8], 1), den, jnp.broadcast_to(p, (S, U)))
    num = num.astype(jnp.float32)
    return x, a - b, num, den


def _coverage(R, S, U, n_boot, configs, *, chunk=500, seed=0, counts=True):
    """Coverage of the truth over R replications.

    ``configs``: ``(method, rows_iid)`` pairs, evaluated on the same replications in one
    compiled function. ``rows_iid=True`` is the negative control: it treats the S × U
    user-seed rows as independent units instead of keeping a user's seeds together.

    Returns:
        ``[len(configs), 3]`` covered fractions for the mean, the paired difference and
        the ratio of sums.
    """
    level = jnp.asarray(0.95, jnp.float32)

    def one(key):
        kd, kb = jax.random.split(key)
        x, d, num, den = _simulate(kd, S, U, counts)
        ones = jnp.ones_like(x)
        out = []
        for method, rows_iid in configs:
            row = []
            for (nm, dn), truth in (
                ((x, ones), _TRUE_MEAN),
                ((d, ones), _TRUE_DIFF),
                ((num, den), _TRUE_RATIO),
            ):
                N, D = (nm.reshape(-1), dn.reshape(-1)) if rows_iid else (nm.sum(0), dn.sum(0))
                r = st._cluster_bootstrap_impl(
                    kb, N, D, level, n_boot=n_boot, batch_size=n_boot, method=method
                )
                row.append((r.low <= truth) & (truth <= r.high))
            out.append(jnp.stack(row))
        return jnp.stack(out)

    f = jax.jit(jax.vmap(one))
    keys = jax.random.split(jax.random.key(seed), R)
    hits = np.concatenate([np.asarray(f(keys[i : i + chunk])) for i in range(0, R, chunk)])
    return hits.mean(axis=0)


def _in_band(frac, R, k, nominal=0.95):
    return abs(frac - nominal) <= k * math.sqrt(nominal * (1 - nominal) / R)


def _sign_flip_rejections(R, S, U, n_perm, seed=0):
    """Rejection rates at α = 0.05 of the sign-flip test and of the seed t, under H0."""

    def one(key):
        k = jax.random.split(key, 5)
        user = _gamma2(k[0], (U,))
        # Exchangeable methods: user-specific effects from the same skewed law.
        va = jax.random.exponential(k[1], (U,))
        vb = jax.random.exponential(k[2], (U,))
        a = user[None] + va[None] + 0.2 * jax.random.normal(k[3], (S, U))
        b = user[None] + vb[None] + 0.2 * jax.random.normal(k[4], (S, U))
        d = a - b
        r = st._sign_flip_impl(
            jax.random.fold_in(key, 7),
            d.sum(0),
            jnp.asarray(S * U, jnp.float32),
            n_permutations=n_perm,
            batch_size=n_perm,
            alternative="two-sided",
        )
        return r.p_value, d.mean(1)

    keys = jax.random.split(jax.random.key(seed), R)
    p, dbar = jax.jit(jax.vmap(one))(keys)
    p, dbar = np.asarray(p), np.asarray(dbar, dtype=np.float64)
    t_p = sps.ttest_1samp(dbar, 0.0, axis=1).pvalue
    return float((p <= 0.05).mean()), float((t_p <= 0.05).mean())


def _ratio_test_rejections(R, S, U, seed=0, counts=True):
    keys = jax.random.split(jax.random.key(seed), R)
    sims = jax.jit(jax.vmap(lambda k: _simulate(k, S, U, counts)))(keys)
    num, den = np.asarray(sims[2]), np.asarray(sims[3])
    N, D = num.sum(1).astype(np.float64), den.sum(1).astype(np.float64)  # [R, U]
    z = N - _TRUE_RATIO * D
    p = sps.ttest_1samp(z, 0.0, axis=1).pvalue
    # The public function agrees with this vectorised form on the first replications.
    for i in range(3):
        assert st.cluster_ratio_test(num[i], den[i], threshold=_TRUE_RATIO).p_value == (
            pytest.approx(p[i], rel=1e-4)
        )
    return float((p <= 0.05).mean())


def _seed_interval_coverage(R, S, seed=0, *, normal_quantile=False):
    """Per-seed values: truth + seed effect + mean over 50 fresh skewed user draws."""
    rng = np.random.default_rng(seed)
    v = _TRUE_MEAN + 0.05 * rng.normal(size=(R, S)) + rng.gamma(2.0, size=(R, S, 50)).mean(2)
    v -= 2.0  # the user draws have mean 2; the truth stays _TRUE_MEAN
    m, se = v.mean(1), v.std(1, ddof=1) / math.sqrt(S)
    q = sps.norm.ppf(0.975) if normal_quantile else sps.t.ppf(0.975, S - 1)
    covered = np.abs(m - _TRUE_MEAN) <= q * se
    # The public function gives the same interval (spot check).
    lo, hi = st.seed_interval(v[0])[1:]
    if not normal_quantile:
        assert (lo <= _TRUE_MEAN <= hi) == covered[0]
    return float(covered.mean())


@pytest.mark.slow
def test_coverage_fast():
    # The default interval (studentized) and the negative control, same replications.
    R = 300
    cov = _coverage(
        R,
        S=5,
        U=40,
        n_boot=400,
        configs=(("studentized", False), ("studentized", True)),
        counts=False,
    )
    for frac in cov[0]:
        assert _in_band(frac, R, k=4), cov
    assert not _in_band(cov[1, 0], R, k=4) and cov[1, 0] < 0.9, cov  # rows not independent


@pytest.mark.slow
def test_paired_tests_under_null_fast():
    R = 400
    flip, seed_t = _sign_flip_rejections(R, S=5, U=40, n_perm=199, seed=1)
    assert abs(flip - 0.05) <= 4 * math.sqrt(0.05 * 0.95 / R), flip
    assert seed_t > 0.3, seed_t  # the seed t is not a test about users (module docstring)
    rt = _ratio_test_rejections(R, S=5, U=40, seed=1, counts=False)
    assert abs(rt - 0.05) <= 4 * math.sqrt(0.05 * 0.95 / R), rt


def test_seed_interval_coverage_fast():
    R = 400
    assert _in_band(_seed_interval_coverage(R, S=5, seed=1), R, k=4)
    bad = _seed_interval_coverage(R, S=3, seed=1, normal_quantile=True)
    assert not _in_band(bad, R, k=4), bad


_SLOW_CONFIGS = (
    ("percentile", False),
    ("bca", False),
    ("studentized", False),
    ("studentized", True),
)


@pytest.fixture(scope="module")
def slow_coverage():
    R = 2000
    cov = _coverage(R, S=5, U=60, n_boot=1000, configs=_SLOW_CONFIGS)
    for (method, iid), c in zip(_SLOW_CONFIGS, cov):
        print(f"coverage R={R} {method}{' iid rows' if iid else ''}: mean/diff/ratio = {c}")
    return R, cov


@pytest.mark.slow
def test_coverage_slow(slow_coverage):
    # The default interval (studentized, the one the report uses) is within ±3 SE of 95%.
    R, cov = slow_coverage
    for frac in cov[2]:
        assert _in_band(frac, R, k=3), cov[2]


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["percentile", "bca"])
def test_coverage_slow_alternatives(slow_coverage, which):
    # Percentile and BCa undercover slightly at 60 skewed users (measured 0.928 for the
    # ratio, outside the ±3 SE band; module docstring): not the default, but not broken.
    _, cov = slow_coverage
    assert (cov[which] > 0.915).all() and (cov[which] < 0.965).all(), cov[which]


@pytest.mark.slow
def test_coverage_negative_control_slow(slow_coverage):
    R, cov = slow_coverage
    assert not _in_band(cov[3, 0], R, k=3), cov[3]
    assert not _in_band(cov[3, 1], R, k=3), cov[3]


@pytest.mark.slow
def test_paired_tests_under_null_slow():
    R = 2000
    flip, seed_t = _sign_flip_rejections(R, S=5, U=60, n_perm=999)
    rt = _ratio_test_rejections(R, S=5, U=60)
    print(f"rejection at 0.05, R={R}: sign flip {flip}, seed t {seed_t}, ratio t {rt}")
    band = 3 * math.sqrt(0.05 * 0.95 / R)
    assert abs(flip - 0.05) <= band, flip
    assert abs(rt - 0.05) <= band, rt
    assert seed_t > 0.3, seed_t


@pytest.mark.slow
def test_seed_interval_coverage_slow():
    R = 4000
    cov = _seed_interval_coverage(R, S=5)
    bad = _seed_interval_coverage(R, S=5, normal_quantile=True)
    print(f"seed interval coverage R={R}: t {cov}, normal quantile {bad}")
    assert _in_band(cov, R, k=3), cov
    assert not _in_band(bad, R, k=3), bad

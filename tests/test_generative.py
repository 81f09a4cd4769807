"""Tests of the shared-plus-private generative model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from complemjax import generative as gen

CFG = gen.ViewsConfig(d_shared=4, d_sem_private=3, d_cf_private=5, dim_sem=16, dim_cf=12)


def _ols_r2(x, y):
    """Variance-weighted R² of least squares with intercept (NumPy reference)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    xc = np.c_[x, np.ones(len(x))]
    w = np.linalg.lstsq(xc, y, rcond=None)[0]
    r = y - xc @ w
    return 1 - (r**2).sum() / ((y - y.mean(0)) ** 2).sum()


@pytest.mark.slow
def test_decomposition_is_exact_and_shapes():
    v = gen.sample_views(jax.random.key(0), CFG, gen.ViewsKnobs(nonlinearity=0.7), 50)
    assert v.x.shape == (50, 16) and v.y.shape == (50, 12)
    np.testing.assert_allclose(v.x, v.x_shared + v.x_private + v.x_noise, atol=1e-5)
    np.testing.assert_allclose(v.y, v.y_shared + v.y_private + v.y_noise, atol=1e-5)


def test_linear_case_parts_are_the_mixing_terms():
    knobs = gen.ViewsKnobs(shared_fraction_sem=0.3, spectrum_decay=1.0)
    k_mix, k_lat, k_noise = jax.random.split(jax.random.key(1), 3)
    mix = gen.sample_mixing(k_mix, CFG)
    lat = gen.sample_latents(k_lat, CFG, 40)
    v = gen.render_views(mix, lat, knobs, noise_key=k_noise)
    lam = np.arange(1, 5, dtype=np.float64) ** -1.0
    lam = lam * 4 / lam.sum()
    a = np.asarray(mix.A, np.float64)
    a = a * np.sqrt(16 / np.sum(a**2 * lam))
    ref = np.sqrt(0.3) * (np.asarray(lat.s) * np.sqrt(lam)) @ a.T
    np.testing.assert_allclose(v.x_shared, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_population_r2_star_matches_empirical_ridge_at_large_n():
    knobs = gen.ViewsKnobs(shared_fraction_sem=0.6, shared_fraction_cf=0.4, noise_sem=0.2)
    key = jax.random.key(3)
    v = gen.sample_views(key, CFG, knobs, 40_000)
    mix = gen.sample_mixing(jax.random.split(key, 3)[0], CFG)
    pop = gen.population_stats(mix, knobs)
    # Tolerance: OLS with 17 parameters on 40k items has optimism ~ d/n ≈ 4e-4; the
    # sampling sd of R² at this n is ~ 5e-3.
    assert abs(_ols_r2(v.x, v.y) - float(pop.r2_ceiling)) < 0.015
    emp_frac = float(jnp.sum(jnp.var(v.x_shared, 0)) / jnp.sum(jnp.var(v.x, 0)))
    assert abs(emp_frac - float(pop.shared_fraction_sem)) < 0.015
    assert abs(float(pop.shared_fraction_sem) - 0.6 / 1.2) < 1e-5


def test_population_r2_is_nan_when_nonlinear():
    mix = gen.sample_mixing(jax.random.key(0), CFG)
    assert np.isnan(float(gen.population_stats(mix, gen.ViewsKnobs(nonlinearity=0.5)).r2_ceiling))


@pytest.mark.slow
def test_shared_part_is_conditional_expectation_given_s():
    """Monte Carlo: average f(z) over many private draws for a fixed s equals x_shared."""
    knobs = gen.ViewsKnobs(nonlinearity=1.0, frequency=1.5, noise_sem=0.0, noise_cf=0.0)
    mix = gen.sample_mixing(jax.random.key(5), CFG)
    s = jax.random.normal(jax.random.key(6), (3, CFG.d_shared))
    n_mc = 20_000
    p = jax.random.normal(jax.random.key(7), (n_mc, CFG.d_sem_private))
    q = jax.random.normal(jax.random.key(8), (n_mc, CFG.d_cf_private))
    for i in range(3):
        lat = gen.Latents(jnp.broadcast_to(s[i], (n_mc, CFG.d_shared)), p, q)
        v = gen.render_views(mix, lat, knobs, noise_key=jax.random.key(9))
        mc_mean = np.asarray(v.x_private).mean(0)  # E[f - E[f|s] | s] should be 0
        se = np.asarray(v.x_private).std(0) / np.sqrt(n_mc)
        assert np.all(np.abs(mc_mean) < 5 * se + 1e-4)


@pytest.mark.slow
def test_same_key_same_result_and_jit_equals_eager():
    knobs = gen.ViewsKnobs(nonlinearity=0.5)
    a = gen.sample_views(jax.random.key(11), CFG, knobs, 30)
    b = gen.sample_views(jax.random.key(11), CFG, knobs, 30)
    for u, w in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(u, w)
    jitted = jax.jit(gen.sample_views, static_argnums=(1, 3))(jax.random.key(11), CFG, knobs, 30)
    for u, w in zip(jax.tree.leaves(a), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(u, w, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_vmap_over_keys_and_knobs_equals_loop():
    keys = jax.random.split(jax.random.key(2), 3)
    noise = jnp.array([0.0, 0.5, 1.0])

    def f(k, nz):
        return gen.sample_views(k, CFG, gen.ViewsKnobs(noise_cf=nz, nonlinearity=0.3), 20).y

    batched = jax.vmap(f)(keys, noise)
    for i in range(3):
        np.testing.assert_allclose(batched[i], f(keys[i], noise[i]), rtol=1e-5, atol=1e-5)


def test_zero_shift_equals_no_shift_bitwise():
    knobs = gen.ViewsKnobs(nonlinearity=0.4)
    a = gen.sample_split(jax.random.key(4), CFG, knobs, n_train=30, n_test=20)
    b = gen.sample_split(
        jax.random.key(4),
        CFG,
        knobs,
        n_train=30,
        n_test=20,
        shift=gen.Shift(shared_mean=0.0, shared_scale=1.0, private_scale=1.0, cf_noise_scale=1.0),
    )
    for u, w in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(u, w)


def test_shift_operators_act_on_test_only():
    knobs = gen.ViewsKnobs()
    base = gen.sample_split(jax.random.key(4), CFG, knobs, n_train=30, n_test=20)
    sh = gen.sample_split(
        jax.random.key(4), CFG, knobs, n_train=30, n_test=20,
        shift=gen.Shift(shared_mean=2.0, private_scale=3.0),
    )  # fmt: skip
    np.testing.assert_array_equal(base.train.x, sh.train.x)
    np.testing.assert_allclose(sh.test.latents.s[:, 0], base.test.latents.s[:, 0] + 2.0, atol=1e-6)
    np.testing.assert_allclose(sh.test.latents.p, 3 * base.test.latents.p, atol=1e-6)


@pytest.mark.slow
def test_selection_splits_on_first_shared_latent():
    sp = gen.sample_split(
        jax.random.key(0), CFG, gen.ViewsKnobs(), n_train=50, n_test=50,
        shift=gen.Shift(selection=1.0),
    )  # fmt: skip
    assert float(sp.train.latents.s[:, 0].max()) <= float(sp.test.latents.s[:, 0].min())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"shared_fraction_sem": 1.5}, "shared_fraction_sem"),
        ({"noise_cf": -0.1}, "noise_cf"),
        ({"nonlinearity": 2.0}, "nonlinearity"),
    ],
)
def test_bad_knobs_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        gen.sample_views(jax.random.key(0), CFG, gen.ViewsKnobs(**kwargs), 10)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="n_train"):
        gen.sample_split(jax.random.key(0), CFG, gen.ViewsKnobs(), n_train=1, n_test=5)
    with pytest.raises(ValueError, match="dim_sem"):
        gen.ViewsConfig(dim_sem=0)
    with pytest.raises(ValueError, match="selection"):
        gen.sample_split(
            jax.random.key(0), CFG, gen.ViewsKnobs(), n_train=5, n_test=5,
            shift=gen.Shift(selection=1.5),
        )  # fmt: skip


# ----------------------------------------------------------------------------- users


def _interactions(**knobs):
    lat = gen.sample_latents(jax.random.key(0), CFG, 300)
    ucfg = gen.UsersConfig(n_users=100, max_interactions=30, user_chunk=32)
    return gen.sample_interactions(jax.random.key(1), lat, ucfg, gen.UserKnobs(**knobs))


@pytest.mark.slow
def test_interactions_are_valid_padded_disjoint_sets():
    it = _interactions(density=0.05)
    train, test = np.asarray(it.train), np.asarray(it.test)
    assert train.shape == (100, 30) and train.dtype == np.int32
    for u in range(100):
        tr, te = train[u][train[u] >= 0], test[u][test[u] >= 0]
        assert len(tr) >= 1 and len(te) >= 1
        assert len(tr) + len(te) == int(it.n_interactions[u])
        assert not set(tr) & set(te)
        assert len(set(tr)) == len(tr) and np.all(tr < 300)
        # valid entries first, then padding
        assert np.all(train[u][: len(tr)] >= 0) and np.all(train[u][len(tr) :] == -1)


def test_density_and_popularity_skew_knobs_act():
    sparse = _interactions(density=0.02, activity_spread=0.0)
    dense = _interactions(density=0.08, activity_spread=0.0)
    assert float(sparse.n_interactions.mean()) < float(dense.n_interactions.mean())

    def top_share(it):
        items = np.concatenate([np.asarray(it.train).ravel(), np.asarray(it.test).ravel()])
        counts = np.bincount(items[items >= 0], minlength=300)
        return np.sort(counts)[::-1][:30].sum() / counts.sum()

    assert top_share(_interactions(popularity_skew=3.0)) > top_share(
        _interactions(popularity_skew=0.0)
    )


def test_interactions_deterministic_and_bad_knobs():
    a, b = _interactions(), _interactions()
    np.testing.assert_array_equal(a.train, b.train)
    with pytest.raises(ValueError, match="private_reliance"):
        _interactions(private_reliance=1.2)
    with pytest.raises(ValueError, match="max_interactions"):
        gen.sample_interactions(
            jax.random.key(0),
            gen.sample_latents(jax.random.key(0), CFG, 10),
            gen.UsersConfig(n_users=5, max_interactions=20),
            gen.UserKnobs(),
        )


# ----------------------------------------------------------------------------- network family

NET = gen.ViewsConfig(
    d_shared=3, d_sem_private=3, d_cf_private=4, dim_sem=10, dim_cf=6,
    cf_map="network", net_depth=2, net_width=16, n_reference=2048,
)  # fmt: skip


def _world(key, knobs, n, cfg=NET):
    k_mix, k_lat, k_noise = jax.random.split(key, 3)
    mix = gen.sample_mixing(k_mix, cfg)
    lat = gen.sample_latents(k_lat, cfg, n)
    return mix, gen.render_views(mix, lat, knobs, noise_key=k_noise)


@pytest.mark.slow
def test_network_decomposition_and_shared_part_depends_on_s_only():
    knobs = gen.ViewsKnobs(nonlinearity=1.0, frequency=2.0, private_correlation=0.5)
    mix, v = _world(jax.random.key(0), knobs, 40)
    np.testing.assert_allclose(v.y, v.y_shared + v.y_private + v.y_noise, atol=1e-5)
    # Same s, other privates and noise: identical y_shared.
    lat2 = gen.Latents(v.latents.s, -v.latents.p, 2 * v.latents.q)
    v2 = gen.render_views(mix, lat2, knobs, noise_key=jax.random.key(9))
    np.testing.assert_allclose(v.y_shared, v2.y_shared, atol=1e-6)
    # Semantic view is linear-Gaussian in the network family, whatever eta.
    H_s, _, _, _ = gen._linear_parts(mix, knobs)
    np.testing.assert_allclose(v.x_shared, v.latents.s @ H_s.T, rtol=1e-4, atol=1e-5)


def _np_posterior(mix, knobs, x):
    H_s, H_p, _, _ = gen._linear_parts(mix, knobs)
    H = np.c_[np.asarray(H_s, np.float64), np.asarray(H_p, np.float64)]
    sig2 = float(knobs.noise_sem)
    prec = H.T @ H + sig2 * np.eye(H.shape[1])
    return np.linalg.solve(prec, H.T @ np.asarray(x, np.float64).T).T, sig2 * np.linalg.inv(prec)


@pytest.mark.slow
def test_posterior_matches_large_sample_regression():
    """E[s|x] is linear in x: OLS of s on x at large n recovers it; residual cov = Cov(s|x)."""
    knobs = gen.ViewsKnobs(shared_fraction_sem=0.6, noise_sem=0.5, spectrum_decay=0.5)
    mix, v = _world(jax.random.key(1), knobs, 60_000)
    x, s = np.asarray(v.x, np.float64), np.asarray(v.latents.s, np.float64)
    coef = np.linalg.lstsq(x, s, rcond=None)[0]  # [D_x, d_s] (zero-mean model)
    post = gen.latent_posterior(mix, knobs, v.x[:500])
    np.testing.assert_allclose(post.mean_s, x[:500] @ coef, atol=0.03)
    resid = s - x @ coef
    np.testing.assert_allclose(post.cov_s, np.cov(resid.T), atol=0.02)
    ref_mean, ref_cov = _np_posterior(mix, knobs, v.x[:500])
    np.testing.assert_allclose(post.mean_s, ref_mean[:, :3], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(post.cov_s, ref_cov[:3, :3], rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_mc_bayes_predictor_converges_to_closed_form_in_linear_case():
    """eta = 0: g(s) = C s, so E[y|x] = sqrt(rho_y) C Λ^½ E[s|x] + private term exactly."""
    knobs = gen.ViewsKnobs(nonlinearity=0.0, noise_sem=0.3, private_correlation=0.6)
    mix, v = _world(jax.random.key(2), knobs, 50)
    mean, _ = _np_posterior(mix, knobs, v.x)
    _, _, D_eff, lam = gen._linear_parts(mix, knobs)
    C = np.asarray(gen._normalise(mix.C, lam) * jnp.sqrt(lam), np.float64)
    K = 0.6 * np.eye(4, 3)
    closed = (
        np.sqrt(0.5) * mean[:, :3] @ C.T
        + np.sqrt(0.5) * mean[:, 3:] @ (np.asarray(D_eff, np.float64) @ K).T
    )
    errs = []
    for n_mc in (16, 1024):
        pred = gen.bayes_predict(jax.random.key(3), mix, knobs, v.x, n_mc=n_mc)
        err = np.mean(np.sum((np.asarray(pred.y) - closed) ** 2, axis=1))
        # The MC error is what mc_var predicts (unbiased), within a factor.
        assert err < 3 * float(np.mean(pred.mc_var)) + 1e-8
        errs.append(err)
    assert errs[1] < errs[0] / 20  # variance ∝ 1/M: 64x more draws


@pytest.mark.slow
def test_bayes_ceiling_bounds_linear_ceiling_and_fitted_ols():
    knobs = gen.ViewsKnobs(nonlinearity=1.0, frequency=1.5, noise_sem=0.1, noise_cf=0.1)
    mix, v = _world(jax.random.key(4), knobs, 20_000)
    pop = gen.population_stats(mix, knobs)
    ceil = gen.bayes_ceiling(jax.random.key(5), mix, knobs, v, n_mc=128)
    ols = _ols_r2(v.x, v.y)
    # Both linear numbers agree (population vs 20k-sample OLS), and the Bayes ceiling is
    # above them: the map is nonlinear in s, which the linear probe cannot follow.
    assert abs(ols - float(pop.r2_ceiling)) < 0.03
    assert float(ceil.r2) > ols + 0.02
    assert float(ceil.r2) < float(pop.shared_fraction_cf) + 0.02
    # With independent privates, E[y|x] = E[y_shared|x]: ceiling for y_shared is larger.
    assert float(ceil.r2_shared) > float(ceil.r2)


@pytest.mark.slow  # a 40k-sample regression check
@pytest.mark.parametrize("c", [0.0, 0.8])
def test_correlated_privates_recoverable_share_matches_regression(c):
    knobs = gen.ViewsKnobs(private_correlation=c, noise_sem=0.2, shared_fraction_sem=0.4)
    mix, v = _world(jax.random.key(6), knobs, 40_000)
    pop = gen.population_stats(mix, knobs)
    emp = _ols_r2(v.x, v.y_private)
    # OLS with 11 parameters at n = 40k: optimism ~ 3e-4, sampling sd ~ 5e-3.
    assert abs(emp - float(pop.private_recoverable)) < 0.015
    if c == 0.0:
        assert float(pop.private_recoverable) == 0.0  # an identity of the model
    else:
        assert float(pop.private_recoverable) > 0.2


@pytest.mark.slow
def test_network_shifts_act_on_test_only():
    knobs = gen.ViewsKnobs(nonlinearity=1.0)
    base = gen.sample_split(jax.random.key(7), NET, knobs, n_train=30, n_test=20)
    conc = gen.sample_split(
        jax.random.key(7), NET, knobs, n_train=30, n_test=20, shift=gen.Shift(concept=1.0)
    )
    np.testing.assert_array_equal(base.train.y, conc.train.y)
    np.testing.assert_array_equal(base.test.x, conc.test.x)
    assert float(jnp.mean((base.test.y_shared - conc.test.y_shared) ** 2)) > 0.1
    sel = gen.sample_split(
        jax.random.key(7), NET, knobs, n_train=30, n_test=30,
        shift=gen.Shift(selection_cf_private=1.0),
    )  # fmt: skip
    assert float(sel.train.latents.q[:, 0].max()) <= float(sel.test.latents.q[:, 0].min())
    with pytest.raises(ValueError, match="selection"):
        gen.Shift(selection=0.6, selection_cf_private=0.6).validate()


@pytest.mark.slow
def test_popularity_tied_to_cf_private():
    lat = gen.sample_latents(jax.random.key(0), CFG, 2000)
    ucfg = gen.UsersConfig(n_users=4, max_interactions=4)
    it = gen.sample_interactions(
        jax.random.key(1), lat, ucfg, gen.UserKnobs(popularity_cf_private=0.9)
    )
    r = np.corrcoef(np.asarray(it.item_bias), np.asarray(lat.q[:, 0]))[0, 1]
    assert abs(r - 0.9) < 0.03

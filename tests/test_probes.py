"""Tests for complemjax.probes: NumPy references, population check, MLP training, capacity
sweeps (bucketing == padding), jit/vmap/determinism, and input validation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from complemjax import probes
from complemjax.probes import (
    MLP,
    LinearParams,
    MLPParams,
    ProbeHParams,
    ReducedRank,
    Ridge,
    fit,
    fit_capacities,
    fit_with_info,
    predict,
    predict_capacities,
)

# Small MLP specs reused across tests so that compiled programs are shared.
SMALL = MLP(width=8, steps=60)
HP = ProbeHParams(l2=0.5, learning_rate=1e-2, weight_decay=1e-3)


def r2_weighted(y, y_hat):
    """Variance-weighted R² = 1 - SSE / SST over all output dims (local helper)."""
    y = np.asarray(y, np.float64)
    y_hat = np.asarray(y_hat, np.float64)
    sse = np.sum((y - y_hat) ** 2)
    sst = np.sum((y - y.mean(axis=0)) ** 2)
    return 1.0 - sse / sst


def _data(rng, n=60, d_x=6, d_y=4, nonlinear=False):
    x = rng.standard_normal((n, d_x)).astype(np.float32)
    a = rng.standard_normal((d_x, d_y)).astype(np.float32)
    y = x @ a
    if nonlinear:
        y = np.tanh(y)
    y = (y + 0.3 * rng.standard_normal((n, d_y)) + 1.5).astype(np.float32)
    return x, y


def _np_ridge(x, y, l2):
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    w = np.linalg.solve(xc.T @ xc + l2 * np.eye(x.shape[1]), xc.T @ yc)
    return w, ym - xm @ w


def _np_rrr(x, y, l2, rank):
    """Mukherjee & Zhu (2011): SVD of the fitted values on the ridge-augmented design."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    xm, ym = x.mean(0), y.mean(0)
    xc = x - xm
    b, _ = _np_ridge(x, y, l2)
    x_aug = np.vstack([xc, np.sqrt(l2) * np.eye(x.shape[1])])
    _, _, vt = np.linalg.svd(x_aug @ b, full_matrices=False)
    v = vt[:rank].T
    w = b @ v @ v.T
    return w, ym - xm @ w


# --------------------------------------------------------------------------------------
# Linear probes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("l2", [0.0, 0.5, 20.0])
def test_ridge_matches_numpy_normal_equations(rng, key, l2):
    x, y = _data(rng)
    params = fit(key, Ridge(), x, y, ProbeHParams(l2=l2))
    w_ref, b_ref = _np_ridge(x, y, l2)
    assert isinstance(params, LinearParams)
    np.testing.assert_allclose(params.weight, w_ref, rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(params.bias, b_ref, rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(predict(Ridge(), params, x), x @ w_ref + b_ref, rtol=2e-4, atol=2e-4)


def test_ridge_matches_sklearn(rng, key):
    sklearn_linear = pytest.importorskip("sklearn.linear_model")
    x, y = _data(rng)
    params = fit(key, Ridge(), x, y, ProbeHParams(l2=3.0))
    ref = sklearn_linear.Ridge(alpha=3.0).fit(x.astype(np.float64), y.astype(np.float64))
    np.testing.assert_allclose(params.weight, ref.coef_.T, rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(params.bias, ref.intercept_, rtol=2e-4, atol=2e-4)


def test_ridge_l2_zero_rank_deficient_is_min_norm(rng, key):
    # n < d_x: l2 = 0 gives the minimum-norm least-squares solution (pseudo-inverse).
    x, y = _data(rng, n=5, d_x=8)
    params = fit(key, Ridge(), x, y, ProbeHParams(l2=0.0))
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    xc, yc = xd - xd.mean(0), yd - yd.mean(0)
    w_ref = np.linalg.pinv(xc, rcond=1e-6) @ yc
    np.testing.assert_allclose(params.weight, w_ref, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(("l2", "rank"), [(0.0, 1), (0.5, 2), (10.0, 3)])
def test_reduced_rank_matches_numpy(rng, key, l2, rank):
    x, y = _data(rng)
    params = fit(key, ReducedRank(rank=rank), x, y, ProbeHParams(l2=l2))
    w_ref, b_ref = _np_rrr(x, y, l2, rank)
    np.testing.assert_allclose(params.weight, w_ref, rtol=5e-4, atol=5e-4)
    np.testing.assert_allclose(params.bias, b_ref, rtol=5e-4, atol=5e-4)
    assert np.linalg.matrix_rank(np.asarray(params.weight, np.float64), tol=1e-4) == rank


def test_reduced_rank_full_rank_equals_ridge(rng, key):
    x, y = _data(rng)
    hp = ProbeHParams(l2=2.0)
    full = fit(key, ReducedRank(rank=4), x, y, hp)
    ridge = fit(key, Ridge(), x, y, hp)
    np.testing.assert_allclose(full.weight, ridge.weight, rtol=1e-4, atol=1e-4)


def test_reduced_rank_l2_zero_is_optimal_rank_r_least_squares(rng, key):
    # Izenman (1975): with l2 = 0 the estimator minimises the training SSE over rank-r maps;
    # truncating the OLS weight's own SVD is another rank-r map and cannot do better.
    x, y = _data(rng, n=80)
    _, info = fit_with_info(key, ReducedRank(rank=2), x, y, ProbeHParams(l2=0.0))
    w_ols, _ = _np_ridge(x, y, 0.0)
    u, s, vt = np.linalg.svd(w_ols)
    w_trunc = (u[:, :2] * s[:2]) @ vt[:2]
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    xc, yc = xd - xd.mean(0), yd - yd.mean(0)
    mse_trunc = np.mean((yc - xc @ w_trunc) ** 2)
    assert float(info.loss[0]) <= mse_trunc + 1e-6


def test_ridge_population_r2_ceiling(key):
    # y = x Aᵀ + e with x ~ N(0, Σ), e ~ N(0, σ² I): the population ceiling of any linear
    # probe is R²* = tr(A Σ Aᵀ) / (tr(A Σ Aᵀ) + d_y σ²). At large n ridge reaches it.
    rng = np.random.default_rng(1)
    d_x, d_y, sigma = 8, 5, 1.3
    sd = np.linspace(1.5, 0.3, d_x)
    a = rng.standard_normal((d_y, d_x))
    signal = np.trace(a @ np.diag(sd**2) @ a.T)
    r2_star = signal / (signal + d_y * sigma**2)

    def sample(n):
        x = rng.standard_normal((n, d_x)) * sd
        return x.astype(np.float32), (x @ a.T + sigma * rng.standard_normal((n, d_y))).astype(
            np.float32
        )

    x_tr, y_tr = sample(20_000)
    x_te, y_te = sample(20_000)
    params = fit(key, Ridge(), x_tr, y_tr, ProbeHParams(l2=1.0))
    r2 = r2_weighted(y_te, predict(Ridge(), params, x_te))
    assert 0.4 < r2_star < 0.9
    assert abs(r2 - r2_star) < 0.01, (r2, r2_star)


def test_ridge_vmap_over_l2_equals_loop(rng, key):
    x, y = _data(rng)
    l2s = jnp.array([0.0, 1.0, 10.0])
    batched = jax.vmap(lambda l2: fit(key, Ridge(), x, y, ProbeHParams(l2=l2)))(l2s)
    for i, l2 in enumerate([0.0, 1.0, 10.0]):
        one = fit(key, Ridge(), x, y, ProbeHParams(l2=l2))
        np.testing.assert_allclose(batched.weight[i], one.weight, rtol=1e-5, atol=1e-5)


def test_linear_float64_under_x64(rng, key):
    x, y = _data(rng)
    with jax.enable_x64(True):
        params = fit(key, ReducedRank(rank=2), x.astype(np.float64), y.astype(np.float64))
        assert params.weight.dtype == jnp.float64
        w_ref, _ = _np_rrr(x, y, 1.0, 2)
        np.testing.assert_allclose(params.weight, w_ref, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------------------
# MLP
# --------------------------------------------------------------------------------------


def test_mlp_training_lowers_loss_and_predicts(rng, key):
    x, y = _data(rng, n=64, nonlinear=True)
    params, info = fit_with_info(key, SMALL, x, y, HP)
    assert isinstance(params, MLPParams)
    assert info.loss.shape == (SMALL.steps,)
    assert float(info.loss[-1]) < 0.5 * float(info.loss[0])
    y_hat = predict(SMALL, params, x)
    assert y_hat.shape == y.shape
    # The final training MSE is just below the last recorded (pre-step) loss.
    mse = float(jnp.mean((y_hat - y) ** 2))
    assert mse <= float(info.loss[-1]) * 1.01


def test_mlp_init_is_glorot_uniform(key):
    seeds = jax.random.bits(key, (2,), jnp.uint32)
    glorot = jax.jit(probes._glorot_entries, static_argnums=(1, 2, 3, 4, 5))
    w = glorot(seeds, 200, 300, 200, 300, jnp.float32)
    limit = np.sqrt(6.0 / 500)
    assert float(jnp.max(jnp.abs(w))) <= limit
    np.testing.assert_allclose(float(jnp.mean(w)), 0.0, atol=0.01 * limit)
    np.testing.assert_allclose(float(jnp.var(w)), limit**2 / 3, rtol=0.02)
    # Entries depend only on their index, not on the array shape.
    np.testing.assert_array_equal(glorot(seeds, 7, 5, 200, 300, jnp.float32), w[:7, :5])


@pytest.mark.parametrize(
    "spec", [SMALL, MLP(width=5, depth=2, activation="gelu", steps=60, batch_size=16)]
)
@pytest.mark.slow
def test_mlp_padding_with_mask_equals_true_width(rng, key, spec):
    x, y = _data(rng, n=64, nonlinear=True)
    true, info_true = fit_with_info(key, spec, x, y, HP)
    padded_spec = dataclasses.replace(spec, width=16)
    padded, info_pad = jax.jit(probes._fit_mlp, static_argnums=1)(
        key, padded_spec, jnp.asarray(x), jnp.asarray(y), HP, spec.width
    )
    assert padded.weights[0].shape == (6, 16)
    # Units beyond the live width stay exactly zero.
    for w in padded.weights[:-1]:
        assert float(jnp.max(jnp.abs(w[..., spec.width :]))) == 0.0
    for w in padded.weights[1:]:
        assert float(jnp.max(jnp.abs(w[spec.width :]))) == 0.0
    unpadded = probes._unpad(padded, spec.width)
    for a, b in zip(jax.tree.leaves(unpadded), jax.tree.leaves(true)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(info_pad.loss, info_true.loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        predict(padded_spec, padded, x), predict(spec, true, x), rtol=1e-4, atol=1e-5
    )
    # Training (full-batch or minibatch, depth 1 or 2) lowers the loss.
    assert float(jnp.mean(info_true.loss[-10:])) < 0.6 * float(info_true.loss[0])


@pytest.mark.slow
def test_fit_capacities_pad_equals_bucket_and_single_fits(rng, key):
    x, y = _data(rng, n=64, nonlinear=True)
    specs = [MLP(width=5, steps=60), SMALL, ReducedRank(rank=1), ReducedRank(rank=3), Ridge()]
    pad = fit_capacities(key, specs, x, y, HP, n_seeds=3, strategy="pad")
    bucket = fit_capacities(key, specs, x, y, HP, n_seeds=3, strategy="bucket")
    # Chunks of 2 fits with a remainder of 1 (lax.map batch_size) change nothing either.
    chunked = fit_capacities(key, specs, x, y, HP, n_seeds=3, strategy="bucket", seed_chunk=2)
    assert pad.strategy == "pad" and bucket.strategy == "bucket"
    for p_pad, p_bucket, p_chunk in zip(pad.params, bucket.params, chunked.params):
        for a, b, c in zip(*map(jax.tree.leaves, (p_pad, p_bucket, p_chunk))):
            assert a.shape == b.shape == c.shape
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(c, b, rtol=1e-4, atol=1e-5)
    seed_keys = jax.random.split(key, 3)
    for spec, p, loss in zip(specs[1:], pad.params[1:], pad.loss[1:]):
        assert loss.shape[0] == 3
        for s in range(3):
            one, info = fit_with_info(seed_keys[s], spec, x, y, HP)
            for a, b in zip(
                jax.tree.leaves(jax.tree.map(lambda t, s=s: t[s], p)), jax.tree.leaves(one)
            ):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(loss[s], info.loss, rtol=1e-4, atol=1e-6)
    preds = predict_capacities(pad, x)
    assert [p.shape for p in preds] == [(3, 64, 4)] * len(specs)


@pytest.mark.parametrize(
    "kw",
    [
        pytest.param(dict(), id="full-batch"),
        pytest.param(dict(depth=2, val_fraction=0.25), marks=pytest.mark.slow, id="depth2-val"),
        pytest.param(dict(batch_size=16), marks=pytest.mark.slow, id="minibatch"),
    ],
)
def test_fit_capacities_fuse_equals_bucket(rng, key, kw):
    # training the widths of a seed as one program must give every width its own fit:
    # same init, minibatches, validation rows and early-stopping choice, per width
    x, y = _data(rng, n=64, nonlinear=True)
    specs = [MLP(width=w, steps=12, **kw) for w in (5, 2)]
    fused = fit_capacities(key, specs, x, y, HP, n_seeds=2, strategy="fuse")
    bucket = fit_capacities(key, specs, x, y, HP, n_seeds=2, strategy="bucket")
    assert fused.strategy == "fuse"
    for p_f, p_b, l_f, l_b in zip(fused.params, bucket.params, fused.loss, bucket.loss):
        for a, b in zip(*map(jax.tree.leaves, (p_f, p_b)), strict=True):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(l_f, l_b, rtol=1e-5, atol=1e-6)
    # the widths really differ (a fit that ignored its width would fail the check above)
    assert fused.params[0].weights[0].shape[-1] == 5 and fused.params[1].weights[0].shape[-1] == 2


def test_auto_strategy_fuses_groups_whose_fused_fit_fits_in_cache():
    small = jnp.zeros((500, 64)), jnp.zeros((500, 64))  # 64 seeds x widths 4..32: 616 KB
    large = jnp.zeros((4000, 64)), jnp.zeros((4000, 64))  # widths 8..256: 26 MB
    assert probes._group_strategy("auto", (4, 8, 16, 32), *small) == "fuse"
    assert probes._group_strategy("auto", (8, 16, 32, 64, 128, 256), *large) == "bucket"
    assert probes._group_strategy("pad", (4, 8), *small) == "pad"


def test_vmap_over_seeds_equals_python_loop(rng, key):
    x, y = _data(rng, n=64, nonlinear=True)
    keys = jax.random.split(key, 4)
    batched = jax.vmap(lambda k: fit(k, SMALL, x, y, HP))(keys)
    for s in range(4):
        one = fit(keys[s], SMALL, x, y, HP)
        for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(one)):
            np.testing.assert_allclose(a[s], b, rtol=1e-4, atol=1e-5)


def test_vmap_over_data_and_learning_rate(rng, key):
    xs, ys = zip(*[_data(np.random.default_rng(i), n=64) for i in range(2)])
    xs, ys = np.stack(xs), np.stack(ys)
    lrs = jnp.array([1e-3, 1e-2])

    def f(x, y, lr):
        return fit(key, SMALL, x, y, ProbeHParams(learning_rate=lr))

    batched = jax.vmap(f)(xs, ys, lrs)
    for i in range(2):
        one = fit(key, SMALL, xs[i], ys[i], ProbeHParams(learning_rate=float(lrs[i])))
        np.testing.assert_allclose(batched.weights[0][i], one.weights[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spec", [Ridge(), ReducedRank(rank=2), SMALL])
def test_outer_jit_equals_fit(rng, key, spec):
    x, y = _data(rng, n=64)
    jitted = jax.jit(fit, static_argnums=1)(key, spec, x, y, HP)
    direct = fit(key, spec, x, y, HP)
    for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(direct)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "spec",
    [
        Ridge(),
        ReducedRank(rank=2),
        pytest.param(MLP(width=4, steps=3, batch_size=16), marks=pytest.mark.slow),
    ],
)
@pytest.mark.slow
def test_jit_equals_eager(rng, key, spec):
    x, y = _data(rng, n=32)
    jitted = fit(key, spec, x, y, HP)
    with jax.disable_jit():
        eager = fit(key, spec, x, y, HP)
    for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_same_key_same_result_and_keys_matter(rng, key):
    x, y = _data(rng, n=64)
    a = fit(key, SMALL, x, y, HP)
    b = fit(key, SMALL, x, y, HP)
    c = fit(jax.random.key(1), SMALL, x, y, HP)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(u, v)
    assert not np.allclose(a.weights[0], c.weights[0])


def test_no_retrace_on_second_call(rng, key):
    x, y = _data(rng, n=64)
    fit(key, SMALL, x, y, HP)
    size = probes._fit_impl._cache_size()
    fit(jax.random.key(5), SMALL, x + 1.0, y, HP)
    assert probes._fit_impl._cache_size() == size


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def test_bad_inputs_raise_naming_argument(rng, key):
    x, y = _data(rng, n=20)
    with pytest.raises(ValueError, match="`x` and `y`"):
        fit(key, Ridge(), x, y[:10])
    x_nan = x.copy()
    x_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="`x` contains 1 NaN"):
        fit(key, Ridge(), x_nan, y)
    y_inf = y.copy()
    y_inf[1, 1] = np.inf
    with pytest.raises(ValueError, match=r"`y` contains 0 NaN and 1 inf"):
        fit(key, SMALL, x, y_inf)
    with pytest.raises(ValueError, match="`rank`"):
        fit(key, ReducedRank(rank=5), x, y)  # d_y = 4
    with pytest.raises(ValueError, match="`rank`"):
        ReducedRank(rank=0)
    with pytest.raises(ValueError, match="`width`"):
        MLP(width=0)
    with pytest.raises(ValueError, match="`depth`"):
        MLP(width=4, depth=0)
    with pytest.raises(ValueError, match="`activation`"):
        MLP(activation="softsign")
    with pytest.raises(ValueError, match="`x`"):
        fit(key, Ridge(), x[:1], y[:1])
    with pytest.raises(ValueError, match=r"`x`.*floating"):
        fit(key, Ridge(), x.astype(np.int32), y)
    with pytest.raises(ValueError, match=r"`y`.*floating"):
        fit(key, Ridge(), x, y > 0)
    with pytest.raises(ValueError, match="`l2`"):
        fit(key, Ridge(), x, y, ProbeHParams(l2=-1.0))
    with pytest.raises(ValueError, match="`learning_rate`"):
        fit(key, SMALL, x, y, ProbeHParams(learning_rate=0.0))
    with pytest.raises(ValueError, match="`batch_size`"):
        fit(key, MLP(width=4, steps=5, batch_size=50), x, y)
    with pytest.raises(ValueError, match="`spec`"):
        fit(key, "ridge", x, y)
    with pytest.raises(ValueError, match="`strategy`"):
        fit_capacities(key, [SMALL], x, y, strategy="fast")
    with pytest.raises(ValueError, match="`rank`"):
        fit_capacities(key, [SMALL, ReducedRank(rank=9)], x, y)
    with pytest.raises(ValueError, match="`x`"):
        predict(Ridge(), fit(key, Ridge(), x, y), x[:, :3])


# ----------------------------------------------------------------------------- additions


def test_select_l2_matches_numpy_gcv():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 5))
    y = x @ rng.normal(size=(5, 3)) + rng.normal(size=(60, 3))
    grid = np.array([0.0, 0.1, 1.0, 10.0, 100.0])
    sel = probes.select_l2(x.astype(np.float32), y.astype(np.float32), grid)
    xc, yc = x - x.mean(0), y - y.mean(0)
    ref = []
    for lam in grid:
        w = np.linalg.solve(xc.T @ xc + lam * np.eye(5), xc.T @ yc)
        h_trace = np.trace(xc @ np.linalg.solve(xc.T @ xc + lam * np.eye(5), xc.T)) + 1
        rss = np.sum((yc - xc @ w) ** 2)
        ref.append((rss / 60) / (1 - h_trace / 60) ** 2)
    np.testing.assert_allclose(sel.gcv, ref, rtol=2e-3)
    assert float(sel.l2) == grid[int(np.argmin(ref))]
    with pytest.raises(ValueError, match="l2_grid"):
        probes.select_l2(x.astype(np.float32), y.astype(np.float32), np.array([-1.0]))


def test_mlp_early_stopping_returns_best_held_out_params():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = (np.sin(x @ rng.normal(size=(6, 2))) + rng.normal(size=(120, 2))).astype(np.float32)
    spec = probes.MLP(width=64, steps=200, val_fraction=0.25)
    hp = probes.ProbeHParams(learning_rate=3e-2)
    params, info = probes.fit_with_info(jax.random.key(0), spec, x, y, hp)
    assert info.val_loss.shape == (201,)
    # The returned parameters reach the minimum held-out loss seen during training.
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.key(0), 2**31 - 1), 120))
    hold = perm[:30]
    pred = probes.predict(spec, params, x[hold])
    np.testing.assert_allclose(
        float(np.mean((np.asarray(pred) - y[hold]) ** 2)), float(info.val_loss.min()), rtol=1e-4
    )
    # Overfitting happens (held-out loss rises after its minimum), and is undone.
    assert float(info.val_loss[-1]) > float(info.val_loss.min())
    with pytest.raises(ValueError, match="val_fraction"):
        probes.MLP(val_fraction=1.0)


# --------------------------------------------------------------------------------------
# Zero-initialised output layer, tuning on one partition, random features
# --------------------------------------------------------------------------------------


def test_zero_output_init_starts_at_the_mean(rng, key):
    x, y = _data(rng)
    params, info = fit_with_info(key, MLP(width=8, steps=1), x, y, ProbeHParams(learning_rate=1e-9))
    np.testing.assert_allclose(predict(MLP(width=8, steps=1), params, x), np.broadcast_to(
        y.mean(0), y.shape), atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(float(info.loss[0]), np.mean((y - y.mean(0)) ** 2), rtol=1e-5)
    glorot = MLP(width=8, steps=1, output_init="glorot")
    p_g = fit(key, glorot, x, y, ProbeHParams(learning_rate=1e-9))
    assert np.abs(np.asarray(predict(glorot, p_g, x)) - y.mean(0)).max() > 0.1


def test_fit_val_split_is_a_partition(key):
    fi, vi = probes.fit_val_split(key, 50, 0.2)
    assert len(vi) == 10 and len(fi) == 40
    assert sorted(np.r_[np.asarray(fi), np.asarray(vi)].tolist()) == list(range(50))
    with pytest.raises(ValueError, match="val_fraction"):
        probes.fit_val_split(key, 50, 1.0)


def test_tune_ridge_matches_numpy_selection_on_the_validation_rows(rng, key):
    x, y = _data(rng, n=80, nonlinear=True)
    fi, vi = probes.fit_val_split(key, 80, 0.25)
    grid = np.array([0.01, 1.0, 30.0, 1000.0])
    t = probes.tune(key, Ridge(), x, y, ProbeHParams(l2=grid), fit_idx=fi, val_idx=vi)
    fi, vi = np.asarray(fi), np.asarray(vi)
    xm, xs = x[fi].mean(0), x[fi].std(0)
    ym, ys = y[fi].mean(0), y[fi].std(0)
    mse = []
    for l2 in grid:
        w, b = _np_ridge((x[fi] - xm) / xs, (y[fi] - ym) / ys, l2)
        pred = (((x[vi] - xm) / xs) @ w + b) * ys + ym
        mse.append(np.mean((pred - y[vi]) ** 2))
    np.testing.assert_allclose(t.val_mse, mse, rtol=1e-4)
    assert int(t.index) == int(np.argmin(mse))
    w, b = _np_ridge((x[fi] - xm) / xs, (y[fi] - ym) / ys, grid[np.argmin(mse)])
    ref = (((x - xm) / xs) @ w + b) * ys + ym
    np.testing.assert_allclose(predict(Ridge(), t.params, x), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_tune_mlp_configs_equal_single_padded_fits(rng, key):
    """Each vmapped configuration equals a single early-stopped fit at its width."""
    x, y = _data(rng, n=60)
    fi, vi = probes.fit_val_split(key, 60, 0.25)
    spec = MLP(width=8, steps=40)
    grid = ProbeHParams(learning_rate=jnp.array([1e-2, 3e-2]), weight_decay=jnp.array([0.0, 0.1]))
    t = probes.tune(key, spec, x, y, grid, widths=jnp.array([8, 5]), fit_idx=fi, val_idx=vi)
    # Standardise exactly as tune does (float32, fit-row statistics).
    xm, xs = jnp.mean(x[np.asarray(fi)], 0), jnp.std(x[np.asarray(fi)], 0)
    ym, ys = jnp.mean(y[np.asarray(fi)], 0), jnp.std(y[np.asarray(fi)], 0)
    xz, yz = np.asarray((x - xm) / xs), np.asarray((y - ym) / ys)
    for g, (lr, wd, w) in enumerate([(1e-2, 0.0, 8), (3e-2, 0.1, 5)]):
        p, _ = probes._fit_mlp(
            key, spec, jnp.asarray(xz[np.asarray(fi)]), jnp.asarray(yz[np.asarray(fi)]),
            ProbeHParams(learning_rate=lr, weight_decay=wd), w,
            val=(jnp.asarray(xz[np.asarray(vi)]), jnp.asarray(yz[np.asarray(vi)])),
        )  # fmt: skip
        pred = np.asarray(predict(spec, p, xz[np.asarray(vi)]) * ys + ym)
        np.testing.assert_allclose(
            float(t.val_mse[g]), np.mean((pred - y[np.asarray(vi)]) ** 2), rtol=1e-3
        )


def test_random_features_approximate_the_rbf_kernel(key):
    x = jax.random.normal(key, (6, 3))
    sigma = 1.3
    omega = jax.random.normal(jax.random.key(1), (3, 20_000)) / sigma
    phase = jax.random.uniform(jax.random.key(2), (20_000,), maxval=2 * np.pi)
    phi = np.asarray(probes._rff_features(probes.RFFParams(omega, phase, None), x), np.float64)
    d2 = ((np.asarray(x)[:, None] - np.asarray(x)[None]) ** 2).sum(-1)
    np.testing.assert_allclose(phi @ phi.T, np.exp(-d2 / (2 * sigma**2)), atol=0.03)


def _square_problem(key, n):
    """x = A s + e (linear-Gaussian), y = s_1² − 1 + noise: R²* = 0, Bayes R² closed form."""
    k_a, k_s, k_e, k_y = jax.random.split(key, 4)
    a = np.asarray(jax.random.normal(k_a, (8, 2)), np.float64) / np.sqrt(2)
    s = np.asarray(jax.random.normal(k_s, (n, 2)), np.float64)
    x = s @ a.T + np.sqrt(0.1) * np.asarray(jax.random.normal(k_e, (n, 8)))
    y = s[:, :1] ** 2 - 1 + 0.1 * np.asarray(jax.random.normal(k_y, (n, 1)))
    prec = a.T @ a + 0.1 * np.eye(2)
    mu = np.linalg.solve(prec, a.T @ x.T).T
    bayes = mu[:, :1] ** 2 + 0.1 * np.linalg.inv(prec)[0, 0] - 1  # E[s_1² | x] − 1
    return x.astype(np.float32), y.astype(np.float32), bayes


@pytest.mark.slow
def test_tuned_mlp_reaches_bayes_ceiling_on_a_square_where_ridge_cannot(key):
    x, y, _ = _square_problem(jax.random.key(10), 4000)
    # Same world (A comes from the first split of the key), 4000 other items for test.
    xt, yt, bayes = _square_problem(jax.random.key(10), 8000)
    xt, yt, bayes = xt[4000:], yt[4000:], bayes[4000:]
    ceiling = r2_weighted(yt, bayes)
    assert ceiling > 0.8  # a learnable problem: most of Var(y) is predictable from x
    fi, vi = probes.fit_val_split(key, 4000, 0.2)
    ridge = probes.tune(
        key, Ridge(), x, y, ProbeHParams(l2=jnp.logspace(-3, 3, 7)), fit_idx=fi, val_idx=vi
    )
    spec = MLP(width=64, steps=600, activation="relu")
    grid = ProbeHParams(learning_rate=jnp.array([3e-3, 1e-2]), weight_decay=jnp.array([0.0, 0.0]))
    mlp = probes.tune(key, spec, x, y, grid, fit_idx=fi, val_idx=vi)
    r2_ridge = r2_weighted(yt, predict(Ridge(), ridge.params, xt))
    r2_mlp = r2_weighted(yt, predict(spec, mlp.params, xt))
    assert abs(r2_ridge) < 0.02  # the linear ceiling is 0
    assert r2_mlp >= 0.8 * ceiling
    assert r2_mlp > r2_ridge + 0.5

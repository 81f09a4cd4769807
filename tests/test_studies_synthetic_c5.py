"""Unit tests of the synthetic C5 part (alignment on ground truth), BPR tuning helpers and
the downstream-Recall helpers of the synthetic studies (fast; the end-to-end runs are in
tests/test_studies_synthetic.py)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from complemjax import cf
from complemjax.studies import synthetic_alignment as sa
from complemjax.studies import synthetic_c5 as c5
from complemjax.studies import synthetic_complementarity as sc


def _sets(rng, n_users, m, n_items):
    out = np.full((n_users, m), -1, np.int32)
    for u in range(n_users):
        k = rng.integers(0, m + 1)
        out[u, :k] = np.sort(rng.choice(n_items, k, replace=False))
    return out


def test_split_validation_partitions_each_users_items():
    rng = np.random.default_rng(0)
    sets = _sets(rng, 40, 12, 50)
    fit, val = (np.asarray(a) for a in c5.split_validation(jax.random.key(1), sets, 0.25))
    for u in range(sets.shape[0]):
        s = set(sets[u][sets[u] >= 0])
        f, v = set(fit[u][fit[u] >= 0]), set(val[u][val[u] >= 0])
        assert f | v == s and not (f & v)
        n = len(s)
        expect = 0 if n < 2 else min(max(1, round(0.25 * n)), n - 1)
        assert len(v) == expect
        # padded layout: real items first, ascending
        assert list(fit[u][: len(f)]) == sorted(f) and (fit[u][len(f) :] == -1).all()


def test_split_validation_rejects_bad_fraction():
    with pytest.raises(ValueError, match="fraction"):
        c5.split_validation(jax.random.key(0), np.zeros((2, 3), np.int32), 1.0)


def _numpy_latent_r2(emb, z, fit, val, test, l2s):
    e, zz = emb[np.concatenate([fit, val])], z[np.concatenate([fit, val])]
    n_fit = len(fit)
    mx, sx = e[:n_fit].mean(0), e[:n_fit].std(0)
    my, sy = zz[:n_fit].mean(0), zz[:n_fit].std(0)
    xs, ys = (e - mx) / sx, (zz - my) / sy
    xf, yf = xs[:n_fit], ys[:n_fit]
    best = None
    for l2 in l2s:
        xc, yc = xf - xf.mean(0), yf - yf.mean(0)
        w = np.linalg.solve(xc.T @ xc + l2 * np.eye(xc.shape[1]), xc.T @ yc)
        b = yf.mean(0) - xf.mean(0) @ w
        pred_v = (xs[n_fit:] @ w + b) * sy + my
        mse = np.mean((pred_v - zz[n_fit:]) ** 2)
        if best is None or mse < best[0]:
            best = (mse, w, b)
    _, w, b = best
    pred = (((emb[test] - mx) / sx) @ w + b) * sy + my
    zt = z[test]
    return 1 - ((pred - zt) ** 2).sum() / ((zt - zt.mean(0)) ** 2).sum()


def test_latent_r2_matches_numpy_reference():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(60, 3))
    emb = np.concatenate([z @ rng.normal(size=(3, 4)), rng.normal(size=(60, 2))], 1)
    emb = emb + 0.8 * rng.normal(size=emb.shape)
    fit, val, test = c5.probe_split(jax.random.key(2), 60, 0.5)
    l2s = (0.1, 3.0, 30.0)
    got = float(c5.latent_r2(emb, z, fit, val, test, l2s))
    ref = _numpy_latent_r2(emb, z, *(np.asarray(a) for a in (fit, val, test)), l2s)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert 0.2 < got < 1.0


def test_latent_r2_separates_carried_from_absent_latents():
    rng = np.random.default_rng(4)
    n = 600
    s, q = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    emb = s @ rng.normal(size=(4, 16)) + 0.1 * rng.normal(size=(n, 16))
    split = c5.probe_split(jax.random.key(0), n, 0.5)
    assert float(c5.latent_r2(emb, s, *split, (0.1, 1.0, 10.0))) > 0.95
    assert float(c5.latent_r2(emb, q, *split, (0.1, 1.0, 10.0))) < 0.02


def test_latent_r2_rejects_bad_inputs():
    split = c5.probe_split(jax.random.key(0), 20, 0.5)
    with pytest.raises(ValueError, match="same rows"):
        c5.latent_r2(np.zeros((20, 2)), np.zeros((19, 2)), *split, (1.0,))
    with pytest.raises(ValueError, match="l2_grid"):
        c5.latent_r2(np.ones((20, 2)), np.ones((20, 2)), *split, (-1.0,))


def test_alignment_config_requires_weight_zero():
    with pytest.raises(ValueError, match="include 0"):
        c5.AlignmentConfig(align_weights=(0.1, 1.0))


def test_bpr_embeddings_with_dynamic_epochs_equal_fit_bpr():
    cfg = dataclasses.replace(
        sc.StudyConfig(), n_items=30, n_users=20, max_interactions=6, bpr_dim=4,
        bpr_epochs=6, bpr_eval_every=2, bpr_batch=16,
    )  # fmt: skip
    sets = jnp.asarray(_sets(np.random.default_rng(5), 20, 6, 30))
    users = jnp.broadcast_to(jnp.arange(20)[:, None], sets.shape).ravel()
    items, mask = jnp.maximum(sets, 0).ravel(), (sets >= 0).ravel()
    hp = cf.BPRHParams(learning_rate=0.05, l2=1e-4)
    key = jax.random.key(9)
    fn = jax.jit(lambda n: sc.bpr_embeddings(key, cfg, users, items, mask, hp, n))
    for n in (2, 4):
        ref = cf.fit_bpr(
            key, users, items, n_users=20, n_items=30, hparams=hp, mask=mask,
            config=cf.BPRConfig(dim=4, n_epochs=n, batch_size=16),
        )  # fmt: skip
        ue, ie = fn(n)
        np.testing.assert_allclose(ue, ref.user_emb, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ie, ref.item_emb, rtol=1e-5, atol=1e-6)
    assert not np.allclose(fn(2)[1], fn(4)[1])


def test_downstream_users_prefer_items_through_the_cf_view():
    cfg = dataclasses.replace(sa.StudyConfig(), shift_users=300, shift_density=0.05,
                              shift_max_interactions=16)  # fmt: skip
    rng = np.random.default_rng(6)
    y = jnp.asarray(rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8)))
    users = sa.downstream_users(jax.random.key(0), y, cfg)
    r_view = float(sa.profile_recall(y, users))
    r_rand = float(sa.profile_recall(jnp.asarray(rng.normal(size=(300, 8))), users))
    # chance Recall@20 over ~300 candidate items is about 20/300
    assert r_view > 2 * r_rand
    assert r_rand < 0.15


@pytest.mark.slow
def test_lightgcn_retains_cf_private_signal_above_the_floor():
    """At weight 0 the learned item embeddings carry the CF-private latent q (the users'
    preferences load on it) clearly above the permuted-item floor; x carries none of it."""
    from complemjax import generative as gen

    cfg = c5.AlignmentConfig(
        align_weights=(0.0,), n_items=300, n_users=300, max_interactions=32, density=0.08,
        n_seeds=3, max_epochs=8,
    )  # fmt: skip
    knobs = gen.ViewsKnobs(shared_fraction_sem=0.5, shared_fraction_cf=0.5, noise_sem=0.1,
                           noise_cf=0.1)  # fmt: skip
    df, _ = c5.run_alignment(cfg, gen.ViewsConfig(), knobs, popularity_skew=1.0, seed=1)
    w0 = df[df["align_weight"] == "0"].set_index("seed")
    assert len(w0) == 3
    assert (w0["q_r2"] - w0["q_r2_floor"] > 0.05).all()
    assert (w0["q_r2_x"] < w0["q_r2"]).all()


def test_findings_with_and_without_a_positive_weight():
    rows = []
    for seed in range(3):
        for w, q in (("0", 0.10), (c5.NULL, 0.09), ("0.1", 0.02)):
            rows.append(dict(
                align_weight=w, seed=seed, q_r2=q + 0.01 * seed, s_r2=0.3, p_r2=0.1,
                recall=0.2, q_r2_floor=-0.05, q_r2_x=-0.08, s_r2_x=0.9,
                chosen_on_valid=(w == "0"),
            ))  # fmt: skip
    df = pd.DataFrame(rows)
    lines = c5._findings(df)
    assert any("From w = 0 to w = 0.1" in line for line in lines)
    only_zero = c5._findings(df[df["align_weight"] != "0.1"])  # weight 0 (+ null) alone
    assert not any("From w = 0" in line for line in only_zero)
    assert len(only_zero) == len(lines) - 1

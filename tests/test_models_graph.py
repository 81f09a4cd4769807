"""Tests for complemjax.models.graph: propagation equals a scipy.sparse reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from complemjax.models import build_graph, propagate


def _reference(u, i, n_users, n_items, e0, k):
    n = n_users + n_items
    a = sp.coo_matrix((np.ones(len(u)), (u, n_users + i)), shape=(n, n)).tocsr()
    a = a + a.T
    deg = np.asarray(a.sum(1)).ravel()
    inv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0.0)
    norm = sp.diags(inv) @ a @ sp.diags(inv)
    out, e = e0.copy(), e0.copy()
    for _ in range(k):
        e = norm @ e
        out = out + e
    return out / (k + 1)


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    n_users, n_items = 7, 9
    pairs = {(int(a), int(b)) for a, b in zip(rng.integers(0, 6, 25), rng.integers(0, 8, 25))}
    u, i = map(np.array, zip(*sorted(pairs)))  # user 6 and item 8 have no edges
    e0 = rng.normal(size=(n_users + n_items, 4)).astype(np.float32)
    return u, i, n_users, n_items, e0


@pytest.mark.parametrize("k", [0, 1, 3])
def test_propagate_matches_scipy(toy, k):
    u, i, nu, ni, e0 = toy
    g = build_graph(u, i, n_users=nu, n_items=ni)
    pu, pi = propagate(g, jnp.asarray(e0[:nu]), jnp.asarray(e0[nu:]), n_layers=k)
    ref = _reference(u, i, nu, ni, e0.astype(np.float64), k)
    np.testing.assert_allclose(np.concatenate([pu, pi]), ref, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(np.asarray(pu))) and np.all(np.isfinite(np.asarray(pi)))


def test_mask_equals_dropping_edges(toy):
    u, i, nu, ni, e0 = toy
    keep = np.arange(len(u)) % 3 != 0
    g_mask = build_graph(u, i, n_users=nu, n_items=ni, mask=keep)
    g_drop = build_graph(u[keep], i[keep], n_users=nu, n_items=ni)
    a = propagate(g_mask, jnp.asarray(e0[:nu]), jnp.asarray(e0[nu:]), n_layers=2)
    b = propagate(g_drop, jnp.asarray(e0[:nu]), jnp.asarray(e0[nu:]), n_layers=2)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6, atol=1e-7)


def test_build_is_vmappable_over_masks(toy):
    u, i, nu, ni, _ = toy
    masks = jnp.stack([jnp.ones(len(u), bool), jnp.arange(len(u)) % 2 == 0])
    graphs = jax.vmap(lambda m: build_graph(u, i, n_users=nu, n_items=ni, mask=m))(masks)
    assert graphs.weights.shape == (2, 2 * len(u))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(user_idx=np.array([0, 0]), item_idx=np.array([1, 1])), "repeated"),
        (dict(user_idx=np.array([0, 9]), item_idx=np.array([1, 2])), "user_idx"),
        (dict(user_idx=np.array([0, 1]), item_idx=np.array([1, -1])), "item_idx"),
        (dict(user_idx=np.array([0.0, 1.0]), item_idx=np.array([1, 2])), "user_idx"),
    ],
)
def test_bad_edges(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_graph(**kwargs, n_users=3, n_items=4)


def test_gradient_uses_symmetric_adjoint(toy):
    """d/dE0 Σ propagate(E0) ⊙ G equals the scipy reference propagation of G (Â = Âᵀ)."""
    u, i, nu, ni, e0 = toy
    g = build_graph(u, i, n_users=nu, n_items=ni)
    gmat = np.random.default_rng(3).normal(size=e0.shape)

    def f(a, b):
        pu, pi = propagate(g, a, b, n_layers=2)
        return jnp.sum(pu * gmat[:nu]) + jnp.sum(pi * gmat[nu:])

    ga, gb = jax.grad(f, argnums=(0, 1))(jnp.asarray(e0[:nu]), jnp.asarray(e0[nu:]))
    ref = _reference(u, i, nu, ni, gmat, 2)
    np.testing.assert_allclose(np.concatenate([ga, gb]), ref, rtol=1e-5, atol=1e-6)


def test_propagate_vmaps_over_graphs_and_dynamic_layers(toy):
    from complemjax.models import propagate_mean

    u, i, nu, ni, e0 = toy
    masks = jnp.stack([jnp.ones(len(u), bool), jnp.arange(len(u)) % 2 == 0])
    graphs = jax.vmap(lambda m: build_graph(u, i, n_users=nu, n_items=ni, mask=m))(masks)
    eu, ei = jnp.asarray(e0[:nu]), jnp.asarray(e0[nu:])
    out = jax.vmap(lambda gr: propagate(gr, eu, ei, n_layers=2))(graphs)
    for b in range(2):
        keep = np.asarray(masks[b])
        ref = _reference(u[keep], i[keep], nu, ni, e0.astype(np.float64), 2)
        np.testing.assert_allclose(
            np.concatenate([out[0][b], out[1][b]]), ref, rtol=1e-5, atol=1e-6
        )
    g = build_graph(u, i, n_users=nu, n_items=ni)
    dyn = jax.vmap(lambda k: propagate_mean(g, eu, ei, k, max_layers=3))(jnp.arange(4))
    for k in range(4):
        fixed = propagate(g, eu, ei, n_layers=k)
        np.testing.assert_allclose(dyn[0][k], fixed[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dyn[1][k], fixed[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("user_idx", "item_idx", "match"),
    [
        (np.array([0, 9]), np.array([1, 2]), "user_idx"),
        (np.array([0, 1]), np.array([1, -1]), "item_idx"),
        (np.zeros(0, np.int64), np.zeros(0, np.int64), "empty"),
    ],
)
def test_graph_and_bpr_share_one_pair_validator(user_idx, item_idx, match):
    """build_graph and fit_bpr refuse the same bad pairs with the same message."""
    from complemjax import models

    msgs = []
    for call in (
        lambda: build_graph(user_idx, item_idx, n_users=3, n_items=4),
        lambda: models.fit_bpr(
            jax.random.key(0), user_idx, item_idx, n_users=3, n_items=4,
            config=models.BPRConfig(dim=2, n_epochs=1), hparams=models.BPRHParams(),
        ),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=match) as e:
            call()
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]


def test_repeated_pairs_only_count_among_real_entries():
    u = np.array([0, 0, 1])
    i = np.array([1, 1, 2])
    with pytest.raises(ValueError, match="repeated"):
        build_graph(u, i, n_users=2, n_items=3)
    g = build_graph(u, i, n_users=2, n_items=3, mask=np.array([True, False, True]))
    assert float(jnp.sum(g.weights > 0)) == 4  # two real pairs, both directions

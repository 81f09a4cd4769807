"""The BPR objective's one implementation (complemjax.models.bpr): NumPy references,
invariances and its use by BPR-MF and the learned fusions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from complemjax import fusion
from complemjax.fusion import _train
from complemjax.models import bpr


def _pairs(rng, nu=7, ni=11, n=30):
    flat = rng.choice(nu * ni, n, replace=False)
    return (flat // ni).astype(np.int32), (flat % ni).astype(np.int32), nu, ni


def test_positive_keys_match_numpy_and_mask_pads(rng):
    u, i, nu, ni = _pairs(rng)
    mask = rng.random(u.size) < 0.7
    got = np.asarray(bpr.positive_keys(u, i, n_users=nu, n_items=ni, mask=mask))
    ref = np.sort(np.where(mask, u.astype(np.int64) * ni + i, -1))
    np.testing.assert_array_equal(got, ref)
    ok = np.asarray(bpr.is_positive(jnp.asarray(got), jnp.asarray(u), jnp.asarray(i), ni))
    np.testing.assert_array_equal(ok, mask)  # masked pairs are not training pairs


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_users=70_000, n_items=40_000), "2\\*\\*31"),
        (dict(n_users=0, n_items=5), "n_users"),
        (dict(n_users=3, n_items=5, mask=np.ones(3, bool)), "mask"),
    ],
)
def test_positive_keys_refuse_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bpr.positive_keys(np.array([0, 1]), np.array([1, 2]), **kwargs)


def test_uniform_ints_in_range_and_roughly_uniform():
    bits = jax.random.bits(jax.random.key(0), (60_000,), jnp.uint32)
    x = np.asarray(bpr.uniform_ints(bits, 6))
    assert x.dtype == np.int32 and x.min() == 0 and x.max() == 5
    freq = np.bincount(x, minlength=6) / x.size
    np.testing.assert_allclose(freq, 1 / 6, atol=0.01)


def test_sampler_draws_real_pairs_and_rejects_positive_negatives(rng):
    u, i, nu, ni = _pairs(rng)
    w = (rng.random(u.size) < 0.5).astype(np.float32)
    keys = bpr.positive_keys(u, i, n_users=nu, n_items=ni)
    su, si, sj, sw = bpr.sample_bpr_triples(
        jax.random.key(1), jnp.asarray(u), jnp.asarray(i), n_items=ni, n_draws=4000,
        weights=jnp.asarray(w), sorted_keys=keys, n_neg_retries=12,
    )  # fmt: skip
    pairs = set(zip(u.tolist(), i.tolist(), strict=True))
    su, si, sj, sw = (np.asarray(x) for x in (su, si, sj, sw))
    assert all((a, b) in pairs for a, b in zip(su, si, strict=True))
    # each entry's weight travels with it
    lookup = {(a, b): c for a, b, c in zip(u.tolist(), i.tolist(), w.tolist(), strict=True)}
    np.testing.assert_array_equal(sw, [lookup[(a, b)] for a, b in zip(su, si, strict=True)])
    # entries are uniform: each of the 30 pairs about 4000 / 30 times
    counts = np.unique(su.astype(np.int64) * ni + si, return_counts=True)[1]
    assert counts.size == u.size and counts.min() > 80 and counts.max() < 200
    # density 30/77: 12 redraws leave a positive negative with probability ~1e-5 per draw
    neg_pos = sum((a, b) in pairs for a, b in zip(su, sj, strict=True))
    assert neg_pos <= 2


def test_sampler_without_rejection_uses_the_same_words(rng):
    """Switching rejection off changes only the negatives that were redrawn."""
    u, i, nu, ni = _pairs(rng)
    keys = bpr.positive_keys(u, i, n_users=nu, n_items=ni)
    args = (jax.random.key(2), jnp.asarray(u), jnp.asarray(i))
    with_r = bpr.sample_bpr_triples(*args, n_items=ni, n_draws=500, sorted_keys=keys)
    without = bpr.sample_bpr_triples(*args, n_items=ni, n_draws=500)
    np.testing.assert_array_equal(with_r[0], without[0])
    np.testing.assert_array_equal(with_r[1], without[1])
    first_ok = ~np.asarray(bpr.is_positive(keys, without[0], without[2], ni))
    np.testing.assert_array_equal(np.asarray(with_r[2])[first_ok], np.asarray(without[2])[first_ok])


def test_sampler_jit_equals_eager(rng):
    u, i, nu, ni = _pairs(rng)
    keys = bpr.positive_keys(u, i, n_users=nu, n_items=ni)

    def f(k):
        return bpr.sample_bpr_triples(
            k, jnp.asarray(u), jnp.asarray(i), n_items=ni, n_draws=64, sorted_keys=keys
        )

    for a, b in zip(f(jax.random.key(3)), jax.jit(f)(jax.random.key(3)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bpr_loss_matches_numpy(rng):
    x = rng.normal(size=50)
    w = rng.random(50)
    r = rng.random(50)
    ref = -np.log(1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(bpr.bpr_loss(x), ref.mean(), rtol=1e-6)
    np.testing.assert_allclose(bpr.bpr_loss(x, w), (w * ref).sum() / w.sum(), rtol=1e-6)
    np.testing.assert_allclose(bpr.bpr_loss(x, w, r), (w * (ref + r)).sum() / w.sum(), rtol=1e-6)
    # all-zero weights: the denominator is clamped at 1, not a NaN
    assert float(bpr.bpr_loss(x, np.zeros(50))) == 0.0
    assert np.isfinite(float(bpr.bpr_loss(np.array([-200.0, 200.0]))))


@pytest.mark.parametrize(
    "config",
    [fusion.GateConfig(batch_size=32), fusion.SharedPrivateConfig(batch_size=32, n_neg_retries=2)],
)
def test_fusions_sample_with_the_bpr_mf_sampler(rng, config):
    """The learned fusions draw their triples with models.bpr, as BPR-MF does."""
    u, i, nu, ni = _pairs(rng)
    ju, ji = jnp.asarray(u), jnp.asarray(i)
    got = _train.bpr_sampler(ju, ji, nu, ni, config)(jax.random.key(5))
    ref = bpr.sample_bpr_triples(
        jax.random.key(5), ju, ji, n_items=ni, n_draws=32, n_neg_retries=config.n_neg_retries,
        sorted_keys=bpr.positive_keys(u, i, n_users=nu, n_items=ni),
    )  # fmt: skip
    for a, b in zip(got, ref[:3], strict=True):
        np.testing.assert_array_equal(a, b)


def test_threefry2x32_matches_jax_primitive_and_known_answer():
    from jax.extend.random import threefry2x32_p

    seed = jnp.array([0x13198A2E, 0x03707344], jnp.uint32)
    # Random123's known-answer vector for Threefry-2x32-20
    y = bpr.threefry2x32(seed, jnp.uint32(0x243F6A88), jnp.uint32(0x85A308D3))
    assert [int(v) for v in y] == [0xC4923A9C, 0x483DF7A0]
    x0 = jnp.asarray(np.arange(500, dtype=np.uint32) * np.uint32(2654435761))
    x1 = jnp.arange(500, dtype=jnp.uint32) ^ jnp.uint32(5)
    k0, k1 = (jnp.broadcast_to(w, x0.shape) for w in seed)
    ref = threefry2x32_p.bind(k0, k1, x0, x1)
    for a, b in zip(bpr.threefry2x32(seed, x0, x1), ref, strict=True):
        np.testing.assert_array_equal(a, b)


def test_draws_are_counter_based_words_of_the_key(rng):
    u, i, _, ni = _pairs(rng)
    key = jax.random.key(4)
    got = bpr.draw_bpr_candidates(key, jnp.asarray(u), jnp.asarray(i), n_items=ni, n_draws=50,
                                  n_neg_retries=2)  # fmt: skip
    seed = bpr.bpr_seed(key)
    t = jnp.arange(50, dtype=jnp.uint32)
    a, b = bpr.threefry2x32(seed, t, jnp.uint32(0))
    e = np.asarray(a) % u.size
    np.testing.assert_array_equal(got[0], u[e])
    np.testing.assert_array_equal(got[1], i[e])
    np.testing.assert_array_equal(got[2][0], np.asarray(b) % ni)
    for r in (1, 2):
        np.testing.assert_array_equal(got[2][r], np.asarray(bpr.threefry2x32(seed, t, r)[0]) % ni)
    # a draw's words do not depend on how many draws are made
    more = bpr.draw_bpr_candidates(key, jnp.asarray(u), jnp.asarray(i), n_items=ni, n_draws=80,
                                   n_neg_retries=2)  # fmt: skip
    for x, y in zip(got, more, strict=True):
        np.testing.assert_array_equal(x, np.asarray(y)[..., :50])

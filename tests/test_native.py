"""The native BPR-MF epoch kernel (complemjax._native) against its pure-JAX definition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from complemjax import _native, cf
from complemjax._native import bpr as native_bpr
from complemjax.models import bpr

pytestmark = pytest.mark.skipif(
    not _native.available(), reason="no C++ compiler: the native kernel cannot be built"
)


def _pairs(seed, n_users, n_items, n):
    r = np.random.default_rng(seed)
    pairs = np.unique(np.stack([r.integers(0, n_users, n), r.integers(0, n_items, n)], 1), axis=0)
    return pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32)


@pytest.mark.parametrize("optimizer", ["lazy_adam", "sgd"])
@pytest.mark.parametrize("reject", [True, False])
def test_native_epochs_equal_xla_epochs(optimizer, reject):
    # dense data (22% of pairs are positives), so the rejection of negatives is exercised
    u, i = _pairs(0, 40, 60, 700)
    hp = cf.BPRHParams(learning_rate=1e-2 if optimizer == "lazy_adam" else 0.5, l2=1e-3)
    out = {}
    for kernel in ("xla", "native"):
        cfg = cf.BPRConfig(
            dim=16, n_epochs=3, batch_size=96, optimizer=optimizer, kernel=kernel,
            reject_positives=reject,
        )  # fmt: skip
        out[kernel] = cf.fit_bpr(
            jax.random.key(1), u, i, n_users=40, n_items=60, config=cfg, hparams=hp
        )
    # the same triples and update; only the summation order differs
    np.testing.assert_allclose(out["native"].user_emb, out["xla"].user_emb, atol=2e-5)
    np.testing.assert_allclose(out["native"].item_emb, out["xla"].item_emb, atol=2e-5)
    np.testing.assert_allclose(out["native"].losses, out["xla"].losses, rtol=1e-5)


def test_native_lazy_adam_state_equals_xla_state():
    u, i = _pairs(1, 30, 50, 400)
    hp = cf.BPRHParams(learning_rate=3e-2, l2=1e-4)
    states = []
    for kernel in ("xla", "native"):
        cfg = cf.BPRConfig(dim=8, batch_size=64, kernel=kernel)
        st = cf.bpr_init(jax.random.key(2), n_users=30, n_items=50, config=cfg)
        st, _ = cf.bpr_train_epochs(st, u, i, hp, n_items=50, config=cfg, n_epochs=2)
        states.append(st)
    xla, nat = states
    assert int(nat.opt_state.count) == int(xla.opt_state.count) == 2 * (len(u) // 64)
    for a, b in zip(nat.opt_state.moments, xla.opt_state.moments, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_array_equal(jax.random.key_data(nat.key), jax.random.key_data(xla.key))


@pytest.mark.parametrize("threads", [2, 6])  # 6: each of the 3 problems in phases on 2
def test_native_vmap_equals_loop_bit_for_bit(threads, monkeypatch):
    monkeypatch.setattr(_native, "cpu_threads", lambda: threads)
    jax.clear_caches()  # the thread count is read when fit_bpr's program is traced
    u, i = _pairs(2, 30, 50, 400)
    cfg = cf.BPRConfig(dim=8, n_epochs=2, batch_size=64, kernel="native")
    hp = cf.BPRHParams(learning_rate=jnp.array([1e-2, 3e-2, 1e-1]), l2=1e-4)
    keys = jax.random.split(jax.random.key(3), 3)

    def fit(k, lr):
        h = cf.BPRHParams(learning_rate=lr, l2=hp.l2)
        return cf.fit_bpr(k, u, i, n_users=30, n_items=50, config=cfg, hparams=h)

    batched = jax.vmap(fit)(keys, hp.learning_rate)
    for s in range(3):
        one = fit(keys[s], hp.learning_rate[s])
        np.testing.assert_array_equal(batched.user_emb[s], one.user_emb)
        np.testing.assert_array_equal(batched.item_emb[s], one.item_emb)


def _epoch_inputs(seed, n_users=25, n_items=40, d=8, n_epochs=2):
    r = np.random.default_rng(seed)
    u, i = _pairs(seed, n_users, n_items, 300)
    keys = bpr.positive_keys(u, i, n_users=n_users, n_items=n_items)
    pos = (keys, native_bpr.user_key_offsets(keys, n_users, n_items))
    pairs = (jnp.asarray(u), jnp.asarray(i), jnp.ones(len(u), jnp.float32))
    seeds = jnp.asarray(r.integers(0, 2**32, (n_epochs, 2), dtype=np.uint64).astype(np.uint32))
    tables = (
        jnp.asarray(r.normal(size=(n_users, d)) * 0.1, jnp.float32),
        jnp.asarray(r.normal(size=(n_items, d)) * 0.1, jnp.float32),
    )
    moments = (jnp.zeros((n_users, 2 * d)), jnp.zeros((n_items, 2 * d)))
    return tables, moments, (pairs, seeds), pos


def _run_epochs(threads, hogwild, inputs, monkeypatch, *, lr=1e-2, batch=128, n_batches=3):
    tables, moments, (pairs, seeds), pos = inputs
    monkeypatch.setattr(_native, "cpu_threads", lambda: threads)
    fn = jax.jit(  # a fresh function, so the thread count is read at trace time
        lambda t, m, pr, sd, p: native_bpr.bpr_epochs(
            *t, m, 0, pr, sd, p, lr, 1e-3, batch_size=batch, n_batches=n_batches,
            n_neg_retries=2, hogwild=hogwild,
        )
    )  # fmt: skip
    return fn(tables, moments, pairs, seeds, pos)


def test_native_result_does_not_depend_on_the_thread_count(monkeypatch):
    inputs = _epoch_inputs(4)
    # one pass on 1 thread; phases on 2, 3 and 4
    outs = [_run_epochs(threads, False, inputs, monkeypatch) for threads in (1, 2, 3, 4)]
    for other in outs[1:]:
        for a, b in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(other), strict=True):
            np.testing.assert_array_equal(a, b)


def test_hogwild_on_one_thread_is_the_deterministic_update(monkeypatch):
    inputs = _epoch_inputs(5)
    ref = _run_epochs(1, False, inputs, monkeypatch)
    out = _run_epochs(1, True, inputs, monkeypatch)
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(out), strict=True):
        np.testing.assert_array_equal(a, b)


def test_hogwild_threads_run_every_batch_with_its_own_draws(monkeypatch):
    # The draws depend on (seed, draw index) only, so Hogwild threads train on the same
    # triples as the sequential run; races (and the order in which two threads' batches
    # reach a row's Adam moments) only perturb the rows. With a tiny step the rows barely
    # move, so each (epoch, batch) loss must match the sequential run's closely: a batch
    # skipped, run twice, drawn from the wrong range or reported at the wrong index would
    # not.
    inputs = _epoch_inputs(6, n_epochs=3)
    ref = _run_epochs(1, False, inputs, monkeypatch, lr=1e-6, batch=32, n_batches=5)
    out = _run_epochs(2, True, inputs, monkeypatch, lr=1e-6, batch=32, n_batches=5)
    *_, ref_steps, ref_losses = ref
    *_, steps, losses = out
    assert int(steps) == int(ref_steps) == 15
    assert losses.shape == (3, 5)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)


def test_hogwild_fit_trains_like_the_deterministic_fit(monkeypatch):
    monkeypatch.setattr(_native, "cpu_threads", lambda: 2)
    u, i = _pairs(7, 60, 90, 1500)
    hp = cf.BPRHParams(learning_rate=2e-2, l2=1e-4)
    fits = {}
    for hogwild in (False, True):
        cfg = cf.BPRConfig(dim=16, n_epochs=6, batch_size=64, kernel="native", hogwild=hogwild)
        fits[hogwild] = cf.fit_bpr(
            jax.random.key(8), u, i, n_users=60, n_items=90, config=cfg, hparams=hp
        )
    for fit in fits.values():
        assert np.all(np.isfinite(fit.user_emb)) and np.all(np.isfinite(fit.item_emb))
        assert fit.losses[-1] < 0.9 * fit.losses[0]
    # races perturb the path, not the objective reached
    np.testing.assert_allclose(fits[True].losses[-1], fits[False].losses[-1], rtol=0.05)


def test_hogwild_needs_the_native_kernel():
    with pytest.raises(ValueError, match="hogwild"):
        cf.BPRConfig(kernel="xla", hogwild=True)
    with pytest.raises(ValueError, match="hogwild"):
        cf.BPRConfig(optimizer="adam", hogwild=True)


def test_native_negatives_follow_the_rejection_rule():
    # one triple per call, SGD, l2 = 0, users all ones and items all zeros: the item rows
    # that move are the positive and the resolved negative, so the kernel's draw and
    # rejection must reproduce the JAX twin's (draw_bpr_candidates + resolve_negatives)
    n_users, n_items = 3, 6
    u = np.array([0, 0, 0, 0, 1], np.int32)  # user 0 has 4 of 6 items: many rejections
    i = np.array([0, 1, 2, 3, 5], np.int32)
    keys = bpr.positive_keys(u, i, n_users=n_users, n_items=n_items)
    pos = (keys, native_bpr.user_key_offsets(keys, n_users, n_items))
    pairs = (jnp.asarray(u), jnp.asarray(i), jnp.ones(5, jnp.float32))
    user = jnp.ones((n_users, 2), jnp.float32)
    item = jnp.zeros((n_items, 2), jnp.float32)
    rejected = 0
    for s in range(40):
        key = jax.random.key(s)
        seed = bpr.bpr_seed(key)
        du, di, cand, _ = bpr.draw_bpr_candidates(
            key, pairs[0], pairs[1], n_items=n_items, n_draws=1, n_neg_retries=2
        )
        j = int(bpr.resolve_negatives(cand, du, keys, n_items)[0])
        rejected += int(j != int(cand[0, 0]))
        _, new_item, _, _, _ = native_bpr.bpr_epochs(
            user, item, None, 0, pairs, seed[None], pos, 1.0, 0.0, batch_size=1,
            n_batches=1, n_neg_retries=2,
        )  # fmt: skip
        moved = np.flatnonzero(np.abs(np.asarray(new_item)).sum(1) > 0)
        # j == i (every candidate was a positive, the last one i): the two gradients cancel
        want = sorted({int(di[0]), j}) if j != int(di[0]) else []
        np.testing.assert_array_equal(moved, want)
    assert rejected > 5  # the rule was exercised


def test_native_kernel_refuses_out_of_range_indices():
    tables, moments, (pairs, seeds), pos = _epoch_inputs(5)
    bad = (pairs[0].at[0].set(99), *pairs[1:])
    with pytest.raises(Exception, match="out of range"):
        out = native_bpr.bpr_epochs(
            *tables, moments, 0, bad, seeds, pos, 1e-2, 0.0, batch_size=16, n_batches=2
        )
        jax.block_until_ready(out)


def test_native_binding_checks_shapes():
    tables, moments, (pairs, seeds), pos = _epoch_inputs(6)
    kw = dict(batch_size=16, n_batches=2)
    with pytest.raises(ValueError, match="seeds"):
        native_bpr.bpr_epochs(*tables, moments, 0, pairs, seeds[0], pos, 1e-2, 0.0, **kw)
    with pytest.raises(ValueError, match="pairs"):
        short = (pairs[0], pairs[1][:-1], pairs[2])
        native_bpr.bpr_epochs(*tables, moments, 0, short, seeds, pos, 1e-2, 0.0, **kw)


def test_kernel_option_validated():
    with pytest.raises(ValueError, match="kernel"):
        cf.BPRConfig(kernel="cuda")


def test_resolve_negatives_matches_numpy():
    r = np.random.default_rng(7)
    n_users, n_items = 5, 7
    u, i = _pairs(7, n_users, n_items, 25)
    keys = bpr.positive_keys(u, i, n_users=n_users, n_items=n_items)
    users = r.integers(0, n_users, 50).astype(np.int32)
    cand = r.integers(0, n_items, (4, 50)).astype(np.int32)
    got = bpr.resolve_negatives(jnp.asarray(cand), jnp.asarray(users), keys, n_items)
    positives = set(zip(u.tolist(), i.tolist(), strict=True))
    want = []
    for b in range(50):
        free = [c for c in cand[:-1, b] if (users[b], c) not in positives]
        want.append(free[0] if free else cand[-1, b])
    np.testing.assert_array_equal(got, want)


@pytest.mark.slow  # a 9000 x 8000 grid: compiles a large program
def test_native_rejection_by_binary_search_on_a_large_grid():
    # users x items above the kernel's bitmap limit (2^26): the sorted-key search is used.
    # User 0 has 90% of the items, so most of its candidates must be rejected.
    n_users, n_items = 9000, 8000
    r = np.random.default_rng(8)
    u = np.concatenate([np.zeros(7200, np.int32), r.integers(1, n_users, 800).astype(np.int32)])
    i = np.concatenate(
        [np.arange(7200, dtype=np.int32), r.integers(0, n_items, 800).astype(np.int32)]
    )
    hp = cf.BPRHParams(learning_rate=0.5, l2=0.0)
    out = {}
    for kernel in ("xla", "native"):
        cfg = cf.BPRConfig(dim=4, n_epochs=1, batch_size=2000, optimizer="sgd", kernel=kernel)
        out[kernel] = cf.fit_bpr(
            jax.random.key(9), u, i, n_users=n_users, n_items=n_items, config=cfg, hparams=hp
        )
    np.testing.assert_allclose(out["native"].item_emb, out["xla"].item_emb, atol=1e-6)
    np.testing.assert_allclose(out["native"].user_emb, out["xla"].user_emb, atol=1e-6)


# ----------------------------------------------------------------------------- top-k
@pytest.mark.parametrize(("n", "k"), [(1, 1), (37, 5), (64, 64), (200, 3), (1000, 50), (4099, 64)])
def test_topk_rows_equals_lax_top_k_with_ties_and_signed_zeros(n, k):
    from jax import lax

    from complemjax._native import topk

    r = np.random.default_rng(n)
    s = np.round(r.normal(size=(40, n)) * 2) / 2  # many exact ties
    s[:, r.integers(0, n, 3)] = -0.0
    s[:, r.integers(0, n, 3)] = 0.0
    s[1, : max(1, n - k // 2)] = -np.inf  # fewer finite scores than k
    s[2] = -np.inf
    s = jnp.asarray(s, jnp.float32)
    vals, idx = topk.topk_rows(s, k)
    want_vals, want_idx = lax.top_k(jnp.where(s == 0, 0.0, s), k)
    np.testing.assert_array_equal(vals, want_vals)
    np.testing.assert_array_equal(idx, want_idx)


def test_topk_rows_vmaps_and_checks_k():
    from complemjax._native import topk

    s = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5, 300)), jnp.float32)
    batched = jax.vmap(lambda x: topk.topk_rows(x, 7))(s)
    for b in range(3):
        one = topk.topk_rows(s[b], 7)
        np.testing.assert_array_equal(batched[1][b], one[1])
    with pytest.raises(ValueError, match="k"):
        topk.topk_rows(s[0], 301)


def test_ranking_native_selection_equals_xla_selection():
    from complemjax import ranking

    r = np.random.default_rng(1)
    scores = jnp.asarray(np.round(r.normal(size=(64, 3000)) * 8) / 8, jnp.float32)
    v1, i1 = ranking._exact_topk(scores, 20)
    v2, i2 = ranking._exact_topk_xla(scores, 20)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(v1, v2)

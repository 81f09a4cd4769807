"""Tests for complemjax.models.protocol: selection, early stopping, edge flags, no test access."""

import dataclasses
import inspect

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from complemjax.models import protocol as P

N = 20  # users = items; user u's validation item is u


@flax.struct.dataclass
class ScriptHParams:
    peak: jax.Array | int = 10
    height: jax.Array | float = 1.0


@dataclasses.dataclass(frozen=True)
class Scripted:
    """A family whose validation Recall@1 is known in closed form:
    ``floor(N · height · max(0, 1 − |epoch − peak| / 50)) / N``."""

    name: str = "scripted"

    def init(self, key, data, h):
        return jnp.zeros((), jnp.int32)

    def train_epochs(self, state, data, h, n_epochs):
        return state + n_epochs, jnp.zeros(n_epochs)

    def embeddings(self, state, data, h):
        q = h.height * jnp.maximum(0.0, 1.0 - jnp.abs(state - h.peak) / 50.0)
        n_good = jnp.floor(N * q + 1e-6)
        diag = jnp.where(jnp.arange(N) < n_good, 1.0, -1.0)
        return jnp.eye(N), jnp.diag(diag)


def _expected(epoch, peak, height):
    return np.floor(N * height * max(0.0, 1 - abs(epoch - peak) / 50) + 1e-6) / N


@pytest.fixture(scope="module")
def toy():
    u = np.arange(N, dtype=np.int32)
    data = P.make_train_data(u, (u + 1) % N, n_users=N, n_items=N)
    valid = jnp.asarray(u[:, None])
    return data, valid


def _select(toy, grid, **kw):
    data, valid = toy
    args = dict(
        valid_sets=valid, exclude_sets=data.history, max_epochs=60, eval_every=5, patience=2, k=1
    )
    args.update(kw)
    return P.select(Scripted(), jax.random.key(0), data, grid, **args)


def test_select_picks_best_config_and_epoch(toy):
    grid = P.stack_hparams([ScriptHParams(10, 0.5), ScriptHParams(20, 0.9), ScriptHParams(15, 0.7)])
    sel = _select(toy, grid)
    assert sel.best_index == 1 and sel.best_epoch == 20
    assert sel.chosen == {"peak": 20, "height": pytest.approx(0.9)}
    assert sel.valid_score == pytest.approx(_expected(20, 20, 0.9))
    np.testing.assert_array_equal(sel.best_epochs, [10, 20, 15])
    for g, (pk, ht) in enumerate([(10, 0.5), (20, 0.9), (15, 0.7)]):
        for c, ep in enumerate(sel.epochs):
            if not np.isnan(sel.scores[g, c]):
                assert sel.scores[g, c] == pytest.approx(_expected(ep, pk, ht))
    assert sel.n_configs == 3 and sel.method == "scripted"
    row = sel.row()
    assert row["configs"] == 3 and row["epochs"] == 20 and "peak=20" in row["chosen"]


def test_early_stopping_per_config_and_overall(toy):
    grid = P.stack_hparams([ScriptHParams(10, 0.5), ScriptHParams(20, 0.9)])
    sel = _select(toy, grid, patience=2)
    # config 0 peaks at 10 and stops after 2 worse evaluations (15, 20)
    assert np.isfinite(sel.scores[0, :4]).all() and np.isnan(sel.scores[0, 4:]).all()
    # config 1 peaks at 20, stops after 25, 30; the whole run ends there (< max_epochs)
    assert np.isfinite(sel.scores[1, :6]).all() and np.isnan(sel.scores[1, 6:]).all()
    # larger patience runs longer
    sel4 = _select(toy, grid, patience=4)
    assert np.isfinite(sel4.scores[1, :8]).all()


def test_edge_flags(toy):
    grid = P.stack_hparams([ScriptHParams(60, 0.9), ScriptHParams(30, 0.5)])
    sel = _select(toy, grid, patience=20)
    assert sel.best_epoch == 60
    text = " ".join(sel.edge)
    assert (
        "max_epochs" in text
        and "height=0.9 is the largest" in text
        and "peak=60 is the largest" in text
    )
    inner = P.stack_hparams([ScriptHParams(p, h) for p, h in ((10, 0.5), (20, 0.9), (30, 0.7))])
    sel = _select(toy, inner)
    assert sel.chosen["peak"] == 20  # interior on `peak`, epoch below the maximum
    assert sel.edge == ("height=0.9 is the largest value tried",)


def test_ties_go_to_lower_index(toy):
    grid = P.stack_hparams([ScriptHParams(20, 0.9), ScriptHParams(20, 0.9)])
    assert _select(toy, grid).best_index == 0


def test_retrain_per_seed_epoch(toy):
    data, valid = toy
    fit = P.retrain(
        Scripted(),
        jax.random.key(3),
        data,
        ScriptHParams(25, 0.8),
        valid_sets=valid,
        exclude_sets=data.history,
        max_epochs=60,
        eval_every=5,
        patience=3,
        k=1,
    )
    assert fit.best_epoch == 25
    assert fit.valid_score == pytest.approx(np.nanmax(fit.scores)) and fit.scores.ndim == 1


def test_selection_never_receives_test_data(toy):
    """Structural: neither select nor retrain has a test argument, and whatever the
    test items are, the selection is identical (here: the test split is corrupted)."""
    for fn in (P.select, P.retrain):
        assert not any("test" in p for p in inspect.signature(fn).parameters)
    grid = P.stack_hparams([ScriptHParams(10, 0.5), ScriptHParams(20, 0.9)])
    rng = np.random.default_rng(0)
    picks = []
    for _ in range(2):
        test = rng.integers(0, N, (N, 3))  # the "test split", corrupted between runs
        del test  # select has no way to receive it
        sel = _select(toy, grid)
        picks.append((sel.best_index, sel.best_epoch, sel.scores.tobytes()))
    assert picks[0] == picks[1]


def test_bad_inputs(toy):
    data, valid = toy
    grid = P.stack_hparams([ScriptHParams(10, 0.5)])
    with pytest.raises(ValueError, match="eval_every"):
        _select(toy, grid, eval_every=7)
    with pytest.raises(ValueError, match="patience"):
        _select(toy, grid, patience=0)
    with pytest.raises(ValueError, match="share"):
        _select(toy, grid, valid_sets=data.history)  # validation == training items
    with pytest.raises(ValueError, match="no validation items"):
        _select(toy, grid, valid_sets=jnp.full((N, 1), -1))
    with pytest.raises(ValueError, match="same leading axis"):
        _select(toy, ScriptHParams(jnp.array([10, 20]), jnp.array([0.5])))
    with pytest.raises(ValueError, match="TrainData"):
        P.select(
            Scripted(),
            jax.random.key(0),
            (1, 2),
            grid,
            valid_sets=valid,
            exclude_sets=data.history,
            max_epochs=10,
            eval_every=5,
            patience=1,
        )
    with pytest.raises(ValueError, match="empty"):
        P.stack_hparams([])


def test_make_train_data_mask_drops_padding():
    u = np.array([0, 0, 1, 2, 0], np.int32)
    i = np.array([1, 2, 0, 2, 0], np.int32)
    m = np.array([1, 1, 1, 1, 0], bool)
    d = P.make_train_data(u, i, n_users=4, n_items=3, mask=m)
    ref = P.make_train_data(u[:4], i[:4], n_users=4, n_items=3)
    np.testing.assert_array_equal(d.history, ref.history)
    assert d.history.shape == (4, 2) and (np.asarray(d.history[3]) == -1).all()
    assert d.n_users == 4 and d.n_items == 3
    with pytest.raises(ValueError, match="item_features"):
        P.make_train_data(u, i, n_users=4, n_items=3, item_features=np.ones((2, 5), np.float32))
    wide = P.make_train_data(u[:4], i[:4], n_users=4, n_items=3, history_len=5)
    assert wide.history.shape == (4, 5)

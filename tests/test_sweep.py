"""Tests of the grid runner."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from complemjax import sweep


def _fn(key, noise, scale, width=2):
    x = jax.random.normal(key, (50, width))
    return {"var": jnp.var(x * noise) * scale, "vec": jnp.arange(2.0) * noise}


def test_run_grid_equals_python_loop():
    key = jax.random.key(0)
    grid = {"noise": [0.5, 1.0, 2.0], "scale": [1.0, 3.0]}
    df = sweep.run_grid(_fn, key=key, grid=grid, n_seeds=3, progress=False)
    assert len(df) == 18
    assert list(df.columns[:3]) == ["noise", "scale", "seed"]
    for row in df.itertuples():
        ref = _fn(jax.random.fold_in(key, row.seed), row.noise, row.scale)
        np.testing.assert_allclose(row.var, ref["var"], rtol=1e-5)
        np.testing.assert_allclose(row.vec_1, ref["vec"][1], rtol=1e-6)


def test_chunking_and_padding_do_not_change_results():
    key = jax.random.key(1)
    grid = {"noise": [0.5, 1.0, 2.0], "scale": [1.0]}
    a = sweep.run_grid(_fn, key=key, grid=grid, n_seeds=3, progress=False)
    b = sweep.run_grid(_fn, key=key, grid=grid, n_seeds=3, chunk_size=4, progress=False)
    np.testing.assert_allclose(a["var"], b["var"], rtol=1e-6)


def test_static_knobs_bucket_and_common_random_numbers():
    df = sweep.run_grid(
        _fn, key=jax.random.key(2), grid={"noise": [1.0], "scale": [1.0, 2.0]}, n_seeds=2,
        static={"width": [1, 3]}, progress=False,
    )  # fmt: skip
    assert sorted(df["width"].unique()) == [1, 3]
    # Same seed, different scale: same draw, so var scales exactly.
    w1 = df[(df["width"] == 1) & (df["seed"] == 0)].sort_values("scale")["var"].to_numpy()
    np.testing.assert_allclose(w1[1], 2 * w1[0], rtol=1e-6)


def test_bad_grids_raise():
    with pytest.raises(ValueError, match="noise"):
        sweep.run_grid(_fn, key=jax.random.key(0), grid={"noise": [], "scale": [1.0]})
    with pytest.raises(ValueError, match="n_seeds"):
        sweep.run_grid(_fn, key=jax.random.key(0), grid={"noise": [1.0]}, n_seeds=0)
    with pytest.raises(ValueError, match="scale"):
        sweep.expand_grid({"scale": 1.0})

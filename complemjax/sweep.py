"""Run grids of seeds × configurations as vmapped, jitted programs.

A study is a pure function ``fn(key, **knobs) -> dict[str, Array]`` of a PRNG key and
scalar *dynamic* knobs (anything that does not change shapes). :func:`run_grid` builds
the Cartesian product of the knob values and the seeds, flattens it into one batch axis,
and evaluates ``jax.jit(jax.vmap(fn))`` over chunks of that axis, so the whole grid costs
one compilation per chunk shape. *Static* knobs (those that fix shapes or control flow,
such as an MLP width) are handled by bucketing: one compiled program per static
combination, listed in ``static``.

Seeds use common random numbers: the key of seed ``s`` is ``fold_in(key, s)`` for every
configuration, so differences between configurations are not confounded with
different draws of the world.

Example:
    >>> def fn(key, noise):
    ...     x = jax.random.normal(key, (100,))
    ...     return {"var": jnp.var(x * noise)}
    >>> df = run_grid(fn, key=jax.random.key(0), grid={"noise": [0.5, 1.0]}, n_seeds=3)
    >>> list(df.columns)
    ['noise', 'seed', 'var']
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from complemjax import _checks

__all__ = ["expand_grid", "run_grid"]


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of a mapping of lists, as a list of dicts (first key slowest)."""
    if not isinstance(grid, Mapping):
        raise ValueError(f"`grid` must be a mapping of name -> list of values, got {type(grid)}")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"grid entry `{name}` must be a list of values, got {values!r}")
        if len(values) == 0:
            raise ValueError(f"grid entry `{name}` is empty: a grid needs at least one value")
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*grid.values())]


def _flatten_outputs(out: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    """Turn ``{name: [n, ...]}`` into flat columns (``name`` or ``name_i_j``)."""
    cols: dict[str, np.ndarray] = {}
    for name, value in out.items():
        arr = np.asarray(value)
        if arr.ndim == 1:
            cols[name] = arr
        else:
            flat = arr.reshape(n, -1)
            for j, idx in enumerate(np.ndindex(*arr.shape[1:])):
                cols[name + "_" + "_".join(map(str, idx))] = flat[:, j]
    return cols


def run_grid(
    fn: Callable[..., Mapping[str, jax.Array]],
    *,
    key: jax.Array,
    grid: Mapping[str, Sequence[float]] | None = None,
    n_seeds: int = 1,
    static: Mapping[str, Sequence[Any]] | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
    description: str = "sweep",
) -> pd.DataFrame:
    """Evaluate ``fn`` on every (static config, dynamic config, seed) and return a table.

    Args:
        fn: pure function ``fn(key, **dynamic, **static) -> {name: Array}``; each output
            is a scalar or a small fixed-shape array (flattened into ``name_i`` columns).
        key: PRNG key; seed ``s`` uses ``fold_in(key, s)`` for every configuration.
        grid: dynamic knobs ``{name: values}`` (floats), vmapped together with seeds.
        n_seeds: number of seeds per configuration.
        static: knobs that change shapes or control flow ``{name: values}``; one
            compiled program per combination (bucketing).
        chunk_size: configurations × seeds per compiled call (default: all of them in
            one call). The last chunk is padded by repeating its final row and the
            padding is dropped, so every call has the same shape.
        progress: show a progress bar over compiled chunks.
        description: label of the progress bar.

    Returns:
        A tidy DataFrame, one row per seed × configuration: static knob columns, dynamic
        knob columns, ``seed``, then the outputs of ``fn``.
    """
    n_seeds = _checks.check_positive_int("n_seeds", n_seeds)
    dyn_rows = expand_grid(grid) if grid else [{}]
    static_rows = expand_grid(static) if static else [{}]
    n_flat = len(dyn_rows) * n_seeds
    chunk = n_flat if chunk_size is None else _checks.check_positive_int("chunk_size", chunk_size)
    chunk = min(chunk, n_flat)
    n_chunks = -(-n_flat // chunk)
    dyn_names = list(dyn_rows[0])

    # Flat axis: configuration-major, seed-minor.
    seeds = np.tile(np.arange(n_seeds), len(dyn_rows))
    knob_cols = {
        name: np.repeat(np.asarray([r[name] for r in dyn_rows], dtype=np.float32), n_seeds)
        for name in dyn_names
    }
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.asarray(seeds))

    frames = []
    bar = tqdm(
        total=n_chunks * len(static_rows), desc=description, disable=not progress, unit="chunk"
    )
    for srow in static_rows:
        batched = jax.jit(
            jax.vmap(lambda k, kn, _s=srow: fn(k, **kn, **_s))  # type: ignore[misc]
        )
        outputs: list[dict[str, np.ndarray]] = []
        for c in range(n_chunks):
            lo, hi = c * chunk, min((c + 1) * chunk, n_flat)
            idx = np.minimum(np.arange(lo, lo + chunk), hi - 1)  # pad with the last row
            kn = {name: jnp.asarray(col[idx]) for name, col in knob_cols.items()}
            out = jax.device_get(batched(keys[idx], kn))
            outputs.append({k: np.asarray(v)[: hi - lo] for k, v in out.items()})
            bar.update(1)
        merged = {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
        frame = pd.DataFrame({name: [srow[name]] * n_flat for name in srow})
        for name, col in knob_cols.items():
            frame[name] = col
        frame["seed"] = seeds
        for name, col in _flatten_outputs(merged, n_flat).items():
            frame[name] = col
        frames.append(frame)
    bar.close()
    return pd.concat(frames, ignore_index=True)

"""The per-row program of a sweep: the root PRNG key, ``vmap(fn)`` over rows, abstract inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from complemjax.sweep import grid

__all__ = ["RootKey", "abstract_rows", "row_fn", "split_key"]


class RootKey(NamedTuple):
    """The root PRNG key of a sweep as plain data (recorded in the manifest).

    Attributes:
        data: uint32 key data.
        impl: PRNG implementation of a typed key; None for a raw uint32 key.
    """

    data: np.ndarray
    impl: str | None


def split_key(key: Any) -> RootKey:
    """Check ``key`` (one typed key, or a raw uint32 key) and return its data and impl.

    Raises:
        ValueError: naming ``key`` when it is not a single PRNG key.
    """
    if not isinstance(key, jax.Array):
        raise ValueError(f"`key` must be a PRNG key from jax.random.key, got {type(key)}")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"`key` must be a single key (shape ()), got shape {key.shape}")
        return RootKey(np.asarray(jax.random.key_data(key)), str(jax.random.key_impl(key)))
    if key.dtype != jnp.uint32 or key.ndim != 1:
        raise ValueError(
            f"`key` must be a PRNG key (jax.random.key), got dtype {key.dtype}, shape {key.shape}"
        )
    return RootKey(np.asarray(key), None)


def _root(key: RootKey) -> jax.Array:
    data = jnp.asarray(key.data)
    return data if key.impl is None else jax.random.wrap_key_data(data, impl=key.impl)


def row_fn(fn: Callable, key: RootKey, srow: Mapping[str, Any]) -> Callable:
    """``rows(seeds [b], knobs {name: [b]}) -> {name: [b, ...]}`` for one static bucket."""

    def rows(seeds, knobs):
        root = _root(key)
        keys = jax.vmap(lambda s: jax.random.fold_in(root, s))(seeds)
        return jax.vmap(lambda k, kn: _checked_call(fn, k, kn, srow))(keys, knobs)

    return rows


def _checked_call(fn: Callable, k: Any, knobs: Mapping[str, Any], srow: Mapping[str, Any]):
    """Call ``fn`` for one row and check (at trace time) that it returns a dict of arrays."""
    out = fn(k, **knobs, **srow)
    if not isinstance(out, Mapping) or not out:
        raise ValueError(
            f"`fn` must return a non-empty dict of name -> array, got {type(out).__name__}"
            + ("" if isinstance(out, Mapping) else f" ({grid.short(repr(out), 80)})")
        )
    bad = [k for k in out if not isinstance(k, str)]
    if bad:
        raise ValueError(f"`fn` must return a dict with string keys, got key {bad[0]!r}")
    return dict(out)


def abstract_rows(
    n: int, names: Sequence[str], sharding: Any = None
) -> tuple[jax.ShapeDtypeStruct, dict[str, jax.ShapeDtypeStruct]]:
    """Shapes of ``n`` rows of inputs: int32 seeds and one float32 column per knob."""
    seeds = jax.ShapeDtypeStruct((n,), jnp.int32, sharding=sharding)
    knobs = {name: jax.ShapeDtypeStruct((n,), jnp.float32, sharding=sharding) for name in names}
    return seeds, knobs

"""Input validation shared by every module.

Every public function validates user-supplied arrays *before* heavy work starts and
raises a :class:`ValueError` that names the argument, what was expected and what was
found. These helpers run on concrete (host) values; inside traced code only static
properties (shape, dtype) are checked.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__: list[str] = []


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def as_float_array(
    name: str, x: ArrayLike, *, ndim: int | Sequence[int] | None = None
) -> jax.Array:
    """Return ``x`` as a floating JAX array, or raise a ValueError naming ``name``.

    Integer, boolean or complex inputs are rejected (the caller should cast on purpose).
    """
    if x is None:
        raise ValueError(f"`{name}` is required, got None")
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        x = np.asarray(x)
        dtype = x.dtype
        if np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_):
            raise ValueError(
                f"`{name}` must be a floating-point array, got dtype {dtype}; "
                "cast with .astype(float)"
            )
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"`{name}` must be a floating-point array, got dtype {dtype}")
    arr = jnp.asarray(x)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"`{name}` must have {want} dimensions, got shape {arr.shape}")
    return arr


def check_finite(name: str, x: ArrayLike) -> None:
    """Raise a ValueError counting NaN and inf entries of ``x`` (no-op under tracing)."""
    if not _is_concrete(x):
        return
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        return
    n_nan = int(np.isnan(a).sum())
    n_inf = int(np.isinf(a).sum())
    if n_nan or n_inf:
        raise ValueError(
            f"`{name}` contains {n_nan} NaN and {n_inf} inf values "
            f"(of {a.size} entries, shape {a.shape})"
        )


def check_matrix(name: str, x: ArrayLike, *, min_rows: int = 1, finite: bool = True) -> jax.Array:
    """Validate a 2-D float matrix ``[n, d]``: dtype, rank, row count and finiteness."""
    arr = as_float_array(name, x, ndim=2)
    if arr.shape[0] < min_rows:
        raise ValueError(f"`{name}` needs at least {min_rows} rows, got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise ValueError(f"`{name}` needs at least one column, got shape {arr.shape}")
    if finite:
        check_finite(name, arr)
    return arr


def check_same_rows(
    name_a: str, a: jax.Array | np.ndarray, name_b: str, b: jax.Array | np.ndarray
) -> None:
    """Raise if ``a`` and ``b`` do not have the same number of rows (items)."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same number of rows (items): "
            f"got {name_a}.shape={tuple(a.shape)} and {name_b}.shape={tuple(b.shape)}"
        )


def check_positive_int(
    name: str, value: object, *, minimum: int = 1, maximum: int | None = None
) -> int:
    """Return ``value`` as an int in ``[minimum, maximum]`` or raise a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{name}` must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}, got {value}")
    return value


def check_in_range(
    name: str,
    value: ArrayLike,
    lo: float,
    hi: float,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> ArrayLike:
    """Raise unless ``lo <= value <= hi`` (with optional open ends); skipped under tracing."""
    if not _is_concrete(value):
        return value
    v = np.asarray(value)
    bad_lo = (v <= lo) if lo_open else (v < lo)
    bad_hi = (v >= hi) if hi_open else (v > hi)
    if np.any(bad_lo) or np.any(bad_hi) or np.any(np.isnan(v)):
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise ValueError(f"`{name}` must lie in {lb}{lo}, {hi}{rb}, got {value!r}")
    return value


def check_no_repeats(name: str, rows: ArrayLike) -> None:
    """Raise if a row of an item-list array ``[U, K]`` repeats an item (``-1`` pads ignored).

    A repeated item in a top-K list would be counted as several hits, inflating recall
    and NDCG. The check sorts each row (``O(U K log K)``, on the host) and names the
    first offending row; it is skipped under tracing.
    """
    if not _is_concrete(rows):
        return
    a = np.asarray(rows)
    if a.ndim != 2 or a.shape[1] < 2 or a.size == 0:
        return
    s = np.sort(a, axis=1)
    dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
    bad = dup.any(axis=1)
    if bad.any():
        u = int(np.flatnonzero(bad)[0])
        item = int(s[u, 1:][dup[u]][0])
        raise ValueError(
            f"`{name}` repeats an item within a list: row (user) {u} holds item {item} more "
            f"than once ({int(bad.sum())} rows with repeats); each list must name distinct "
            f"items (-1 for empty slots)"
        )


def check_key(name: str, key: object) -> jax.Array | np.ndarray:
    """Return ``key`` if it is a single JAX PRNG key, else raise a ValueError naming ``name``.

    Accepts typed keys (``jax.random.key``) and raw ``uint32[2]`` keys
    (``jax.random.PRNGKey``); rejects None and Python ints (``jax.random.key(seed)``).
    """
    if key is None or isinstance(key, (int, np.integer)):
        raise ValueError(f"`{name}` must be a PRNG key, e.g. jax.random.key(0), got {key!r}")
    if not isinstance(key, (jax.Array, np.ndarray)):
        raise ValueError(f"`{name}` must be a PRNG key from jax.random.key, got {type(key)}")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"`{name}` must be a single key (shape ()), got shape {key.shape}")
        return key
    if key.dtype != jnp.uint32 or key.shape != (2,):
        raise ValueError(
            f"`{name}` must be a PRNG key (jax.random.key), got dtype {key.dtype}, "
            f"shape {key.shape}"
        )
    return key

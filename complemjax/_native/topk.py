"""JAX binding of the native row-wise top-k (``topk.cc``).

:func:`topk_rows` is the exact selection of :func:`complemjax.ranking`'s pure-JAX top-k:
per row, the ``k`` entries first in the order (score descending, index ascending), in that
order, with ``-0.0`` read as ``+0.0``. A ``jax.ffi.ffi_call`` with
``vmap_method="broadcast_all"``; rows are split over threads.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from complemjax import _native

__all__ = ["topk_rows"]


def topk_rows(scores: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Top-``k`` of each row of ``scores [..., n]`` (float32, CPU); ties to the lower index.

    Args:
      scores: ``[..., n]`` float32.
      k: static, ``1 <= k <= n``.

    Returns:
      ``(values [..., k] float32, indices [..., k] int32)``, best first.
    """
    if not _native.load():
        raise RuntimeError("the native top-k kernel is not available (see complemjax._native)")
    n = scores.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"`k` must be in [1, {n}], got {k}")
    lead = scores.shape[:-1]
    call = jax.ffi.ffi_call(
        "complemjax_topk_rows",
        (
            jax.ShapeDtypeStruct((*lead, k), jnp.float32),
            jax.ShapeDtypeStruct((*lead, k), jnp.int32),
        ),
        vmap_method="broadcast_all",
    )
    return call(
        scores.astype(jnp.float32), k=np.int64(k), n_threads=np.int64(_native.cpu_threads())
    )

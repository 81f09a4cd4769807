"""JAX binding of the native BPR-MF epoch (``bpr_epoch.cc``).

:func:`bpr_epoch` runs the minibatch steps of one epoch, the same update as the pure-JAX
step of :mod:`complemjax.models.mf` (lazy Adam or SGD on the minibatch rows; see the
source's header for the formulas). It is a ``jax.ffi.ffi_call`` with
``vmap_method="broadcast_all"``: under ``jax.vmap`` the kernel receives every seed or grid
point at once and trains them on separate threads.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from complemjax import _native

__all__ = ["bpr_epoch", "user_key_offsets"]


def user_key_offsets(sorted_keys: jax.Array, n_users: int, n_items: int) -> jax.Array:
    """``[n_users + 1]`` offsets: user u's keys are ``sorted_keys[off[u]:off[u + 1]]``.

    ``sorted_keys`` are :func:`complemjax.models.bpr.positive_keys` (``u · n_items + i``,
    ascending, padding ``-1`` first).
    """
    bounds = jnp.arange(n_users + 1, dtype=jnp.int32) * n_items
    return jnp.searchsorted(sorted_keys, bounds).astype(jnp.int32)


def bpr_epoch(
    user_emb: jax.Array,
    item_emb: jax.Array,
    moments: tuple[jax.Array, jax.Array] | None,
    steps: jax.Array,
    triples: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    positives: tuple[jax.Array, jax.Array] | None,
    learning_rate: jax.Array,
    l2: jax.Array,
    *,
    hogwild: bool = False,
) -> tuple[jax.Array, jax.Array, tuple[jax.Array, jax.Array] | None, jax.Array, jax.Array]:
    """One epoch of BPR-MF minibatch steps in the native kernel (float32, CPU).

    Args:
      user_emb: ``[U, d]`` float32 user factors.
      item_emb: ``[I, d]`` float32 item factors.
      moments: ``([U, 2d], [I, 2d])`` lazy-Adam moments ``[m | v]``, or None for SGD.
      steps: int32 scalar, Adam steps done before this epoch.
      triples: ``(u, i, candidates, w)``: users, positives ``[n_batches, B]`` (int, in
        range), negative candidates ``[n_batches, B, C]`` (each draw's negative is its
        first candidate that is not a training pair, else its last:
        :func:`complemjax.models.bpr.resolve_negatives`) and float weights
        ``[n_batches, B]``.
      positives: ``(sorted_keys [E], indptr [U + 1])`` for the rejection:
        :func:`complemjax.models.bpr.positive_keys` and the offsets of each user's keys
        (:func:`user_key_offsets`); None when ``C == 1`` (no rejection).
      learning_rate: scalar step size.
      l2: scalar weight of the per-triple L2 term.
      hogwild: spread the batches of one problem over the threads without
        synchronisation (results then depend on thread timing); default: deterministic.

    Returns:
      ``(user_emb, item_emb, moments, steps + n_batches, losses [n_batches])``.
    """
    if not _native.load():
        raise RuntimeError("the native BPR kernel is not available (see complemjax._native)")
    f32, i32 = jnp.float32, jnp.int32
    u, i, j, w = triples
    if j.ndim != u.ndim + 1:
        raise ValueError(f"negative candidates must be [n_batches, B, C], got {j.shape}")
    if positives is None:
        if j.shape[-1] != 1:
            raise ValueError("rejecting negatives (C > 1 candidates) needs `positives`")
        positives = (jnp.zeros((1,), i32), jnp.zeros((1,), i32))
    keys, indptr = positives
    adam = moments is not None
    mv_u, mv_i = moments if adam else (jnp.zeros((1,), f32), jnp.zeros((1,), f32))
    out_types = (
        jax.ShapeDtypeStruct(user_emb.shape, f32),
        jax.ShapeDtypeStruct(item_emb.shape, f32),
        jax.ShapeDtypeStruct(mv_u.shape, f32),
        jax.ShapeDtypeStruct(mv_i.shape, f32),
        jax.ShapeDtypeStruct((), i32),
        jax.ShapeDtypeStruct(u.shape[:1], f32),
    )
    call = jax.ffi.ffi_call(
        "complemjax_bpr_epoch",
        out_types,
        vmap_method="broadcast_all",
        input_output_aliases={0: 0, 1: 1, 2: 2, 3: 3, 4: 4},
    )
    pu, pi, mv_u, mv_i, steps, losses = call(
        user_emb.astype(f32), item_emb.astype(f32), mv_u, mv_i, jnp.asarray(steps, i32),
        u.astype(i32), i.astype(i32), j.astype(i32), keys.astype(i32), indptr.astype(i32),
        w.astype(f32),
        jnp.asarray(learning_rate, f32), jnp.asarray(l2, f32),
        adam=np.int64(adam), n_threads=np.int64(_native.cpu_threads()),
        hogwild=np.int64(hogwild),
    )  # fmt: skip
    return pu, pi, ((mv_u, mv_i) if adam else None), steps, losses

"""JAX binding of the native BPR-MF epochs (``bpr_epochs.cc``).

:func:`bpr_epochs` runs every minibatch step of several epochs in one call: the same draws
(:func:`complemjax.models.bpr.draw_bpr_candidates`, computed inside the kernel from each
epoch's seed) and the same update as the pure-JAX epochs of :mod:`complemjax.models.mf`
(lazy Adam or SGD on the minibatch rows; see the source's header for the formulas). Nothing runs in
XLA between epochs, and no epoch's triples are stored. It is a ``jax.ffi.ffi_call`` with
``vmap_method="broadcast_all"``: under ``jax.vmap`` the kernel receives every seed or grid
point at once and trains them on separate threads.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from complemjax import _native

__all__ = ["bpr_epochs", "user_key_offsets"]


def user_key_offsets(sorted_keys: jax.Array, n_users: int, n_items: int) -> jax.Array:
    """``[n_users + 1]`` offsets: user u's keys are ``sorted_keys[off[u]:off[u + 1]]``.

    ``sorted_keys`` are :func:`complemjax.models.bpr.positive_keys` (``u · n_items + i``,
    ascending, padding ``-1`` first).
    """
    bounds = jnp.arange(n_users + 1, dtype=jnp.int32) * n_items
    return jnp.searchsorted(sorted_keys, bounds).astype(jnp.int32)


def bpr_epochs(
    user_emb: jax.Array,
    item_emb: jax.Array,
    moments: tuple[jax.Array, jax.Array] | None,
    steps: jax.Array,
    pairs: tuple[jax.Array, jax.Array, jax.Array],
    seeds: jax.Array,
    positives: tuple[jax.Array, jax.Array] | None,
    learning_rate: jax.Array,
    l2: jax.Array,
    *,
    batch_size: int,
    n_batches: int,
    n_neg_retries: int = 4,
    hogwild: bool = False,
) -> tuple[jax.Array, jax.Array, tuple[jax.Array, jax.Array] | None, jax.Array, jax.Array]:
    """Epochs of BPR-MF minibatch steps in the native kernel (float32, CPU).

    Args:
      user_emb: ``[U, d]`` float32 user factors.
      item_emb: ``[I, d]`` float32 item factors.
      moments: ``([U, 2d], [I, 2d])`` lazy-Adam moments ``[m | v]``, or None for SGD.
      steps: int32 scalar, Adam steps done before these epochs.
      pairs: ``(user_idx, item_idx, weights)``, each ``[E]``: the training entries (indices
        in range) and their float weights.
      seeds: ``[n_epochs, 2]`` uint32: each epoch's :func:`complemjax.models.bpr.bpr_seed`.
      positives: ``(sorted_keys [K], indptr [U + 1])`` to reject negatives that are
        training pairs (:func:`complemjax.models.bpr.positive_keys` and
        :func:`user_key_offsets`); None: no rejection.
      learning_rate: scalar step size.
      l2: scalar weight of the per-triple L2 term.
      batch_size: triples per minibatch B.
      n_batches: minibatches per epoch (each epoch draws ``n_batches * B`` triples).
      n_neg_retries: redraws of a negative that is a training pair (with ``positives``).
      hogwild: spread one problem's batches over the threads without synchronisation
        (results then depend on thread timing); default: deterministic.

    Returns:
      ``(user_emb, item_emb, moments, steps + n_epochs * n_batches,
      losses [n_epochs, n_batches])``.
    """
    if not _native.load():
        raise RuntimeError("the native BPR kernel is not available (see complemjax._native)")
    f32, i32 = jnp.float32, jnp.int32
    u, i, w = pairs
    if seeds.ndim != 2 or seeds.shape[-1] != 2:
        raise ValueError(f"`seeds` must be [n_epochs, 2], got {seeds.shape}")
    if not (u.shape == i.shape == w.shape and u.ndim == 1):
        raise ValueError(f"`pairs` must be three [E] arrays, got {u.shape}, {i.shape}, {w.shape}")
    n_cand = 1 if positives is None else 1 + n_neg_retries
    if positives is None:
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
        jax.ShapeDtypeStruct((seeds.shape[0], n_batches), f32),
    )
    call = jax.ffi.ffi_call(
        "complemjax_bpr_epochs",
        out_types,
        vmap_method="broadcast_all",
        input_output_aliases={0: 0, 1: 1, 2: 2, 3: 3, 4: 4},
    )
    pu, pi, mv_u, mv_i, steps, losses = call(
        user_emb.astype(f32), item_emb.astype(f32), mv_u, mv_i, jnp.asarray(steps, i32),
        u.astype(i32), i.astype(i32), w.astype(f32), seeds.astype(jnp.uint32),
        keys.astype(i32), indptr.astype(i32),
        jnp.asarray(learning_rate, f32), jnp.asarray(l2, f32),
        adam=np.int64(adam), n_threads=np.int64(_native.cpu_threads()),
        hogwild=np.int64(hogwild), batch=np.int64(batch_size), n_batches=np.int64(n_batches),
        n_cand=np.int64(n_cand),
    )  # fmt: skip
    return pu, pi, ((mv_u, mv_i) if adam else None), steps, losses

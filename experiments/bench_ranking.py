"""Benchmark: complemjax full-ranking top-K + metrics against a NumPy reference.

Both sides get identical inputs (written once to a temporary .npz) and run in their
own subprocess, so each side's peak resident memory is measured separately (Linux
``VmHWM``, else ``resource.getrusage().ru_maxrss``; the whole process: Python +
libraries + inputs + work buffers). The parent then asserts that the top-K lists are identical and
that the metrics agree (hit counts exactly, float metrics to 1e-6 relative: JAX
float32 vs NumPy float64 arithmetic).

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
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

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


def _rss_mb():
    """Peak resident memory of this process so far, in MiB.

    Linux: ``VmHWM`` from /proc/self/status (the high-water mark of this process's own
    address space, which starts afresh at exec). ``ru_maxrss`` is not used there because
    Linux carries it over from the parent across fork + exec. Elsewhere: ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    scale = 1024.0 if sys.platform != "darwin" else 1024.0**2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def worker(side, data_path, out_path, repeats):
    d = np.load(data_path)
    user_emb, item_emb, hist, test = d["user_emb"], d["item_emb"], d["hist"], d["test"]
    kmax = max(KS)
    times = []
    if side == "numpy":
        rss_loaded = _rss_mb()
        for _ in range(repeats):
            t0 = time.perf_counter()
            items = numpy_topk(user_emb, item_emb, hist, kmax)
            met = numpy_metrics(items, test, KS)
            times.append(time.perf_counter() - t0)
    else:
        import jax
        import jax.numpy as jnp

        from complemjax.ranking import evaluate_topk, topk_from_embeddings

        ue, ie, hj, tj = (jnp.asarray(x) for x in (user_emb, item_emb, hist, test))
        rss_loaded = _rss_mb()
        for _ in range(repeats + 1):  # first call includes compilation
            t0 = time.perf_counter()
            top = topk_from_embeddings(ue, ie, k=kmax, exclude=hj)
            m = evaluate_topk(top.items, tj, ks=KS)
            jax.block_until_ready(m)
            times.append(time.perf_counter() - t0)
        items = np.asarray(top.items)
        met = {}
        for j, k in enumerate(KS):
            for name in ("hits", "recall", "precision", "hit", "mrr", "ndcg"):
                met[f"{name}@{k}"] = np.asarray(getattr(m, name)[j], dtype=np.float64)
    np.savez(out_path, items=items, **met)
    print(
        json.dumps(
            {"side": side, "times": times, "rss_loaded_mb": rss_loaded, "peak_rss_mb": _rss_mb()}
        )
    )


def run_side(side, data_path, out_path, repeats):
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", side]
    cmd += ["--data", data_path, "--out", out_path, "--repeats", str(repeats)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--scale-users", type=int, default=200_000, help="0 to skip the memory run")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", choices=["jax", "numpy"], help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.out, args.repeats)
        return
    if args.quick:
        args.users, args.items, args.scale_users = 4_000, 3_000, 16_000

    print(f"cpu count: {os.cpu_count()} (shared with other jobs; timings are noisy)")
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [args.users] + ([args.scale_users] if args.scale_users else [])
        results = {}
        for n_users in sizes:
            data = os.path.join(tmp, f"data_{n_users}.npz")
            t0 = time.perf_counter()
            make_data(data, n_users, args.items, args.dim, 20, 5, args.seed)
            print(
                f"\n== {n_users} users x {args.items} items, d={args.dim}, ks={KS} "
                f"(data generated in {time.perf_counter() - t0:.1f}s)"
            )
            sides = ("numpy", "jax") if n_users == args.users else ("jax",)
            out = {}
            for side in sides:
                out[side] = run_side(side, data, os.path.join(tmp, f"{side}_{n_users}.npz"), 1)
                t = out[side]["times"]
                extra = (
                    f" (first call incl. compile {t[0]:.2f}s, warm {t[-1]:.2f}s)"
                    if side == "jax"
                    else ""
                )
                print(
                    f"{side:>5}: time {t[-1]:.2f}s{extra}; peak RSS {out[side]['peak_rss_mb']:.0f}"
                    f" MB (after loading inputs {out[side]['rss_loaded_mb']:.0f} MB)"
                )
            if "numpy" in out:
                worst = compare_outputs(
                    os.path.join(tmp, f"jax_{n_users}.npz"),
                    os.path.join(tmp, f"numpy_{n_users}.npz"),
                )
                tn, tj = out["numpy"]["times"][-1], out["jax"]["times"]
                print(
                    f"identical top-{max(KS)} lists: yes; metrics agree (max abs diff {worst:.1e})"
                )
                print(
                    f"speed-up numpy/jax: warm {tn / tj[-1]:.2f}x, incl. compile {tn / tj[0]:.2f}x"
                )
                m = np.load(os.path.join(tmp, f"numpy_{n_users}.npz"))
                keys = [k for k in m.files if k.split("@")[0] in ("recall", "ndcg", "mrr")]
                print("  means: " + ", ".join(f"{k}={np.nanmean(m[k]):.4f}" for k in keys))
            results[n_users] = out
        if len(sizes) > 1:
            a, b = (results[n]["jax"] for n in sizes)
            print(
                f"\njax peak RSS: {a['peak_rss_mb']:.0f} MB at {sizes[0]} users, "
                f"{b['peak_rss_mb']:.0f} MB at {sizes[1]} users; above the loaded inputs: "
                f"{a['peak_rss_mb'] - a['rss_loaded_mb']:.0f} MB vs "
                f"{b['peak_rss_mb'] - b['rss_loaded_mb']:.0f} MB"
            )
            for n in sizes:
                out_mb = n * max(KS) * 8 / 2**20
                print(f"  (the [{n}, {max(KS)}] output lists, items + scores: {out_mb:.0f} MB)")


if __name__ == "__main__":
    main()

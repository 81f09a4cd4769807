"""Benchmark: Gram-free / blockwise similarity metrics against dense NumPy references.

Measurements (each in its own subprocess, so peak memory is per measurement):

1. Debiased linear CKA (``complemjax.similarity.debiased_linear_cka``, feature space,
   ``O(n d²)``) at n = 100,000, d = 256, against a NumPy float64 implementation that
   builds the two ``n x n`` Gram matrices and applies Song et al.'s unbiased HSIC
   (``O(n² d)`` time, ``O(n²)`` memory) at the largest n run here; JAX is also run at that
   common n for a like-for-like ratio, and the values are compared.
2. Mutual kNN@10 (``mutual_knn``, cosine, blockwise ``lax.top_k``, block_size 1024) at
   n = 50,000, d = 256, against a dense NumPy reference (float32 ``n x n`` similarity,
   ``argsort`` per row) at n = 10,000; JAX is also run at n = 10,000 and the neighbour
   sets of X are compared item by item (mismatches can only come from float32 near-ties;
   the float64 gap between the k-th and (k+1)-th neighbour is reported for them).

Inputs: X ~ N(0, 1) of shape [n, 256]; Y = X W / sqrt(256) + 0.5 N(0, 1), W ~ N(0, 1)
[256, 256]. Times: JAX is compiled on a first call (reported as "first call") and the
steady-state time is the median of 3 further calls (1 at n = 50,000 for kNN); CPU time is
``time.process_time()`` per call (all threads). NumPy is timed once (median of 3 at
quick sizes). Timing and memory as in ``experiments/_harness.py``: peak RSS is the
``VmHWM`` of the measuring worker process (a fresh process per measurement), i.e. the peak
resident set of the whole process (Python, NumPy/JAX runtime, the inputs and all work
buffers), next to the RSS measured right after the inputs were created ("inputs RSS");
the difference is what the computation added.

Usage:
  .venv/bin/python experiments/bench_similarity.py           # full sizes (minutes)
  .venv/bin/python experiments/bench_similarity.py --quick   # small smoke run (seconds)
  .venv/bin/python experiments/bench_similarity.py --json experiments/cpu_baseline.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H

D = 256
K = 10


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, D), dtype=np.float32)
    W = rng.standard_normal((D, D), dtype=np.float32) / np.sqrt(D)
    Y = X @ W + 0.5 * rng.standard_normal((n, D), dtype=np.float32)
    return X, Y


# --------------------------------------------------------------------------- workers


def _np_debiased_cka_gram(X: np.ndarray, Y: np.ndarray) -> float:
    """Dense reference: n x n Gram matrices, Song et al. (2012) Eq. 5, float64."""
    n = X.shape[0]

    def hsic_u(Kt, Lt, k1, l1):
        return (
            np.sum(Kt * Lt)  # tr(K̃ L̃) for symmetric K̃, L̃
            + Kt.sum() * Lt.sum() / ((n - 1) * (n - 2))
            - 2.0 * np.dot(k1, l1) / (n - 2)
        ) / (n * (n - 3))

    Xd, Yd = X.astype(np.float64), Y.astype(np.float64)
    Kt = Xd @ Xd.T
    np.fill_diagonal(Kt, 0.0)
    Lt = Yd @ Yd.T
    np.fill_diagonal(Lt, 0.0)
    k1, l1 = Kt.sum(1), Lt.sum(1)
    return float(hsic_u(Kt, Lt, k1, l1) / np.sqrt(hsic_u(Kt, Kt, k1, k1) * hsic_u(Lt, Lt, l1, l1)))


def _np_knn(A: np.ndarray, k: int) -> np.ndarray:
    An = A / np.linalg.norm(A, axis=1, keepdims=True)
    S = An @ An.T
    np.fill_diagonal(S, -np.inf)
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def worker(kind: str, n: int, out_dir: str, repeats: int) -> dict:
    X, Y = _data(n)
    inputs_rss = H.current_rss_mb()
    res: dict = {"kind": kind, "n": n}
    if kind.startswith("jax"):
        import jax

        from complemjax.similarity import debiased_linear_cka, mutual_knn

        Xj, Yj = jax.numpy.asarray(X), jax.numpy.asarray(Y)
        inputs_rss = H.current_rss_mb()
        if kind == "jax_cka":
            fn = jax.jit(debiased_linear_cka)
        else:
            fn = jax.jit(lambda a, b: mutual_knn(a, b, k=K, block_size=1024))
        timing, out = H.time_call(lambda: fn(Xj, Yj), repeats=repeats)
        res["first_call_s"] = timing.first_s
        res["cpu_s"] = timing.cpu_s
        res["time_s"] = timing.median_s
        if kind == "jax_cka":
            res["value"] = float(out)
        else:
            res["value"] = float(out.score)
            if out_dir:
                from complemjax.similarity import _knn_blocked, _normalize_rows

                ix = _knn_blocked(_normalize_rows(Xj), _normalize_rows(Yj), K, 1024)[1]
                np.save(os.path.join(out_dir, f"jax_knn_{n}.npy"), np.asarray(ix))
    elif kind == "np_cka":
        timing, res["value"] = H.time_call(
            lambda: _np_debiased_cka_gram(X, Y), repeats=repeats, warmup=0
        )
        res["cpu_s"], res["time_s"] = timing.cpu_s, timing.median_s
    elif kind == "np_knn":

        def np_knn_score():
            a, b = _np_knn(X, K), _np_knn(Y, K)
            return a, float(np.mean((a[:, :, None] == b[:, None, :]).sum((1, 2)) / K))

        timing, (a, score) = H.time_call(np_knn_score, repeats=repeats, warmup=0)
        res["cpu_s"], res["time_s"] = timing.cpu_s, timing.median_s
        res["value"] = float(score)
        np.save(os.path.join(out_dir, f"np_knn_{n}.npy"), a)
    else:
        raise ValueError(f"unknown worker kind {kind!r}")
    res["inputs_rss_mb"] = inputs_rss
    return res


# --------------------------------------------------------------------------- driver


def run_worker(kind: str, n: int, out_dir: str, repeats: int) -> dict:
    args = ["--worker", kind, "--n", n, "--out", out_dir, "--repeats", repeats]
    return H.run_worker(__file__, args)


def _row(label, r):
    first = f"{r['first_call_s']:.2f}" if "first_call_s" in r else "-"
    return (
        f"| {label} | {r['n']:,} | {r['time_s']:.3f} | {r['cpu_s']:.2f} | {first} | "
        f"{r['inputs_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['value']:.6f} |"
    )


def main() -> None:
    ap = H.base_parser(__doc__.split("\n")[0])
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        res = worker(args.worker, args.n, args.out, args.repeats)
        H.emit(res, res["inputs_rss_mb"])
        return

    if args.quick:
        n_cka_big, n_cka_common, n_knn_big, n_knn_common = 20_000, 1_500, 4_000, 2_000
    else:
        n_cka_big, n_cka_common, n_knn_big, n_knn_common = 100_000, 6_000, 50_000, 10_000
    np_repeats = 3 if args.quick else 1

    print(f"# bench_similarity ({'quick' if args.quick else 'full'}), d = {D}, k = {K}")
    print(f"cpu count: {os.cpu_count()}; load average: {os.getloadavg()}")
    print("(shared machine: other processes may be running. 'wall time' is the median")
    print(" wall-clock time of a call; 'CPU time' is the process CPU time per call summed")
    print(" over all its threads, which contention inflates much less than wall time)\n")
    with tempfile.TemporaryDirectory() as tmp:
        jc_big = run_worker("jax_cka", n_cka_big, tmp, 3)
        jc_com = run_worker("jax_cka", n_cka_common, tmp, 3)
        nc_com = run_worker("np_cka", n_cka_common, tmp, np_repeats)
        jk_big = run_worker("jax_knn", n_knn_big, tmp, 1 if not args.quick else 3)
        jk_com = run_worker("jax_knn", n_knn_common, tmp, 3)
        nk_com = run_worker("np_knn", n_knn_common, tmp, np_repeats)
        ix_j = np.load(os.path.join(tmp, f"jax_knn_{n_knn_common}.npy"))
        ix_n = np.load(os.path.join(tmp, f"np_knn_{n_knn_common}.npy"))

    print(
        "| measurement | n | wall time (s) | CPU time (s) | first call (s) | inputs RSS (MB) "
        "| peak RSS (MB) | value |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(_row("debiased CKA, JAX feature space", jc_big))
    print(_row("debiased CKA, JAX feature space", jc_com))
    print(_row("debiased CKA, NumPy n×n Gram (float64)", nc_com))
    print(_row("mutual kNN@10, JAX blockwise", jk_big))
    print(_row("mutual kNN@10, JAX blockwise", jk_com))
    print(_row("mutual kNN@10, NumPy dense argsort", nk_com))

    same = np.array([set(a) == set(b) for a, b in zip(ix_j, ix_n)])
    print()
    print(
        f"debiased CKA at n={n_cka_common:,}: NumPy/JAX time ratio "
        f"{nc_com['time_s'] / jc_com['time_s']:.1f}x; "
        f"|value difference| = {abs(nc_com['value'] - jc_com['value']):.2e}"
    )
    print(
        f"mutual kNN at n={n_knn_common:,}: NumPy/JAX time ratio "
        f"{nk_com['time_s'] / jk_com['time_s']:.1f}x; "
        f"score JAX {jk_com['value']:.6f} vs NumPy {nk_com['value']:.6f}"
    )
    n_diff = int((~same).sum())
    msg = f"identical X neighbour sets: {int(same.sum()):,} / {len(same):,} items"
    if n_diff:
        X, _ = _data(n_knn_common)
        Xn = X.astype(np.float64)
        Xn /= np.linalg.norm(Xn, axis=1, keepdims=True)
        gaps = []
        for i in np.flatnonzero(~same):
            s = Xn @ Xn[i]
            s[i] = -np.inf
            top = np.sort(s)[::-1]
            gaps.append(top[K - 1] - top[K])
        msg += f"; float64 gap k-th vs (k+1)-th at mismatches: max {max(gaps):.2e}"
    print(msg)
    print(f"load average at the end: {os.getloadavg()}")
    results = H.Results("similarity", quick=args.quick)
    for label, r, unit_case in (
        ("debiased CKA, JAX feature space", jc_big, None),
        ("debiased CKA, JAX feature space", jc_com, None),
        ("debiased CKA, NumPy Gram", nc_com, None),
        ("mutual kNN@10, JAX blockwise", jk_big, "knn"),
        ("mutual kNN@10, JAX blockwise", jk_com, None),
        ("mutual kNN@10, NumPy dense argsort", nk_com, None),
    ):
        extra = {}
        if unit_case:
            extra = dict(gpu_case=unit_case, unit="s", size=f"n={r['n']:,}, d={D}, k={K}")
        results.add(
            f"{label} n={r['n']}",
            **{**r, "metric_value": r["value"], "value": r["time_s"], **extra},
        )
    results.write_json(args.json)
    print()
    cka_ok = jc_big["time_s"] < 2.0
    knn_ok = jk_big["time_s"] < 60.0 and jk_big["peak_rss_mb"] < 2048
    if not args.quick:
        print(
            f"target debiased CKA n=100,000 d=256 < 2 s: {jc_big['time_s']:.3f} s -> "
            f"{'met' if cka_ok else 'NOT met'}"
        )
        print(
            f"target mutual kNN n=50,000 < 60 s and peak < 2 GB: {jk_big['time_s']:.1f} s, "
            f"{jk_big['peak_rss_mb']:.0f} MB -> {'met' if knn_ok else 'NOT met'}"
        )


if __name__ == "__main__":
    main()

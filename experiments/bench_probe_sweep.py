"""Benchmark: fitting many MLP probe capacities x seeds with complemjax vs loops and sklearn.

Identical fits everywhere: one-hidden-layer ReLU MLPs, 64 -> 64 dims, full-batch Adam
(learning rate 3e-3, 300 steps), on the same synthetic data (a fixed random two-layer tanh
teacher plus Gaussian noise). Compared:

  (a) ``complemjax.probes.fit_capacities`` (both capacity strategies, "bucket" and "pad"),
  (b) a Python loop of jitted single fits (``complemjax.probes.fit``, each width at its real
      size, one compiled program per width),
  (c) ``sklearn.neural_network.MLPRegressor`` in a loop (solver="adam", batch_size=n,
      max_iter=steps, tol=0 and n_iter_no_change=10**9 so it never stops early,
      float32 input).

Regularisation: complemjax uses AdamW with decoupled weight decay 1e-4 on the weights;
sklearn uses its default coupled L2 ``alpha=1e-4`` (a ``alpha / (2 n) ||W||²`` loss term).
The two are not the same penalty, but both are negligible at these sizes (shrinkage per step
~1e-7 and ~1e-8 of a weight); they are set to the same nominal value so neither side is
unregularised.

Times: "first" is the first call, including XLA compilation (for sklearn: the first and only
pass); "steady" is the best of ``--repeats`` further calls with every program already compiled.
Ratios use steady times unless labelled "incl. compile".

FLOPs: matmul FLOPs of one training step of a one-hidden-layer MLP are counted as
``6 * n * (d_x * w + w * d_y)`` (forward 2 n P, backward 4 n P, P the number of weights;
biases, activations and Adam updates are ignored). The achieved rate is compared with the
machine's float32 ``jnp.dot`` rate on 2048 x 2048 matrices measured in the same run.

Run: ``.venv/bin/python experiments/bench_probe_sweep.py [--quick]``.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H
import jax
import numpy as np

from complemjax import probes

D_X = D_Y = 64
TEACHER_WIDTH = 32
NOISE = 0.3
LR = 3e-3
WEIGHT_DECAY = 1e-4


def make_data(n_train: int, n_test: int, seed: int = 0):
    """Fixed random two-layer tanh teacher ``y = tanh(x A / sqrt(d_x)) B / sqrt(h) + noise``."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((D_X, TEACHER_WIDTH))
    b = rng.standard_normal((TEACHER_WIDTH, D_Y))
    n = n_train + n_test
    x = rng.standard_normal((n, D_X))
    y = np.tanh(x @ a / np.sqrt(D_X) * 2.0) @ b / np.sqrt(TEACHER_WIDTH)
    y = y + NOISE * rng.standard_normal((n, D_Y))
    x, y = x.astype(np.float32), y.astype(np.float32)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def r2(y, y_hat):
    """Variance-weighted held-out R² = 1 - SSE / SST."""
    y = np.asarray(y, np.float64)
    y_hat = np.asarray(y_hat, np.float64)
    return 1.0 - np.sum((y - y_hat) ** 2) / np.sum((y - y.mean(0)) ** 2)


def block(tree):
    jax.tree.map(lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, tree)
    return tree


def timed(fn, repeats: int):
    """Return (first time, best steady time, result of the last call) (``_harness.time_call``).

    With ``repeats == 0`` the steady time is reported as NaN (only the first call ran).
    """
    if repeats == 0:
        t0 = time.perf_counter()
        out = block(fn())
        return time.perf_counter() - t0, float("nan"), out
    timing, out = H.time_call(fn, repeats=repeats)
    return timing.first_s, timing.min_s, out


matmul_rate = H.matmul_rate


def step_flops(n: int, width: int) -> float:
    return 6.0 * n * (D_X * width + width * D_Y)


def run_sweep(strategy, key, specs, x, y, hp, n_seeds):
    return probes.fit_capacities(key, specs, x, y, hp, n_seeds=n_seeds, strategy=strategy)


def sweep_r2(fits, x_te, y_te):
    preds = probes.predict_capacities(fits, x_te)
    return [float(np.mean([r2(y_te, p[s]) for s in range(p.shape[0])])) for p in preds]


def run_loop(key, specs, x, y, hp, n_seeds):
    keys = jax.random.split(key, n_seeds)
    return [[probes.fit(keys[s], spec, x, y, hp) for s in range(n_seeds)] for spec in specs]


def loop_r2(params, specs, x_te, y_te):
    return [
        float(np.mean([r2(y_te, probes.predict(spec, p, x_te)) for p in per_seed]))
        for spec, per_seed in zip(specs, params)
    ]


def run_sklearn(widths, x, y, x_te, y_te, n_seeds, steps):
    """Loop of MLPRegressor fits; returns (wall time, per-width mean held-out R²)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    scores = []
    t0 = time.perf_counter()
    for w in widths:
        per_seed = []
        for s in range(n_seeds):
            model = MLPRegressor(
                hidden_layer_sizes=(w,),
                activation="relu",
                solver="adam",
                alpha=WEIGHT_DECAY,
                batch_size=x.shape[0],
                learning_rate_init=LR,
                max_iter=steps,
                tol=0.0,
                n_iter_no_change=10**9,
                shuffle=False,
                random_state=s,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x, y)
            assert model.n_iter_ == steps, model.n_iter_
            per_seed.append(r2(y_te, model.predict(x_te)))
        scores.append(float(np.mean(per_seed)))
    return time.perf_counter() - t0, scores


def regime_large(args, mm_rate):
    n, n_test = (4000, 2000)
    n_seeds = 2 if args.quick else 8
    widths = (8, 64, 256) if args.quick else (8, 16, 32, 64, 128, 256)
    steps = 100 if args.quick else 300
    if args.smoke:
        n, n_test, n_seeds, widths, steps = 300, 100, 2, (4, 8), 5
    x, y, x_te, y_te = make_data(n, n_test)
    hp = probes.ProbeHParams(learning_rate=LR, weight_decay=WEIGHT_DECAY)
    specs = [probes.MLP(width=w, depth=1, activation="relu", steps=steps) for w in widths]
    key = jax.random.key(0)
    print(
        f"\n## Large regime: {n_seeds} seeds x widths {widths}, n={n}, {D_X}->{D_Y}, "
        f"{steps} full-batch Adam steps\n"
    )

    res = {}
    for strategy, reps in (
        ("bucket", args.repeats),
        ("fuse", args.repeats),
        ("pad", args.pad_repeats),
    ):
        first, steady, fits = timed(
            lambda s=strategy: run_sweep(s, key, specs, x, y, hp, n_seeds), reps
        )
        res[strategy] = (first, steady, sweep_r2(fits, x_te, y_te))
        print(f"[progress] {strategy}: first {first:.2f} s, steady {steady:.2f} s", flush=True)
    first_b, steady_b, params_b = timed(
        lambda: run_loop(key, specs, x, y, hp, n_seeds), args.repeats
    )
    res["loop"] = (first_b, steady_b, loop_r2(params_b, specs, x_te, y_te))
    print(f"[progress] loop: first {first_b:.2f} s, steady {steady_b:.2f} s", flush=True)
    # Widest width alone (bucket program already compiled above: one steady call).
    wide = [specs[-1]]
    _, steady_wide, _ = timed(lambda: run_sweep("bucket", key, wide, x, y, hp, n_seeds), 1)
    print(f"[progress] widest alone: {steady_wide:.2f} s", flush=True)
    sk_seeds = min(n_seeds, args.sklearn_seeds or n_seeds)
    if args.no_sklearn:
        res["sklearn"] = (float("nan"), float("nan"), [float("nan")] * len(widths))
    else:
        t_sk, r2_sk = run_sklearn(widths, x, y, x_te, y_te, sk_seeds, steps)
        t_sk *= n_seeds / sk_seeds
        res["sklearn"] = (t_sk, t_sk, r2_sk)
        if sk_seeds < n_seeds:
            print(
                f"NOTE: sklearn ran {sk_seeds} of {n_seeds} seeds per width; its time is "
                f"scaled by {n_seeds / sk_seeds:g} (fits are independent and equally sized), "
                f"its R² is the mean over those {sk_seeds} seeds."
            )

    useful = sum(step_flops(n, w) for w in widths) * n_seeds * steps
    padded = step_flops(n, max(widths)) * len(widths) * n_seeds * steps
    wide_flops = step_flops(n, max(widths)) * n_seeds * steps
    print("| method | first call incl. compile (s) | steady (s) | steady ratio vs method |")
    print("|---|---|---|---|")
    labels = {
        "bucket": "(a) sweep, strategy=bucket",
        "fuse": "(a) sweep, strategy=fuse",
        "pad": "(a) sweep, strategy=pad",
        "loop": "(b) loop of jitted single fits",
        "sklearn": "(c) sklearn MLPRegressor loop (no compile)",
    }
    for k, label in labels.items():
        f, s, _ = res[k]
        print(f"| {label} | {f:.2f} | {s:.2f} | {s / res['bucket'][1]:.2f}x bucket time |")
    print("\n| held-out R² (mean over seeds) | " + " | ".join(f"w={w}" for w in widths) + " |")
    print("|---|" + "---|" * len(widths))
    for k, label in labels.items():
        print(f"| {label} | " + " | ".join(f"{v:.4f}" for v in res[k][2]) + " |")
    ours = np.array([res[k][2] for k in ("bucket", "fuse", "pad", "loop")])
    max_diff = float(np.nanmax(np.nanmax(ours, 0) - np.nanmin(ours, 0)))
    sk_r2 = np.asarray(res["sklearn"][2], dtype=float)
    sk_diff = float(np.max(np.abs(sk_r2 - ours[0]))) if np.all(np.isfinite(sk_r2)) else np.nan
    print(f"\nmax R² spread across complemjax's strategies and the loop (the same fits), per "
          f"width: {max_diff:.4f} (must be <= 0.02); sklearn (another optimizer, its own "
          f"defaults) differs from bucket by up to {sk_diff:.4f}")  # fmt: skip

    best_a = min(
        ("bucket", "fuse", "pad"), key=lambda k: res[k][1] if np.isfinite(res[k][1]) else res[k][0]
    )
    t_a = res[best_a][1]
    rate = useful / t_a / 1e9
    t_pad = res["pad"][1] if np.isfinite(res["pad"][1]) else res["pad"][0]
    rate_pad_exec = padded / t_pad / 1e9
    rate_wide = wide_flops / steady_wide / 1e9
    auto = probes._group_strategy("auto", widths, x, y)
    print(f"\nstrategy='auto' (the default) picks {auto} here")
    print(
        f"fastest strategy here: {best_a} (bucket steady {res['bucket'][1]:.2f} s / first "
        f"{res['bucket'][0]:.2f} s; fuse steady {res['fuse'][1]:.2f} s / first "
        f"{res['fuse'][0]:.2f} s; pad steady {res['pad'][1]:.2f} s / first {res['pad'][0]:.2f} s)"
    )
    print(
        f"speed-up of (a, {best_a}) vs (c) sklearn: {res['sklearn'][1] / t_a:.2f}x (target >= 4x)"
    )
    print(f"speed-up of (a, {best_a}) vs (b) loop:    {res['loop'][1] / t_a:.2f}x (target >= 1x)")
    print(
        f"speed-up incl. compile, (a, {best_a}) first call vs (b) first pass: "
        f"{res['loop'][0] / res[best_a][0]:.2f}x; vs (c): {res['sklearn'][0] / res[best_a][0]:.2f}x"
    )
    print(
        f"achieved useful GFLOP/s, whole sweep ({best_a}): {rate:.1f} "
        f"= {100 * rate / mm_rate:.0f}% of matmul rate"
    )
    print(
        f"pad strategy, executed (padded) GFLOP/s: {rate_pad_exec:.1f} "
        f"= {100 * rate_pad_exec / mm_rate:.0f}% of matmul rate "
        f"(executes {padded / useful:.2f}x the useful FLOPs)"
    )
    print(
        f"widest width (w={max(widths)}, {n_seeds} seeds, bucket program alone): "
        f"{steady_wide:.2f} s, {rate_wide:.1f} GFLOP/s = {100 * rate_wide / mm_rate:.0f}% "
        "of matmul rate (target >= 50%)"
    )
    return res, f"{n_seeds} seeds x {len(widths)} widths, n={n:,}, {steps} steps"


def regime_small(args, mm_rate):
    n, n_test = 500, 500
    n_seeds = 16 if args.quick else 64
    widths = (4, 8, 16, 32)
    steps = 100 if args.quick else 300
    if args.smoke:
        n, n_test, n_seeds, widths, steps = 300, 100, 4, (4, 8), 5
    x, y, x_te, y_te = make_data(n, n_test, seed=1)
    hp = probes.ProbeHParams(learning_rate=LR, weight_decay=WEIGHT_DECAY)
    specs = [probes.MLP(width=w, steps=steps) for w in widths]
    key = jax.random.key(0)
    print(f"\n## Small regime: {n_seeds} seeds x widths {widths}, n={n}, {steps} steps\n")
    res = {}
    for strategy in ("bucket", "fuse", "pad"):
        f, s, fits = timed(
            lambda st=strategy: run_sweep(st, key, specs, x, y, hp, n_seeds), args.repeats
        )
        res[strategy] = (f, s, sweep_r2(fits, x_te, y_te))
    f, s, params = timed(lambda: run_loop(key, specs, x, y, hp, n_seeds), args.repeats)
    res["loop"] = (f, s, loop_r2(params, specs, x_te, y_te))
    print("| method | first call incl. compile (s) | steady (s) | loop steady / method steady |")
    print("|---|---|---|---|")
    for k, label in (
        ("bucket", "(a) sweep, strategy=bucket"),
        ("fuse", "(a) sweep, strategy=fuse"),
        ("pad", "(a) sweep, strategy=pad"),
        ("loop", "(b) loop of jitted single fits"),
    ):
        fi, st, _ = res[k]
        print(f"| {label} | {fi:.2f} | {st:.3f} | {res['loop'][1] / st:.1f}x |")
    print("\n| held-out R² | " + " | ".join(f"w={w}" for w in widths) + " |")
    print("|---|" + "---|" * len(widths))
    for k in ("bucket", "fuse", "pad", "loop"):
        print(f"| {k} | " + " | ".join(f"{v:.4f}" for v in res[k][2]) + " |")
    best = min(("bucket", "fuse", "pad"), key=lambda k: res[k][1])
    print(f"\nstrategy='auto' (the default) picks {probes._group_strategy('auto', widths, x, y)}")
    useful = sum(step_flops(n, w) for w in widths) * n_seeds * steps
    print(
        f"\nfastest strategy here: {best}; speed-up vs (b) loop: "
        f"{res['loop'][1] / res[best][1]:.1f}x steady, "
        f"{res['loop'][0] / res[best][0]:.1f}x incl. compile; useful GFLOP/s "
        f"{useful / res[best][1] / 1e9:.1f} = {100 * useful / res[best][1] / 1e9 / mm_rate:.0f}% "
        "of matmul rate (target >= 60%)"
    )
    return res


def main():
    parser = H.base_parser(__doc__.splitlines()[0])  # --quick: fewer seeds/widths/steps
    parser.add_argument("--smoke", action="store_true", help="tiny sizes to check the script")
    parser.add_argument("--repeats", type=int, default=2, help="steady-state repeats")
    parser.add_argument(
        "--pad-repeats", type=int, default=2, help="steady repeats for strategy=pad (large)"
    )
    parser.add_argument("--no-sklearn", action="store_true", help="skip the sklearn baseline")
    parser.add_argument(
        "--sklearn-seeds", type=int, default=0, help="run sklearn on this many seeds (0: all)"
    )
    parser.add_argument("--regime", choices=("large", "small", "both"), default="both")
    args = parser.parse_args()

    print("# complemjax probe capacity sweep benchmark\n")
    print(
        f"backend={jax.default_backend()} devices={jax.devices()} cpu_count={os.cpu_count()} "
        f"loadavg(start)={os.getloadavg()}"
    )
    print(
        "note: this machine's CPU cores are shared with other concurrent jobs; "
        "times are noisy, ratios are measured within this one run."
    )
    mm = matmul_rate()
    print(f"float32 jnp.dot 2048x2048 rate: {mm:.1f} GFLOP/s")
    results = H.Results("probe_sweep", quick=args.quick or args.smoke)
    results.add("matmul", gflops=mm)
    if args.regime in ("large", "both"):
        res, size = regime_large(args, mm)
        for k, (first, steady, r2s) in res.items():
            extra = {}
            if k == "bucket":
                extra = dict(gpu_case="probes", value=steady, unit="s", size=size)
            results.add(f"large {k}", first_s=first, steady_s=steady, r2=list(r2s), **extra)
    if args.regime in ("small", "both"):
        res = regime_small(args, mm)
        for k, (first, steady, r2s) in res.items():
            results.add(f"small {k}", first_s=first, steady_s=steady, r2=list(r2s))
    mm_end = matmul_rate()
    print(
        f"\nfloat32 jnp.dot rate at the end: {mm_end:.1f} GFLOP/s; loadavg(end)={os.getloadavg()}"
    )
    rss = H.peak_rss_mb()
    print(f"peak RSS of this process (all regimes, one process): {rss:.0f} MiB")
    results.add("process", peak_rss_mb=rss)
    results.write_json(args.json)


if __name__ == "__main__":
    main()

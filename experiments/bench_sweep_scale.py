"""Benchmark: the paper-scale synthetic grid on 1 and 4 host devices, with and without resume.

Grid: the axes of ``synthetic_alignment.StudyConfig.full()`` -- 5 shared fractions × 5
nonlinearities × 10 seeds = 250 rows (configurations × seeds), chunks of 20 rows. Per row,
the default runs the synthetic_alignment study function with reduced sizes so it fits a
shared 2-core CPU (200 training / 200 test items, probes ridge, rrr-2, rrr-4, mlp-16 with
50 steps); ``--quick`` runs a cheap stand-in (ridge R² on a 200 × 16 draw) over the same
250 rows. This measures correctness and overhead of sharding and of resume bookkeeping,
not speed: 4 "devices" made with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``
share the same 2 cores.

Each device count runs in its own subprocess (the flag must be set before JAX is
imported). In it, a first call compiles (JAX's persistent compilation cache, in a temporary
folder, lets later calls reuse the program), then the sweep is timed alternately without
and with ``checkpoint_dir`` (fresh folder each time; best of ``--reps``), and finally
rebuilt from the finished folder (every chunk skipped). Resume overhead is reported two
ways: the wall-time ratio (noisy on a shared machine) and the seconds ``run_grid`` itself
spent writing and reading chunk files (``df.attrs["sweep"]["seconds_checkpoint_io"]``),
which is a fixed cost per chunk (write, fsync, rename, read back), so its share shrinks
as the work per chunk grows.

Usage::

    python experiments/bench_sweep_scale.py [--quick] [--reps 2] [--device] [--json PATH]

``--device`` also runs the grid on the default accelerator when JAX sees one (no GPU is
lent to the session that wrote this file, so it only prints that GPU figures are not
available there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402


def _toy_fn(key, shared_fraction, nonlinearity):
    """Cheap stand-in per row: ridge R² on a 200 × 16 draw (for --quick)."""
    import jax
    import jax.numpy as jnp

    kx, kn = jax.random.split(key)
    x = jax.random.normal(kx, (200, 16))
    signal = x[:, :4].sum(1) + nonlinearity * jnp.sin(2.0 * x[:, 0])
    y = jnp.sqrt(shared_fraction) * signal + jax.random.normal(kn, (200,))
    w = jnp.linalg.solve(x.T @ x + jnp.eye(16), x.T @ y)
    r2 = 1.0 - jnp.var(y - x @ w) / jnp.var(y)
    return {"r2": r2, "w": w[:3]}


def _study(quick: bool):
    """(fn, grid, n_seeds, chunk, description) of the benchmark grid."""
    import dataclasses

    from complemjax.studies import synthetic_alignment as sa

    full = sa.StudyConfig.full()
    grid = {"shared_fraction": full.shared_fractions, "nonlinearity": full.nonlinearities}
    if quick:
        return _toy_fn, grid, full.n_seeds, 20, "toy ridge fn (200 x 16 draw) per row"
    cfg = dataclasses.replace(
        full, n_train=200, n_test=200, ranks=(2, 4), widths=(16,), mlp_steps=50
    )
    desc = (
        f"synthetic_alignment study fn with n_train=n_test={cfg.n_train}, ranks={cfg.ranks}, "
        f"widths={cfg.widths}, mlp_steps={cfg.mlp_steps}"
    )
    return sa.make_study_fn(cfg), grid, cfg.n_seeds, 20, desc


def _child(args) -> None:
    import jax

    cache = tempfile.mkdtemp(prefix="bench-sweep-cache-")
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from complemjax import sweep

    fn, grid, n_seeds, chunk, desc = _study(args.quick)
    common = dict(
        key=jax.random.key(0),
        grid=grid,
        n_seeds=n_seeds,
        chunk_size=chunk,
        progress=False,
        fingerprint=sweep.config_fingerprint({"bench": desc}),
    )
    t0 = time.perf_counter()
    first = sweep.run_grid(fn, **{k: v for k, v in common.items() if k != "fingerprint"})
    t_first = time.perf_counter() - t0
    first.to_pickle(args.out + ".pkl")
    plain, ckpt, io = [], [], []
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-ck-"))
    equal = True
    for rep in range(args.reps):
        t0 = time.perf_counter()
        a = sweep.run_grid(fn, **{k: v for k, v in common.items() if k != "fingerprint"})
        plain.append(time.perf_counter() - t0)
        folder = work / f"rep{rep}"
        t0 = time.perf_counter()
        b = sweep.run_grid(fn, checkpoint_dir=folder, **common)
        ckpt.append(time.perf_counter() - t0)
        io.append(b.attrs["sweep"]["seconds_checkpoint_io"])
        equal &= a.equals(first) and b.equals(first)
    t0 = time.perf_counter()
    c = sweep.run_grid(fn, checkpoint_dir=work / "rep0", **common)
    t_rebuild = time.perf_counter() - t0
    equal &= c.equals(first) and c.attrs["sweep"]["chunks_computed"] == 0
    info = b.attrs["sweep"]
    json.dump(
        {
            "platform": jax.devices()[0].platform,
            "n_devices": info["n_devices"],
            "rows": len(first),
            "chunk": info["chunk_sizes"][0],
            "n_chunks": info["chunks_computed"],
            "t_first": t_first,
            "t_plain": min(plain),
            "t_ckpt": min(ckpt),
            "io": min(io),
            "t_rebuild": t_rebuild,
            "equal_within_run": bool(equal),
        },
        open(args.out, "w"),
    )


def _run_child(n_devices: int | None, quick: bool, reps: int, out: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if n_devices is not None:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n_devices}"
        env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, __file__, "--child", "--out", out, "--reps", str(reps)]
    if quick:
        cmd.append("--quick")
    subprocess.run(cmd, env=env, check=True)
    return json.load(open(out))


def main() -> None:
    p = H.base_parser(__doc__.splitlines()[0])  # --quick: cheap stand-in fn per row
    p.add_argument("--reps", type=int, default=2, help="timed repetitions (best of)")
    p.add_argument("--device", action="store_true", help="also run on the default accelerator")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args)
        return

    import numpy as np
    import pandas as pd

    _, grid, n_seeds, chunk, desc = _study(args.quick)
    n_cfg = len(grid["shared_fraction"]) * len(grid["nonlinearity"])
    print(
        f"Grid of StudyConfig.full(): {len(grid['shared_fraction'])} shared fractions × "
        f"{len(grid['nonlinearity'])} nonlinearities × {n_seeds} seeds = {n_cfg * n_seeds} "
        f"rows; per row: {desc}; chunk_size={chunk}; best of {args.reps}.\n"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    results = {}
    for n in (1, 4):
        results[n] = _run_child(n, args.quick, args.reps, str(tmp / f"cpu{n}.json"))
    ref = pd.read_pickle(tmp / "cpu1.json.pkl")
    rows = []
    for n, r in results.items():
        df = pd.read_pickle(tmp / f"cpu{n}.json.pkl")
        num = ref.select_dtypes("number").columns
        diff = float(np.max(np.abs(df[num].to_numpy(float) - ref[num].to_numpy(float))))
        per_chunk = 1000 * r["io"] / r["n_chunks"]
        rows.append(
            f"| cpu × {n} | {r['rows']} | {r['chunk']} × {r['n_chunks']} | {r['t_first']:.1f} "
            f"| {r['t_plain']:.2f} | {r['t_ckpt']:.2f} | {r['t_ckpt'] / r['t_plain']:.3f} "
            f"| {r['io']:.3f} ({100 * r['io'] / r['t_ckpt']:.2f}%, {per_chunk:.1f} ms/chunk) "
            f"| {r['t_rebuild']:.2f} "
            f"| {'yes' if df.equals(ref) else 'no'} (max abs diff {diff:.1e}) "
            f"| {'yes' if r['equal_within_run'] else 'NO'} |"
        )
    print(
        "| devices | rows | chunk × chunks | first call incl. compile (s) | sweep (s) "
        "| sweep + checkpoint (s) | ratio | chunk-file I/O (s, share) "
        "| rebuild from folder (s) | equal to 1 device | resumed/checkpointed = plain |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    worst = max(r["io"] / r["t_ckpt"] for r in results.values())
    print(
        f"\nResume bookkeeping: at most {100 * worst:.2f}% of sweep time spent on chunk files "
        f"(target < 5%: {'met' if worst < 0.05 else 'NOT met'})."
    )
    if args.device:
        r = _run_child(None, args.quick, args.reps, str(tmp / "dev.json"))
        if r["platform"] == "cpu":
            print("\nGPU: no accelerator in this session, so GPU figures are not available.")
        else:
            cpu = results[1]
            print(
                f"\n{r['platform']} × {r['n_devices']}: sweep {r['t_plain']:.2f} s "
                f"(first call {r['t_first']:.1f} s); CPU/{r['platform']} ratio "
                f"{cpu['t_plain'] / r['t_plain']:.1f}×."
            )
    else:
        print("\nGPU: not measured (no GPU is lent to this session; pass --device on a GPU host).")
    out = H.Results("sweep_scale", quick=args.quick)
    for n, r in results.items():
        extra = {}
        if n == 1:
            size = f"{r['rows']} rows, {desc}"
            extra = dict(gpu_case="grid", value=r["t_first"], unit="s (incl. compile)", size=size)
        out.add(f"cpu x {n}", **r, **extra)
    out.write_json(args.json)


if __name__ == "__main__":
    main()

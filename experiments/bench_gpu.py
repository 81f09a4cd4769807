"""GPU benchmarks at GPU scale, one markdown table beside the committed CPU figures.

Cases (each in its own fresh process, with its own time limit, so one failure or
overrun does not stop the others and device memory is per case):

==========  ==============================================================  ============
case        work at full size                                               figure
==========  ==============================================================  ============
ranking     top-50 of 1M users x 100k items, d = 64, history excluded       users/s (and
            (``ranking.topk_from_embeddings``)                              % of matmul)
knn         mutual kNN@10 at n = 200k, d = 256 (``similarity.mutual_knn``)  seconds
probes      64 seeds x 8 MLP widths (8..1024), n = 64k, 64 -> 64, 300 Adam  seconds, % of
            steps (``probes.fit_capacities``, bucket)                       matmul
grid        the paper-scale synthetic alignment grid                        seconds
            (``synthetic_alignment.StudyConfig.full()`` through
            ``sweep.run_grid``)
bpr         BPR-MF on MovieLens (``complemjax.models.BPR``), 20 epochs      interactions/s
lightgcn    LightGCN on MovieLens (``complemjax.models.LightGCN``), 20      interactions/s
            epochs
==========  ==============================================================  ============

The matmul rate (float32 ``jnp.dot``, 8192², JAX's default precision) is measured in the
ranking and probes workers. MovieLens is read from a ``.npz`` (``user_idx``,
``item_idx``, ``n_users``, ``n_items``) written on a machine with the data packages by
``experiments/export_movielens_npz.py``; BPR/LightGCN use a seeded random 80/20 split
of all ratings and report Recall@20 on the 20%.

It runs from the source tree alone: ``PYTHONPATH=. python experiments/bench_gpu.py``
with a Python that has jax, numpy and scipy. ``complemjax/__init__`` imports every
module (pandas, flax, optax, ...); when that fails the script loads the modules it needs
directly (a bare ``complemjax`` package object), and a case whose modules need a missing
package is reported as skipped with the package's name (probes, grid, bpr and lightgcn
need flax + optax; grid also needs pandas). ``bench_gpu.sh`` installs wheels from
``experiments/wheels/`` first when that folder exists (``pip download -d
experiments/wheels flax optax pandas`` on a machine with network).

The CPU column is read from ``experiments/cpu_baseline.json`` (written by the CPU
benchmarks' ``--json``): rows there that carry ``gpu_case`` equal to a case name give
the CPU figure and its size. The script refuses to run unless ``jax.devices()`` shows
a GPU/TPU, except with ``--dry-run`` (tiny sizes, CPU allowed, < 1 minute).

Usage::

    PYTHONPATH=. python experiments/bench_gpu.py --movielens ml.npz --out gpu_table.md
    PYTHONPATH=. python experiments/bench_gpu.py --dry-run      # tiny, on CPU
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import _harness as H  # noqa: E402  (NumPy-free at import; JAX imported lazily)

CASES = ("ranking", "knn", "probes", "grid", "bpr", "lightgcn")
# Per-case time limits (s) at full size; they sum to 7.5 min (the whole run must fit 8).
LIMITS = {"ranking": 100, "knn": 60, "probes": 100, "grid": 90, "bpr": 50, "lightgcn": 50}

FULL = {
    "ranking": dict(n_users=1_000_000, n_items=100_000, dim=64, k=50, hist=20),
    "knn": dict(n=200_000, dim=256, k=10),
    "probes": dict(n=65_536, seeds=64, widths=(8, 16, 32, 64, 128, 256, 512, 1024), steps=300),
    "grid": dict(full=True),
    "bpr": dict(epochs=20),
    "lightgcn": dict(epochs=20),
}
DRY = {
    "ranking": dict(n_users=3_000, n_items=800, dim=16, k=50, hist=5),
    "knn": dict(n=1_500, dim=16, k=10),
    "probes": dict(n=256, seeds=2, widths=(4, 8), steps=5),
    "grid": dict(full=False),
    "bpr": dict(epochs=2),
    "lightgcn": dict(epochs=2),
}


class Skipped(Exception):
    """A case cannot run here (a package is missing)."""


def load(module: str):
    """Import ``complemjax.<module>``, without ``complemjax/__init__`` if that fails."""
    try:
        importlib.import_module("complemjax")
    except ImportError:
        pkg = types.ModuleType("complemjax")
        pkg.__path__ = [os.path.join(ROOT, "complemjax")]
        sys.modules["complemjax"] = pkg
    try:
        return importlib.import_module(f"complemjax.{module}")
    except ImportError as e:
        raise Skipped(f"needs `{e.name}`") from None


# ---------------------------------------------------------------------------
# Cases (run inside a worker process)
# ---------------------------------------------------------------------------


def case_ranking(p, dry):
    import jax
    import jax.numpy as jnp

    ranking = load("ranking")
    nu, ni, d, k = p["n_users"], p["n_items"], p["dim"], p["k"]
    ku, ki, kh = jax.random.split(jax.random.key(0), 3)
    ue = jax.random.normal(ku, (nu, d), jnp.float32)
    ie = jax.random.normal(ki, (ni, d), jnp.float32)
    hist = jax.random.randint(kh, (nu, p["hist"]), 0, ni, jnp.int32)
    t, top = H.time_call(lambda: ranking.topk_from_embeddings(ue, ie, k=k, exclude=hist).items)
    rate = H.matmul_rate(size=512 if dry else 8192)
    limit = rate * 1e9 / (2.0 * ni * d)
    ok = bool(jnp.all(top[:, 0] >= 0))
    return dict(
        value=nu / t.min_s,
        unit="users/s",
        size=f"{nu:,} users x {ni:,} items, d={d}, k={k}",
        detail=f"{100 * nu / t.min_s / limit:.0f}% of the matmul limit ({rate:.0f} GFLOP/s); "
        f"first call {t.first_s:.1f}s; lists filled: {ok}",
    )


def case_knn(p, dry):
    import jax
    import jax.numpy as jnp

    similarity = load("similarity")
    kx, kw, kn = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (p["n"], p["dim"]), jnp.float32)
    w = jax.random.normal(kw, (p["dim"], p["dim"]), jnp.float32) / p["dim"] ** 0.5
    y = x @ w + 0.5 * jax.random.normal(kn, x.shape, jnp.float32)
    t, res = H.time_call(lambda: similarity.mutual_knn(x, y, k=p["k"]), repeats=2)
    return dict(
        value=t.min_s,
        unit="s",
        size=f"n={p['n']:,}, d={p['dim']}, k={p['k']}",
        detail=f"score {float(res.score):.4f}; first call {t.first_s:.1f}s",
    )


def case_probes(p, dry):
    import jax
    import jax.numpy as jnp

    probes = load("probes")
    n, d = p["n"], 64
    kx, kw, kn = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (n, d), jnp.float32)
    y = jnp.tanh(x @ jax.random.normal(kw, (d, d)) / d**0.5) + 0.1 * jax.random.normal(kn, (n, d))
    specs = [probes.MLP(width=w, depth=1, activation="relu", steps=p["steps"]) for w in p["widths"]]
    hp = probes.ProbeHParams(learning_rate=3e-3, weight_decay=1e-4)

    def run():
        fits = probes.fit_capacities(
            jax.random.key(1), specs, x, y, hp, n_seeds=p["seeds"], strategy="bucket"
        )
        return jax.tree.leaves(fits)

    t, _ = H.time_call(run, repeats=1)
    flops = sum(6.0 * n * (d * w + w * d) for w in p["widths"]) * p["steps"] * p["seeds"]
    rate = H.matmul_rate(size=512 if dry else 8192)
    return dict(
        value=t.min_s,
        unit="s",
        size=f"{p['seeds']} seeds x {len(p['widths'])} widths, n={n:,}, {p['steps']} steps",
        detail=f"{flops / t.min_s / 1e9:.0f} GFLOP/s = {100 * flops / t.min_s / 1e9 / rate:.0f}% "
        f"of the matmul rate ({rate:.0f}); first call {t.first_s:.1f}s",
    )


def case_grid(p, dry):
    import dataclasses

    import jax

    sweep = load("sweep")
    sa = load("studies.synthetic_alignment")
    cfg = sa.StudyConfig.full()
    if not p["full"]:
        cfg = dataclasses.replace(
            cfg, n_trains=(100, 200), n_shift=200, n_test=100, widths=(8,), mlp_steps=5,
            learning_rates=(1e-2,), weight_decays=(0.0,), rff_features=0, n_mc=8,
            shift_users=50,
        )  # fmt: skip
    grid = {"nonlinearity": cfg.nonlinearities, "private_correlation": cfg.private_correlations}
    n_seeds = cfg.n_seeds
    if not p["full"]:
        grid = {k: v[:2] for k, v in grid.items()}
        n_seeds = 1
    fn = sa.make_study_fn(cfg)
    t0 = time.perf_counter()
    df = sweep.run_grid(fn, key=jax.random.key(0), grid=grid, n_seeds=n_seeds, progress=False)
    wall = time.perf_counter() - t0
    return dict(
        value=wall,
        unit="s (incl. compile)",
        size=f"{len(df)} rows ({'StudyConfig.full()' if p['full'] else 'tiny config'})",
        detail=f"n_trains={cfg.n_trains}, probe widths={cfg.widths}",
    )


def _movielens(path, dry):
    import numpy as np

    if path:
        z = np.load(path)
        u, i = z["user_idx"].astype(np.int32), z["item_idx"].astype(np.int32)
        nu, ni, name = int(z["n_users"]), int(z["n_items"]), "MovieLens"
    elif dry:
        rng = np.random.default_rng(0)
        nu, ni, name = 60, 80, "synthetic (dry run)"
        pairs = np.unique(rng.integers(0, [nu, ni], size=(1500, 2)), axis=0)
        u, i = pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32)
    else:
        raise Skipped("no --movielens .npz given")
    rng = np.random.default_rng(0)
    test = rng.random(u.size) < 0.2
    return u, i, nu, ni, test, name


def _case_model(family_name, p, dry, path):
    import jax

    models = load("models")
    ranking = load("ranking")
    padding = load("data.padding")
    if not hasattr(models, "make_train_data"):
        raise Skipped("complemjax.models has no model families here (branch wt/models)")
    u, i, nu, ni, test, name = _movielens(path, dry)
    data = models.make_train_data(u[~test], i[~test], n_users=nu, n_items=ni)
    if family_name == "bpr":
        fam, hp = models.BPR(), models.BPRHParams()
    else:
        fam, hp = models.LightGCN(), models.LightGCNHParams()
    state0 = fam.init(jax.random.key(0), data, hp)
    n_ep = p["epochs"]
    t, (state, _) = H.time_call(lambda: fam.train_epochs(state0, data, hp, n_ep), repeats=2)
    ue, ie = fam.embeddings(state, data, hp)
    hist = padding.pad_item_sets(u[~test], i[~test], nu)
    tst = padding.pad_item_sets(u[test], i[test], nu)
    top = ranking.topk_from_embeddings(ue, ie, k=20, exclude=hist)
    rec = ranking.evaluate_topk(top.items, tst, ks=(20,)).summary()["recall@20"]
    n_train = int((~test).sum())
    return dict(
        value=n_train * n_ep / t.min_s,
        unit="interactions/s",
        size=f"{name}: {nu:,} users, {ni:,} items, {n_train:,} training pairs, {n_ep} epochs",
        detail=f"Recall@20 {rec:.4f} (default hyperparameters); first call {t.first_s:.1f}s",
    )


def run_case(name, dry, movielens):
    import jax

    params = (DRY if dry else FULL)[name]
    try:
        if name in ("bpr", "lightgcn"):
            out = _case_model(name, params, dry, movielens)
        else:
            out = globals()[f"case_{name}"](params, dry)
        out["status"] = "ok"
    except Skipped as e:
        out = {"status": f"skipped: {e}"}
    out["device"] = str(jax.devices()[0])
    out["device_peak_mb"] = H.device_peak_mb()
    return out


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def cpu_figures(path):
    """``{gpu_case: row}`` from the CPU baseline JSON (rows that carry ``gpu_case``)."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        data = json.load(f)
    out = {}
    for bench in data.values():
        for row in bench.get("rows", []):
            if row.get("gpu_case"):
                out[row["gpu_case"]] = row
    return out


def fmt(v):
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def table(results, cpu, device):
    lines = [
        f"GPU: {device}. CPU: figures from `experiments/cpu_baseline.json`.",
        "",
        "| case | GPU | GPU size | CPU | CPU size | notes |",
        "|---|---|---|---|---|---|",
    ]
    for name in CASES:
        r = results.get(name)
        if r is None:
            continue
        c = cpu.get(name, {})
        cpu_txt = f"{fmt(c.get('value'))} {c.get('unit', '')}".strip() if c else "n/a"
        if r.get("status") == "ok":
            gpu_txt = f"{fmt(r['value'])} {r['unit']}"
            note = r.get("detail", "")
        else:
            gpu_txt, note = "—", r.get("status", "")
        size = r.get("size", "")
        lines.append(f"| {name} | {gpu_txt} | {size} | {cpu_txt} | {c.get('size', '')} | {note} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="tiny sizes; CPU allowed")
    p.add_argument("--movielens", default=None, help=".npz from export_movielens_npz.py")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    p.add_argument("--cpu-baseline", default=os.path.join(HERE, "cpu_baseline.json"))
    p.add_argument("--out", default=None, help="write the markdown table here")
    p.add_argument("--json", default=None, help="write the raw results here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        H.emit(run_case(args.worker, args.dry_run, args.movielens))
        return 0
    import jax

    devices = jax.devices()
    platform = devices[0].platform
    if platform == "cpu" and not args.dry_run:
        print(f"refusing to run on CPU (jax.devices() = {devices}); use --dry-run to test")
        return 2
    cases = [c for c in args.cases.split(",") if c]
    bad = sorted(set(cases) - set(CASES))
    if bad:
        p.error(f"unknown cases {bad}; choose from {CASES}")
    t_start = time.perf_counter()
    results = {}
    for name in cases:
        wargs = ["--worker", name, "--cpu-baseline", args.cpu_baseline]
        wargs += ["--dry-run"] if args.dry_run else []
        wargs += ["--movielens", args.movielens] if args.movielens else []
        limit = 120 if args.dry_run else LIMITS[name]
        t0 = time.perf_counter()
        try:
            results[name] = H.run_worker(__file__, wargs, timeout=limit)
        except Exception as e:
            kind = "timed out" if "Timeout" in type(e).__name__ else "failed"
            last = str(e).strip().splitlines()[-1:] or [""]
            results[name] = {"status": f"{kind} after {time.perf_counter() - t0:.0f}s: {last[0]}"}
        r = results[name]
        print(
            f"[{time.perf_counter() - t_start:6.1f}s] {name}: {r.get('status')} "
            f"{fmt(r.get('value'))} {r.get('unit', '')}",
            flush=True,
        )
    md = table(results, cpu_figures(args.cpu_baseline), str(devices[0]))
    md += f"\nTotal wall time {time.perf_counter() - t_start:.0f}s.\n"
    print("\n" + md)
    if args.out:
        with open(args.out, "w") as f:
            f.write(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": H.machine_info(), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

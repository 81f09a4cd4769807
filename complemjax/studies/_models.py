"""Every recommender of the MovieLens studies, trained by one protocol and cached.

Learned models (BPR-MF, LightGCN, AlphaRec, RLMRec-Con) are
:class:`~complemjax.models.protocol.ModelFamily` instances: each declares a grid of
exactly ``PipelineConfig.n_configs`` configurations, is *tuned once per variant* on the
tuning split (:data:`~complemjax.studies._movielens.TUNE_SEED`, validation only) by
:func:`complemjax.models.select` with the same ``max_epochs`` / ``eval_every`` /
``patience``, and is then *retrained per evaluation seed* with the chosen configuration
(:func:`complemjax.models.retrain`, epochs chosen on that seed's ``valid_select``).
EASE (closed form) chooses its l2 from ``n_configs`` values the same way. The semantic
ranker is chosen on ``valid_select`` among its variants. Nothing here sees test items.
"""

from __future__ import annotations

import dataclasses
import pickle
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from complemjax import models, recommenders
from complemjax.studies import _movielens as ml
from complemjax.studies._movielens import K, PipelineConfig, Prepared, PreparedCold, Ranker

if TYPE_CHECKING:
    from complemjax.studies.base import Progress, StageTimer

__all__ = ["FamilySpec", "degraded", "ease", "family_specs", "fit_learned", "knn_scores",
           "popularity", "random_ranker", "semantic_grid", "semantic_ranker", "semantic_variant",
           "train_data", "tune", "tune_semantic"]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """A learned model of the studies: its family and its grid of ``n_configs`` entries."""

    name: str
    family: Any
    grid: tuple  # of *HParams
    needs_features: bool = False


def _lightgcn_grid(n: int, n_layers: int) -> tuple:
    lrs = (1e-3, 3e-3, 1e-2, 3e-2)
    l2s = (1e-4, 1e-3)
    combos = [(lr, l2) for l2 in l2s for lr in lrs]
    combos = sorted(combos, key=lambda c: (abs(np.log10(c[0]) + 2.5), c[1]))[:n]
    return tuple(
        models.LightGCNHParams(learning_rate=lr, l2=l2, n_layers=n_layers) for lr, l2 in combos
    )


def _bpr_grid(n: int) -> tuple:
    """BPR-MF configurations around ``learning_rate = 5e-3, l2 = 1e-4``.

    That is the benchmark setting, which trains on MovieLens within the epoch budget
    (measured on the tuning split).
    """
    combos = ((5e-3, 1e-4), (1e-2, 1e-4), (2e-3, 1e-4), (5e-3, 1e-3), (5e-3, 1e-5),
              (2e-2, 1e-4), (1e-3, 1e-4), (1e-2, 1e-3))  # fmt: skip
    return tuple(models.BPRHParams(learning_rate=lr, l2=l2) for lr, l2 in combos[:n])


def family_specs(cfg: PipelineConfig) -> dict[str, FamilySpec]:
    """BPR-MF, LightGCN and AlphaRec, each with ``cfg.n_configs`` configurations.

    RLMRec-Con is built by :func:`rlmrec_spec`, on LightGCN's tuned backbone.
    """
    n = cfg.n_configs
    specs = {
        "bpr": FamilySpec(
            "bpr",
            models.BPR(config=models.BPRConfig(dim=cfg.dim, batch_size=1024)),
            _bpr_grid(n),
        ),
        "lightgcn": FamilySpec(
            "lightgcn",
            _lightgcn_family(cfg),
            _lightgcn_grid(n, 2),
        ),
    }
    specs.update(_alignment_specs(cfg))
    return specs


def _alignment_specs(cfg: PipelineConfig) -> dict[str, FamilySpec]:
    """AlphaRec with ``n_configs`` configurations.

    τ ∈ {0.1, 0.2} × learning rate ∈ {5e-4, 1e-3}, 2 layers (the official τ 0.15, lr 5e-4 and 2
    layers lie inside).
    """
    from complemjax.models.alpharec import AlphaRec, AlphaRecHParams

    grid = tuple(
        AlphaRecHParams(temperature=t, learning_rate=lr, n_layers=2)
        for t in (0.1, 0.2) for lr in (5e-4, 1e-3)
    )  # fmt: skip
    fam = AlphaRec(dim=cfg.dim)
    return {"alpharec": FamilySpec("alpharec", fam, _fill(grid, cfg.n_configs), True)}


def rlmrec_spec(cfg: PipelineConfig, backbone_hp: models.LightGCNHParams) -> FamilySpec:
    """RLMRec-Con on the LightGCN backbone at ``backbone_hp`` (LightGCN's tuned settings).

    The grid is the first ``n_configs`` alignment weights of ``cfg`` (0 = the backbone) at
    τ = 0.2, so weight 0 is exactly the tuned LightGCN.
    """
    from complemjax.models.rlmrec import RLMRec, RLMRecHParams

    grid = tuple(
        RLMRecHParams(backbone_hp.learning_rate, backbone_hp.l2, backbone_hp.n_layers,
                      float(w), 0.2)
        for w in cfg.align_weights[: cfg.n_configs]
    )  # fmt: skip
    return FamilySpec("rlmrec", RLMRec(backbone=_lightgcn_family(cfg)), grid, True)


def _lightgcn_family(cfg: PipelineConfig):
    return models.LightGCN(dim=cfg.dim, max_layers=2, batch_size=cfg.batch_size)


def _fill(grid: tuple, n: int) -> tuple:
    return tuple(grid[j % len(grid)] for j in range(n)) if len(grid) < n else grid[:n]


def train_data(prep: Prepared | PreparedCold, *, features: bool = False) -> models.TrainData:
    """:class:`~complemjax.models.TrainData` of the training split.

    Semantic features are attached for the models that use them.
    """
    return models.make_train_data(
        prep.train_user, prep.train_item, n_users=prep.n_users, n_items=prep.n_items,
        item_features=np.asarray(prep.x) if features else None,
    )  # fmt: skip


def _protocol(cfg: PipelineConfig) -> dict:
    return {"max_epochs": cfg.max_epochs, "eval_every": cfg.eval_every,
            "patience": cfg.patience, "k": K}  # fmt: skip


def tune(spec: FamilySpec, prep: Prepared, cfg: PipelineConfig, cache: ml.ModelCache) -> dict:
    """Select ``spec``'s configuration on the tuning split's ``valid_select``.

    Returns the selection row (method, configs tried, chosen hyperparameters, epochs,
    validation recall, seconds, edge flags), cached like a model.
    """

    def fit() -> Ranker:
        data = train_data(prep, features=spec.needs_features)
        sel = models.select(
            spec.family, jax.random.key(prep.seed), data, models.stack_hparams(spec.grid),
            valid_sets=prep.valid_select, exclude_sets=prep.train_sets, **_protocol(cfg),
        )  # fmt: skip
        info = {**sel.row(), "chosen_index": int(sel.best_index), "seconds": sel.train_seconds}
        info["chosen"] = sel.row()["chosen"]
        return Ranker(spec.name, sel.user_emb, sel.item_emb, info)

    return cache.get_or_fit(prep, f"tune-{spec.name}", _grid_key(spec, cfg), fit).info


def _grid_key(spec: FamilySpec, cfg: PipelineConfig) -> dict:
    return {"family": repr(spec.family), "grid": [repr(h) for h in spec.grid],
            **_protocol(cfg)}  # fmt: skip


def fit_learned(
    spec: FamilySpec,
    prep: Prepared | PreparedCold,
    tuned: dict,
    cfg: PipelineConfig,
    cache: ml.ModelCache,
    *,
    init_seed: int = 0,
    hparams: Any = None,
    name: str | None = None,
) -> Ranker:
    """Retrain the tuned configuration (or ``hparams``) on ``prep``'s seed.

    Epochs are chosen on its ``valid_select``. ``init_seed`` > 0 gives the CF-seed null (another
    init).
    """
    hp = spec.grid[tuned["chosen_index"]] if hparams is None else hparams
    key_info = {**_grid_key(spec, cfg), "hparams": repr(hp), "init_seed": init_seed}
    label = name or spec.name

    def fit() -> Ranker:
        data = train_data(prep, features=spec.needs_features)
        key = jax.random.fold_in(jax.random.key(prep.seed), 1000 * init_seed + 1)
        f = models.retrain(
            spec.family, key, data, hp, valid_sets=prep.valid_select,
            exclude_sets=prep.train_sets, **_protocol(cfg),
        )  # fmt: skip
        info = {"method": label, "epochs": f.best_epoch, "valid_recall": f.valid_score,
                "seconds": f.train_seconds, "edge": "; ".join(f.edge)}  # fmt: skip
        return Ranker(label, f.user_emb, f.item_emb, info)

    return cache.get_or_fit(prep, label, key_info, fit)


# ----------------------------------------------------------------------------- non-learned
def popularity(prep: Prepared | PreparedCold) -> Ranker:
    """Training interaction counts (the same list for every user)."""
    u = jnp.ones((prep.n_users, 1))
    i = jnp.asarray(prep.counts, jnp.float32)[:, None]
    return Ranker("popularity", u, i, {"method": "popularity"})


def random_ranker(prep: Prepared | PreparedCold, key: jax.Array) -> Ranker:
    """Uniformly random scores per (user, item): the chance-level reference."""
    scores = jax.random.uniform(key, (prep.n_users, prep.n_items))
    return Ranker("random", scores, None, {"method": "random"})


def semantic_grid(full: bool) -> tuple[tuple, tuple]:
    """``(rankers, postprocesses)`` the semantic ranker is selected from.

    Every default of
    :mod:`complemjax.recommenders` × :mod:`complemjax.semantic` with ``full``, else five
    rankers (mean, rating, recency(h=50), item-kNN N = 20, 100) × raw, centred and
    all-but-the-top-1 vectors.
    """
    from complemjax import semantic

    if full:
        return recommenders.DEFAULT_RANKERS, semantic.DEFAULT_POSTPROCESSES
    names = ("mean", "rating", "recency(h=50)", "item_knn(N=20)", "item_knn(N=100)")
    kinds = [r for r in recommenders.DEFAULT_RANKERS if r.describe() in names]
    return tuple(kinds), tuple(semantic.DEFAULT_POSTPROCESSES[:3])


def tune_semantic(
    prep: Prepared,
    cache: ml.ModelCache,
    *,
    full: bool = False,
    view: str = "wordllama/base",
    method: str = "semantic",
) -> dict:
    """The semantic ranker × embedding post-processing, chosen once per variant.

    Chosen on the tuning split's ``valid_select``
    (:func:`complemjax.recommenders.select_semantic_ranker`).

    The semantic view uses only item text and the user's own training history (ratings
    and times of it for the weighted profiles): no popularity, no other user.

    Args:
        prep: the tuning split, carrying the item vectors of ``view``.
        cache: the model cache (the selection is stored like a model).
        full: the full grid of :func:`semantic_grid`.
        view: ``encoder/template`` of ``prep.x`` (part of the cache key).
        method: the ``method`` label of the returned selection row.

    Returns:
        The selection row; ``trials`` holds every (post-processing, ranker) tried with its
        validation Recall@20, ``ranker_index`` / ``pp_index`` the choice.
    """
    rankers, pps = semantic_grid(full)

    def fit() -> Ranker:
        t = time.perf_counter()
        sel = recommenders.select_semantic_ranker(
            prep.x, prep.train_user, prep.train_item, n_users=prep.n_users,
            valid_sets=prep.valid_select, ratings=prep.train_ratings,
            timestamps=prep.train_times, rankers=rankers, postprocesses=pps,
            fit_mask=prep.has_text, k=K,
        )  # fmt: skip
        info = {"method": method, "configs": len(sel.trials), "view": view,
                "chosen": f"{sel.ranker.describe()}, {sel.postprocess.describe()}",
                "ranker_index": rankers.index(sel.ranker),
                "pp_index": pps.index(sel.postprocess), "epochs": 0,
                "valid_recall@20": sel.valid_score, "train_s": time.perf_counter() - t,
                "edge": "", "trials": sel.trials}  # fmt: skip
        return Ranker("semantic", jnp.zeros((1, 1)), None, info)

    key = {"rankers": [r.describe() for r in rankers], "pps": [p.describe() for p in pps],
           "view": view}  # fmt: skip
    return {**cache.get_or_fit(prep, "tune-semantic", key, fit).info, "method": method}


def semantic_variant(
    prep: Prepared | PreparedCold,
    ranker: recommenders.SemanticRanker,
    x: jax.typing.ArrayLike,
    *,
    neighbors: recommenders.ItemNeighbors | None = None,
    info: dict | None = None,
) -> Ranker:
    """One semantic ranker variant on ``prep``'s seed, from post-processed item vectors ``x``.

    Profile kinds: ``user_emb`` = the unit profile (:func:`recommenders.user_profiles` of
    the seed's training history, weighted by rating or recency), ``item_emb`` = unit rows
    of ``x``, so the dot product is the cosine. Item-kNN: dense ``[U, I]`` score rows
    (:func:`knn_scores`). ``neighbors``: precomputed :func:`recommenders.item_neighbors` of
    ``x`` with at least ``ranker.n_neighbors`` columns (default: computed here).
    """
    info = {"method": "semantic", **(info or {})}
    u, i = prep.train_user, prep.train_item
    if ranker.kind == "item_knn":
        n = ranker.n_neighbors
        nb = recommenders.item_neighbors(x, n_neighbors=n) if neighbors is None else neighbors
        nb = recommenders.ItemNeighbors(nb.items[:, :n], nb.sims[:, :n])
        return Ranker("semantic", knn_scores(nb, u, i, prep.n_users), None, info)
    w = None
    if ranker.kind in ("rating", "liked"):
        w = recommenders.rating_weights(prep.train_ratings, min_rating=ranker.min_rating)
    elif ranker.kind == "recency":
        w = recommenders.recency_weights(
            u, prep.train_times, n_users=prep.n_users, half_life=ranker.half_life
        )
    xu = ml.unit_rows(x)
    prof = recommenders.user_profiles(xu, u, i, n_users=prep.n_users, weights=w)
    return Ranker("semantic", ml.unit_rows(prof), xu, info)


def knn_scores(
    neighbors: recommenders.ItemNeighbors,
    user_idx: jax.typing.ArrayLike,
    item_idx: jax.typing.ArrayLike,
    n_users: int,
) -> jax.Array:
    """Dense ``[n_users, n_items]`` item-kNN scores as one sparse product.

    The scores of :func:`recommenders.item_knn_score_fn`: ``s(u, i) = Σ_j H[u, j] S[j, i]`` with
    ``H`` the binary history (``user_idx``, ``item_idx``) and ``S[j, i] = cos(x_i, x_j)`` for ``j ∈
    N_N(i)``, else 0.

    The same scores as the jitted ``score_fn`` (the tests pin them) with no compilation,
    which matters here: every seed of a data variant has its own catalogue size, so a
    jitted path recompiles per seed. Memory ``O(users × items)`` (the result).
    """
    import scipy.sparse as sp

    nbr = np.asarray(neighbors.items)
    n_items = nbr.shape[0]
    ok = nbr >= 0
    rows = nbr[ok]
    cols = np.broadcast_to(np.arange(n_items)[:, None], nbr.shape)[ok]
    sims = np.asarray(neighbors.sims, np.float32)[ok]
    s = sp.csr_matrix((sims, (rows, cols)), shape=(n_items, n_items))
    h = sp.csr_matrix(
        (np.ones(len(user_idx), np.float32), (np.asarray(user_idx), np.asarray(item_idx))),
        shape=(n_users, n_items),
    )
    h.sum_duplicates()
    h.data[:] = 1.0
    return jnp.asarray((h @ s).toarray(), jnp.float32)


def semantic_ranker(prep: Prepared | PreparedCold, tuned: dict, *, full: bool = False) -> Ranker:
    """The tuned semantic ranker on ``prep``'s seed.

    (Post-processing refitted on the
    catalogue text vectors of ``prep.x``; profiles or item-kNN from the seed's training
    history), by :func:`semantic_variant`.
    """
    from complemjax import semantic

    rankers, pps = semantic_grid(full)
    r, pp = rankers[tuned["ranker_index"]], pps[tuned["pp_index"]]
    x = semantic.postprocess(prep.x, pp, mask=prep.has_text)
    return semantic_variant(prep, r, x, info={"chosen": tuned["chosen"]})


def ease(prep: Prepared, l2: float) -> Ranker:
    """EASE (Steck 2019) at penalty ``l2``; dense ``[U, I]`` score rows.

    :func:`complemjax.models.fit_ease` on the items with a training interaction only (an
    item without one has a zero Gram column, hence a zero column of B and score 0, exactly
    as in the full fit), which cuts the O(I³) solve.
    """
    import scipy.sparse as sp

    t = time.perf_counter()
    active = np.flatnonzero(prep.counts > 0)
    remap = np.full(prep.n_items, -1)
    remap[active] = np.arange(active.size)
    items = remap[prep.train_item]
    b = models.fit_ease(prep.train_user, items, n_users=prep.n_users, n_items=active.size, l2=l2)
    x = sp.csr_matrix(
        (np.ones(items.size, np.float32), (prep.train_user, items)),
        shape=(prep.n_users, active.size),
    )
    scores = np.zeros((prep.n_users, prep.n_items), np.float32)
    scores[:, active] = np.asarray(x @ np.asarray(b), np.float32)
    info = {"method": "EASE", "l2": l2, "seconds": time.perf_counter() - t}
    return Ranker("ease", jnp.asarray(scores), None, info)


def ease_grid(n: int) -> tuple[float, ...]:
    return tuple(np.geomspace(50.0, 1600.0, n).round(1))


def select_ease(prep: Prepared, cfg: PipelineConfig, cache: ml.ModelCache) -> dict:
    """EASE's l2 from ``n_configs`` values, on the tuning split's ``valid_select``."""

    def fit() -> Ranker:
        t = time.perf_counter()
        recs = []
        for l2 in ease_grid(cfg.n_configs):
            r = ease(prep, float(l2))
            recs.append(ml.recall_at_k(r.topk(prep.train_sets), prep.valid_select))
        j = int(np.argmax(recs))
        grid = ease_grid(cfg.n_configs)
        edge = "l2 at the edge of the grid" if j in (0, len(grid) - 1) else ""
        info = {"method": "EASE", "configs": len(grid), "chosen": f"l2={grid[j]:g}",
                "chosen_index": j, "l2": float(grid[j]), "epochs": 0, "edge": edge,
                "valid_recall@20": recs[j], "train_s": time.perf_counter() - t}  # fmt: skip
        return Ranker("ease", jnp.zeros((1, 1)), None, info)

    return cache.get_or_fit(prep, "tune-ease", {"grid": list(ease_grid(cfg.n_configs))}, fit).info


def fit_ease(prep: Prepared, tuned: dict, cache: ml.ModelCache) -> Ranker:
    """EASE at the tuned l2 on ``prep``'s seed (cached: EASE keeps its fit)."""
    return cache.get_or_fit(prep, "ease", {"l2": tuned["l2"]}, lambda: ease(prep, tuned["l2"]))


def degraded(
    base: Ranker, prep: Prepared, target: float, key: jax.Array, *, steps: int = 14
) -> Ranker:
    """``base`` with Gaussian noise on its user vectors, accuracy-matched to ``target``.

    The noise is scaled so that its ``valid_select`` Recall@20 matches ``target`` (bisection on the
    log noise scale).

    The accuracy-matched CF null: a CF ranker as accurate on validation as the semantic
    ranker, so that "adds unique hits" can be judged against a ranker that is merely weak.
    """
    ue = jnp.asarray(base.user_emb)
    eps = jax.random.normal(key, ue.shape) * jnp.std(ue)
    lo, hi = -3.0, 3.0
    best = None
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        r = Ranker("degraded", ue + (10.0**mid) * eps, base.item_emb, {})
        rec = ml.recall_at_k(r.topk(prep.train_sets), prep.valid_select)
        if best is None or abs(rec - target) < abs(best[0] - target):
            best = (rec, mid, r)
        lo, hi = (mid, hi) if rec > target else (lo, mid)
    rec, mid, r = best
    info = {"method": f"{base.name} degraded", "noise_scale": float(10.0**mid),
            "valid_recall": rec, "target_valid_recall": target}  # fmt: skip
    return Ranker(f"{base.name}-degraded", r.user_emb, r.item_emb, info)


# ----------------------------------------------------------------------------- orchestration
def tune_variant(
    variant: str,
    cfg: PipelineConfig,
    cache: ml.ModelCache,
    timer: StageTimer,
    semantic_views: Sequence[tuple[str, str]] = (),
) -> dict:
    """Tune every model once for ``variant`` on the tuning split (validation only).

    Returns ``{model: selection row}`` for semantic, bpr, lightgcn, ease, alpharec and
    rlmrec (RLMRec's backbone settings are LightGCN's chosen ones), plus
    ``semantic [encoder/template]`` for each further ``(encoder, template)`` in
    ``semantic_views`` (the same semantic selection on another text view).
    """
    prep = ml.prepare(variant, ml.TUNE_SEED, cfg)
    full = cfg.n_configs > PipelineConfig().n_configs
    out = {}
    with timer("tune: semantic"):
        out["semantic"] = tune_semantic(
            prep, cache, full=full, view=ml.view_label(cfg.encoder, "base")
        )
        for enc, tmpl in semantic_views:
            label = ml.view_label(enc, tmpl)
            if label != out["semantic"]["view"]:
                out[f"semantic [{label}]"] = tune_semantic(
                    ml.with_view(prep, enc, tmpl), cache, full=full, view=label,
                    method=f"semantic [{label}]",
                )  # fmt: skip
    specs = family_specs(cfg)
    for name, spec in specs.items():
        with timer(f"tune: {name}"):
            out[name] = tune(spec, prep, cfg, cache)
    with timer("tune: ease"):
        out["ease"] = select_ease(prep, cfg, cache)
    with timer("tune: rlmrec"):
        out["rlmrec"] = tune(rlmrec_spec(cfg, _chosen(specs["lightgcn"], out)), prep, cfg, cache)
    return out


def _chosen(spec: FamilySpec, tuned: dict):
    return spec.grid[tuned[spec.name]["chosen_index"]]


def learned_ranker(
    name: str,
    prep: Prepared,
    cfg: PipelineConfig,
    tuned: dict,
    cache: ml.ModelCache,
    *,
    init_seed: int = 0,
    weight: float | None = None,
) -> Ranker:
    """A learned model on ``prep``'s seed at its tuned configuration.

    ``name`` in bpr, lightgcn, alpharec, rlmrec. For rlmrec, ``weight`` overrides the
    selected alignment weight (the C5 sweep); weight 0 returns the cached LightGCN (the
    same model, bit for bit, as the RLMRec tests show) instead of training it again.
    """
    specs = family_specs(cfg)
    if name != "rlmrec":
        label = name if init_seed == 0 else f"{name}-seed{init_seed + 1}"
        return fit_learned(specs[name], prep, tuned[name], cfg, cache, init_seed=init_seed,
                           name=label)  # fmt: skip
    spec = rlmrec_spec(cfg, _chosen(specs["lightgcn"], tuned))
    hp = spec.grid[tuned["rlmrec"]["chosen_index"]]
    if weight is not None:
        hp = hp.replace(align_weight=float(weight))
    if float(hp.align_weight) == 0.0:
        r = learned_ranker("lightgcn", prep, cfg, tuned, cache, init_seed=init_seed)
        return Ranker("rlmrec", r.user_emb, r.item_emb, {**r.info, "method": "rlmrec (w=0)"})
    label = f"rlmrec(w={float(hp.align_weight):g})"
    if init_seed:
        label += f"-seed{init_seed + 1}"
    return fit_learned(spec, prep, tuned["rlmrec"], cfg, cache, init_seed=init_seed,
                       hparams=hp, name=label)  # fmt: skip


def base_rankers(
    prep: Prepared,
    cfg: PipelineConfig,
    tuned: dict,
    cache: ml.ModelCache,
    timer: StageTimer,
    key: jax.Array,
) -> dict[str, Ranker]:
    """Every single-view ranker of one seed (the studies share this, and the cache).

    Keys: semantic, popularity, random, bpr, bpr-seed2 (the CF-seed null), lightgcn,
    ease, alpharec, rlmrec (selected weight), bpr-degraded (accuracy-matched null).
    """
    full = cfg.n_configs > PipelineConfig().n_configs
    out = {}
    with timer("semantic ranker"):
        out["semantic"] = semantic_ranker(prep, tuned["semantic"], full=full)
    out["popularity"] = popularity(prep)
    out["random"] = random_ranker(prep, jax.random.fold_in(key, 7))
    for name, seed in (("bpr", 0), ("bpr", 1), ("lightgcn", 0), ("alpharec", 0), ("rlmrec", 0)):
        r = None
        with timer(f"train: {name}"):
            r = learned_ranker(name, prep, cfg, tuned, cache, init_seed=seed)
        out[r.name if name != "rlmrec" else "rlmrec"] = r
    with timer("train: ease"):
        out["ease"] = fit_ease(prep, tuned["ease"], cache)
    with timer("degraded null"):
        target = ml.recall_at_k(out["semantic"].topk(prep.train_sets), prep.valid_select)
        out["bpr-degraded"] = degraded(out["bpr-seed2"], prep, target, jax.random.fold_in(key, 9))
    return out


def unit_key(seed: int, variant: str, salt: int = 0) -> jax.Array:
    """PRNG key of one (variant, seed) unit, the same in every process.

    Python's ``hash(str)`` is salted per process, so it must not enter a key; the variant
    name enters through its CRC-32 instead.
    """
    return jax.random.fold_in(jax.random.key(seed), zlib.crc32(variant.encode()) % 1000 + salt)


def run_units(
    name: str,
    pipeline: PipelineConfig,
    seed: int,
    cache: ml.ModelCache,
    timer: StageTimer,
    one_seed: Callable[[str, int, dict], Any],
    *,
    ckpt: Path,
    progress: Progress,
    resume: bool,
    semantic_views: Sequence[tuple[str, str]] = (),
) -> tuple[list, dict]:
    """Tune each variant once, then run ``one_seed(variant, s, tuned)`` per evaluation seed.

    Each finished (variant, seed) unit is pickled under ``ckpt``; with ``resume`` a saved
    unit is read back instead of recomputed. ``progress`` is a
    :class:`~complemjax.studies.base.Progress` over ``len(variants) * (n_seeds + 1)`` steps.
    ``semantic_views``: further ``(encoder, template)`` views to tune the semantic ranker on
    (:func:`tune_variant`).

    Returns:
        ``(parts, tuned_all)``: the units' results in order, and each variant's tuning.
    """
    parts, tuned_all = [], {}
    for variant in pipeline.variants:
        tuned_all[variant] = tune_variant(variant, pipeline, cache, timer, semantic_views)
        progress.step(f"{variant} tuning")
        for s in range(seed, seed + pipeline.n_seeds):
            path = ckpt / f"{variant}-s{s}.pkl"
            if resume and path.is_file():
                parts.append(pickle.loads(path.read_bytes()))
                progress.step(f"{variant} seed {s}", skipped=True)
                continue
            res = one_seed(variant, s, tuned_all[variant])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps(res))
            parts.append(res)
            progress.step(f"{variant} seed {s}")
    return parts, tuned_all

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
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from complemjax import models, recommenders
from complemjax.studies import _movielens as ml
from complemjax.studies._movielens import K, PipelineConfig, Prepared, Ranker

__all__ = ["FamilySpec", "degraded", "ease", "family_specs", "fit_learned", "popularity",
           "random_ranker", "semantic_ranker", "train_data", "tune"]  # fmt: skip


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


def family_specs(cfg: PipelineConfig) -> dict[str, FamilySpec]:
    """The learned models available in this checkout, each with ``cfg.n_configs`` configs.

    BPR-MF is LightGCN with 0 propagation layers: the same (official LightGCN) BPR loss,
    sampler, optimiser and L2 on the ego embeddings, so the two differ only in propagation.
    """
    n = cfg.n_configs
    specs = {
        "bpr": FamilySpec(
            "bpr",
            models.LightGCN(dim=cfg.dim, max_layers=0, batch_size=cfg.batch_size, name="BPR-MF"),
            _lightgcn_grid(n, 0),
        ),
        "lightgcn": FamilySpec(
            "lightgcn",
            models.LightGCN(dim=cfg.dim, max_layers=2, batch_size=cfg.batch_size),
            _lightgcn_grid(n, 2),
        ),
    }
    specs.update(_alignment_specs(cfg))
    return specs


def _alignment_specs(cfg: PipelineConfig) -> dict[str, FamilySpec]:
    """AlphaRec and RLMRec-Con when their modules exist (``complemjax.models``)."""
    out = {}
    alpharec = getattr(models, "AlphaRec", None)
    if alpharec is not None:
        hp = models.AlphaRecHParams
        taus, lrs = (0.1, 0.2), (1e-3, 5e-3)
        grid = tuple(hp(learning_rate=lr, temperature=t) for t in taus for lr in lrs)
        out["alpharec"] = FamilySpec(
            "alpharec", alpharec(batch_size=cfg.batch_size), _fill(grid, cfg.n_configs), True
        )
    rlmrec = getattr(models, "RLMRec", None)
    if rlmrec is not None:
        out["rlmrec"] = FamilySpec(
            "rlmrec",
            rlmrec(dim=cfg.dim, max_layers=2, batch_size=cfg.batch_size),
            _rlmrec_grid(cfg),
            True,
        )
    return out


def _rlmrec_grid(cfg: PipelineConfig) -> tuple:
    hp = models.RLMRecHParams
    ws = [w for w in cfg.align_weights if w > 0][: cfg.n_configs]
    return tuple(hp(learning_rate=3e-3, l2=1e-4, n_layers=2, align_weight=w) for w in ws)


def _fill(grid: tuple, n: int) -> tuple:
    return tuple(grid[j % len(grid)] for j in range(n)) if len(grid) < n else grid[:n]


def train_data(prep: Prepared, *, features: bool = False) -> models.TrainData:
    """:class:`~complemjax.models.TrainData` of the training split (semantic features
    attached for the models that use them)."""
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
    prep: Prepared,
    tuned: dict,
    cfg: PipelineConfig,
    cache: ml.ModelCache,
    *,
    init_seed: int = 0,
    hparams: Any = None,
    name: str | None = None,
) -> Ranker:
    """Retrain the tuned configuration (or ``hparams``) on ``prep``'s seed; epochs chosen
    on its ``valid_select``. ``init_seed`` > 0 gives the CF-seed null (another init)."""
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
def popularity(prep) -> Ranker:
    """Training interaction counts (the same list for every user)."""
    u = jnp.ones((prep.n_users, 1))
    i = jnp.asarray(prep.counts, jnp.float32)[:, None]
    return Ranker("popularity", u, i, {"method": "popularity"})


def random_ranker(prep, key) -> Ranker:
    """Uniformly random scores per (user, item): the chance-level reference."""
    scores = jax.random.uniform(key, (prep.n_users, prep.n_items))
    return Ranker("random", scores, None, {"method": "random"})


def semantic_ranker(prep: Prepared) -> Ranker:
    """The semantic ranker chosen on ``valid_select`` among its variants.

    Variants (user = mean of the unit vectors of the training items, cosine scores):
    raw encoder vectors, and vectors centred by the mean over items (removes the shared
    direction that makes every cosine high). Uses only item text and the user's own
    training history: no popularity, no other user.
    """
    t = time.perf_counter()
    best = None
    for variant in ("centred", "raw"):
        r = _mean_profile(prep, centred=variant == "centred")
        rec = ml.recall_at_k(r.topk(prep.train_sets), prep.valid_select)
        if best is None or rec > best[0]:
            best = (rec, variant, r)
    rec, variant, r = best
    info = {"method": "semantic", "configs": 2, "chosen": f"profile=mean, vectors={variant}",
            "valid_recall": rec, "seconds": time.perf_counter() - t}  # fmt: skip
    return Ranker("semantic", r.user_emb, r.item_emb, info)


def _mean_profile(prep, *, centred: bool) -> Ranker:
    x = jnp.asarray(prep.x)
    if centred:
        has = jnp.asarray(prep.has_text)[:, None]
        mu = jnp.sum(x * has, 0) / jnp.maximum(jnp.sum(has), 1)
        x = jnp.where(has, x - mu, 0.0)
    x = ml.unit_rows(x)
    prof = recommenders.user_profiles(x, prep.train_user, prep.train_item, n_users=prep.n_users)
    return Ranker("semantic", ml.unit_rows(prof), x, {})


def ease(prep: Prepared, l2: float) -> Ranker:
    """EASE (Steck 2019) at penalty ``l2``; dense ``[U, I]`` score rows.

    Fitted on the items with a training interaction only (an item without one has a zero
    Gram column, hence a zero column of B and score 0, exactly as in the full fit), which
    cuts the O(I³) solve.
    """
    import scipy.sparse as sp

    t = time.perf_counter()
    active = np.flatnonzero(prep.counts > 0)
    remap = np.full(prep.n_items, -1)
    remap[active] = np.arange(active.size)
    x = sp.csr_matrix(
        (np.ones(prep.train_user.size), (prep.train_user, remap[prep.train_item])),
        shape=(prep.n_users, active.size),
    )
    g = (x.T @ x).toarray() + l2 * np.eye(active.size)
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    scores = np.zeros((prep.n_users, prep.n_items), np.float32)
    scores[:, active] = np.asarray(x @ b, np.float32)
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
                "chosen_index": j, "l2": float(grid[j]), "epochs": 0,
                "valid_recall@20": recs[j], "train_s": time.perf_counter() - t, "edge": edge}  # fmt: skip
        return Ranker("ease", jnp.zeros((1, 1)), None, info)

    return cache.get_or_fit(prep, "tune-ease", {"grid": list(ease_grid(cfg.n_configs))}, fit).info


def fit_ease(prep: Prepared, tuned: dict, cache: ml.ModelCache) -> Ranker:
    """EASE at the tuned l2 on ``prep``'s seed (cached: EASE keeps its fit)."""
    return cache.get_or_fit(prep, "ease", {"l2": tuned["l2"]}, lambda: ease(prep, tuned["l2"]))


def degraded(base: Ranker, prep: Prepared, target: float, key, *, steps: int = 14) -> Ranker:
    """``base`` with Gaussian noise on its user vectors, scaled so that its
    ``valid_select`` Recall@20 matches ``target`` (bisection on the log noise scale).

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

r"""Study: how much two recommenders built from the two views agree and complement each other.

Synthetic users (:func:`complemjax.generative.sample_interactions`) prefer items through
the shared factors and both private blocks; ``private_reliance`` (the mean of each user's
reliance ``pi_u`` on private factors) and ``density`` (interactions per user over the
number of items) are swept. Two rankers score every item for every user:

- *semantic*: the user's profile is the mean of the L2-normalised semantic vectors ``x``
  of the training items, scored by cosine against every item's ``x``;
- *BPR*: BPR-MF (:func:`complemjax.cf.fit_bpr`, masked padded interactions) trained on
  the sampled training interactions; score ``p_u · q_i``. This is the collaborative view
  *learned from interactions*: density and popularity skew change its quality as on real
  data. Its learning rate, L2 and number of epochs are chosen on validation, once per
  density, by :func:`complemjax.models.protocol.select` (the real-data protocol: the grid
  ``bpr_learning_rates × bpr_l2s`` in one vmapped program, validation Recall@20 every
  ``bpr_eval_every`` epochs, patience ``bpr_patience``, at most ``bpr_epochs``) on a
  separate *tuning world* (its own seed, the median private reliance of the grid) whose
  training interactions are split into fit and validation items (``valid_fraction`` of
  each user's). The evaluation worlds then train on all their training interactions with
  the chosen configuration for the chosen number of epochs (the real-data study re-chooses
  the epoch on each seed's validation; here the epoch is the tuning world's);
- *BPR (other seed)*: the same model with another initialisation/sampling seed, the null
  reference for agreement: semantic-vs-BPR numbers read against BPR-vs-BPR(seed);
- *true CF view* (reference only): the profile recipe of the semantic ranker on the
  generative model's collaborative view ``y``.

All exclude the user's training items. On held-out items the study measures, at K = 10
and 20, each pair's Recall and NDCG, the top-K overlap and Jaccard between the lists,
the unique-hit share of each ranker (``Σ_u |H^A \ H^B| / Σ_u |H^A ∪ H^B|``), the oracle
best-of-two and oracle merge bounds and their gains over the better single ranker, for
the pairs semantic-vs-BPR and BPR-vs-BPR(seed). Each (configuration, seed) is one vmapped
evaluation; intervals are over seeds.

The study also runs *alignment on ground truth* (:mod:`complemjax.studies.synthetic_c5`,
the synthetic counterpart of claim C5): RLMRec-Con trained on synthetic interactions over a
grid of alignment weights, measuring how much of the known CF-private and shared latents
the learned item embeddings keep.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.typing import ArrayLike

from complemjax import cf, models, ranking, recommenders, report, sweep
from complemjax import complementarity as comp
from complemjax import generative as gen
from complemjax.studies import synthetic_c5 as c5

NAME = "synthetic_complementarity"
KS = (10, 20)
PAIRS = ("semantic-bpr", "bpr-bpr_seed")
OUTPUTS = (
    "recall_sem",
    "recall_cf",
    "ndcg_sem",
    "ndcg_cf",
    "overlap",
    "jaccard",
    "unique_share_sem",
    "unique_share_cf",
    "shared_hit_share",
    "oracle_best_recall",
    "oracle_merge_recall",
    "union_2k_recall",
    "oracle_best_gain",
    "oracle_merge_gain",
    "oracle_merge_rel_gain",
)
COLUMNS = {
    "private_reliance": "mean reliance of users on private factors (0 = shared factors only)",
    "density": "target interactions per user / number of items",
    "K": "list length",
    "pair": "rankers A-B: semantic-bpr (the comparison) or bpr-bpr_seed (null reference: "
    "the same BPR with another seed)",
    "recall_sem": "Recall@K of ranker A (semantic, or BPR in the null pair)",
    "recall_cf": "Recall@K of ranker B (BPR, or BPR with another seed)",
    "overlap": "|L_A ∩ L_B| / K, mean over users",
    "jaccard": "|L_A ∩ L_B| / |L_A ∪ L_B|, mean over users",
    "unique_share_sem": "Σ_u |H_A \\ H_B| / Σ_u |H_A ∪ H_B| (micro)",
    "unique_share_cf": "Σ_u |H_B \\ H_A| / Σ_u |H_A ∪ H_B| (micro)",
    "oracle_merge_recall": "mean_u min(|H_A ∪ H_B|, K) / |T_u|: best K-list from the two lists",
    "oracle_merge_gain": "oracle merge Recall − max(Recall_A, Recall_B)",
    "oracle_merge_rel_gain": "oracle merge gain / max(Recall_A, Recall_B)",
    "recall_true_cf": "Recall@K of the profile ranker on the true collaborative view y",
    "mean_interactions": "mean sampled interactions per user",
}


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Grid and sizes of the complementarity study (static; hashable, a jit static argument).

    Attributes:
        private_reliances: grid of the users' mean reliance on private factors.
        densities: grid of target interactions per user / number of items.
        shared_fraction: ``rho``, the shared share of the signal in both views.
        nonlinearity: ``eta`` of the views (0: linear-Gaussian).
        noise: noise variance per dimension in both views (signal variance 1).
        popularity_skew: std of the users' log-popularity item bias.
        n_items, n_users: sizes of every world.
        max_interactions: cap on interactions per user (the padded set width).
        n_seeds: worlds per (private reliance, density).
        bpr_dim, bpr_batch: BPR-MF embedding dimension and triples per step.
        bpr_epochs: the most epochs BPR trains (tuning budget and evaluation cap).
        bpr_learning_rates, bpr_l2s: the BPR grid (full product) chosen from on validation.
        bpr_eval_every: epochs between validation checks (must divide ``bpr_epochs``).
        bpr_patience: checks without improvement before a configuration stops.
        valid_fraction: share of each tuning-world user's training items held out for
            validation.
        views: static shapes of the two views.
        alignment: the synthetic C5 part (:class:`~.synthetic_c5.AlignmentConfig`).
        chunk_size: (configuration, seed) rows per compiled call of the sweep.

    Raises:
        ValueError: ``bpr_eval_every`` does not divide ``bpr_epochs``, or an empty BPR grid.
    """

    private_reliances: tuple[float, ...] = (0.1, 0.5, 0.9)
    densities: tuple[float, ...] = (0.005, 0.02)
    shared_fraction: float = 0.5
    nonlinearity: float = 0.0
    noise: float = 0.1
    popularity_skew: float = 1.0
    n_items: int = 2000
    n_users: int = 2000
    max_interactions: int = 64
    n_seeds: int = 3
    bpr_dim: int = 32
    bpr_epochs: int = 30
    bpr_batch: int = 1024
    bpr_learning_rates: tuple[float, ...] = (3e-3, 1e-2)
    bpr_l2s: tuple[float, ...] = (1e-4, 1e-3)
    bpr_eval_every: int = 10
    bpr_patience: int = 1
    valid_fraction: float = 0.1
    views: gen.ViewsConfig = dataclasses.field(default_factory=gen.ViewsConfig)
    alignment: c5.AlignmentConfig = dataclasses.field(default_factory=c5.AlignmentConfig)
    chunk_size: int = 3

    def __post_init__(self):
        if self.bpr_epochs % self.bpr_eval_every:
            raise ValueError(
                f"`bpr_eval_every`={self.bpr_eval_every} must divide `bpr_epochs`={self.bpr_epochs}"
            )
        if not self.bpr_learning_rates or not self.bpr_l2s:
            raise ValueError("`bpr_learning_rates` and `bpr_l2s` must be non-empty")

    @classmethod
    def full(cls) -> StudyConfig:
        """The configuration of ``--full``: finer grids, larger worlds, more seeds and epochs.

        7 private reliances × 5 densities, 5000 items and users (up to 256 interactions
        each), 5 seeds, BPR tuned over a 4 × 4 grid for up to 60 epochs (checks every 5),
        and the full C5 part (:meth:`~.synthetic_c5.AlignmentConfig.full`).
        """
        return cls(
            private_reliances=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0),
            densities=(0.0025, 0.005, 0.01, 0.02, 0.04),
            n_items=5000,
            n_users=5000,
            max_interactions=256,
            n_seeds=5,
            bpr_epochs=60,
            bpr_learning_rates=(1e-3, 3e-3, 1e-2, 3e-2),
            bpr_l2s=(1e-5, 1e-4, 1e-3, 1e-2),
            bpr_eval_every=5,
            alignment=c5.AlignmentConfig.full(),
        )


def profiles_from_sets(item_emb: ArrayLike, sets: ArrayLike) -> jax.Array:
    """Mean L2-normalised vector of each user's padded item set (segment sum).

    Args:
        item_emb: ``[n_items, d]`` item vectors.
        sets: ``[n_users, m]`` int padded item sets (``-1`` padding).

    Returns:
        ``[n_users, d]`` profiles ``mean_{i ∈ set(u)} v_i / ‖v_i‖`` (zero for empty sets);
        rank by cosine. Padding entries get weight 0 in
        :func:`complemjax.recommenders.user_profiles`, so the result is the same eagerly
        and under ``jit``/``vmap``.
    """
    sets = jnp.asarray(sets)
    n_users, width = sets.shape
    users = jnp.broadcast_to(jnp.arange(n_users)[:, None], (n_users, width)).ravel()
    valid = (sets >= 0).ravel()
    return recommenders.user_profiles(
        item_emb, users, jnp.maximum(sets, 0).ravel(), n_users=n_users, normalize=True,
        weights=valid.astype(jnp.asarray(item_emb).dtype),
    )  # fmt: skip


def _pair_stats(top_a, top_b, test, k):
    r"""The :data:`OUTPUTS` ``[15]`` of top lists A and B at cut-off ``k``, over users.

    From :func:`complemjax.complementarity.pair_user_stats`: Recall and NDCG of A and B and
    the oracle best-of-two, merge and union@2K recalls are means over users with test items;
    overlap and Jaccard are means over users; the hit shares are micro,
    ``Σ_u |H^A \ H^B|``, ``Σ_u |H^B \ H^A|``, ``Σ_u |H^A ∩ H^B|`` over ``Σ_u |H^A ∪ H^B|``.
    Gains are ``oracle − max(Recall_A, Recall_B)``; the relative merge gain divides by that
    maximum (not finite when both recalls are 0).
    """
    s = comp.pair_user_stats(top_a, top_b, test, k=k)
    ra, rb = jnp.nanmean(s.a["recall"]), jnp.nanmean(s.b["recall"])
    best_single = jnp.maximum(ra, rb)
    union = jnp.sum(s.union)
    merge = jnp.nanmean(s.merge["recall"])
    return jnp.stack(
        [
            ra,
            rb,
            jnp.nanmean(s.a["ndcg"]),
            jnp.nanmean(s.b["ndcg"]),
            jnp.mean(s.overlap),
            jnp.nanmean(s.jaccard),
            jnp.sum(s.unique_a) / union,
            jnp.sum(s.unique_b) / union,
            jnp.sum(s.shared) / union,
            jnp.nanmean(s.best_of_two["recall"]),
            merge,
            jnp.nanmean(s.union_2k),
            jnp.nanmean(s.best_of_two["recall"]) - best_single,
            merge - best_single,
            (merge - best_single) / best_single,
        ]
    )


def _views_knobs(cfg: StudyConfig) -> gen.ViewsKnobs:
    """The views' knobs: ``shared_fraction`` and ``noise`` in both views, ``nonlinearity``."""
    return gen.ViewsKnobs(
        shared_fraction_sem=cfg.shared_fraction,
        shared_fraction_cf=cfg.shared_fraction,
        noise_sem=cfg.noise,
        noise_cf=cfg.noise,
        nonlinearity=cfg.nonlinearity,
    )


def _world(key, cfg: StudyConfig, private_reliance, density):
    """One world: items (latents, both views) and sampled interactions, plus the BPR key.

    Returns ``(views, interactions, bpr_key)``.
    """
    ucfg = gen.UsersConfig(
        n_users=cfg.n_users, max_interactions=cfg.max_interactions, user_chunk=512
    )
    k_mix, k_lat, k_noise, k_users, k_bpr = jax.random.split(key, 5)
    mixing = gen.sample_mixing(k_mix, cfg.views)
    lat = gen.sample_latents(k_lat, cfg.views, cfg.n_items)
    views = gen.render_views(mixing, lat, _views_knobs(cfg), noise_key=k_noise)
    knobs = gen.UserKnobs(
        private_reliance=private_reliance, density=density, popularity_skew=cfg.popularity_skew
    )
    return views, gen.sample_interactions(k_users, lat, ucfg, knobs), k_bpr


@functools.partial(jax.jit, static_argnums=1)
def _tuning_world(key, cfg: StudyConfig, private_reliance, density):
    """The interactions of :func:`_world` alone, jitted (``cfg`` static) for BPR tuning."""
    return _world(key, cfg, private_reliance, density)[1]


def _padded_pairs(cfg: StudyConfig, sets):
    """Padded ``[n_users, m]`` item sets as flat (users, items, mask) of length n_users·m."""
    users = jnp.broadcast_to(jnp.arange(cfg.n_users)[:, None], sets.shape).ravel()
    return users, jnp.maximum(sets, 0).ravel(), (sets >= 0).ravel()


def _bpr_config(cfg: StudyConfig) -> cf.BPRConfig:
    """Static BPR settings shared by tuning and evaluation (dimension, epochs, batch)."""
    return cf.BPRConfig(dim=cfg.bpr_dim, n_epochs=cfg.bpr_epochs, batch_size=cfg.bpr_batch)


def tune_bpr(cfg: StudyConfig, seed: int = 0) -> pd.DataFrame:
    """Choose BPR's (learning_rate, l2) and epochs on validation, once per density.

    For each density a *tuning world* (key ``fold_in(key(seed), 10_000 + j)``, never an
    evaluation seed; private reliance = the median of ``cfg.private_reliances``) is drawn;
    its training interactions are split into fit and validation items
    (:func:`complemjax.studies.synthetic_c5.split_validation`, ``cfg.valid_fraction``) and
    :func:`complemjax.models.protocol.select` trains the grid
    ``bpr_learning_rates × bpr_l2s`` on the fit items (padded like the evaluation worlds'
    arrays, so an epoch has the same number of steps) with validation Recall@20.

    Args:
        cfg: the study configuration.
        seed: root seed of the tuning worlds.

    Returns:
        one row per density: ``density``, ``learning_rate``, ``l2``, ``epochs`` and the
        selection row (configurations tried, validation recall, seconds, edge flags).
    """
    fam = models.BPR(config=_bpr_config(cfg))
    combos = [(lr, l2) for lr in cfg.bpr_learning_rates for l2 in cfg.bpr_l2s]
    grid = models.stack_hparams([cf.BPRHParams(learning_rate=lr, l2=l2) for lr, l2 in combos])
    reliance = float(np.median(cfg.private_reliances))
    rows = []
    for j, density in enumerate(cfg.densities):
        key = jax.random.fold_in(jax.random.key(seed), 10_000 + j)
        k_world, k_split, k_fit = jax.random.split(key, 3)
        inter = _tuning_world(k_world, cfg, reliance, density)
        fit, valid = c5.split_validation(k_split, inter.train, cfg.valid_fraction)
        users, items, mask = (np.asarray(a) for a in _padded_pairs(cfg, fit))
        data = models.make_train_data(
            users, items, n_users=cfg.n_users, n_items=cfg.n_items, mask=mask,
            history_len=cfg.max_interactions,
        )  # fmt: skip
        sel = models.select(
            fam, k_fit, data, grid, valid_sets=valid, exclude_sets=fit,
            max_epochs=cfg.bpr_epochs, eval_every=cfg.bpr_eval_every,
            patience=cfg.bpr_patience, k=20,
        )  # fmt: skip
        hp = dict(zip(("learning_rate", "l2"), combos[sel.best_index]))  # the exact grid values
        rows.append({"density": density, **hp, "epochs": sel.best_epoch, **sel.row()})
    return pd.DataFrame(rows)


def bpr_embeddings(
    key: jax.Array,
    cfg: StudyConfig,
    users: ArrayLike,
    items: ArrayLike,
    mask: ArrayLike,
    hparams: cf.BPRHParams,
    n_epochs: ArrayLike,
) -> tuple[jax.Array, jax.Array]:
    """BPR-MF factors after a *dynamic* number of epochs ``n_epochs`` (jittable).

    Trains in chunks of ``cfg.bpr_eval_every`` epochs up to ``cfg.bpr_epochs``; chunks that
    start at or after ``n_epochs`` leave the state unchanged, so for ``n_epochs`` a multiple
    of ``bpr_eval_every`` the result is :func:`complemjax.cf.fit_bpr` with that many epochs
    (the key stream is the same).

    Args:
        key: PRNG key of the initialisation and the triple sampling.
        cfg: the study configuration (sizes, BPR settings).
        users: ``[n]`` int users of the training interactions (padded).
        items: ``[n]`` int items of the training interactions (padded).
        mask: ``[n]`` bool, False on padding entries.
        hparams: learning rate and L2.
        n_epochs: int scalar, epochs to keep (may be traced).

    Returns:
        ``(user_emb, item_emb)``, ``[n_users, bpr_dim]`` and ``[n_items, bpr_dim]``.
    """
    config = _bpr_config(cfg)
    every = cfg.bpr_eval_every

    def chunk(state, c):
        new, _ = cf.bpr_train_epochs(state, users, items, hparams, n_items=cfg.n_items,
                                     config=config, n_epochs=every, mask=mask)  # fmt: skip
        keep = c * every < n_epochs
        return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, state), None

    state = cf.bpr_init(key, n_users=cfg.n_users, n_items=cfg.n_items, config=config)
    state, _ = jax.lax.scan(chunk, state, jnp.arange(cfg.bpr_epochs // every))
    return state.params.user_emb, state.params.item_emb


def make_study_fn(cfg: StudyConfig, tuned: pd.DataFrame) -> Callable:
    """The per-(seed, configuration) function of :func:`sweep.run_grid`.

    ``tuned`` is :func:`tune_bpr`'s table: BPR at density ``d`` uses that density's row
    (the nearest tuned density).

    ``fn(key, private_reliance, density)`` draws one world, ranks every user's top
    ``max(KS)`` items with the semantic profile ranker, BPR, BPR with another seed and
    the profile ranker on the true CF view ``y`` (training items excluded), and returns
    ``stats`` ``[len(PAIRS), len(KS), len(OUTPUTS)]`` (:func:`_pair_stats`),
    ``recall_true_cf`` ``[len(KS)]`` and ``mean_interactions`` (sampled per user).

    Args:
        cfg: the study configuration.
        tuned: :func:`tune_bpr`'s table.

    Returns:
        ``fn``, traceable (the sweep vmaps it over seeds and configurations).
    """
    kmax = max(KS)
    dens = jnp.asarray(tuned["density"].to_numpy(), jnp.float32)
    lrs = jnp.asarray(tuned["learning_rate"].to_numpy(), jnp.float32)
    l2s = jnp.asarray(tuned["l2"].to_numpy(), jnp.float32)
    epochs = jnp.asarray(tuned["epochs"].to_numpy(), jnp.int32)

    def fn(key, private_reliance, density):
        views, inter, k_bpr = _world(key, cfg, private_reliance, density)
        users, items, mask = _padded_pairs(cfg, inter.train)
        j = jnp.argmin(jnp.abs(dens - density))
        hp = cf.BPRHParams(learning_rate=lrs[j], l2=l2s[j])

        def rank_profile(emb):
            prof = profiles_from_sets(emb, inter.train)
            return ranking.topk_from_embeddings(
                prof, emb, k=kmax, exclude=inter.train, similarity="cosine"
            ).items

        def rank_bpr(k):
            ue, ie = bpr_embeddings(k, cfg, users, items, mask, hp, epochs[j])
            return ranking.topk_from_embeddings(
                ue, ie, k=kmax, exclude=inter.train, similarity="dot"
            ).items

        k_b1, k_b2 = jax.random.split(k_bpr)
        top_sem = rank_profile(views.x)
        top_bpr, top_bpr2 = rank_bpr(k_b1), rank_bpr(k_b2)
        top_true = rank_profile(views.y)
        stats = jnp.stack(
            [
                jnp.stack([_pair_stats(a, b, inter.test, k) for k in KS])
                for a, b in ((top_sem, top_bpr), (top_bpr, top_bpr2))
            ]
        )  # [n_pairs, n_K, n_outputs]
        true_recall = jnp.stack(
            [
                jnp.nanmean(comp.pair_user_stats(top_true, top_bpr, inter.test, k=k).a["recall"])
                for k in KS
            ]
        )
        return {
            "stats": stats,
            "recall_true_cf": true_recall,
            "mean_interactions": jnp.mean(inter.n_interactions.astype(jnp.float32)),
        }

    return fn


def _to_long(wide: pd.DataFrame) -> pd.DataFrame:
    """Unpack the sweep's wide rows: one row per (configuration, seed, pair, K)."""
    rows = []
    for rec in wide.to_dict("records"):
        for p, pair in enumerate(PAIRS):
            for i, k in enumerate(KS):
                row = {
                    "private_reliance": round(float(rec["private_reliance"]), 4),
                    "density": round(float(rec["density"]), 5),
                    "seed": int(rec["seed"]),
                    "pair": pair,
                    "K": k,
                    "mean_interactions": float(rec["mean_interactions"]),
                    "recall_true_cf": float(rec[f"recall_true_cf_{i}"]),
                }
                row.update(
                    {name: float(rec[f"stats_{p}_{i}_{j}"]) for j, name in enumerate(OUTPUTS)}
                )
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
) -> pd.DataFrame:
    """Run the study and write its CSVs into ``out_dir``.

    ``synthetic_complementarity.csv`` (the grid, long table),
    ``synthetic_complementarity_bpr_tuning.csv`` (:func:`tune_bpr`) and, when
    ``config.alignment.enabled``, ``synthetic_complementarity_c5.csv``
    (:func:`complemjax.studies.synthetic_c5.run_alignment`), plus
    ``synthetic_complementarity.meta.json`` (runtimes and settings).

    Args:
        out_dir: results folder.
        full: use :meth:`StudyConfig.full` (ignored when ``config`` is given).
        config: explicit study configuration.
        seed: root PRNG seed (tuning worlds, evaluation worlds and the C5 part).
        progress: show a progress bar.
        resume: continue from the chunk files of an interrupted run in
            ``out_dir/checkpoints/<study>`` (a folder from another configuration or code
            version is refused, never overwritten).

    Returns:
        The grid table (as written to ``synthetic_complementarity.csv``).
    """
    cfg = config if config is not None else (StudyConfig.full() if full else StudyConfig())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tuned = tune_bpr(cfg, seed)
    tuned.to_csv(out_dir / f"{NAME}_bpr_tuning.csv", index=False)
    t_tune = time.perf_counter() - t0
    wide = sweep.run_grid(
        make_study_fn(cfg, tuned),
        key=jax.random.key(seed),
        grid={"private_reliance": cfg.private_reliances, "density": cfg.densities},
        n_seeds=cfg.n_seeds,
        chunk_size=cfg.chunk_size,
        progress=progress,
        description=NAME,
        checkpoint_dir=out_dir / "checkpoints" / NAME,
        fingerprint=sweep.config_fingerprint(
            {
                "study": NAME,
                "config": cfg,
                "tuned": tuned[["density", "learning_rate", "l2", "epochs"]].to_dict("records"),
                "code": sweep.code_fingerprint(
                    sys.modules[__name__], gen, ranking, comp, recommenders, cf
                ),
            }
        ),
        resume=resume,
    )
    df = _to_long(wide)
    df.to_csv(out_dir / f"{NAME}.csv", index=False)
    meta = {
        "seconds": time.perf_counter() - t0,
        "tune_seconds": t_tune,
        "n_items": cfg.n_items,
        "n_users": cfg.n_users,
        "n_seeds": cfg.n_seeds,
        "shared_fraction": cfg.shared_fraction,
        "nonlinearity": cfg.nonlinearity,
        "popularity_skew": cfg.popularity_skew,
        "bpr": f"dim {cfg.bpr_dim}, batch {cfg.bpr_batch}, lr ∈ {list(cfg.bpr_learning_rates)} × "
        f"l2 ∈ {list(cfg.bpr_l2s)}, ≤ {cfg.bpr_epochs} epochs, validation every "
        f"{cfg.bpr_eval_every}, patience {cfg.bpr_patience}",
    }
    if cfg.alignment.enabled:
        c5_df, c5_meta = c5.run_alignment(
            cfg.alignment, cfg.views, _views_knobs(cfg),
            popularity_skew=cfg.popularity_skew, seed=seed,
        )  # fmt: skip
        c5_df.to_csv(out_dir / f"{NAME}_c5.csv", index=False)
        meta.update(c5_meta)
    meta["total_seconds"] = time.perf_counter() - t0
    pd.Series(meta).to_json(out_dir / f"{NAME}.meta.json")
    return df


def render(out_dir: str | Path) -> str:
    """Draw the figure and return the markdown section, from the saved CSVs.

    Reads what :func:`run` wrote and draws ``figures/complementarity_recall_overlap.png``
    (Recall@10 and top-10 overlap against private reliance, one panel per density) under
    ``out_dir``, plus the C5 figure when its table exists.

    Args:
        out_dir: the results folder of :func:`run`.

    Returns:
        The markdown section: settings, computed findings, the grid table, the BPR tuning
        table and the C5 subsection.
    """
    out_dir = Path(out_dir)
    df = pd.read_csv(out_dir / f"{NAME}.csv")
    meta = pd.read_json(out_dir / f"{NAME}.meta.json", typ="series")
    fig_dir = out_dir / "figures"
    d10 = df[df["K"] == 10]
    main, null = d10[d10["pair"] == PAIRS[0]], d10[d10["pair"] == PAIRS[1]]
    fig = pd.concat(
        [
            main.assign(series="Recall semantic", value=main["recall_sem"]),
            main.assign(series="Recall BPR", value=main["recall_cf"]),
            main.assign(series="Recall true CF view", value=main["recall_true_cf"]),
            main.assign(series="overlap semantic-BPR", value=main["overlap"]),
            null.assign(series="overlap BPR-BPR(seed)", value=null["overlap"]),
        ]
    )
    s = report.summarize(fig, ["density", "private_reliance", "series"], ["value"])
    report.line_plot(
        s,
        x="private_reliance",
        hue="series",
        facet="density",
        path=fig_dir / "complementarity_recall_overlap.png",
        title="Recall@10 and top-10 overlap: semantic vs BPR learned from the interactions",
        xlabel="mean private reliance of users",
        ylabel="value (mean over seeds, 95% CI)",
    )
    tab = []
    for (pair, dens, pr, k), g in df.groupby(["pair", "density", "private_reliance", "K"]):
        row = {"pair": pair, "density": dens, "private_reliance": pr, "K": k}
        row["mean_interactions"] = f"{g['mean_interactions'].mean():.1f}"
        for m in (
            "recall_sem",
            "recall_cf",
            "overlap",
            "unique_share_sem",
            "unique_share_cf",
            "oracle_merge_recall",
            "oracle_merge_rel_gain",
        ):
            row[m] = report.format_ci(*report.seed_interval(g[m]))
        tab.append(row)
    table = pd.DataFrame(tab)
    findings = []
    for dens, g in d10.groupby("density"):
        gm, gn = g[g["pair"] == PAIRS[0]], g[g["pair"] == PAIRS[1]]
        diff = (
            gm.set_index(["private_reliance", "seed"])["overlap"]
            - gn.set_index(["private_reliance", "seed"])["overlap"]
        )
        findings.append(
            f"- density {dens} ({gm['mean_interactions'].mean():.1f} interactions per user): "
            f"BPR Recall@10 {gm['recall_cf'].mean():.3f} (true CF view "
            f"{gm['recall_true_cf'].mean():.3f}), semantic {gm['recall_sem'].mean():.3f}; "
            f"top-10 overlap semantic-BPR {gm['overlap'].mean():.3f} against BPR-BPR(seed) "
            f"{gn['overlap'].mean():.3f} (difference per seed "
            f"{report.format_ci(*report.seed_interval(diff.groupby('seed').mean()))}); oracle "
            f"merge gain over the better ranker {100 * gm['oracle_merge_rel_gain'].mean():.0f}% "
            f"against {100 * gn['oracle_merge_rel_gain'].mean():.0f}% for two BPR seeds."
        )
    return f"""
Synthetic users over {int(meta["n_items"])} items ({int(meta["n_users"])} users,
shared fraction {meta["shared_fraction"]}, nonlinearity {meta["nonlinearity"]}, popularity
skew {meta["popularity_skew"]}); {int(meta["n_seeds"])} seeds per configuration. The
semantic ranker scores by cosine to the mean of the user's normalised training-item
semantic vectors; the collaborative ranker is BPR-MF trained on the sampled interactions,
with its configuration and epoch count chosen on validation per density on a separate
tuning world ({meta["bpr"]}; table below), and BPR with another seed is the null reference
for agreement. Cells: mean over seeds [95% t-interval]. Runtime {meta["seconds"]:.0f} s
(of which BPR tuning {meta.get("tune_seconds", float("nan")):.0f} s).

**What the code finds.**
{chr(10).join(findings)}

{report.markdown_table(table, COLUMNS)}
![recall and overlap](figures/complementarity_recall_overlap.png)

{_tuning_section(out_dir)}
{_c5_section(out_dir, meta, fig_dir)}"""


TUNING_COLUMNS = {
    "density": "density of the tuning world",
    "learning_rate": "chosen learning rate",
    "l2": "chosen L2 weight",
    "epochs": "chosen epoch count (used by every evaluation seed at this density)",
    "valid_recall@20": "validation Recall@20 of the choice on the tuning world",
    "configs": "configurations tried",
    "edge": "choice at the edge of the grid",
}


def _tuning_section(out_dir: Path) -> str:
    """Markdown table of the BPR choices per density (a note when none was saved)."""
    path = out_dir / f"{NAME}_bpr_tuning.csv"
    if not path.is_file():  # results written before BPR was tuned
        return "(No BPR tuning table in these results: BPR hyper-parameters were fixed.)\n"
    t = pd.read_csv(path)
    t = t[[c for c in TUNING_COLUMNS if c in t.columns]].fillna("")
    return "BPR-MF chosen on the tuning worlds' validation Recall@20:\n\n" + (
        report.markdown_table(t, TUNING_COLUMNS)
    )


def _c5_section(out_dir: Path, meta, fig_dir: Path) -> str:
    """The C5 subsection (:func:`~.synthetic_c5.render_alignment`); empty without its CSV."""
    path = out_dir / f"{NAME}_c5.csv"
    if not path.is_file():
        return ""
    return c5.render_alignment(pd.read_csv(path, dtype={"align_weight": str}), meta, fig_dir)

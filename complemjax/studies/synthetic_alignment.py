"""Study: how much of the collaborative view alignment probes recover, against the Bayes ceiling.

The world is the *network family* of :mod:`complemjax.generative`: a linear-Gaussian
semantic view ``x`` and a collaborative view ``y = sqrt(rho) g(s) + sqrt(1 - rho) D q + e``
whose shared part ``g`` is a smooth random tanh network of the shared factors
(``nonlinearity`` eta: 0 = linear, 1 = fully nonlinear). ``private_correlation`` c
correlates the semantic-private and collaborative-private factors, so a known share of
the private part becomes recoverable from ``x``.

For each (eta, c) and seed the study draws one world and

1. **Learning curves.** For every ``n_train`` (nested training sets of one pool) it fits
   ridge and MLPs of each width, all chosen on one shared fit/validation partition (80/20,
   standardised inputs and targets, :func:`complemjax.probes.tune`: ridge over ``l2``,
   each MLP width over learning rate x weight decay, zero-initialised output layer), and
   scores them on ``n_test`` fresh items. Under ``--full`` kernel ridge with random
   Fourier features is added.
2. **Ceilings** on the same test items: the Bayes predictor ``E[y | x]`` (Monte Carlo
   over the closed-form posterior of ``s`` given ``x``, :func:`complemjax.generative.
   bayes_ceiling`), the population linear ceiling R²*, the shared-variance fraction of
   y and the recoverable private share ``Var(E[y_private | x]) / Var(y_private)``.
3. **Shifts** for probes trained on ``n_shift`` items: *concept* (the shared ->
   collaborative map of test items changes: ``g <- sqrt(1 - kappa) g + sqrt(kappa) g'``),
   *selection on q* (trained on items whose first collaborative-private factor is below
   the pool median, tested above it; the semantic view cannot see the selection), and
   *cold items* (test items whose own collaborative embedding is an estimate with noise
   variance ``cold_noise`` per dimension; the probe's prediction and that estimate are
   both scored against the clean target ``y_shared + y_private``).
4. **Shifts downstream on Recall.** For each shift test set, ``shift_users`` synthetic users
   whose preferences are linear in the test items' *clean collaborative view*
   (:func:`complemjax.generative.sample_interactions` with the column-standardised
   ``y_shared + y_private`` as the only preference factors, no popularity term: the CF
   view is what explains the interactions) interact with those items; each user's
   interactions are split into train and test. A profile ranker (cosine to the mean of
   the user's normalised training-item vectors, training items excluded) is built from
   each probe's predicted CF embeddings ``ŷ``, and Recall@20 is measured. References on
   the same users: the same ranker on the clean CF view itself, on the semantic view
   ``x`` and, for cold items, on the item's own noisy CF estimate. The users of
   ``cold_items`` are those of ``in_distribution`` (same items, same clean view), so its
   probe rows equal the in-distribution ones by construction; what cold items add is the
   own-estimate reference.

Run ``complemjax reproduce`` (``--full`` for the larger grid).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.typing import ArrayLike

from complemjax import generative as gen
from complemjax import probes, ranking, report, similarity, sweep
from complemjax.studies.synthetic_complementarity import profiles_from_sets

NAME = "synthetic_alignment"
METRICS = ("r2", "r2_shared", "recovered_private")
SHIFT_TESTS = ("in_distribution", "concept", "selection_q", "cold_items")
#: reference rankers of the downstream Recall (besides the probes)
RECALL_REFS = ("cf_view", "semantic", "own_estimate")
RECALL_K = 20
CEILINGS = (
    "bayes_r2",
    "bayes_r2_shared",
    "bayes_recovered_private",
    "r2_star",
    "shared_fraction_cf",
    "private_recoverable",
)

COLUMNS = {
    "probe": "alignment map x -> y (ridge; mlp-w: one hidden ReLU layer of w units; "
    "rff: kernel ridge with random Fourier features), each tuned on the same validation rows",
    "nonlinearity": "eta: weight of the random tanh network in the shared map g (0 = linear)",
    "private_correlation": "c: correlation of semantic- and collaborative-private factors",
    "n_train": "training items (fit + validation rows)",
    "r2": "variance-weighted R² of ŷ for y",
    "r2_shared": "R² of ŷ for the shared part y_shared",
    "recovered_private": "<y_private, ŷ>/||y_private||² (centred): share of the private part "
    "that ŷ captures",
    "bayes_r2": "R² of the Bayes predictor E[y|x] for y: bounds r2 of every probe",
    "bayes_r2_shared": "R² of E[y_shared|x] for y_shared: bounds r2_shared of every probe",
    "bayes_recovered_private": "recovered_private of E[y|x] (what an optimal probe captures)",
    "r2_star": "population R²* of the best linear map (linear ceiling)",
    "shared_fraction_cf": "Var(y_shared)/Var(y) (population)",
    "private_recoverable": "Var(E[y_private|x])/Var(y_private) (closed form; 0 when c = 0)",
}


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Grid and sizes of the alignment study (static).

    Attributes:
        nonlinearities: grid of ``eta`` (:class:`complemjax.generative.ViewsKnobs`
            ``nonlinearity``), the weight of the random tanh network in the shared map ``g``.
        private_correlations: grid of ``c``, the correlation of the semantic-private and
            collaborative-private factors.
        shared_fraction: ``rho``, the shared share of the signal in both views.
        frequency: gain of every hidden layer of the random network (its roughness).
        noise: noise variance per dimension in both views (signal variance 1).
        n_seeds: worlds per (eta, c).
        n_trains: training sizes of the learning curves (nested prefixes of one pool of
            ``max(n_trains)`` items).
        n_test: fresh test items per world (also the size of each shift test set).
        n_shift: training size of the probes evaluated under shift (one of ``n_trains``).
        widths: hidden units of the one-hidden-layer ReLU MLP probes (one probe per width).
        learning_rates, weight_decays: AdamW grid (full product) each MLP is tuned over.
        mlp_steps: full-batch AdamW steps per MLP fit (early-stopped on validation).
        l2_grid: ridge penalties, also crossed with ``rff_bandwidths`` for the RFF probe.
        rff_features: random Fourier features of the kernel-ridge probe (0: no such probe).
        rff_bandwidths: multipliers of the median pairwise distance tried as RBF bandwidth.
        val_fraction: share of each training set that chooses the hyper-parameters.
        concept: ``kappa`` of the concept shift ``g <- sqrt(1 - kappa) g + sqrt(kappa) g'``.
        cold_noise: noise variance per dimension of a cold item's own CF estimate.
        n_mc: Monte Carlo posterior draws per item of the Bayes predictor.
        shift_users: synthetic users per downstream-Recall test set.
        shift_density: their target interactions per user / number of test items.
        shift_max_interactions: cap on interactions per downstream user.
        views: static shapes of the world; ``cf_map`` must be ``"network"`` (the family
            whose Bayes ceiling is exact).
        chunk_size: (configuration, seed) rows per compiled call of the sweep.

    Raises:
        ValueError: ``n_shift`` not in ``n_trains``, or ``views.cf_map != "network"``.
    """

    nonlinearities: tuple[float, ...] = (0.0, 1.0)
    private_correlations: tuple[float, ...] = (0.0, 0.6)
    shared_fraction: float = 0.5
    frequency: float = 1.5
    noise: float = 0.1
    n_seeds: int = 3
    n_trains: tuple[int, ...] = (500, 1000, 2000, 4000, 8000)
    n_test: int = 2000
    n_shift: int = 2000
    widths: tuple[int, ...] = (16, 64)
    learning_rates: tuple[float, ...] = (3e-3, 1e-2)
    weight_decays: tuple[float, ...] = (0.0, 1e-3)
    mlp_steps: int = 300
    l2_grid: tuple[float, ...] = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
    rff_features: int = 0
    rff_bandwidths: tuple[float, ...] = (0.5, 1.0, 2.0)
    val_fraction: float = 0.2
    concept: float = 0.5
    cold_noise: float = 0.5
    n_mc: int = 64
    shift_users: int = 1000
    shift_density: float = 0.01
    shift_max_interactions: int = 32
    views: gen.ViewsConfig = dataclasses.field(
        default_factory=lambda: gen.ViewsConfig(
            d_shared=4,
            d_sem_private=4,
            d_cf_private=4,
            dim_sem=16,
            dim_cf=16,
            cf_map="network",
            net_depth=2,
            net_width=32,
            n_reference=4096,
        )
    )
    chunk_size: int = 1

    def __post_init__(self):
        if self.n_shift not in self.n_trains:
            raise ValueError(f"`n_shift` ({self.n_shift}) must be one of `n_trains`")
        if self.views.cf_map != "network":
            raise ValueError("this study needs `views.cf_map = 'network'` (exact Bayes ceiling)")

    @classmethod
    def full(cls) -> StudyConfig:
        """The configuration of ``--full``: larger grids, more seeds and data, an RFF probe.

        eta ∈ {0, 0.5, 1} × c ∈ {0, 0.3, 0.6, 0.9}, 5 seeds, ``n_train`` up to 64000 with
        4000 test items, MLP widths up to 256 tuned over a 3 × 3 AdamW grid for 1000
        steps, kernel ridge on 1024 random Fourier features, 128 Monte Carlo draws.
        """
        return cls(
            nonlinearities=(0.0, 0.5, 1.0),
            private_correlations=(0.0, 0.3, 0.6, 0.9),
            n_seeds=5,
            n_trains=(500, 1000, 2000, 4000, 8000, 16000, 32000, 64000),
            n_test=4000,
            widths=(16, 64, 256),
            learning_rates=(1e-3, 3e-3, 1e-2),
            weight_decays=(0.0, 1e-4, 1e-2),
            mlp_steps=1000,
            rff_features=1024,
            n_mc=128,
        )

    def probe_names(self) -> tuple[str, ...]:
        """Probe names in output order: ``ridge``, ``mlp-<width>`` per width, ``rff`` if on.

        Probe axis ``i`` of the ``curves``, ``shifts`` and ``shift_recall`` outputs of
        :func:`make_study_fn` is ``probe_names()[i]``.
        """
        names = ["ridge"] + [f"mlp-{w}" for w in self.widths]
        return tuple(names + (["rff"] if self.rff_features else []))


def _scores(pred, views: gen.Views):
    """:data:`METRICS` ``[3]`` of a prediction ``pred`` ``[n, D_y]`` of the items ``views``.

    ``r2``: variance-weighted R² ``1 − Σ_ij (y_ij − ŷ_ij)² / Σ_ij (y_ij − ȳ_j)²`` of ``pred``
    for ``views.y``; ``r2_shared``: the same for ``views.y_shared``; ``recovered_private``:
    ``<P_c, ŷ_c> / ||P_c||²`` with ``P = views.y_private`` (column-centred,
    :func:`complemjax.similarity.variance_share`).
    """
    return jnp.stack(
        [
            similarity.r2_score(views.y, pred).variance_weighted,
            similarity.r2_score(views.y_shared, pred).variance_weighted,
            similarity.variance_share(views.y_private, pred),
        ]
    )


def downstream_users(
    key: jax.Array, cf_view: ArrayLike, cfg: StudyConfig
) -> gen.SyntheticInteractions:
    """Users whose preferences are linear in the items' (clean) collaborative view.

    :func:`complemjax.generative.sample_interactions` with the column-standardised
    ``cf_view`` as the only preference factors (no private factors, no popularity term),
    ``cfg.shift_users`` users at density ``cfg.shift_density``. With ``z_i`` the
    standardised row of item ``i`` and ``a_u ~ N(0, I)``, user ``u`` has affinity
    ``<a_u, z_i> / sqrt(D_y)`` and draws items without replacement with probability
    ``∝ exp(affinity / tau)`` (the sampler's default temperature and activity spread);
    ``max(1, round(0.2 n_u))`` of its ``n_u`` items are held out as test.

    Args:
        key: PRNG key of the users and their interactions.
        cf_view: ``[n_items, D_y]`` clean collaborative view of the items.
        cfg: the study configuration (``shift_users``, ``shift_density``,
            ``shift_max_interactions``).

    Returns:
        :class:`complemjax.generative.SyntheticInteractions` over the rows of ``cf_view``.
    """
    z = (cf_view - jnp.mean(cf_view, axis=0)) / jnp.maximum(jnp.std(cf_view, axis=0), 1e-12)
    zeros = jnp.zeros((cf_view.shape[0], 1), cf_view.dtype)
    ucfg = gen.UsersConfig(
        n_users=cfg.shift_users, max_interactions=cfg.shift_max_interactions, user_chunk=512
    )
    knobs = gen.UserKnobs(private_reliance=0.0, density=cfg.shift_density, popularity_skew=0.0)
    return gen.sample_interactions(key, gen.Latents(z, zeros, zeros), ucfg, knobs)


def profile_recall(emb: ArrayLike, inter: gen.SyntheticInteractions) -> jax.Array:
    """Recall@20 of the cosine profile ranker on item vectors ``emb`` (jittable).

    Each user's profile is the mean of the L2-normalised ``emb`` rows of the user's
    ``inter.train`` items; items are ranked by cosine to it (training items excluded) and
    ``Recall@20 = |top-20 ∩ T_u| / |T_u|`` is averaged over users with test items.

    Args:
        emb: ``[n_items, d]`` item vectors the ranker uses (a probe's ``ŷ``, or a reference
            view).
        inter: the users' interactions with the same items (:func:`downstream_users`).

    Returns:
        ``[]`` the mean Recall@20.
    """
    return _profile_recall_impl(jnp.asarray(emb), inter.train, inter.test)


@jax.jit
def _profile_recall_impl(emb, train, test):
    prof = profiles_from_sets(emb, train)
    top = ranking.topk_from_embeddings(
        prof, emb, k=RECALL_K, exclude=train, similarity="cosine"
    ).items
    return jnp.nanmean(ranking.per_user_metrics(top, test, ks=(RECALL_K,))["recall"][0])


def _take(views: gen.Views, n: int) -> gen.Views:
    """The first ``n`` items of ``views`` (the nested training sets of the learning curve)."""
    return jax.tree.map(lambda a: a[:n], views)


def make_study_fn(cfg: StudyConfig) -> Callable:
    """The per-(seed, configuration) function evaluated by :func:`sweep.run_grid`.

    ``fn(key, nonlinearity, private_correlation)`` draws one world and returns, with ``P``
    probes (:meth:`StudyConfig.probe_names`) and ``T`` = len(:data:`SHIFT_TESTS`):
    ``curves`` ``[len(n_trains), P, 3]`` (:data:`METRICS` on the test items), ``shifts``
    ``[P, T, 3]``, ``shift_recall`` ``[P, T]`` (Recall@20 of each probe's ranker),
    ``ref_recall`` ``[3, T]`` (:data:`RECALL_REFS`; NaN off ``cold_items``), the scalar
    :data:`CEILINGS` and ``cold_own_r2`` (R² of the own noisy CF estimate for the clean
    target ``y_shared + y_private``).

    Args:
        cfg: the study configuration.

    Returns:
        ``fn``, traceable (the sweep vmaps it over seeds and configurations).
    """
    lr, wd = np.meshgrid(cfg.learning_rates, cfg.weight_decays, indexing="ij")
    mlp_grid = probes.ProbeHParams(
        learning_rate=jnp.asarray(lr.ravel()), weight_decay=jnp.asarray(wd.ravel())
    )
    ridge_grid = probes.ProbeHParams(l2=jnp.asarray(cfg.l2_grid))
    l2s, bws = np.meshgrid(cfg.l2_grid, cfg.rff_bandwidths, indexing="ij")
    rff_grid = probes.ProbeHParams(l2=jnp.asarray(l2s.ravel()), bandwidth=jnp.asarray(bws.ravel()))
    mlp_specs = [probes.MLP(width=w, steps=cfg.mlp_steps, activation="relu") for w in cfg.widths]

    def fit_all(key, train: gen.Views):
        n = train.x.shape[0]
        k_split, k_fit = jax.random.split(key)
        fi, vi = probes.fit_val_split(k_split, n, cfg.val_fraction)
        tuned = [(probes.Ridge(), probes.tune(k_fit, probes.Ridge(), train.x, train.y,
                                              ridge_grid, fit_idx=fi, val_idx=vi))]  # fmt: skip
        for spec in mlp_specs:
            tuned.append((spec, probes.tune(k_fit, spec, train.x, train.y, mlp_grid,
                                            fit_idx=fi, val_idx=vi)))  # fmt: skip
        if cfg.rff_features:
            spec = probes.RandomFeatures(n_features=cfg.rff_features)
            tuned.append((spec, probes.tune(k_fit, spec, train.x, train.y, rff_grid,
                                            fit_idx=fi, val_idx=vi)))  # fmt: skip
        return tuned

    def predict_all(tuned, x):
        return [probes.predict(spec, t.params, x) for spec, t in tuned]

    def fn(key, nonlinearity, private_correlation):
        knobs = gen.ViewsKnobs(
            shared_fraction_sem=cfg.shared_fraction,
            shared_fraction_cf=cfg.shared_fraction,
            noise_sem=cfg.noise,
            noise_cf=cfg.noise,
            nonlinearity=nonlinearity,
            frequency=cfg.frequency,
            private_correlation=private_correlation,
        )
        # the fifth key once drew the selection split; it now shares the world of k_data
        k_data, _, k_fit, k_mc, k_cold = jax.random.split(key, 5)
        k_users = jax.random.fold_in(key, 7)
        n_max = max(cfg.n_trains)
        base = gen.sample_split(k_data, cfg.views, knobs, n_train=n_max, n_test=cfg.n_test)
        concept = gen.sample_split(
            k_data, cfg.views, knobs, n_train=n_max, n_test=cfg.n_test,
            shift=gen.Shift(concept=cfg.concept),
        )  # fmt: skip
        # same world (maps) as base and concept, so the shift is compared within one world
        sel = gen.sample_split(
            k_data, cfg.views, knobs, n_train=cfg.n_shift, n_test=cfg.n_test,
            shift=gen.Shift(selection_cf_private=1.0),
        )  # fmt: skip
        test = base.test
        curves, shift_rows = [], None
        for n in cfg.n_trains:
            tuned = fit_all(jax.random.fold_in(k_fit, n), _take(base.train, n))
            preds = predict_all(tuned, test.x)
            curves.append(jnp.stack([_scores(p, test) for p in preds]))
            if n == cfg.n_shift:
                shift_rows, shift_recall, ref_recall = _shifts(
                    cfg, k_users, k_cold, test, concept.test, sel, preds,
                    predict_all(tuned, concept.test.x),
                    predict_all(fit_all(jax.random.fold_in(k_fit, 0), sel.train), sel.test.x),
                )  # fmt: skip
        ceil = gen.bayes_ceiling(k_mc, base.mixing, knobs, test, n_mc=cfg.n_mc)
        bayes = gen.bayes_predict(k_mc, base.mixing, knobs, test.x, n_mc=cfg.n_mc)
        pop = gen.population_stats(base.mixing, knobs)
        clean = test.y_shared + test.y_private
        own = clean + jnp.sqrt(cfg.cold_noise) * jax.random.normal(k_cold, clean.shape)
        return {
            "curves": jnp.stack(curves),  # [n_N, n_probes, n_metrics]
            "shifts": shift_rows,
            "shift_recall": shift_recall,  # [n_probes, n_shift_tests]
            "ref_recall": ref_recall,  # [n_refs, n_shift_tests]
            "bayes_r2": ceil.r2,
            "bayes_r2_shared": ceil.r2_shared,
            "bayes_recovered_private": similarity.variance_share(test.y_private, bayes.y),
            "r2_star": pop.r2_ceiling,
            "shared_fraction_cf": pop.shared_fraction_cf,
            "private_recoverable": pop.private_recoverable,
            "cold_own_r2": similarity.r2_score(clean, own).variance_weighted,
        }

    return fn


def _shifts(cfg, k_users, k_cold, test, concept_test, sel, preds, p_con, p_sel):
    """R² rows and downstream Recall@20 of every probe on the four shift test sets.

    ``preds``, ``p_con``, ``p_sel``: per probe, predictions on the in-distribution,
    concept-shifted and selection test items. Returns ``(rows [P, T, 3], recall [P, T],
    refs [3, T])`` in the order of :data:`SHIFT_TESTS` and :data:`RECALL_REFS`.
    """
    clean = test.y_shared + test.y_private
    cold_views = test._replace(y=clean)
    rows = jnp.stack(
        [
            jnp.stack(
                [
                    _scores(pi, test),
                    _scores(pc, concept_test),
                    _scores(ps, sel.test),
                    _scores(pi, cold_views),
                ]
            )
            for pi, pc, ps in zip(preds, p_con, p_sel)
        ]
    )  # [n_probes, n_shift_tests, n_metrics]
    own = clean + jnp.sqrt(cfg.cold_noise) * jax.random.normal(k_cold, clean.shape)
    sets = (  # (test views, probe predictions, clean CF view) per shift test
        (test, preds, clean),
        (concept_test, p_con, concept_test.y_shared + concept_test.y_private),
        (sel.test, p_sel, sel.test.y_shared + sel.test.y_private),
        (test, preds, clean),
    )
    recall, refs = [], []
    for j, (views, pr, cf_view) in enumerate(sets):
        users = downstream_users(k_users, cf_view, cfg)
        recall.append(jnp.stack([profile_recall(p, users) for p in pr]))
        own_r = profile_recall(own, users) if SHIFT_TESTS[j] == "cold_items" else jnp.nan
        refs.append(
            jnp.stack([profile_recall(cf_view, users), profile_recall(views.x, users), own_r])
        )
    return rows, jnp.stack(recall, axis=1), jnp.stack(refs, axis=1)


def _to_long(wide: pd.DataFrame, cfg: StudyConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Unpack the sweep's wide rows into ``(curves, shifts)`` long tables.

    ``curves``: one row per (regime, seed, ``n_train``, probe) with :data:`METRICS`;
    ``shifts``: one row per (regime, seed, probe, test set) at ``n_train = n_shift`` with
    METRICS, ``recall`` and ``recall_<ref>``. Both carry the seed's ceilings.
    """
    names = cfg.probe_names()
    curves, shifts = [], []
    for rec in wide.to_dict("records"):
        base = {
            "nonlinearity": round(float(rec["nonlinearity"]), 4),
            "private_correlation": round(float(rec["private_correlation"]), 4),
            "seed": int(rec["seed"]),
            **{c: float(rec[c]) for c in (*CEILINGS, "cold_own_r2")},
        }
        for a, n in enumerate(cfg.n_trains):
            for i, probe in enumerate(names):
                row = {**base, "n_train": n, "probe": probe}
                row.update({m: float(rec[f"curves_{a}_{i}_{k}"]) for k, m in enumerate(METRICS)})
                curves.append(row)
        for i, probe in enumerate(names):
            for j, test in enumerate(SHIFT_TESTS):
                row = {**base, "n_train": cfg.n_shift, "probe": probe, "test_set": test}
                row.update({m: float(rec[f"shifts_{i}_{j}_{k}"]) for k, m in enumerate(METRICS)})
                row["recall"] = float(rec[f"shift_recall_{i}_{j}"])
                row.update(
                    {f"recall_{r}": float(rec[f"ref_recall_{a}_{j}"])
                     for a, r in enumerate(RECALL_REFS)}
                )  # fmt: skip
                shifts.append(row)
    return pd.DataFrame(curves), pd.DataFrame(shifts)


def run(
    out_dir: str | Path,
    *,
    full: bool = False,
    config: StudyConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    resume: bool = True,
) -> pd.DataFrame:
    """Run the grid and write the learning-curve and shift tables into ``out_dir``.

    Writes ``synthetic_alignment.csv`` (learning curves), ``synthetic_alignment_shifts.csv``
    (probes at ``n_shift`` on the four shift test sets, with downstream Recall@20) and
    ``synthetic_alignment.meta.json`` (runtime and settings).

    Args:
        out_dir: results folder.
        full: use :meth:`StudyConfig.full` (ignored when ``config`` is given).
        config: explicit study configuration.
        seed: root PRNG seed.
        progress: show a progress bar.
        resume: continue from the chunk files of an interrupted run in
            ``out_dir/checkpoints/<study>`` (a folder from another configuration or code
            version is refused, never overwritten).

    Returns:
        The learning-curve table (as written to ``synthetic_alignment.csv``).
    """
    cfg = config if config is not None else (StudyConfig.full() if full else StudyConfig())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    wide = sweep.run_grid(
        make_study_fn(cfg),
        key=jax.random.key(seed),
        grid={"nonlinearity": cfg.nonlinearities, "private_correlation": cfg.private_correlations},
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
    curves, shifts = _to_long(wide, cfg)
    curves.to_csv(out_dir / f"{NAME}.csv", index=False)
    shifts.to_csv(out_dir / f"{NAME}_shifts.csv", index=False)
    meta = {"seconds": time.perf_counter() - t0, "full": full, **_describe(cfg)}
    pd.Series(meta).to_json(out_dir / f"{NAME}.meta.json")
    return curves


def _describe(cfg: StudyConfig) -> dict:
    """Settings written to the meta file and quoted by :func:`render`."""
    v = cfg.views
    return {
        "n_seeds": cfg.n_seeds,
        "n_test": cfg.n_test,
        "n_shift": cfg.n_shift,
        "shared_fraction": cfg.shared_fraction,
        "frequency": cfg.frequency,
        "noise": cfg.noise,
        "mlp_steps": cfg.mlp_steps,
        "learning_rates": list(cfg.learning_rates),
        "weight_decays": list(cfg.weight_decays),
        "l2_grid": list(cfg.l2_grid),
        "val_fraction": cfg.val_fraction,
        "concept": cfg.concept,
        "cold_noise": cfg.cold_noise,
        "n_mc": cfg.n_mc,
        "dims": f"d_s={v.d_shared}, d_p={v.d_sem_private}, d_q={v.d_cf_private}, "
        f"D_x={v.dim_sem}, D_y={v.dim_cf}; network depth {v.net_depth}, width {v.net_width}",
    }


_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_STYLES = ("-", "--", "-.", ":")


def _curve_plot(df: pd.DataFrame, metric: str, ceiling: str, path: Path, ylabel: str) -> None:
    """Plot learning curves of ``metric`` against ``n_train`` into ``path``.

    One panel per regime (eta, c), one colour + marker + line style per probe (mean and 95%
    interval over seeds), the Bayes ceiling column ``ceiling`` in black and, for
    ``metric="r2"``, the linear ceiling R²* dotted; log2 x axis.
    """
    from matplotlib import colormaps

    regimes = list(dict.fromkeys(zip(df["nonlinearity"], df["private_correlation"])))
    probes_ = list(dict.fromkeys(df["probe"]))
    colours = colormaps["tab10"].colors
    fig = report.new_figure(figsize=(4.2 * len(regimes), 3.6))
    axes = fig.subplots(1, len(regimes), squeeze=False)
    for ax, (eta, c) in zip(axes[0], regimes):
        sub = df[(df["nonlinearity"] == eta) & (df["private_correlation"] == c)]
        for i, p in enumerate(probes_):
            s = report.summarize(sub[sub["probe"] == p], ["n_train"], [metric])
            ax.plot(s["n_train"], s["mean"], marker=_MARKERS[i % 7], ls=_STYLES[i % 4],
                    color=colours[i % 10], label=p)  # fmt: skip
            ax.fill_between(s["n_train"], s["ci_low"], s["ci_high"], color=colours[i % 10],
                            alpha=0.15)  # fmt: skip
        ceil = report.seed_interval(sub.groupby("seed")[ceiling].first())
        ax.axhline(ceil[0], color="black", lw=1.2, label="Bayes ceiling")
        star = report.seed_interval(sub.groupby("seed")["r2_star"].first())
        if metric == "r2":
            ax.axhline(star[0], color="grey", lw=1.0, ls=":", label="linear ceiling R²*")
        ax.set_xscale("log", base=2)
        ax.set_title(f"eta = {eta}, c = {c}", fontsize=10)
        ax.set_xlabel("training items n")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, title="probe", loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def _ci(values) -> str:
    """Table cell ``mean [low, high]``: Student-t 95% interval over seeds."""
    return report.format_ci(*report.seed_interval(values))


def render(out_dir: str | Path) -> str:
    """Draw the figures and return the markdown section, from the saved CSVs.

    Reads what :func:`run` wrote and draws ``figures/alignment_learning_curves.png``
    (``r2_shared``) and ``figures/alignment_learning_curves_y.png`` (``r2``) under
    ``out_dir``.

    Args:
        out_dir: the results folder of :func:`run`.

    Returns:
        The markdown section: settings, computed findings and four tables.
    """
    out_dir = Path(out_dir)
    df = pd.read_csv(out_dir / f"{NAME}.csv")
    sh = pd.read_csv(out_dir / f"{NAME}_shifts.csv")
    meta = pd.read_json(out_dir / f"{NAME}.meta.json", typ="series")
    fig_dir = out_dir / "figures"
    _curve_plot(df, "r2_shared", "bayes_r2_shared", fig_dir / "alignment_learning_curves.png",
                "R² of ŷ for y_shared (test)")  # fmt: skip
    _curve_plot(df, "r2", "bayes_r2", fig_dir / "alignment_learning_curves_y.png",
                "R² of ŷ for y (test)")  # fmt: skip
    n_max = int(df["n_train"].max())
    probes_ = list(dict.fromkeys(df["probe"]))

    t1, t2, t3 = _tables(df, sh, probes_)
    t4 = _recall_table(sh, probes_)

    legend = {
        **COLUMNS,
        "test_set": "in_distribution: fresh items; concept: map g of test items changed "
        f"(kappa = {meta['concept']}); selection_q: same world, trained on q_1 below the "
        "median, tested above; cold_items: scored against the clean target y_shared + y_private",
        "metric": "r2_shared (R² for y_shared) or, for cold items, R² for the clean target",
        "own CF estimate": f"R² of a cold item's own CF embedding (clean target + noise of "
        f"variance {meta['cold_noise']} per dim) for the clean target",
        "recall_cf_view": "Recall@20 of the profile ranker on the test items' clean CF view "
        "(the view the users' preferences are made of)",
        "recall_semantic": "Recall@20 of the same ranker on the semantic view x",
        "recall_own_estimate": "cold items: Recall@20 on each item's own noisy CF estimate",
    }
    return f"""
World: network family (linear-Gaussian semantic view; collaborative shared part a random
tanh network of the shared factors), {meta["dims"]}, shared fraction {meta["shared_fraction"]}
in both views, gain (frequency) {meta["frequency"]}, noise variance {meta["noise"]}.
Every probe is chosen on the same 20% validation rows of its training set (standardised
inputs and targets): ridge over l2 ∈ {list(meta["l2_grid"])}; each MLP width over learning
rate ∈ {list(meta["learning_rates"])} × weight decay ∈ {list(meta["weight_decays"])}
({int(meta["mlp_steps"])} full-batch AdamW steps, early-stopped on the validation rows,
output layer initialised at zero so that training starts at the mean).
Bayes ceilings: Monte Carlo ({int(meta["n_mc"])} posterior draws per item, MC error
removed) on the {int(meta["n_test"])} test items. {int(meta["n_seeds"])} seeds; cells are
means with 95% Student-t intervals over seeds. Runtime {meta["seconds"]:.0f} s.

**What the code finds.**
{_findings(df, sh, probes_)}

### Learning curves against the Bayes ceiling

![learning curves, y_shared](figures/alignment_learning_curves.png)

![learning curves, y](figures/alignment_learning_curves_y.png)

### Per regime at n = {n_max}: ceilings and probes

{report.markdown_table(t1, legend)}
### Private part: recovered share against its known truth (n = {n_max})

{report.markdown_table(t2, legend)}
### Shifts (probes trained on {int(meta["n_shift"])} items)

{report.markdown_table(t3, legend)}
### Shifts downstream: Recall@20 of rankers built from the predicted CF embeddings

Users whose preferences are linear in the test items' clean collaborative view interact
with those items; a profile ranker (cosine to the mean of the user's training items) is
built from each probe's predicted CF embeddings and scored by Recall@20 on the users'
held-out items, beside the same ranker on the clean CF view, on the semantic view and,
for cold items, on each item's own noisy CF estimate. This could have come out otherwise:
a probe with high R² can still rank poorly (R² weighs every dimension, ranking only the
directions users' preferences load on), and the shifted sets change both the items and
the users' preferences. Cold-item probe cells equal the in-distribution ones by
construction (same items and users); only their own-estimate reference is new.

{report.markdown_table(t4, legend)}
"""


def _recall_table(sh: pd.DataFrame, probes_: list[str]) -> pd.DataFrame:
    """Table 4: per (regime, test set), Recall@20 of each probe's ranker and the references."""
    tab = []
    for (eta, c, test), g in sh.groupby(["nonlinearity", "private_correlation", "test_set"]):
        row = {"nonlinearity": eta, "private_correlation": c, "test_set": test}
        for p in probes_:
            row[p] = _ci(g[g["probe"] == p]["recall"])
        per_seed = g.groupby("seed").first()
        for r in RECALL_REFS:
            vals = per_seed[f"recall_{r}"].dropna()
            row[f"recall_{r}"] = _ci(vals) if len(vals) else ""
        tab.append(row)
    return pd.DataFrame(tab)


def _findings(df: pd.DataFrame, sh: pd.DataFrame, probes_: list[str]) -> str:
    """Plain-language statements computed from the tables (never hard-coded)."""
    lines = []
    n_max = int(df["n_train"].max())
    n_min = int(df["n_train"].min())
    mlps = [p for p in probes_ if p.startswith("mlp")]
    lines.append(
        "- Probes are fitted to y, so their optimum is E[y|x]; R²(y) is read against the Bayes "
        "ceiling of y. With correlated privates (c > 0) E[y|x] also carries private signal, so "
        "R²(y_shared) of a y-probe stays below the y_shared ceiling by construction."
    )
    for (eta, c), g in df.groupby(["nonlinearity", "private_correlation"]):
        big = g[g["n_train"] == n_max]
        small = g[g["n_train"] == n_min]
        best = max(mlps, key=lambda p: big[big["probe"] == p]["r2"].mean())

        def diff(frame, metric, best=best):
            m = frame[frame["probe"] == best].set_index("seed")[metric]
            r = frame[frame["probe"] == "ridge"].set_index("seed")[metric]
            return report.seed_interval((m - r).to_numpy())

        d_big, d_small = diff(big, "r2"), diff(small, "r2")
        verdict = (
            "beats"
            if d_big[1] > 0
            else ("is below" if d_big[2] < 0 else "is not distinguishable from")
        )
        per_seed = big.groupby("seed").first()
        lines.append(
            f"- eta = {eta}, c = {c}: at n = {n_max}, {best} {verdict} ridge on R²(y) "
            f"(difference {report.format_ci(*d_big)}; {best} "
            f"{big[big['probe'] == best]['r2'].mean():.3f}, ridge "
            f"{big[big['probe'] == 'ridge']['r2'].mean():.3f}, Bayes ceiling "
            f"{per_seed['bayes_r2'].mean():.3f}, linear ceiling R²* "
            f"{per_seed['r2_star'].mean():.3f}); at n = {n_min} the difference is "
            f"{report.format_ci(*d_small)}."
            + (
                f" R²(y_shared): {best} {big[big['probe'] == best]['r2_shared'].mean():.3f}, "
                f"ridge {big[big['probe'] == 'ridge']['r2_shared'].mean():.3f}, ceiling "
                f"{per_seed['bayes_r2_shared'].mean():.3f}."
                if c == 0
                else ""
            )
        )
    big = df[df["n_train"] == n_max]
    for c, g in big.groupby("private_correlation"):
        truth = g.groupby("seed")["bayes_recovered_private"].first().mean()
        rec = {p: g[g["probe"] == p]["recovered_private"].mean() for p in probes_}
        kind = (
            "an identity of the model: with independent privates nothing of y_private is "
            "predictable from x"
            if c == 0
            else "a measured quantity with a known truth"
        )
        lines.append(
            f"- c = {c}: the optimal predictor captures {truth:.3f} of the private part "
            f"({kind}); probes capture " + ", ".join(f"{p} {v:.3f}" for p, v in rec.items()) + "."
        )
    ind = sh[sh["test_set"] == "in_distribution"].set_index(["nonlinearity",
                                                              "private_correlation", "seed",
                                                              "probe"])["r2_shared"]  # fmt: skip
    for test in ("concept", "selection_q"):
        t = sh[sh["test_set"] == test].set_index(ind.index.names)["r2_shared"]
        drop = (ind - t).groupby(level="probe").mean()
        lines.append(
            f"- `{test}`: R²(y_shared) falls by "
            + ", ".join(f"{p} {drop[p]:.3f}" for p in probes_)
            + " relative to in distribution (mean over regimes)."
        )
    lines += _recall_findings(sh, probes_)
    cold = sh[sh["test_set"] == "cold_items"]
    own = cold.groupby(["nonlinearity", "private_correlation", "seed"])["cold_own_r2"].first()
    lines.append(
        "- Cold items (clean target): probes reach R² "
        + ", ".join(f"{p} {cold[cold['probe'] == p]['r2'].mean():.3f}" for p in probes_)
        + f"; the item's own noisy CF estimate reaches {own.mean():.3f}."
    )
    return "\n".join(lines)


def _recall_findings(sh: pd.DataFrame, probes_: list[str]) -> list[str]:
    """Findings of the downstream-Recall table (computed, never hard-coded)."""
    lines = []
    rec = sh.set_index(["nonlinearity", "private_correlation", "seed", "probe", "test_set"])
    for test in ("concept", "selection_q"):
        drop = (
            rec.xs("in_distribution", level="test_set")["recall"]
            - rec.xs(test, level="test_set")["recall"]
        )
        lines.append(
            f"- `{test}` downstream: Recall@20 falls by "
            + ", ".join(
                f"{p} {_ci(drop.xs(p, level='probe').groupby(level='seed').mean())}"
                for p in probes_
            )
            + " relative to in distribution (mean over regimes; interval over seeds)."
        )
    cold = sh[sh["test_set"] == "cold_items"]
    cold_seed = cold.groupby(["nonlinearity", "private_correlation", "seed"]).first()
    lines.append(
        "- Cold items downstream: Recall@20 of probes "
        + ", ".join(f"{p} {cold[cold['probe'] == p]['recall'].mean():.3f}" for p in probes_)
        + f"; the item's own noisy CF estimate {cold_seed['recall_own_estimate'].mean():.3f}; "
        f"the clean CF view {cold_seed['recall_cf_view'].mean():.3f}; the semantic view "
        f"{cold_seed['recall_semantic'].mean():.3f}."
    )
    return lines


def _tables(df: pd.DataFrame, sh: pd.DataFrame, probes_: list[str]):
    """Tables 1-3 of the report: ceilings and probes, private recovery, shifts (R²)."""
    n_max = int(df["n_train"].max())
    # Table 1: per regime at the largest n: ceilings and every probe.
    tab = []
    for (eta, c), g in df[df["n_train"] == n_max].groupby(["nonlinearity", "private_correlation"]):
        per_seed = g.groupby("seed").first()
        row = {"nonlinearity": eta, "private_correlation": c}
        for m in ("shared_fraction_cf", "r2_star", "bayes_r2", "bayes_r2_shared"):
            row[m] = _ci(per_seed[m])
        for p in probes_:
            row[f"r2 {p}"] = _ci(g[g["probe"] == p]["r2"])
        for p in probes_:
            row[f"r2_shared {p}"] = _ci(g[g["probe"] == p]["r2_shared"])
        tab.append(row)
    t1 = pd.DataFrame(tab)

    # Table 2: private recovery against its closed-form truth.
    tab = []
    for (eta, c), g in df[df["n_train"] == n_max].groupby(["nonlinearity", "private_correlation"]):
        per_seed = g.groupby("seed").first()
        row = {
            "nonlinearity": eta,
            "private_correlation": c,
            "private_recoverable": _ci(per_seed["private_recoverable"]),
            "bayes_recovered_private": _ci(per_seed["bayes_recovered_private"]),
        }
        for p in probes_:
            row[f"recovered_private {p}"] = _ci(g[g["probe"] == p]["recovered_private"])
        tab.append(row)
    t2 = pd.DataFrame(tab)

    # Table 3: shifts at n_shift.
    tab = []
    for (eta, c, test), g in sh.groupby(["nonlinearity", "private_correlation", "test_set"]):
        metric = "r2" if test == "cold_items" else "r2_shared"
        row = {"nonlinearity": eta, "private_correlation": c, "test_set": test, "metric": metric}
        for p in probes_:
            row[p] = _ci(g[g["probe"] == p][metric])
        row["own CF estimate"] = (
            _ci(g.groupby("seed")["cold_own_r2"].first()) if test == "cold_items" else ""
        )
        tab.append(row)
    t3 = pd.DataFrame(tab)
    return t1, t2, t3

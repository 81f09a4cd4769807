"""complemjax: semantic and collaborative views of the same items, in JAX.

The names most studies need are importable from the top level (``cj.compare_rankers``);
everything else lives in its module, each one concept (see ``DESIGN.md``)::

    cj.generative   shared-plus-private model, shifts, population quantities, Bayes ceiling
    cj.probes       ridge / reduced-rank / MLP / random-feature probes (cj.probes.fit, .tune)
    cj.similarity   R², CKA, mutual kNN, CKNNA, Procrustes, SVCCA, principal angles
    cj.ranking      chunked full-ranking top-K and ranking metrics
    cj.complementarity  overlap, unique hits, oracle fusion bounds between two rankers
    cj.stats        cluster bootstrap over users, paired tests, Holm, pre-registered claims
    cj.models       one training/selection protocol; BPR, LightGCN, EASE, AlphaRec, RLMRec
    cj.fusion       score normalisation, rule fusion, learned gate, shared-private fusion
    cj.semantic     text encoders (WordLlama, e5), embedding post-processing, caching
    cj.recommenders semantic recommenders (profiles, item kNN) and their selection
    cj.data         interactions, loaders, splits, padded item sets, IMDB metadata
    cj.sweep        vmapped, sharded, resumable grids
    cj.trec         TREC run / qrels files and ranx runs in and out
    cj.report       tables and figures
    cj.cf           compatibility names of the CF models (now in cj.models)
"""

from complemjax import _xla_flags

_xla_flags.apply()  # before any JAX computation; see complemjax/_xla_flags.py

from complemjax import (  # noqa: E402
    cf,
    complementarity,
    data,
    fusion,
    generative,
    models,
    probes,
    ranking,
    recommenders,
    report,
    semantic,
    similarity,
    stats,
    sweep,
    trec,
)
from complemjax.complementarity import compare_rankers, pair_user_stats  # noqa: E402
from complemjax.data import pad_item_lists, pad_item_sets  # noqa: E402
from complemjax.generative import (  # noqa: E402
    Shift,
    UserKnobs,
    UsersConfig,
    ViewsConfig,
    ViewsKnobs,
    bayes_ceiling,
    latent_posterior,
    population_stats,
    sample_interactions,
    sample_split,
    sample_views,
)
from complemjax.models import (  # noqa: E402
    BPRConfig,
    BPRHParams,
    fit_bpr,
    fit_ease,
    popularity,
)
from complemjax.probes import (  # noqa: E402
    MLP,
    ProbeHParams,
    RandomFeatures,
    ReducedRank,
    Ridge,
    select_l2,
)
from complemjax.ranking import (  # noqa: E402
    TopK,
    evaluate_topk,
    per_user_metrics,
    topk_from_embeddings,
    topk_from_score_fn,
)
from complemjax.recommenders import select_semantic_ranker, user_profiles  # noqa: E402
from complemjax.semantic import embed_items, embed_texts  # noqa: E402
from complemjax.similarity import (  # noqa: E402
    cknna,
    debiased_linear_cka,
    geometry_recovery,
    linear_cka,
    mutual_knn,
    principal_angles,
    procrustes_distance,
    r2_score,
    rbf_cka,
    recovery_attribution,
    svcca,
    variance_share,
)
from complemjax.sweep import run_grid  # noqa: E402

__version__ = "0.2.0"

__all__ = [
    "MLP",
    "BPRConfig",
    "BPRHParams",
    "ProbeHParams",
    "RandomFeatures",
    "ReducedRank",
    "Ridge",
    "Shift",
    "TopK",
    "UserKnobs",
    "UsersConfig",
    "ViewsConfig",
    "ViewsKnobs",
    "__version__",
    "bayes_ceiling",
    "cf",
    "cknna",
    "compare_rankers",
    "complementarity",
    "data",
    "debiased_linear_cka",
    "embed_items",
    "embed_texts",
    "evaluate_topk",
    "fit_bpr",
    "fit_ease",
    "fusion",
    "generative",
    "geometry_recovery",
    "latent_posterior",
    "linear_cka",
    "models",
    "mutual_knn",
    "pad_item_lists",
    "pad_item_sets",
    "pair_user_stats",
    "per_user_metrics",
    "popularity",
    "population_stats",
    "principal_angles",
    "probes",
    "procrustes_distance",
    "r2_score",
    "ranking",
    "rbf_cka",
    "recommenders",
    "recovery_attribution",
    "report",
    "run_grid",
    "sample_interactions",
    "sample_split",
    "sample_views",
    "select_l2",
    "select_semantic_ranker",
    "semantic",
    "similarity",
    "stats",
    "svcca",
    "sweep",
    "topk_from_embeddings",
    "topk_from_score_fn",
    "trec",
    "user_profiles",
    "variance_share",
]

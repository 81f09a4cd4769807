"""Fusion of two item views: rule-based, learned gated and shared-plus-private fusion.

Rule-based fusion, learned gated fusion and a shared-plus-private fusion model. The
alignment-centric baselines they are compared against are model families in :mod:`complemjax.models`
(:mod:`~complemjax.models.alpharec`, :mod:`~complemjax.models.rlmrec`).

Submodules: :mod:`~complemjax.fusion.rules` (normalisation, CombSUM/CombMNZ/RRF/Borda, tuning),
:mod:`~complemjax.fusion.gate` (learned complementarity-aware gate),
:mod:`~complemjax.fusion.shared_private` (shared-plus-private model).
"""

from complemjax.fusion.gate import (
    GateConfig,
    GateFit,
    GateHParams,
    GateParams,
    fit_gate,
    gate_init,
    gate_item_features,
    gate_loss,
    gate_score_fn,
    gate_scores,
    gate_user_features,
)
from complemjax.fusion.rules import (
    FUSION_METHODS,
    NORM_METHODS,
    FusedRun,
    RuleConfig,
    RuleHParams,
    TuneResult,
    fuse_runs,
    fuse_score_fns,
    fuse_scores,
    normalize_scores,
    rule_grid,
    tune_rule,
)
from complemjax.fusion.shared_private import (
    SharedPrivateConfig,
    SharedPrivateFit,
    SharedPrivateHParams,
    SharedPrivateParams,
    fit_shared_private,
    orthogonality,
    shared_private_embeddings,
    shared_private_init,
    shared_private_loss,
    shared_private_parts,
)

__all__ = [
    "FUSION_METHODS",
    "NORM_METHODS",
    "FusedRun",
    "GateConfig",
    "GateFit",
    "GateHParams",
    "GateParams",
    "RuleConfig",
    "RuleHParams",
    "SharedPrivateConfig",
    "SharedPrivateFit",
    "SharedPrivateHParams",
    "SharedPrivateParams",
    "TuneResult",
    "fit_gate",
    "fit_shared_private",
    "fuse_runs",
    "fuse_score_fns",
    "fuse_scores",
    "gate_init",
    "gate_item_features",
    "gate_loss",
    "gate_score_fn",
    "gate_scores",
    "gate_user_features",
    "normalize_scores",
    "orthogonality",
    "rule_grid",
    "shared_private_embeddings",
    "shared_private_init",
    "shared_private_loss",
    "shared_private_parts",
    "tune_rule",
]

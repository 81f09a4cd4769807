"""End-to-end tests of the synthetic studies (alignment, complementarity) on tiny grids."""

import dataclasses

import jax
import numpy as np
import pandas as pd
import pytest

from complemjax import cli
from complemjax.studies import synthetic_alignment as sa
from complemjax.studies import synthetic_c5 as c5
from complemjax.studies import synthetic_complementarity as sc

TINY_SA = dataclasses.replace(
    sa.StudyConfig(),
    nonlinearities=(1.0,),
    private_correlations=(0.0, 0.6),
    n_seeds=2,
    n_trains=(100,),
    n_shift=100,
    n_test=100,
    widths=(4,),
    learning_rates=(1e-2,),
    weight_decays=(0.0,),
    l2_grid=(1.0, 10.0),
    mlp_steps=10,
    n_mc=4,
    shift_users=100,
    shift_density=0.05,
    shift_max_interactions=12,
)
TINY_C5 = c5.AlignmentConfig(
    align_weights=(0.0, 0.1),
    n_items=120,
    n_users=100,
    max_interactions=16,
    density=0.1,
    n_seeds=2,
    dim=8,
    batch_size=64,
    max_epochs=2,
    eval_every=1,
)
TINY_SC = dataclasses.replace(
    sc.StudyConfig(),
    private_reliances=(0.1, 0.9),
    densities=(0.02,),
    n_items=300,
    n_users=200,
    max_interactions=24,
    n_seeds=2,
    bpr_epochs=4,
    bpr_eval_every=2,
    bpr_batch=256,
    bpr_learning_rates=(1e-2, 3e-2),
    bpr_l2s=(1e-4,),
    alignment=TINY_C5,
)


# The end-to-end runs compile the whole study program (tens of seconds even for tiny
# grids), so they are slow tests; the config checks below are fast.


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    sa.run(out, config=TINY_SA, progress=False)
    sc.run(out, config=TINY_SC, progress=False)
    return out


@pytest.mark.slow
def test_alignment_tables_are_complete_and_ceilings_consistent(results):
    df = pd.read_csv(results / "synthetic_alignment.csv")
    n_probes = len(TINY_SA.probe_names())
    assert len(df) == 2 * 2 * len(TINY_SA.n_trains) * n_probes
    assert not df[list(sa.METRICS) + list(sa.CEILINGS)].isna().any().any()
    # Identity of the model: with independent privates nothing of y_private is recoverable.
    assert (df.loc[df["private_correlation"] == 0.0, "private_recoverable"] == 0.0).all()
    assert (df.loc[df["private_correlation"] == 0.6, "private_recoverable"] > 0.05).all()
    # One world per (configuration, seed): ceilings do not depend on probe or n.
    per = df.groupby(["private_correlation", "seed"])[list(sa.CEILINGS)].nunique()
    assert (per == 1).all().all()
    sh = pd.read_csv(results / "synthetic_alignment_shifts.csv")
    assert set(sh["test_set"]) == set(sa.SHIFT_TESTS)
    assert len(sh) == 2 * 2 * n_probes * len(sa.SHIFT_TESTS)
    # In-distribution rows of the shift table are the learning-curve rows at n_shift.
    ind = sh[sh["test_set"] == "in_distribution"].set_index(
        ["private_correlation", "seed", "probe"]
    )["r2"]
    cur = df[df["n_train"] == TINY_SA.n_shift].set_index(["private_correlation", "seed", "probe"])
    np.testing.assert_allclose(ind.sort_index(), cur["r2"].sort_index(), atol=1e-6)
    # Downstream Recall: cold items use the in-distribution items and users, so the probe
    # rankers agree exactly; only cold items have the own-estimate reference.
    rec = sh.set_index(["private_correlation", "seed", "probe", "test_set"])["recall"]
    np.testing.assert_allclose(
        rec.xs("cold_items", level="test_set").sort_index(),
        rec.xs("in_distribution", level="test_set").sort_index(),
        atol=1e-6,
    )
    assert sh["recall"].between(0, 1).all()
    own = sh.set_index("test_set")["recall_own_estimate"]
    assert own.loc["cold_items"].notna().all() and own.drop("cold_items").isna().all()
    assert sh["recall_cf_view"].notna().all()


def test_alignment_config_rejects_sine_family_and_bad_shift_size():
    with pytest.raises(ValueError, match="n_shift"):
        dataclasses.replace(sa.StudyConfig(), n_shift=3)
    with pytest.raises(ValueError, match="cf_map"):
        dataclasses.replace(sa.StudyConfig(), views=sa.gen.ViewsConfig())


@pytest.mark.slow
def test_complementarity_invariants(results):
    df = pd.read_csv(results / "synthetic_complementarity.csv")
    assert len(df) == 2 * 2 * len(sc.PAIRS) * len(sc.KS)
    best = np.maximum(df["recall_sem"], df["recall_cf"])
    assert (df["oracle_best_recall"] >= best - 1e-6).all()
    assert (df["oracle_merge_recall"] >= df["oracle_best_recall"] - 1e-6).all()
    assert (df["union_2k_recall"] >= df["oracle_merge_recall"] - 1e-6).all()
    shares = df["unique_share_sem"] + df["unique_share_cf"] + df["shared_hit_share"]
    np.testing.assert_allclose(shares, 1.0, atol=1e-5)
    # The BPR of the comparison pair is ranker A of the null pair.
    m = df[df["pair"] == "semantic-bpr"].set_index(["private_reliance", "seed", "K"])
    n = df[df["pair"] == "bpr-bpr_seed"].set_index(["private_reliance", "seed", "K"])
    np.testing.assert_allclose(m["recall_cf"], n["recall_sem"], atol=1e-6)


@pytest.mark.slow
def test_bpr_tuning_table_is_a_validation_choice(results):
    t = pd.read_csv(results / "synthetic_complementarity_bpr_tuning.csv")
    assert list(t["density"]) == list(TINY_SC.densities)
    assert set(t["learning_rate"]) <= set(TINY_SC.bpr_learning_rates) and set(t["l2"]) <= set(
        TINY_SC.bpr_l2s
    )
    assert (t["epochs"] % TINY_SC.bpr_eval_every == 0).all()
    assert t["epochs"].between(TINY_SC.bpr_eval_every, TINY_SC.bpr_epochs).all()
    assert (t["configs"] == len(TINY_SC.bpr_learning_rates) * len(TINY_SC.bpr_l2s)).all()


@pytest.mark.slow
def test_c5_table_structure(results):
    df = pd.read_csv(results / "synthetic_complementarity_c5.csv", dtype={"align_weight": str})
    labels = [f"{w:g}" for w in TINY_C5.align_weights] + [c5.NULL]
    assert len(df) == TINY_C5.n_seeds * len(labels)
    assert set(df["align_weight"]) == set(labels)
    # exactly one weight (never the null) is validation's choice in each world
    chosen = df[df["chosen_on_valid"]]
    assert (chosen.groupby("seed").size() == 1).all() and c5.NULL not in set(chosen["align_weight"])
    # world-level references are shared by every model of a seed
    per = df.groupby("seed")[["q_r2_x", "s_r2_x", "q_r2_floor"]].nunique()
    assert (per == 1).all().all()
    assert df["recall"].between(0, 1).all() and (df[["q_r2", "s_r2", "p_r2"]] <= 1).all().all()
    # the semantic vectors carry the shared latent, not the CF-private one (c = 0)
    assert (df["s_r2_x"] > 0.5).all() and (df["q_r2_x"] < 0.1).all()


@pytest.mark.slow
def test_report_rebuilds_from_saved_results(results):
    assert cli.main(["report", str(results)]) == 0
    text = (results / "report.md").read_text()
    assert "## Synthetic alignment probes" in text
    assert "What the code finds" in text
    assert "Alignment on ground truth" in text and "Shifts downstream" in text
    for fig in (
        "alignment_learning_curves.png",
        "complementarity_recall_overlap.png",
        "complementarity_c5_alignment.png",
    ):
        assert (results / "figures" / fig).stat().st_size > 5_000


@pytest.mark.slow
def test_sweep_command_runs_and_resumes(tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        'study = "synthetic_complementarity"\n'
        "seed = 0\n"
        "[config]\n"
        "private_reliances = [0.2]\n"
        "densities = [0.02]\n"
        "n_items = 200\n"
        "n_users = 100\n"
        "max_interactions = 16\n"
        "n_seeds = 2\n"
        "bpr_epochs = 2\n"
        "bpr_eval_every = 1\n"
        "bpr_learning_rates = [0.01]\n"
        "bpr_l2s = [0.0001]\n"
        "bpr_batch = 128\n"
        "[config.alignment]\n"
        "enabled = false\n"
    )
    out = tmp_path / "out"
    assert cli.main(["sweep", str(cfg), "--out", str(out), "--quiet"]) == 0
    first = pd.read_csv(out / "synthetic_complementarity.csv")
    assert len(first) == 2 * 2 * len(sc.PAIRS)
    assert (out / "checkpoints" / "synthetic_complementarity" / "manifest.json").exists()
    # A rerun reuses the finished chunks and gives the same table.
    assert cli.main(["sweep", str(cfg), "--out", str(out), "--quiet"]) == 0
    pd.testing.assert_frame_equal(first, pd.read_csv(out / "synthetic_complementarity.csv"))


def test_profiles_from_sets_eager_equals_jit_and_numpy():
    from complemjax.studies.synthetic_complementarity import profiles_from_sets

    e = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    sets = np.array([[0, 2, -1], [-1, -1, -1], [5, 5, 1]])
    v = e / np.linalg.norm(e, axis=1, keepdims=True)
    want = np.stack([(v[0] + v[2]) / 2, np.zeros(3), (2 * v[5] + v[1]) / 3])
    np.testing.assert_allclose(profiles_from_sets(e, sets), want, atol=1e-6)
    np.testing.assert_allclose(jax.jit(profiles_from_sets)(e, sets), want, atol=1e-6)

"""End-to-end tests of the studies and the `complemjax` command on tiny grids."""

import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from complemjax import cli
from complemjax.studies import synthetic_alignment as sa
from complemjax.studies import synthetic_complementarity as sc

TINY_SA = dataclasses.replace(
    sa.StudyConfig(),
    shared_fractions=(0.5,),
    nonlinearities=(0.0, 1.0),
    n_seeds=2,
    n_train=200,
    n_test=100,
    ranks=(2,),
    widths=(8,),
    mlp_steps=20,
    chunk_size=4,
)
TINY_SC = dataclasses.replace(
    sc.StudyConfig(),
    private_reliances=(0.1, 0.9),
    densities=(0.02,),
    n_items=300,
    n_users=200,
    max_interactions=24,
    n_seeds=2,
)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    sa.run(out, config=TINY_SA, progress=False)
    sc.run(out, config=TINY_SC, progress=False)
    return out


def test_alignment_table_is_complete_and_consistent(results):
    df = pd.read_csv(results / "synthetic_alignment.csv")
    n_probes = 1 + len(TINY_SA.ranks) + len(TINY_SA.widths)
    n_tests = len(sa.SCENARIOS) + 1
    assert len(df) == 2 * 2 * n_probes * n_tests
    assert not df[list(sa.METRICS)].isna().any().any()
    # R²* exists only in the linear case and bounds ridge's in-distribution R² loosely.
    lin = df[(df["nonlinearity"] == 0.0)]
    assert lin["r2_star"].notna().all()
    assert df[df["nonlinearity"] == 1.0]["r2_star"].isna().all()
    # The ceiling of any x-based predictor is Var(y_shared)/Var(y) < 1.
    assert (df["shared_ceiling"] < 1).all()


def test_complementarity_invariants(results):
    df = pd.read_csv(results / "synthetic_complementarity.csv")
    assert len(df) == 2 * 2 * 2
    best = np.maximum(df["recall_sem"], df["recall_cf"])
    assert (df["oracle_best_recall"] >= best - 1e-6).all()
    assert (df["oracle_merge_recall"] >= df["oracle_best_recall"] - 1e-6).all()
    assert (df["union_2k_recall"] >= df["oracle_merge_recall"] - 1e-6).all()
    shares = df["unique_share_sem"] + df["unique_share_cf"] + df["shared_hit_share"]
    np.testing.assert_allclose(shares, 1.0, atol=1e-5)


def test_report_rebuilds_from_saved_results(results):
    assert cli.main(["report", str(results)]) == 0
    text = (results / "report.md").read_text()
    assert "## Synthetic alignment probes" in text
    assert "What the code finds" in text
    for fig in ("alignment_recovery_vs_capacity.png", "complementarity_unique_hits.png"):
        assert (results / "figures" / fig).stat().st_size > 5_000


def test_command_help():
    out = subprocess.run(
        [sys.executable, "-m", "complemjax.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert "reproduce" in out.stdout and "report" in out.stdout


def test_report_on_missing_folder_fails_clearly(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        cli.main(["report", str(tmp_path / "nope")])


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
    )
    out = tmp_path / "out"
    assert cli.main(["sweep", str(cfg), "--out", str(out), "--quiet"]) == 0
    first = pd.read_csv(out / "synthetic_complementarity.csv")
    assert len(first) == 2 * 2
    assert (out / "checkpoints" / "synthetic_complementarity" / "manifest.json").exists()
    # A rerun reuses the finished chunks and gives the same table.
    assert cli.main(["sweep", str(cfg), "--out", str(out), "--quiet"]) == 0
    pd.testing.assert_frame_equal(first, pd.read_csv(out / "synthetic_complementarity.csv"))


@pytest.mark.slow
def test_movielens_study_end_to_end(tmp_path):
    from complemjax.studies import movielens_complementarity as ml

    cfg = dataclasses.replace(
        ml.StudyConfig(), variants=(("sparse", 0.25),), n_seeds=1, bpr_epochs=5,
        bpr_l2s=(1e-4,), ease_l2s=(200.0,), n_boot=20, mlp_steps=20,
    )  # fmt: skip
    ml.run(tmp_path, config=cfg, progress=False)
    models = pd.read_csv(tmp_path / "movielens_complementarity.csv")
    assert set(models["model"]) == {"popularity", "semantic", "semantic-map", "bpr", "ease"}
    assert models["value"].between(0, 1).all()
    assert "What the code finds" in ml.render(tmp_path)


@pytest.mark.slow
def test_fusion_study_end_to_end(tmp_path):
    from complemjax.studies import fusion

    cfg = dataclasses.replace(
        fusion.StudyConfig(), variants=(("sparse", 0.25),), n_seeds=1, bpr_epochs=5,
        bpr_l2s=(1e-4,), gate_steps=10, learned_steps=20, align_weights=(0.0, 1.0),
    )  # fmt: skip
    fusion.run(tmp_path, config=cfg, progress=False)
    df = pd.read_csv(tmp_path / "fusion.csv")
    methods = set(df["method"])
    assert {"semantic", "bpr", "wsum", "rrf", "combmnz", "gate", "oracle-merge"} <= methods
    assert {"aligned-mf (w=0)", "aligned-mf (w=1)"} <= methods
    assert df["value"].dropna().between(0, 1).all()
    assert "What the code finds" in fusion.render(tmp_path)

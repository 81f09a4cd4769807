"""End-to-end tests of the studies and the `complemjax` command on tiny grids (the
synthetic studies are tested in tests/test_studies_synthetic.py)."""

import dataclasses
import subprocess
import sys

import pandas as pd
import pytest

from complemjax import cli


def test_command_help():
    out = subprocess.run(
        [sys.executable, "-m", "complemjax.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert "reproduce" in out.stdout and "report" in out.stdout


def test_report_on_missing_folder_fails_clearly(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        cli.main(["report", str(tmp_path / "nope")])


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

"""Tests of study config loading and validation (nothing heavy is run)."""

import dataclasses
from pathlib import Path

import pytest

from complemjax import config
from complemjax.studies import synthetic_alignment as sa
from complemjax.studies import synthetic_complementarity as sc

CONFIGS = Path(config.__file__).parent / "configs"


def _write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_configs_load_and_match_the_defaults():
    a = config.load_config(CONFIGS / "synthetic_alignment.toml")
    assert a.study == "synthetic_alignment" and a.seed == 0 and not a.full
    assert a.config == sa.StudyConfig()
    c = config.load_config(CONFIGS / "synthetic_complementarity.toml")
    assert c.study == "synthetic_complementarity"
    assert c.config == sc.StudyConfig()


def test_toml_overrides_lists_become_tuples_and_nested_tables(tmp_path):
    path = _write(
        tmp_path,
        """
study = "synthetic_alignment"
out_dir = "out/a"
seed = 7

[config]
learning_rates = [0.1, 1]
widths = [8]
n_seeds = 2
noise = 1

[config.views]
dim_sem = 16
""",
    )
    spec = config.load_config(path)
    assert spec.out_dir == Path("out/a") and spec.seed == 7 and spec.source == path
    cfg = spec.config
    assert cfg.learning_rates == (0.1, 1.0)
    assert isinstance(cfg.learning_rates, tuple)
    assert all(isinstance(v, float) for v in cfg.learning_rates)  # int -> float
    assert cfg.widths == (8,) and cfg.n_seeds == 2 and cfg.noise == 1.0
    assert cfg.views.dim_sem == 16 and cfg.views.dim_cf == sa.StudyConfig().views.dim_cf
    assert cfg.nonlinearities == sa.StudyConfig().nonlinearities  # untouched defaults
    hash(cfg)  # still a hashable static config


def test_yaml_equals_toml(tmp_path):
    toml = _write(
        tmp_path,
        'study = "synthetic_alignment"\nfull = true\n[config]\nn_seeds = 3\nwidths = [16]\n',
    )
    yaml = _write(
        tmp_path,
        "study: synthetic_alignment\nfull: true\nconfig:\n  n_seeds: 3\n  widths: [16]\n",
        name="c.yaml",
    )
    a, b = config.load_config(toml), config.load_config(yaml)
    assert a.config == b.config
    assert a.config == dataclasses.replace(sa.StudyConfig.full(), n_seeds=3, widths=(16,))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('study = "synthetic_alignment"\nsed = 1\n', "`sed`"),
        ("seed = 1\n", "`study`"),
        ('study = "nope"\n', "study"),
        ('study = "synthetic_alignment"\nseed = "1"\n', "`seed`"),
        ('study = "synthetic_alignment"\nseed = -1\n', "`seed`"),
        ('study = "synthetic_alignment"\nfull = 1\n', "`full`"),
        ('study = "synthetic_alignment"\n[config]\nn_seed = 2\n', "`config.n_seed`"),
        ('study = "synthetic_alignment"\n[config]\nn_seeds = 2.0\n', "`config.n_seeds`"),
        ('study = "synthetic_alignment"\n[config]\nn_seeds = true\n', "`config.n_seeds`"),
        ('study = "synthetic_alignment"\n[config]\nnoise = "0.1"\n', "`config.noise`"),
        ('study = "synthetic_alignment"\n[config]\nwidths = [16.5]\n', r"`config.widths\[0\]`"),
        ('study = "synthetic_alignment"\n[config]\nwidths = 16\n', "`config.widths`"),
        ('study = "synthetic_alignment"\n[config]\nprivate_correlations = []\n', "empty"),
        ('study = "synthetic_alignment"\n[config]\nviews = 3\n', "`config.views`"),
        ('study = "synthetic_alignment"\n[config.views]\ndim = 3\n', "`config.views.dim`"),
        ('study = "synthetic_alignment"\n[config.views]\ndim_sem = 0\n', "dim_sem"),
        ("study = [\n", "TOML"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        config.load_config(_write(tmp_path, text))


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="path"):
        config.load_config(tmp_path / "missing.toml")
    with pytest.raises(ValueError, match="path"):
        config.load_config(_write(tmp_path, "x", name="c.json"))
    with pytest.raises(ValueError, match="path"):
        config.load_config(_write(tmp_path, "- 1\n- 2\n", name="c.yaml"))
    with pytest.raises(ValueError, match="YAML"):
        config.load_config(_write(tmp_path, "a: [\n", name="c.yml"))


def test_run_config_calls_the_study(tmp_path, monkeypatch):
    calls = []

    def fake_run(out_dir, *, full=False, config=None, seed=0, progress=True, resume=True):
        calls.append((out_dir, config, seed, progress, resume))
        return "table"

    monkeypatch.setattr(sa, "run", fake_run)
    path = _write(
        tmp_path,
        'study = "synthetic_alignment"\nout_dir = "res"\nseed = 3\n[config]\nn_seeds = 1\n',
    )
    assert config.run_config(path, resume=False, progress=False) == "table"
    out_dir, cfg, seed, progress, resume = calls[0]
    assert out_dir == Path("res") and seed == 3 and cfg.n_seeds == 1
    assert progress is False and resume is False
    config.run_config(path, out_dir=tmp_path / "elsewhere")
    assert calls[1][0] == tmp_path / "elsewhere" and calls[1][4] is True

    def old_run(out_dir, *, full=False, config=None, seed=0, progress=True):
        calls.append("old")

    monkeypatch.setattr(sa, "run", old_run)
    config.run_config(path)  # a study without `resume` is called without it
    assert calls[-1] == "old"


def test_values_out_of_range_are_refused_naming_the_field(tmp_path):
    """``densities = [2.0]`` used to run and report "density 2.000"."""
    for body, name in [
        ("densities = [2.0]", "config.densities"),
        ("densities = [0.0]", "config.densities"),
        ("n_items = -5", "config.n_items"),
        ("shared_fraction = 1.5", "config.shared_fraction"),
        ("noise = nan", "config.noise"),
        ("private_reliances = [0.5, -0.1]", "config.private_reliances"),
    ]:
        path = _write(tmp_path, f'study = "synthetic_complementarity"\n[config]\n{body}\n')
        with pytest.raises(ValueError, match=rf"`{name}`"):
            config.load_config(path)
    # learning rates are > 0 under one name, scalar or list (``learning_rates`` was unchecked)
    for study, body, name in [
        ("synthetic_complementarity", "bpr_learning_rates = [0.0]", "config.bpr_learning_rates"),
        ("synthetic_alignment", "learning_rates = [0.01, -0.1]", "config.learning_rates"),
    ]:
        path = _write(tmp_path, f'study = "{study}"\n[config]\n{body}\n')
        with pytest.raises(ValueError, match=rf"`{name}` .*> 0"):
            config.load_config(path)
    path = _write(tmp_path, 'study = "synthetic_complementarity"\n[config.views]\nn_features = 0\n')
    with pytest.raises(ValueError, match=r"`config`.*`n_features` must be >= 1"):
        config.load_config(path)


def test_every_shipped_and_default_config_is_in_range():
    from complemjax import studies

    for name in studies.STUDIES:
        cls = studies.load(name).StudyConfig
        config.check_domain(cls())
        config.check_domain(cls.full())
    for path in sorted(CONFIGS.glob("*.*")):
        config.load_config(path)

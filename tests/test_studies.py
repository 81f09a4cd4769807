"""End-to-end tests of the studies and the `complemjax` command on tiny grids (the
synthetic studies are tested in tests/test_studies_synthetic.py)."""

import json
import math
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from complemjax import cli


@pytest.mark.slow  # a CLI subprocess (imports JAX afresh): run by make test-slow and test-all (CI)
def test_command_help():
    out = subprocess.run(
        [sys.executable, "-m", "complemjax.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert "reproduce" in out.stdout and "report" in out.stdout


def test_report_on_missing_folder_fails_clearly(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nope")]) != 0
    assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------------- base
def test_progress_estimate_excludes_the_warm_up_unit(capsys):
    from complemjax.studies.base import Progress

    p = Progress("x", 4, enabled=False)
    p.durations = [10.0, 2.0, 4.0]  # first unit carries compilation
    p.done = 3
    assert p.eta() == pytest.approx(3.0)  # 1 unit left x mean(2, 4)
    q = Progress("y", 3, enabled=False)
    q.durations, q.done = [5.0], 1
    assert q.eta() == pytest.approx(10.0)  # only the warm-up seen: its time per unit
    assert math.isnan(Progress("z", 2, enabled=False).eta())


def test_stage_timer_and_table_roundtrip(tmp_path):
    from complemjax.studies.base import StageTimer, load_tables, save_tables

    t = StageTimer()
    with t("a"):
        pass
    t.add("a", 1.0)
    t.add("b", 2.0)
    tab = t.table()
    assert list(tab["stage"]) == ["a", "b"] and list(tab["calls"]) == [2, 1]
    main = pd.DataFrame({"x": [1, 2]})
    save_tables(tmp_path, "demo", {"main": main, "timing": tab}, {"seconds": 3.0})
    tables, meta = load_tables(tmp_path, "demo")
    pd.testing.assert_frame_equal(tables["main"], main)
    assert meta["seconds"] == 3.0 and sorted(meta["tables"]) == ["main", "timing"]
    with pytest.raises(ValueError, match="main"):
        save_tables(tmp_path, "demo", {"timing": tab}, {})


def test_resolve_config_and_method_style():
    from complemjax.studies import base
    from complemjax.studies import movielens_complementarity as mc

    assert base.resolve_config(mc.StudyConfig) == mc.StudyConfig()
    assert base.resolve_config(mc.StudyConfig, full=True) == mc.StudyConfig.full()
    with pytest.raises(ValueError, match="config"):
        base.resolve_config(mc.StudyConfig, config=object())
    # one colour per method family, the same in every call; markers differ within a family
    assert base.method_style("wsum")["color"] == base.method_style("wsum@20")["color"]
    assert base.method_style("bpr") == base.method_style("bpr")
    assert base.method_style("semantic")["color"] != base.method_style("bpr")["color"]


def test_interval_plot_writes_png(tmp_path):
    from complemjax.studies.base import interval_plot

    d = pd.DataFrame({"method": ["a", "b"], "effect": [0.1, -0.1], "ci_low": [0.0, -0.2],
                      "ci_high": [0.2, 0.0], "variant": ["v", "v"]})  # fmt: skip
    path = interval_plot(d, path=tmp_path / "f.png", title="t", xlabel="x", facet="variant")
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="effect"):
        interval_plot(d.drop(columns="effect"), path=tmp_path / "g.png", title="t", xlabel="x")


# ----------------------------------------------------------------------------- pipeline
def _toy_prep(seed=0, n_users=30, n_items=40, dim=8, corrupt_test=False):
    """A tiny :class:`_movielens.Prepared` from random interactions."""
    import jax.numpy as jnp

    from complemjax import data as cdata
    from complemjax.studies import _movielens as ml

    rng = np.random.default_rng(seed)
    pairs = {(u, i) for u in range(n_users) for i in rng.choice(n_items, 12, replace=False)}
    u, i = np.array(sorted(pairs)).T
    part = rng.choice(4, size=u.size, p=[0.6, 0.1, 0.1, 0.2])  # train, sel, fuse, test
    pad = lambda m: jnp.asarray(cdata.pad_item_sets(u[m], i[m], n_users))  # noqa: E731
    test = pad(part == 3)
    if corrupt_test:  # any item, including training items: selection must not notice
        test = jnp.asarray(rng.integers(0, n_items, size=test.shape)).astype(test.dtype)
    tr = part == 0
    x = rng.normal(size=(n_items, dim)).astype(np.float32)
    return ml.Prepared(
        variant="toy", seed=seed, split="random",
        inter=types.SimpleNamespace(user_ids=np.arange(n_users), item_ids=np.arange(n_items)),
        n_users=n_users, n_items=n_items,
        train_user=u[tr], train_item=i[tr], train_ratings=np.full(tr.sum(), 4.0),
        train_times=np.arange(tr.sum()), train_sets=pad(tr), valid_select=pad(part == 1),
        valid_fuse=pad(part == 2), exclude_fuse=pad((part == 0) | (part == 1)), test_sets=test,
        exclude_test=pad(part < 3), x=jnp.asarray(x), has_text=np.ones(n_items, bool),
        counts=np.bincount(i[tr], minlength=n_items),
    )  # fmt: skip


def test_validation_halves_are_disjoint_and_cover_each_user():
    from complemjax import data as cdata
    from complemjax.studies import _movielens as ml

    rng = np.random.default_rng(0)
    u = np.repeat(np.arange(20), rng.integers(1, 7, size=20))
    i = np.concatenate([rng.choice(50, c, replace=False) for c in np.bincount(u)])
    df = pd.DataFrame({"user": u, "item": i})
    inter = cdata.from_frame(df, user_col="user", item_col="item")
    sel = ml._halves(inter, seed=3)
    n_sel = np.bincount(inter.user_idx[sel], minlength=inter.n_users)
    n_all = np.bincount(inter.user_idx, minlength=inter.n_users)
    assert (np.abs(2 * n_sel - n_all) <= 1).all()  # halves differ by at most one item
    assert (sel == ml._halves(inter, seed=3)).all() and not (sel == ml._halves(inter, 4)).all()


def test_model_cache_reuses_and_separates(tmp_path):
    import jax.numpy as jnp

    from complemjax.studies import _movielens as ml

    prep = _toy_prep()
    cache = ml.ModelCache(tmp_path)
    calls = []

    def fit():
        calls.append(1)
        return ml.Ranker("m", jnp.ones((3, 2)), jnp.zeros((4, 2)), {"epochs": 5})

    a = cache.get_or_fit(prep, "m", {"lr": 0.1}, fit)
    b = cache.get_or_fit(prep, "m", {"lr": 0.1}, fit)
    cache.get_or_fit(prep, "m", {"lr": 0.2}, fit)
    assert len(calls) == 2 and cache.hits == 1 and cache.misses == 2
    assert b.info["cached"] and not a.info["cached"] and b.info["epochs"] == 5
    np.testing.assert_array_equal(a.user_emb, b.user_emb)


def test_candidate_ranking_equals_the_sub_catalogue():
    import jax.numpy as jnp

    from complemjax import ranking
    from complemjax.studies import _movielens as ml

    rng = np.random.default_rng(1)
    ue, ie = rng.normal(size=(6, 4)), rng.normal(size=(30, 4))
    cand = np.array([3, 7, 8, 15, 22, 29])
    r = ml.Ranker("m", jnp.asarray(ue), jnp.asarray(ie), {})
    top = np.asarray(r.topk(None, k=4, candidates=cand))
    ref = ranking.topk_from_embeddings(jnp.asarray(ue), jnp.asarray(ie[cand]), k=4).items
    np.testing.assert_array_equal(top, cand[np.asarray(ref)])


def test_ease_on_active_items_equals_full_ease():
    import jax.numpy as jnp

    from complemjax import models
    from complemjax.studies import _models as mm

    prep = _toy_prep(n_items=45)
    keep = prep.train_item < 40  # items 40..44 leave training: inactive columns
    prep = prep._replace(train_user=prep.train_user[keep], train_item=prep.train_item[keep],
                         counts=np.bincount(prep.train_item[keep], minlength=45))  # fmt: skip
    r = mm.ease(prep, 10.0)
    b = models.fit_ease(prep.train_user, prep.train_item, n_users=prep.n_users,
                        n_items=prep.n_items, l2=10.0)  # fmt: skip
    x = np.zeros((prep.n_users, prep.n_items), np.float32)
    x[prep.train_user, prep.train_item] = 1.0
    np.testing.assert_allclose(np.asarray(r.user_emb), x @ np.asarray(b), atol=1e-4)
    assert jnp.all(r.user_emb[:, 40:] == 0)


def test_degraded_ranker_matches_the_target_validation_recall():
    import jax

    from complemjax.studies import _models as mm
    from complemjax.studies import _movielens as ml

    prep = _toy_prep(n_users=60, n_items=50)
    x = np.zeros((prep.n_users, prep.n_items), np.float32)
    v = np.asarray(prep.valid_select)
    rows, cols = np.nonzero(v >= 0)
    x[rows, v[rows, cols]] = 1.0
    base = ml.Ranker("cf", x, np.eye(prep.n_items, dtype=np.float32), {})
    full = ml.recall_at_k(base.topk(prep.train_sets), prep.valid_select)
    target = 0.5 * full
    d = mm.degraded(base, prep, target, jax.random.key(0))
    got = ml.recall_at_k(d.topk(prep.train_sets), prep.valid_select)
    assert abs(got - target) < 0.15 * full and got < full


@pytest.mark.slow
def test_no_test_access_during_selection():
    """Corrupting every test set changes no selection, epoch or trained embedding."""
    from complemjax.studies import _models as mm
    from complemjax.studies import _movielens as ml

    cfg = ml.PipelineConfig(n_configs=2, max_epochs=4, eval_every=2, patience=1, dim=4,
                            batch_size=64, n_seeds=2)  # fmt: skip
    specs = mm.family_specs(cfg)
    out = []
    for corrupt in (False, True):
        prep = _toy_prep(corrupt_test=corrupt)
        cache = ml.ModelCache(Path(tempfile.mkdtemp()))
        tuned = mm.tune(specs["bpr"], prep, cfg, cache)
        fitted = mm.fit_learned(specs["bpr"], prep, tuned, cfg, cache)
        ease = mm.select_ease(prep, cfg, cache)
        out.append((tuned["chosen"], tuned["epochs"], fitted.info["epochs"], ease["chosen"],
                    np.asarray(fitted.item_emb)))  # fmt: skip
    assert out[0][:4] == out[1][:4]
    np.testing.assert_array_equal(out[0][4], out[1][4])


# ----------------------------------------------------------------------------- semantic variants
def _recall_np(top, sets, k=20):
    """NumPy Recall@k: mean over users with a test item of |top_k ∩ T_u| / |T_u|."""
    vals = []
    for t, s in zip(np.asarray(top), np.asarray(sets)):
        s = set(s[s >= 0].tolist())
        if s:
            vals.append(len(s & set(t[:k][t[:k] >= 0].tolist())) / len(s))
    return float(np.mean(vals))


def test_semantic_variant_table_matches_selection_and_direct_ranking(tmp_path):
    """The variant table's selected row is select_semantic_ranker's pick (with its
    validation score), its validation column is the selection's own record, and every row's
    test recall equals a direct semantic_topk ranking scored by NumPy; the headline row is
    the semantic ranker of the accuracy table."""
    import jax

    from complemjax import recommenders, semantic
    from complemjax.studies import _models as mm
    from complemjax.studies import _movielens as ml
    from complemjax.studies import movielens_complementarity as mc

    prep = _toy_prep(n_users=40, n_items=120, dim=6)
    rng = np.random.default_rng(3)
    prep = prep._replace(train_ratings=rng.choice([1.0, 3.0, 5.0], prep.train_user.size))
    sel = mm.tune_semantic(prep, ml.ModelCache(tmp_path), view="toy/base")
    rankers, pps = mm.semantic_grid(False)
    direct = recommenders.select_semantic_ranker(
        prep.x, prep.train_user, prep.train_item, n_users=prep.n_users,
        valid_sets=prep.valid_select, ratings=prep.train_ratings, timestamps=prep.train_times,
        rankers=rankers, postprocesses=pps, fit_mask=prep.has_text, k=20,
    )  # fmt: skip
    refs = {"popularity": mm.popularity(prep), "random": mm.random_ranker(prep, jax.random.key(0))}
    tops = {name: r.topk(prep.exclude_test) for name, r in refs.items()}
    extra = {"variant": "toy", "seed": 0}
    df = mc._variant_rows(prep, {"semantic": sel}, tops, ml.PipelineConfig(), extra)
    sem = df[df["encoder"] != "-"]
    assert len(sem) == len(rankers) * len(pps) and sem["selected"].sum() == 1
    chosen = sem[sem["selected"]].iloc[0]
    assert (chosen["ranker"], chosen["postprocess"]) == (
        direct.ranker.describe(), direct.postprocess.describe())  # fmt: skip
    assert chosen["valid_recall"] == pytest.approx(direct.valid_score)
    assert chosen["valid_recall"] == sem["valid_recall"].max() and chosen["headline"]
    trials = {(t["postprocess"], t["ranker"]): t["valid_recall"] for t in direct.trials}
    for _, row in sem.iterrows():
        assert row["valid_recall"] == pytest.approx(trials[row["postprocess"], row["ranker"]])
        r = rankers[[x.describe() for x in rankers].index(row["ranker"])]
        pp = pps[[x.describe() for x in pps].index(row["postprocess"])]
        x = semantic.postprocess(prep.x, pp, mask=prep.has_text)
        top = recommenders.semantic_topk(
            r, x, prep.train_user, prep.train_item, n_users=prep.n_users, k=20,
            exclude=prep.exclude_test, ratings=prep.train_ratings, timestamps=prep.train_times,
        )  # fmt: skip
        assert row["test_recall"] == pytest.approx(_recall_np(top.items, prep.test_sets), abs=1e-6)
    head = mm.semantic_ranker(prep, sel).topk(prep.exclude_test)
    assert chosen["test_recall"] == pytest.approx(_recall_np(head, prep.test_sets), abs=1e-6)
    refs = df[df["encoder"] == "-"].set_index("ranker")["test_recall"]
    for name in ("popularity", "random"):
        assert refs[name] == pytest.approx(_recall_np(tops[name], prep.test_sets), abs=1e-6)


def test_knn_scores_equal_the_jitted_score_fn():
    """The sparse-product item-kNN scores of the study equal recommenders.item_knn_score_fn,
    including duplicated history pairs and quantised vectors with tied similarities."""
    import jax.numpy as jnp

    from complemjax import recommenders
    from complemjax.studies import _models as mm

    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.integers(-1, 2, size=(25, 3)).astype(np.float32))  # many ties
    nb = recommenders.item_neighbors(x, n_neighbors=6)
    u = rng.integers(0, 9, 60)
    i = rng.integers(0, 25, 60)
    u, i = np.r_[u, u[:5]], np.r_[i, i[:5]]  # duplicates count once, as in a set
    got = np.asarray(mm.knn_scores(nb, u, i, 9))
    hist = _pad_sets(u, i, 9)
    ref = np.asarray(recommenders.item_knn_score_fn(nb, hist)(jnp.arange(9)))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    assert (ref != 0).mean() > 0.2  # not a vacuous comparison


def _pad_sets(u, i, n_users):
    from complemjax import data as cdata

    return cdata.pad_item_sets(np.asarray(u), np.asarray(i), n_users)


def test_semantic_views_config():
    from complemjax.studies import _movielens as ml
    from complemjax.studies import movielens_complementarity as mc

    assert mc.StudyConfig().views() == [("wordllama", "base")]
    full = mc.StudyConfig.full()
    assert full.views()[0] == ("wordllama", "base") and len(full.views()) == 6
    assert {e for e, _ in full.views()} == {"wordllama", "e5"}
    e5 = ml.PipelineConfig(encoder="e5")
    v = mc.StudyConfig(pipeline=e5, semantic_encoders=("wordllama", "e5")).views()
    assert v == [("e5", "base"), ("wordllama", "base")]
    for bad in ({"semantic_encoders": ("e5",)}, {"semantic_templates": ("imdb",)},
                {"semantic_encoders": ("wordllama", "bert")},
                {"semantic_templates": ("base", "base")}):  # fmt: skip
        with pytest.raises(ValueError, match="semantic_"):
            mc.StudyConfig(**bad)


def test_with_view_swaps_only_the_text_vectors():
    """The headline view reproduces the prepared vectors; another template keeps items,
    splits and shapes and changes the rows of IMDB-matched films only."""
    from complemjax.studies import _movielens as ml

    cfg = ml.PipelineConfig()
    for prep in (ml.prepare("sparse", 0, cfg), ml.prepare_cold("sparse", 0, cfg)):
        same = ml.with_view(prep, "wordllama", "base")
        np.testing.assert_array_equal(np.asarray(same.x), np.asarray(prep.x))
        np.testing.assert_array_equal(same.has_text, prep.has_text)
        imdb = ml.with_view(prep, "wordllama", "imdb")
        assert imdb.x.shape == prep.x.shape and imdb.test_sets is prep.test_sets
        changed = np.any(np.asarray(imdb.x) != np.asarray(prep.x), axis=1)
        assert 0.3 < changed.mean() < 0.95  # IMDB stops at 2005: part of the films match
    with pytest.raises(ValueError, match="template"):
        ml.item_embeddings("wordllama", "plot")


# ----------------------------------------------------------------------------- report
def test_list_metrics_match_numpy():
    from complemjax.studies import _report as rp

    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    top = np.array([[0, 1, 2], [3, 4, -1]])
    ild = []
    for row in top:
        v = x[row[row >= 0]]
        g = v @ v.T
        n = len(v)
        ild.append(1 - (g.sum() - np.trace(g)) / (n * (n - 1)))
    assert rp.intra_list_diversity(top, x) == pytest.approx(np.mean(ild), abs=1e-5)
    head = np.zeros(10, bool)
    head[[0, 3]] = True
    assert rp.tail_share(top, head) == pytest.approx(3 / 5)
    assert math.isnan(rp.ratio([1.0], [0.0]))


def test_aligned_matrices_keep_common_seed_user_pairs():
    from complemjax.studies import _report as rp

    a = pd.DataFrame({"seed": [0, 0, 1], "user": [10, 11, 10], "v": [1.0, 2.0, 3.0]})
    b = pd.DataFrame({"seed": [0, 1, 1], "user": [10, 10, 12], "v": [5.0, 6.0, 7.0]})
    (x, y), mask = rp.aligned([a, b], ["v", "v"])
    assert x.shape == y.shape == mask.shape == (2, 1)  # only user 10 in both frames
    np.testing.assert_array_equal(x[:, 0], [1.0, 3.0])
    np.testing.assert_array_equal(y[:, 0], [5.0, 6.0])


def test_verdict_table_opens_with_refuted_claims():
    from complemjax import stats as st
    from complemjax.studies import _report as rp

    results = [
        (st.ClaimResult(st.C1, 0.9, 0.85, 0.95, math.nan, "full"), 0.9),  # above 0.5: refuted
        (st.ClaimResult(st.C2, 0.02, 0.01, 0.03, math.nan, "full; MDE 0.004"), 0.001),
        (st.ClaimResult(st.C4, 0.0, -0.01, 0.012, math.nan, "full"), 0.4),
    ]
    table, rows = rp.verdicts(results)
    assert [r.claim.id for r in rows] == ["C1", "C2", "C4"]
    np.testing.assert_allclose([r.p_adjusted for r in rows], st.holm([0.9, 0.001, 0.4]))
    assert "**not supported**" in table and "**supported**" in table
    assert "**inconclusive**" in table
    head = rp.headline(rows)
    assert head.startswith("**The data do not support C1 (full)")
    assert "Supported: C2 (full)" in head and "Inconclusive: C4 (full)" in head


def test_validation_best_uses_the_tuning_split_only():
    from complemjax.studies import _report as rp

    tun = pd.DataFrame({"variant": ["v"] * 3, "method": ["BPR-MF", "EASE", "semantic"],
                        "valid_recall@20": [0.1, 0.3, 0.05]})  # fmt: skip
    assert rp.validation_best(tun, ("bpr", "ease", "semantic")) == {"v": "ease"}
    assert rp.validation_best(tun, ("bpr", "semantic")) == {"v": "bpr"}


def test_fusion_choices_are_made_on_validation():
    from complemjax.studies import fusion

    valid = {"wsum": 0.2, "rrf": 0.25, "gate": 0.1, "alpharec": 0.05, "rlmrec": 0.07,
             "semantic": 0.01, "bpr": 0.2, "lightgcn": 0.22, "ease": 0.21}  # fmt: skip
    c = fusion._choices(valid)
    assert c == {"best_fusion": "rrf", "best_alignment": "rlmrec", "best_single": "lightgcn"}


# ----------------------------------------------------------------------------- end to end
def _tiny_pipeline():
    from complemjax.studies import _movielens as ml

    return ml.PipelineConfig(
        variants=("sparse",), n_seeds=2, n_configs=2, max_epochs=4, eval_every=2, patience=1,
        dim=16, align_weights=(0.0, 0.1),
    )  # fmt: skip


@pytest.mark.slow
def test_movielens_studies_end_to_end(tmp_path):
    """Both real-data studies on a tiny config share the model cache, render, and the
    report opens with the verdict table."""
    from complemjax.studies import fusion
    from complemjax.studies import movielens_complementarity as mc

    p = _tiny_pipeline()
    cfg = mc.StudyConfig(pipeline=p, c5_variants=("sparse",), c5_sweep=True,
                         cold_variants=("sparse",), mlp_steps=20, mlp_width=16)  # fmt: skip
    tables = mc.run(tmp_path, config=cfg, progress=False)
    acc = tables["main"]
    assert {"semantic", "bpr", "bpr-seed2", "lightgcn", "ease", "alpharec", "rlmrec",
            "popularity", "random", "bpr-degraded"} <= set(acc["method"])  # fmt: skip
    assert acc[acc["metric"] == "recall"]["value"].between(0, 1).all()
    assert set(tables["c5"]["model"]) >= {"w=0", "w=0.1", "w=0, other seed (null)"}
    c5 = tables["c5"].set_index("model")
    assert (c5.loc["w=0", "mutual_knn10_to_w0"] == 1.0).all()  # weight 0 is the backbone
    sv = tables["semantic_variants"]
    r20 = acc[(acc["metric"] == "recall") & (acc["K"] == 20)].set_index(["seed", "method"])
    head = sv[sv["headline"]].set_index("seed")["test_recall"]
    assert len(head) == p.n_seeds and sv[sv["selected"]].groupby("seed").size().eq(1).all()
    for s, v in head.items():  # the table's headline row is the accuracy table's semantic
        assert v == pytest.approx(r20.loc[(s, "semantic"), "value"])
        for name in ("popularity", "random"):
            ref = sv[(sv["ranker"] == name) & (sv["seed"] == s)]["test_recall"].item()
            assert ref == pytest.approx(r20.loc[(s, name), "value"])
    assert {"semantic", "alpharec", "popularity", "random"} <= set(tables["cold"]["method"])
    ft = fusion.run(tmp_path, config=fusion.StudyConfig(pipeline=p, gate_steps=20, sp_steps=20),
                    progress=False)  # fmt: skip
    assert len(ft["choices"]) == p.n_seeds
    meta = json.loads((tmp_path / "fusion.meta.json").read_text())
    assert meta["cache"]["misses"] == 0  # every single-view model came from the cache
    cli.main(["report", str(tmp_path)])
    text = (tmp_path / "report.md").read_text()
    assert text.index("## Verdicts") < text.index("## Contents")
    for claim in ("C1", "C2", "C3", "C4", "C5"):
        assert f"| {claim} |" in text
    assert (tmp_path / "figures" / "fusion_vs_best_single.png").is_file()
    assert (tmp_path / "figures" / "movielens_oracle_gain.png").is_file()
    assert "### Semantic ranker variants" in text and "✓ headline" in text
    assert "validation-selected semantic ranker" in text and "on cold items" in text


@pytest.mark.slow
def test_fusion_steps_on_toy_data():
    """Rule fusion, gate, shared-private and evaluation on a toy split: knobs come from the
    fusion half of validation, every method gets test rows and a validation score."""
    import jax
    import jax.numpy as jnp

    from complemjax.studies import _movielens as ml
    from complemjax.studies import fusion

    prep = _toy_prep(n_users=40, n_items=30)
    rng = np.random.default_rng(0)
    mk = lambda name: ml.Ranker(name, jnp.asarray(rng.normal(size=(40, 4)), jnp.float32),  # noqa: E731
                                jnp.asarray(rng.normal(size=(30, 4)), jnp.float32), {})  # fmt: skip
    p = ml.PipelineConfig(n_configs=2)
    cfg = fusion.StudyConfig(pipeline=p, gate_steps=5, sp_steps=5)
    sem, cf = mk("semantic"), mk("bpr")
    fused = fusion._rules(sem, cf, prep, p)
    assert set(fused) == {"wsum", "rrf", "wsum@20", "rrf@20", "combmnz@20"}
    fused["gate"] = fusion._gate(sem, cf, prep, cfg, jax.random.key(0))
    fused["shared-private"] = fusion._shared_private(prep, cf, cfg, jax.random.key(1))
    methods = {n: mk(n) for n in (*fusion.SINGLE, *fusion.ALIGNMENT)} | fused
    methods["semantic"], methods["bpr"] = sem, cf
    out = fusion._evaluate(methods, sem, cf, prep, {"variant": "toy", "seed": 0, "cf": "bpr"})
    acc = out["main"] if "main" in out else out["accuracy"]
    assert set(methods) | {"oracle-merge", "union@40"} == set(acc["method"])
    top = fused["wsum@20"].topk(prep.exclude_test)
    assert top.shape == (40, 20)
    ch = out["choices"].iloc[0]
    assert ch["best_fusion"] in fusion.FUSIONS and ch["best_alignment"] in fusion.ALIGNMENT
    assert {"best-fusion", "best-alignment", "best-single"} <= set(out["users"]["method"])


def test_model_cache_digest_ignores_comments_and_docstrings(tmp_path):
    from complemjax.studies import _movielens

    def digest(src):
        f = tmp_path / "m.py"
        f.write_text(src)
        return _movielens._code_digest(f)

    base = digest('"""Module."""\n\ndef f(x):\n    """Doc."""\n    return x + 1  # note\n')
    assert base == digest(
        '"""Other."""\n\ndef f(x):\n    """New doc."""\n    # why\n    return x + 1\n'
    )
    assert base != digest('"""Module."""\n\ndef f(x):\n    """Doc."""\n    return x + 2\n')
    cc = tmp_path / "k.cc"
    cc.write_text("int f() { return 1; }  // comment\n")
    assert _movielens._code_digest(cc) == cc.read_bytes()  # C++ sources count byte for byte

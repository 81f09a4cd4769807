"""End-to-end test of `complemjax diagnose` on a small file the test writes."""

import numpy as np
import pandas as pd
import pytest

from complemjax import cli


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 80
    z = rng.normal(size=(n_items, 4))
    rows = []
    for u in range(n_users):
        pref = rng.normal(size=4)
        items = np.argsort(-(z @ pref + rng.gumbel(size=n_items)))[:12]
        rows += [(f"u{u}", f"i{i}") for i in items]
    pd.DataFrame(rows, columns=["user_id", "item_id"]).to_csv(tmp_path / "inter.csv", index=False)
    ids = [f"i{i}" for i in range(n_items)]
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    np.save(tmp_path / "a.npy", (z + 0.5 * rng.normal(size=z.shape)).astype(np.float32))
    np.save(tmp_path / "b.npy", (z + 0.5 * rng.normal(size=z.shape)).astype(np.float32))
    return tmp_path


@pytest.mark.slow
def test_diagnose_two_embedding_files(files, capsys):
    out = files / "out"
    argv = ["diagnose", str(files / "inter.csv"), str(files / "a.npy"), str(files / "b.npy"),
            "--ids-a", str(files / "ids.txt"), "--ids-b", str(files / "ids.txt"),
            "--n-boot", "20", "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    table = pd.read_csv(out / "complementarity.csv")
    assert {"k", "bucket_type", "metric", "value", "ci_low", "ci_high"} <= set(table.columns)
    overall = table[(table["bucket_type"] == "all") & (table["k"] == 10)].set_index("metric")
    assert (
        overall.loc["recall_merge", "value"]
        >= max(overall.loc["recall_a", "value"], overall.loc["recall_b", "value"]) - 1e-9
    )
    assert "recall_merge" in capsys.readouterr().out


def test_diagnose_rejects_mismatched_ids(files, capsys):
    (files / "bad_ids.txt").write_text("\n".join(f"x{i}" for i in range(80)))
    argv = ["diagnose", str(files / "inter.csv"), str(files / "a.npy"), str(files / "b.npy"),
            "--ids-a", str(files / "bad_ids.txt"), "--ids-b", str(files / "ids.txt"),
            "--out", str(files / "o")]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("complemjax: error: ") and "ids do not match" in err
    assert err.count("\n") == 1  # one line, no traceback
    with pytest.raises(ValueError, match="ids do not match"):
        cli.main([*argv, "--debug"])


def test_diagnose_needs_exactly_one_second_view(files, capsys):
    argv = ["diagnose", str(files / "inter.csv"), str(files / "a.npy"),
            "--ids-a", str(files / "ids.txt"), "--out", str(files / "o")]  # fmt: skip
    assert cli.main(argv) == 2
    assert "exactly one" in capsys.readouterr().err


@pytest.mark.slow
def test_threshold_with_whole_catalogue_suggests_the_cli_flag(files, capsys):
    """--threshold drops items; the error names --allow-extra, which then works."""
    df = pd.read_csv(files / "inter.csv")
    df["rating"] = np.where(df["item_id"] == "i0", 1.0, 5.0)
    df.to_csv(files / "rated.csv", index=False)
    argv = ["diagnose", str(files / "rated.csv"), str(files / "a.npy"), str(files / "b.npy"),
            "--ids-a", str(files / "ids.txt"), "--ids-b", str(files / "ids.txt"),
            "--rating-col", "rating", "--threshold", "4", "--n-boot", "5",
            "--out", str(files / "o")]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--allow-extra" in err and "allow_extra=True" not in err
    assert cli.main([*argv, "--allow-extra"]) == 0


def test_header_only_interactions_file_is_refused(files, capsys):
    (files / "empty.csv").write_text("user_id,item_id\n")
    argv = ["diagnose", str(files / "empty.csv"), str(files / "a.npy"), str(files / "b.npy"),
            "--ids-a", str(files / "ids.txt"), "--ids-b", str(files / "ids.txt")]  # fmt: skip
    assert cli.main(argv) == 2
    assert "holds no interactions" in capsys.readouterr().err


def test_trec_runs_round_trip_through_diagnose(tmp_path, capsys):
    """Top-K lists written as TREC runs and read back by ``diagnose --runs`` give the same
    complementarity table as compare_rankers on the arrays themselves."""
    import jax

    from complemjax import complementarity, trec

    rng = np.random.default_rng(3)
    n_users, n_items, k = 30, 40, 10
    users = np.array([f"u{j}" for j in range(n_users)], dtype=object)
    items = np.array([f"i{j:03d}" for j in range(n_items)], dtype=object)
    top_a = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)]).astype(np.int32)
    top_b = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)]).astype(np.int32)
    test = np.stack([rng.permutation(n_items)[:4] for _ in range(n_users)]).astype(np.int32)
    a = trec.write_run(tmp_path / "a.run", trec.topk_to_run(top_a, user_ids=users, item_ids=items))
    b = trec.write_run(tmp_path / "b.run", trec.topk_to_run(top_b, user_ids=users, item_ids=items))
    with open(tmp_path / "test.qrels", "w") as fh:
        for u in range(n_users):
            for i in test[u]:
                fh.write(f"{users[u]} 0 {items[i]} 1\n")
    out = tmp_path / "out"
    argv = ["diagnose", "--runs", str(a), str(b), "--qrels", str(tmp_path / "test.qrels")]
    rc = cli.main([*argv, "--k", "5", "10", "--n-boot", "50", "--out", str(out)])
    assert rc == 0
    assert "recall_merge" in capsys.readouterr().out
    got = pd.read_csv(out / "complementarity.csv")
    ref = complementarity.compare_rankers(
        top_a, top_b, test, ks=(5, 10), key=jax.random.key(0), n_boot=50
    )
    both = got.merge(ref, on=["k", "bucket_type", "bucket", "metric"], suffixes=("", "_ref"))
    assert len(both) == len(ref)
    np.testing.assert_allclose(both["value"], both["value_ref"], rtol=1e-6, equal_nan=True)


def test_runs_need_qrels(tmp_path, capsys):
    p = tmp_path / "a.run"
    p.write_text("u1 Q0 i1 1 1.0 t\n")
    assert cli.main(["diagnose", "--runs", str(p), str(p)]) == 2
    assert "--qrels" in capsys.readouterr().err

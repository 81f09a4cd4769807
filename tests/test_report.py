"""Tests of the report helpers (aggregation only; no metric is computed here)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from complemjax import report


def test_seed_interval_matches_scipy():
    v = [0.1, 0.3, 0.2, 0.5]
    mean, lo, hi = report.seed_interval(v, 0.95)
    ref = stats.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=stats.sem(v))
    assert mean == pytest.approx(np.mean(v))
    assert (lo, hi) == pytest.approx(ref)
    assert math.isnan(report.seed_interval([1.0])[1])


def test_summarize_and_markdown_table(tmp_path):
    df = pd.DataFrame({"g": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "m": [1.0, 3.0, 2, 2]})
    s = report.summarize(df, ["g"], ["m"])
    assert list(s["mean"]) == [2.0, 2.0]
    assert s.loc[1, "ci_low"] == pytest.approx(2.0)
    md = report.markdown_table(s[["g", "mean"]], {"mean": "average of m"})
    assert "| g | mean |" in md and "- `mean`: average of m" in md
    assert report.format_ci(0.5, 0.4, 0.6) == "0.500 [0.400, 0.600]"
    with pytest.raises(ValueError, match="lacks"):
        report.summarize(df, ["nope"], ["m"])


def test_line_plot_and_report_written(tmp_path):
    df = pd.DataFrame(
        {"x": [1, 2, 1, 2] * 2, "h": ["a", "a", "b", "b"] * 2, "seed": [0] * 4 + [1] * 4,
         "m": np.arange(8.0)}
    )  # fmt: skip
    s = report.summarize(df, ["x", "h"], ["m"])
    path = report.line_plot(s, x="x", hue="h", path=tmp_path / "f.png", title="t")
    assert path.stat().st_size > 1000
    rep = report.assemble_report(tmp_path, [("Section A", "body")], intro="intro")
    text = rep.read_text()
    assert "## Section A" in text and "intro" in text


def test_results_table_with_missing_values_is_refused(tmp_path, capsys):
    p = tmp_path / "r.csv"
    table = {"K": [10, 10, 10], "recall_cf": [0.3, np.nan, 0.2], "r2": [np.nan, 1, 2]}
    pd.DataFrame({**table, "m": ["a", "b", "c"]}).to_csv(p, index=False)
    with pytest.raises(ValueError, match=r"recall_cf: 1 of 3"):
        report.check_results_table(p, complete=["recall_cf"])
    df = report.check_results_table(p, complete=["recall_cf"], allow_missing=True)
    assert len(df) == 3 and "recall_cf: 1 of 3" in capsys.readouterr().err
    report.check_results_table(p, complete=["K"])  # NaN elsewhere: counted, not refused
    assert "r2: 1 of 3" in capsys.readouterr().err
    with pytest.raises(ValueError, match="lacks columns"):
        report.check_results_table(p, complete=["recall_sem"])
    p.write_text("K,recall_cf\n")
    with pytest.raises(ValueError, match="no rows"):
        report.check_results_table(p)
    p.write_text("")
    with pytest.raises(ValueError, match="empty"):
        report.check_results_table(p)
    with pytest.raises(ValueError, match="does not exist"):
        report.check_results_table(tmp_path / "nope.csv")


def test_share_where_counts_finite_values_only():
    a = np.array([0.3, np.nan, 0.5, 0.1])
    b = np.array([0.2, 0.2, 0.6, 0.0])
    share, used, dropped = report.share_where(a > b, np.isfinite(a) & np.isfinite(b))
    assert (share, used, dropped) == (pytest.approx(2 / 3), 3, 1)
    assert math.isnan(report.share_where([True], [False])[0])
    with pytest.raises(ValueError, match="condition"):
        report.share_where([True, False], [True])

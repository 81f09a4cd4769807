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

"""Tests for complemjax.semantic (item text, WordLlama, cache, precomputed files) and
complemjax.recommenders (history profiles, ridge map)."""

import socket

import jax
import numpy as np
import pandas as pd
import pytest

from complemjax import semantic
from complemjax.data import load_movielens


@pytest.fixture(scope="module")
def encoder():
    return semantic.WordLlamaEncoder()


class CountingEncoder:
    """Deterministic fake encoder counting calls (for cache tests)."""

    name = "fake/enc v1"

    def __init__(self, bad=False):
        self.calls = 0
        self.bad = bad

    def encode(self, texts):
        self.calls += 1
        out = np.array([[len(t), t.count("a"), 1.0] for t in texts], np.float32)
        if self.bad:
            out[0, 0] = np.nan
            out[-1, 1] = np.inf
        return out


# ---------------------------------------------------------------- text
def test_item_text_template():
    assert (
        semantic.item_text({"title": "Toy Story", "year": 1995.0, "genres": "Animation|Comedy"})
        == "Toy Story (1995). Genres: Animation, Comedy."
    )
    assert (
        semantic.item_text({"title": "Deer Hunter, The", "year": 1978, "genres": "Drama"})
        == "The Deer Hunter (1978). Genres: Drama."
    )
    assert (
        semantic.item_text({"title": "Heat (1995)", "year": 1995, "genres": "(no genres listed)"})
        == "Heat (1995)."
    )
    assert (
        semantic.item_text({"title": "Robot", "categories": "Toys|Robots", "year": np.nan})
        == "Robot. Categories: Toys, Robots."
    )
    assert semantic.item_text({"title": None, "genres": "Drama"}) is None
    assert semantic.item_text({"title": "   ", "genres": "Drama"}) is None
    assert semantic.item_text({"title": float("nan")}) is None


def test_movielens_texts_flag_missing_titles():
    ml = load_movielens()
    it = semantic.item_texts(ml.item_info)
    assert len(it.texts) == ml.n_items
    assert it.n_missing == 5 == int((~it.has_text).sum())
    assert ml.item_info.title.isna().sum() == 5
    assert all(t is None for t, h in zip(it.texts, it.has_text) if not h)
    with pytest.raises(ValueError, match="5 of 9066 items have no text"):
        semantic.embed_items(ml, encoder=CountingEncoder())


# ---------------------------------------------------------------- WordLlama
def test_wordllama_offline_deterministic_and_meaningful(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    enc = semantic.WordLlamaEncoder()  # loads only files inside the installed package
    texts = ["Toy Story 2", "Toy Story", "Heat"]
    e1 = semantic.embed_texts(texts, encoder=enc)
    e2 = semantic.embed_texts(texts, encoder=semantic.WordLlamaEncoder())
    np.testing.assert_array_equal(e1, e2)
    assert e1.shape == (3, 256) and e1.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e1, axis=1), 1.0, rtol=1e-5)
    sim = e1 @ e1.T
    assert sim[0, 1] > sim[0, 2] + 0.3
    raw = enc.encode(texts)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)  # normalisation is ours
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), e1, rtol=1e-5)


def test_wordllama_missing_files_error():
    with pytest.raises(ValueError, match="not in the installed wordllama package"):
        semantic.load_wordllama(dim=1024)


def test_embed_items_skip_and_mask(encoder):
    info = pd.DataFrame(
        {
            "item_id": [10, 11, 12, 13],
            "title": ["Toy Story", None, "Heat", ""],
            "year": [1995, 1999, np.nan, 2000],
            "genres": ["Animation", "Drama", "Crime|Thriller", "Drama"],
        }
    )
    with pytest.raises(ValueError, match=r"2 of 4 items have no text.*\[11, 13\]"):
        semantic.embed_items(info, encoder=encoder)
    out = semantic.embed_items(info, encoder=encoder, on_missing="skip")
    np.testing.assert_array_equal(out.has_text, [True, False, True, False])
    assert out.n_missing == 2
    np.testing.assert_array_equal(out.embeddings[[1, 3]], 0.0)
    ref = semantic.embed_texts(
        ["Toy Story (1995). Genres: Animation.", out.texts[2]], encoder=encoder
    )
    np.testing.assert_allclose(out.embeddings[[0, 2]], ref, rtol=1e-6)
    assert out.texts[2] == "Heat. Genres: Crime, Thriller."
    with pytest.raises(ValueError, match="on_missing"):
        semantic.embed_items(info, encoder=encoder, on_missing="ignore")


def test_embed_texts_bad_input():
    with pytest.raises(ValueError, match="2 empty"):
        semantic.embed_texts(["ok", "", "  "], encoder=CountingEncoder())
    with pytest.raises(ValueError, match="1 NaN and 1 inf"):
        semantic.embed_texts(["a", "b", "c"], encoder=CountingEncoder(bad=True))


def test_cache(tmp_path):
    enc = CountingEncoder()
    texts = ["banana", "apple pie", "cherry"]
    a = semantic.embed_texts(texts, encoder=enc, cache_dir=tmp_path, normalize=False)
    assert enc.calls == 1
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1 and files[0].name.startswith("fake_enc_v1-")
    b = semantic.embed_texts(texts, encoder=enc, cache_dir=tmp_path, normalize=False)
    assert enc.calls == 1  # served from cache
    np.testing.assert_array_equal(a, b)
    c = semantic.embed_texts(texts, encoder=enc, cache_dir=tmp_path, normalize=True)
    assert enc.calls == 1
    np.testing.assert_allclose(c, a / np.linalg.norm(a, axis=1, keepdims=True))
    semantic.embed_texts(texts[::-1], encoder=enc, cache_dir=tmp_path)
    assert enc.calls == 2 and len(list(tmp_path.glob("*.npy"))) == 2
    enc2 = CountingEncoder()
    enc2.name = "other"
    semantic.embed_texts(texts, encoder=enc2, cache_dir=tmp_path)
    assert enc2.calls == 1 and len(list(tmp_path.glob("*.npy"))) == 3


# ---------------------------------------------------------------- precomputed
def test_load_precomputed_npy_and_parquet(tmp_path, rng):
    item_ids = np.array([5, 7, 9, 11])
    file_ids = np.array([11, 5, 9, 7])
    emb = rng.normal(size=(4, 3)).astype(np.float32)
    expected = emb[[1, 3, 2, 0]]
    np.save(tmp_path / "e.npy", emb)
    np.save(tmp_path / "ids.npy", file_ids)
    got = semantic.load_precomputed(tmp_path / "e.npy", item_ids, ids_path=tmp_path / "ids.npy")
    np.testing.assert_array_equal(got, expected)
    (tmp_path / "ids.txt").write_text("\n".join(map(str, file_ids)) + "\n")
    got = semantic.load_precomputed(tmp_path / "e.npy", item_ids, ids_path=tmp_path / "ids.txt")
    np.testing.assert_array_equal(got, expected)

    df = pd.DataFrame({"item_id": file_ids, "embedding": list(emb)})
    df.to_parquet(tmp_path / "e.parquet")
    got = semantic.load_precomputed(tmp_path / "e.parquet", item_ids)
    np.testing.assert_array_equal(got, expected)
    wide = pd.DataFrame(emb, columns=["d0", "d1", "d2"]).assign(asin=file_ids)
    wide.to_parquet(tmp_path / "w.parquet")
    got = semantic.load_precomputed(tmp_path / "w.parquet", item_ids, id_column="asin")
    np.testing.assert_array_equal(got, expected)


def test_load_precomputed_errors(tmp_path, rng):
    emb = rng.normal(size=(4, 3))
    np.save(tmp_path / "e.npy", emb)
    np.save(tmp_path / "ids.npy", np.array([1, 2, 3, 4]))
    with pytest.raises(ValueError, match=r"1 of 4 dataset items missing.*'99'.*1 of 4 file"):
        semantic.load_precomputed(
            tmp_path / "e.npy", np.array([1, 2, 3, 99]), ids_path=tmp_path / "ids.npy"
        )
    with pytest.raises(ValueError, match="2 of 4 file ids not in the dataset"):
        semantic.load_precomputed(
            tmp_path / "e.npy", np.array([1, 2]), ids_path=tmp_path / "ids.npy"
        )
    got = semantic.load_precomputed(
        tmp_path / "e.npy", np.array([4, 2]), ids_path=tmp_path / "ids.npy", allow_extra=True
    )
    np.testing.assert_allclose(got, emb[[3, 1]].astype(np.float32))
    bad = emb.copy()
    bad[0, 0] = np.nan
    bad[2, :2] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match="1 NaN and 2 inf values in 2 rows"):
        semantic.load_precomputed(
            tmp_path / "bad.npy", np.array([1, 2, 3, 4]), ids_path=tmp_path / "ids.npy"
        )
    np.save(tmp_path / "dup.npy", np.array([1, 1, 3, 4]))
    with pytest.raises(ValueError, match="1 duplicate ids"):
        semantic.load_precomputed(
            tmp_path / "e.npy", np.array([1, 3, 4]), ids_path=tmp_path / "dup.npy"
        )
    with pytest.raises(ValueError, match="ids_path"):
        semantic.load_precomputed(tmp_path / "e.npy", np.array([1]))
    with pytest.raises(ValueError, match="not found"):
        semantic.load_precomputed(tmp_path / "none.npy", np.array([1]), ids_path="x")


def test_sentence_transformers_backend_errors(tmp_path):
    with pytest.raises(ValueError, match="model_path"):
        semantic.SentenceTransformerEncoder(tmp_path / "absent")
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="sentence-transformers"):
            semantic.SentenceTransformerEncoder(tmp_path)

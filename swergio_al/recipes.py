"""Built-in models for `swergio-al label`: one recipe per kind of data.

A recipe says what the active learner eats (`inputs`, one per sample), which
numeric rows spread the cold start (`features`), the estimator to learn with,
and how to turn the fitted estimator into the model a user keeps
(`export`), which takes the input the documented first step takes:

- text: strings (the learner gets them as one column). HashingVectorizer (words and
  word pairs) + SGDClassifier(log_loss), taught incrementally with background refits;
  exported as a Pipeline.
- table: the feature columns, in order, as floats. StandardScaler (fitted once on the
  whole pool) + LogisticRegression; exported as a Pipeline of both.
- image: pixels, see `image_pixels`: RGB, resized to 32 x 32, flattened, in [0, 1].
  PCA (fitted once on the whole pool, no labels needed; none for one image or images
  all alike) + LogisticRegression;
  exported as a Pipeline of both.
- `module:factory`: `factory()` returns any scikit-learn estimator or pipeline, or an
  object with `uncertainty(X)`; it eats the kind's raw input (texts as an (n, 1)
  column, feature rows, pixels, or audio file paths as an (n, 1) column of strings).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import BayesianRidge, LogisticRegression, SGDClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from swergio_al.sources import Source

IMAGE_SIZE = (32, 32)
TEXT_CACHE_ROWS = 200_000  # hashed texts kept per model (a few hundred bytes each)
MODELS = ("auto", "text", "table", "image")


class RecipeError(ValueError):
    """A model that cannot be made for this source; one line."""


@dataclass
class Recipe:
    name: str
    estimator: Any  # unfitted; the ActiveLearner clones it
    inputs: Any  # what the estimator eats, one per sample
    features: NDArray[Any] | None  # numeric rows for the cold start
    export: Callable[[Any], Any]  # fitted estimator -> the model a user keeps
    strategy: str = "margin"


class HashedTextClassifier(ClassifierMixin, BaseEstimator):
    """Texts in, classes out; hashing needs no vocabulary, so it learns incrementally."""

    def __init__(self, n_features: int = 2**18, alpha: float = 1e-4,
                 random_state: Any = None) -> None:
        self.n_features = n_features
        self.alpha = alpha
        self.random_state = random_state

    def _vectorizer(self) -> HashingVectorizer:
        return HashingVectorizer(n_features=self.n_features, ngram_range=(1, 2),
                                 alternate_sign=False, norm="l2")

    def _hash(self, X: Any) -> Any:
        """Hashed rows; each text is tokenized once (the pool loop scores every unlabeled
        text after every label: tokenizing them again held the GIL for most of it)."""
        texts = [str(x) for x in np.asarray(X, dtype=object).ravel()]
        cache: dict[str, tuple[NDArray[Any], NDArray[Any]]] = self.__dict__.setdefault(
            "_rows", {})
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            if len(cache) + len(missing) > TEXT_CACHE_ROWS:
                cache.clear()
            m = self._vectorizer().transform(missing)
            for i, text in enumerate(missing):
                part = slice(m.indptr[i], m.indptr[i + 1])
                cache[text] = (m.indices[part].copy(), m.data[part].copy())
        rows = [cache[t] for t in texts]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(ix) for ix, _ in rows], out=indptr[1:])
        empty_i, empty_d = np.empty(0, dtype=np.int32), np.empty(0)
        indices = np.concatenate([ix for ix, _ in rows]) if rows else empty_i
        data = np.concatenate([d for _, d in rows]) if rows else empty_d
        return csr_matrix((data, indices, indptr), shape=(len(rows), self.n_features))

    def _model(self) -> SGDClassifier:
        if not hasattr(self, "sgd_"):
            self.sgd_ = SGDClassifier(loss="log_loss", alpha=self.alpha,
                                      random_state=self.random_state)
        return self.sgd_

    def fit(self, X: Any, y: Any) -> HashedTextClassifier:
        self.__dict__.pop("sgd_", None)
        self._model().fit(self._hash(X), y)
        self.classes_ = self.sgd_.classes_
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> HashedTextClassifier:
        self._model().partial_fit(self._hash(X), y, classes=classes)
        self.classes_ = self.sgd_.classes_
        return self

    def predict(self, X: Any) -> NDArray[Any]:
        return np.asarray(self.sgd_.predict(self._hash(X)))

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        return np.asarray(self.sgd_.predict_proba(self._hash(X)))

    def to_pipeline(self) -> Pipeline:
        """The same model as a plain scikit-learn Pipeline (strings in)."""
        return Pipeline([("hashing", self._vectorizer()), ("sgd", self.sgd_)])


def image_pixels(paths: Sequence[str | Path], size: tuple[int, int] = IMAGE_SIZE
                 ) -> NDArray[np.float64]:
    """What the image recipe's model takes: each image as RGB, resized to `size`,
    flattened to ``size[0] * size[1] * 3`` values in [0, 1]."""
    from PIL import Image

    rows = []
    for path in paths:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize(size)
            rows.append(np.asarray(rgb, dtype=np.float64).reshape(-1) / 255.0)
    return np.asarray(rows).reshape(len(rows), size[0] * size[1] * 3)


def _standardized(X: NDArray[Any]) -> NDArray[np.float64]:
    X = np.asarray(X, dtype=np.float64)
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _text_features(texts: list[str], seed: int | None) -> NDArray[np.float64] | None:
    try:
        tfidf = TfidfVectorizer(sublinear_tf=True).fit_transform(texts)
    except ValueError:  # no words at all
        return None
    k = min(50, tfidf.shape[0] - 1, tfidf.shape[1] - 1)
    if k < 2:
        return None
    reduced = TruncatedSVD(n_components=k, random_state=seed).fit_transform(tfidf)
    norms = np.linalg.norm(reduced, axis=1, keepdims=True)
    return np.asarray(reduced / np.where(norms > 0, norms, 1.0))


def _pixel_pca(pixels: NDArray[Any], most: int, seed: int | None) -> PCA | None:
    """PCA sized to the pool (fewer components than images, at most `most`), fitted on
    it; None where there is nothing to reduce: one image, or images all alike (PCA would
    divide by a zero variance and warn)."""
    if len(pixels) < 2 or not float(pixels.var(axis=0).sum()) > 0:
        return None
    n_components = min(most, len(pixels) - 1, pixels.shape[1])
    return PCA(n_components=n_components, random_state=seed).fit(pixels)


def _identity(model: Any) -> Any:
    return model


def make_recipe(model: str, source: Source, *, regression: bool = False,
                seed: int | None = None) -> Recipe:
    """The recipe `--model` names for this source (see the module docstring)."""
    kind = source.kind
    if model == "auto":
        if kind == "audio":
            raise RecipeError("no built-in model for audio: pass --model module:factory "
                              "(it is given the audio file paths)")
        model = kind
    if model not in MODELS:
        if ":" not in model:
            raise RecipeError(f"--model must be auto, text, table, image or module:factory, "
                              f"got {model!r}")
        return _custom(model, source, seed)
    if model != kind:
        raise RecipeError(f"--model {model} needs a {model} source; {source.name} is {kind} "
                          f"(use --model auto)")
    if model == "text":
        texts = source.texts() or []
        if regression:
            raise RecipeError("no built-in text model for numbers: pass --model "
                              "module:factory")
        # one column of strings: a batch of one stays 2-D like any other
        return Recipe("text", HashedTextClassifier(random_state=seed),
                      np.asarray(texts, dtype=object).reshape(-1, 1),
                      _text_features(texts, seed),
                      lambda fitted: fitted.to_pipeline())
    if model == "table":
        X = source.features()
        if X is None or X.shape[1] == 0:
            raise RecipeError(f"{source.name} has no numeric feature columns: name them with "
                              "--features, or show a column with --text/--image/--audio")
        scaler = StandardScaler().fit(X)  # on the whole pool: needs no labels
        last = BayesianRidge() if regression else LogisticRegression(max_iter=1000)

        def export_table(fitted: Any) -> Pipeline:
            return Pipeline([("scale", scaler), ("model", fitted)])

        scaled = scaler.transform(X)
        return Recipe("table", last, scaled, scaled, export_table,
                      "std" if regression else "margin")
    pixels = image_pixels(source.media_paths() or [])
    pca = _pixel_pca(pixels, 50, seed)
    reduced = pixels if pca is None else pca.transform(pixels)
    last = BayesianRidge() if regression else LogisticRegression(max_iter=1000)

    def export(fitted: Any) -> Pipeline:
        steps = [("model", fitted)] if pca is None else [("pca", pca), ("model", fitted)]
        return Pipeline(steps)

    return Recipe("image", last, reduced, _standardized(reduced), export,
                  "std" if regression else "margin")


def _custom(spec: str, source: Source, seed: int | None) -> Recipe:
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise RecipeError(f"--model {spec}: cannot load it ({exc})") from None
    try:
        estimator = factory()
    except Exception as exc:
        raise RecipeError(f"--model {spec}: the factory failed: {exc}") from None
    missing = " or ".join(f"{name}()" for name in ("fit", "predict")
                          if not callable(getattr(estimator, name, None)))
    if missing:  # found now, in one line, not by the model's first fit in the log
        raise RecipeError(f"--model {spec}: the factory returned {type(estimator).__name__}, "
                          f"not a scikit-learn estimator (no {missing})")
    if source.kind == "text":
        texts = source.texts() or []
        inputs: Any = np.asarray(texts, dtype=object).reshape(-1, 1)
        features = _text_features(texts, seed)
    elif source.kind == "table":
        inputs = source.features()
        features = None if inputs is None else _standardized(inputs)
    elif source.kind == "image":
        inputs = image_pixels(source.media_paths() or [])
        pca = _pixel_pca(inputs, 20, seed)
        features = _standardized(inputs if pca is None else pca.transform(inputs))
    else:
        inputs = np.asarray([str(p) for p in source.media_paths() or []],
                            dtype=object).reshape(-1, 1)
        features = None
    return Recipe(spec, estimator, inputs, features, _identity)

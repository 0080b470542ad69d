"""Turning scores into the samples to ask about: top-n and diverse batches."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def rank(scores: ArrayLike, rng: np.random.Generator) -> NDArray[np.intp]:
    """Indices by descending score; ties in random order; NaN last."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    key = np.where(np.isnan(s), -np.inf, s)
    return np.lexsort((rng.random(s.size), -key)).astype(np.intp)


def top_n(scores: ArrayLike, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
    """The ``n`` highest scores (ties broken at random, NaN never ahead of a number)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = min(n, s.size)
    if n == 0:
        return np.empty(0, dtype=np.intp)
    key = np.where(np.isnan(s), -np.inf, s)
    if n < s.size // 4:
        # only the candidates at or above the n-th largest need the full ordering
        cut = np.partition(key, s.size - n)[s.size - n]
        candidates = np.flatnonzero(key >= cut)
        order = candidates[rank(key[candidates], rng)]
        return order[:n]
    return rank(key, rng)[:n]


def diverse_batch(
    X: ArrayLike,
    scores: ArrayLike,
    n: int,
    diversity: float,
    rng: np.random.Generator,
    *,
    labeled: ArrayLike | None = None,
    candidates: int | None = None,
) -> NDArray[np.intp]:
    """Greedy batch that trades uncertainty against distance (ranked batch-mode).

    Among the ``candidates`` most uncertain samples (default ``max(20 n, 200)``),
    each pick maximizes ``u(x) ** (1 - diversity) * d(x) ** diversity`` where ``u`` is
    the score scaled to [0, 1] over the candidates and ``d`` the Euclidean distance to
    the nearest sample already picked or labeled, scaled by its largest initial value.
    The product (rather than a sum) makes a near-copy of a pick worthless however
    uncertain it is. ``diversity=0`` is plain top-n; ``diversity=1`` is k-center greedy.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be within [0, 1], got {diversity!r}")
    Xa = np.asarray(X, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = min(n, s.size)
    if diversity == 0.0 or n <= 1:
        return top_n(s, n, rng)
    m = min(s.size, candidates if candidates is not None else max(20 * n, 200))
    pool = top_n(s, m, rng)
    Xc = Xa[pool].reshape(len(pool), -1)
    u = np.where(np.isnan(s[pool]), -np.inf, s[pool])
    finite = np.isfinite(u)
    lo, hi = (u[finite].min(), u[finite].max()) if finite.any() else (0.0, 0.0)
    u = np.where(finite, (u - lo) / (hi - lo) if hi > lo else 1.0, 0.0)

    sq_norms = np.einsum("ij,ij->i", Xc, Xc)
    d = np.full(len(pool), np.inf)
    L = None if labeled is None else np.asarray(labeled, dtype=np.float64)
    if L is not None and len(L) > 0:
        L = L.reshape(len(L), -1)
        d = np.sqrt(np.maximum(_sq_distances(Xc, sq_norms, L).min(axis=1), 0.0))
    scale = d[np.isfinite(d)].max() if np.isfinite(d).any() else 0.0

    chosen: list[int] = []
    available = np.ones(len(pool), dtype=bool)
    for _ in range(n):
        dn = np.where(np.isfinite(d), d / scale if scale > 0 else 0.0, 1.0)
        value = np.where(available, u ** (1.0 - diversity) * dn**diversity, -np.inf)
        pick = int(np.argmax(value))
        chosen.append(pick)
        available[pick] = False
        dist = np.sqrt(np.maximum(_sq_distances(Xc, sq_norms, Xc[pick : pick + 1])[:, 0], 0.0))
        if scale == 0.0:  # the first pick sets the distance scale when nothing was labeled
            scale = float(dist.max())
        d = np.minimum(d, dist)
    return pool[np.asarray(chosen, dtype=np.intp)]


def _sq_distances(
    A: NDArray[np.float64], a_sq: NDArray[np.float64], B: NDArray[np.float64]
) -> NDArray[np.float64]:
    return a_sq[:, None] - 2.0 * (A @ B.T) + np.einsum("ij,ij->i", B, B)[None, :]


def representative(
    X: ArrayLike,
    n: int,
    rng: np.random.Generator,
    *,
    taken: ArrayLike | None = None,
    among: ArrayLike | None = None,
) -> NDArray[np.intp]:
    """``n`` rows that stand for the data: the most central rows of k-means clusters of
    the candidates (one cluster per pick and per taken row), farthest-first from the
    ``taken`` rows.

    A cold start with these beats one with random rows (benchmarks/label.py): unlike
    k-means++ seeding it picks typical samples, not outliers, while still covering
    every cluster. ``taken`` are indices of rows already labeled or asked; ``among``
    limits the candidates (default: every row not taken).
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    Xa, taken_idx, candidates = _candidates(X, taken, among)
    n = min(int(n), candidates.size)
    if n <= 0:
        return np.empty(0, dtype=np.intp)
    Xc = Xa[candidates]
    seed = int(rng.integers(2**31 - 1))
    # a cluster per pick and per taken row: the clusters near taken rows go last
    k = min(candidates.size, n + min(taken_idx.size, 30))  # bounded: one fit per cold plan
    if k == candidates.size:
        reps = np.arange(k)
        sizes = np.ones(k)
    else:
        kind = MiniBatchKMeans if len(Xc) > 10_000 else KMeans
        km = kind(n_clusters=k, n_init=1, random_state=seed).fit(Xc)
        d = _sq_distances(km.cluster_centers_, np.einsum("ij,ij->i", km.cluster_centers_,
                                                         km.cluster_centers_), Xc)
        d[km.labels_[None, :] != np.arange(k)[:, None]] = np.inf  # members only
        reps = np.unique(np.argmin(d, axis=1))
        sizes = np.bincount(km.labels_, minlength=k)[km.labels_[reps]].astype(np.float64)
    R = Xc[reps]
    r_sq = np.einsum("ij,ij->i", R, R)
    near = _nearest_sq(R, r_sq, Xa[taken_idx])
    order: list[int] = []
    left = np.ones(len(reps), dtype=bool)
    for _ in range(min(n, len(reps))):
        # farthest from everything taken so far; the bigger cluster breaks ties (and
        # chooses the first pick when nothing is taken)
        value = np.where(left, near, -1.0)
        best = np.flatnonzero(value == value.max())
        pick = int(best[np.argmax(sizes[best])])
        order.append(pick)
        left[pick] = False
        near = np.minimum(near, _nearest_sq(R, r_sq, R[pick : pick + 1]))
    return candidates[reps[np.asarray(order, dtype=np.intp)]]


def _candidates(
    X: ArrayLike, taken: ArrayLike | None, among: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.intp], NDArray[np.intp]]:
    """``X`` as rows, the ``taken`` indices, and the rows a cold start may pick: ``among``
    (default every row) without the taken ones."""
    Xa = np.asarray(X, dtype=np.float64)
    Xa = Xa.reshape(len(Xa), -1)
    taken_idx = np.asarray([] if taken is None else taken, dtype=np.intp)
    if among is None:
        mask = np.ones(len(Xa), dtype=bool)
        mask[taken_idx] = False
        return Xa, taken_idx, np.flatnonzero(mask)
    return Xa, taken_idx, np.setdiff1d(np.asarray(among, dtype=np.intp), taken_idx)


def _nearest_sq(
    A: NDArray[np.float64], a_sq: NDArray[np.float64], B: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Each row of ``A``'s squared distance to its nearest row of ``B`` (inf if none)."""
    if not len(B):
        return np.full(len(A), np.inf)
    return np.maximum(_sq_distances(A, a_sq, B).min(axis=1), 0.0)

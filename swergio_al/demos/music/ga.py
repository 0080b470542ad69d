"""A numpy genetic algorithm on bit strings: tournament selection, two-point crossover,
bit-flip mutation, elitism. Seeded through `random_state`; no global randomness."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

Population = NDArray[np.uint8]


class GeneticAlgorithm:
    """Breeds the next generation from a population and its fitness (higher is better).

    >>> ga = GeneticAlgorithm(population_size=8, genome_length=16, random_state=0)
    >>> population = ga.initialize()
    >>> population = ga.step(population, population.sum(axis=1))
    >>> population.shape
    (8, 16)
    """

    def __init__(self, *, population_size: int = 50, genome_length: int = 128,
                 tournament_size: int = 3, crossover_rate: float = 0.9,
                 mutation_rate: float | None = None, elitism: int = 2,
                 random_state: int | np.random.Generator | None = None) -> None:
        self.population_size = population_size
        self.genome_length = genome_length
        self.tournament_size = tournament_size
        self.crossover_rate = crossover_rate
        self.mutation_rate = mutation_rate
        self.elitism = elitism
        self.random_state = random_state

    def initialize(self) -> Population:
        """Validate the parameters, seed the generator, and return a random population."""
        if self.population_size < 2:
            raise ValueError(f"population_size must be >= 2, got {self.population_size}")
        if self.genome_length < 2:
            raise ValueError(f"genome_length must be >= 2, got {self.genome_length}")
        if not 1 <= self.tournament_size <= self.population_size:
            raise ValueError(f"tournament_size must lie in 1..{self.population_size}, "
                             f"got {self.tournament_size}")
        if not 0 <= self.elitism < self.population_size:
            raise ValueError(f"elitism must lie in 0..{self.population_size - 1}, "
                             f"got {self.elitism}")
        if not 0.0 <= self.crossover_rate <= 1.0:
            raise ValueError(f"crossover_rate must lie in [0, 1], got {self.crossover_rate}")
        self.mutation_rate_ = (1.0 / self.genome_length if self.mutation_rate is None
                               else self.mutation_rate)
        if not 0.0 <= self.mutation_rate_ <= 1.0:
            raise ValueError(f"mutation_rate must lie in [0, 1], got {self.mutation_rate}")
        self.rng_ = np.random.default_rng(self.random_state)
        self.generation_ = 0
        return self.rng_.integers(0, 2, size=(self.population_size, self.genome_length),
                                  dtype=np.uint8)

    def step(self, population: ArrayLike, fitness: ArrayLike) -> Population:
        """The next generation: the `elitism` best unchanged, the rest bred from tournaments."""
        if not hasattr(self, "rng_"):
            raise RuntimeError("call initialize() before step()")
        parents = np.asarray(population, dtype=np.uint8)
        scores = np.asarray(fitness, dtype=np.float64)
        if parents.shape != (self.population_size, self.genome_length):
            expected = (self.population_size, self.genome_length)
            raise ValueError(f"population must have shape {expected}, got {parents.shape}")
        if scores.shape != (self.population_size,) or not np.isfinite(scores).all():
            raise ValueError(f"fitness must be {self.population_size} finite numbers")
        elite = parents[np.argsort(-scores, kind="stable")[:self.elitism]]
        n_children = self.population_size - self.elitism
        mothers = parents[self._tournament(scores, n_children)]
        fathers = parents[self._tournament(scores, n_children)]
        children = self._crossover(mothers, fathers)
        children ^= (self.rng_.random(children.shape) < self.mutation_rate_).astype(np.uint8)
        self.generation_ += 1
        return np.concatenate([elite, children])

    def _tournament(self, scores: NDArray[np.float64], n: int) -> NDArray[np.int64]:
        entrants = self.rng_.integers(0, scores.size, size=(n, self.tournament_size))
        winners = np.argmax(scores[entrants], axis=1)
        return entrants[np.arange(n), winners]

    def _crossover(self, mothers: Population, fathers: Population) -> Population:
        children = mothers.copy()
        n, length = children.shape
        cuts = np.sort(self.rng_.integers(0, length + 1, size=(n, 2)), axis=1)
        positions = np.arange(length)
        from_father = (positions >= cuts[:, :1]) & (positions < cuts[:, 1:])
        crossing = np.asarray(self.rng_.random(n) < self.crossover_rate)
        from_father &= crossing[:, None]
        children[from_father] = fathers[from_father]
        return children

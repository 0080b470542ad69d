"""The music generator demo: a GA evolves melodies, an evaluator predicts their ratings,
and people (or a simulated listener) rate only the melodies the evaluator is unsure of."""

from swergio_al.demos.music.melody import Melody, decode, random_genomes

__all__ = ["Melody", "decode", "random_genomes"]

"""A Python embedding hook used by the tests: ``tests.embedding_hook:energy_profile``."""

import numpy as np


def energy_profile(samples, sr):
    """Four numbers: RMS of each quarter of the signal."""
    return np.array([np.sqrt(np.mean(q ** 2)) for q in np.array_split(samples, 4)])


def broken(samples, sr):
    raise ValueError("this hook always fails")

"""Shared pytest configuration: fixed float32 defaults and a few helpers."""

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import numpy as np
import pytest


@pytest.fixture
def rng():
    """A NumPy generator for building test inputs (never used inside the library)."""
    return np.random.default_rng(0)


@pytest.fixture
def key():
    return jax.random.key(0)

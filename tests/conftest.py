"""Shared fixtures: the ../shared data folder (skips cleanly when absent) and small signal makers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEVSET = SHARED / "data" / "devset"


@pytest.fixture
def devset() -> Path:
    if not DEVSET.is_dir():
        pytest.skip("../shared/data/devset not present")
    return DEVSET


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)

import random

import pytest
import torch

from quadnas.space import SearchSpace


@pytest.fixture(scope="session")
def tiny_space() -> SearchSpace:
    return SearchSpace.load("tiny")


@pytest.fixture(scope="session")
def default_space() -> SearchSpace:
    return SearchSpace.load()


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    torch.manual_seed(0)

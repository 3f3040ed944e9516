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


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Test networks are tiny: extra threads gain nothing and spin on CI's shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    torch.manual_seed(0)

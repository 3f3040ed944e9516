import random
from pathlib import Path

import pytest
import torch
from builders import shape_cost_ms, synthetic_table_file

from quadnas.data import load_dataset
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.space import SearchSpace
from quadnas.supernet.train import TrainConfig, train_supernet


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


@pytest.fixture(scope="session")
def synthetic_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An estimated table of the tiny space whose rows grow with each op's shape (`builders.shape_cost_ms`)."""
    path = tmp_path_factory.mktemp("tables") / "test-device.csv"
    return synthetic_table_file(path, SearchSpace.load("tiny"), shape_cost_ms)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny-space supernet trained for one epoch on digits at 32 px."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    train_supernet(SearchSpace.load("tiny"), load_dataset("digits", 32), TrainConfig(epochs=1, batch_size=128), path)
    return path


@pytest.fixture(scope="session")
def budget(synthetic_table: Path) -> str:
    """A budget that binds on the synthetic table: 60 % of the way from its fastest arch to its slowest."""
    predictor = LatencyPredictor(LatencyTable.read(synthetic_table), SearchSpace.load("tiny"))
    (_, fast), (_, slow) = predictor.fastest(), predictor.slowest()
    return f"{fast + 0.6 * (slow - fast):.4f}ms"

"""The weight-shared supernet and its training.

`supernet` (Supernet), `recipe` (TrainConfig), `train` (train_supernet), `checkpoint`
(checkpoints and their default place), `cache` (the searches' cached supernets), `evaluate`
(Evaluator). The names below are imported on first use, so that light modules of the package
(the training recipe, for the command line's start-up) do not pull in torch.
"""

from typing import TYPE_CHECKING

from quadnas._lazy import lazy_attributes

if TYPE_CHECKING:  # typed names for the lazy attributes below
    from quadnas.supernet.cache import cached_supernets, clear
    from quadnas.supernet.checkpoint import SUPERNETS_DIR, check_writable, default_checkpoint_path
    from quadnas.supernet.evaluate import Evaluator
    from quadnas.supernet.recipe import TrainConfig
    from quadnas.supernet.runtime import is_main_process
    from quadnas.supernet.supernet import Supernet
    from quadnas.supernet.train import train_supernet
    from quadnas.supernet.trainer import CheckpointPolicy, EpochStats

_HOMES = {
    "cached_supernets": "cache",
    "clear": "cache",
    "SUPERNETS_DIR": "checkpoint",
    "check_writable": "checkpoint",
    "default_checkpoint_path": "checkpoint",
    "Evaluator": "evaluate",
    "TrainConfig": "recipe",
    "Supernet": "supernet",
    "CheckpointPolicy": "trainer",
    "EpochStats": "trainer",
    "is_main_process": "runtime",
    "train_supernet": "train",
}
__all__ = [  # the keys of _HOMES, sorted, for type checkers and linters
    "CheckpointPolicy",
    "EpochStats",
    "Evaluator",
    "SUPERNETS_DIR",
    "Supernet",
    "TrainConfig",
    "cached_supernets",
    "check_writable",
    "clear",
    "default_checkpoint_path",
    "is_main_process",
    "train_supernet",
]


__getattr__ = lazy_attributes(__name__, _HOMES)

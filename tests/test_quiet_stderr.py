"""A normal run's stderr holds only what quadnas wrote: no third-party warning or log line.

Each command runs as a user runs it (a fresh process running the CLI); a wrapper keeps a copy of all
the CLI writes through its stderr console (its log lines, notes and warnings), and every other
line on stderr fails the test.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import optuna
import pytest
from builders import foreign_stderr, tiny_search_argv
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState, create_trial


def _retry_a_trial(storage: str, study_name: str) -> None:
    """A worker's trial failed as a kill -9 leaves it, and queued again by Optuna's own retry callback."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    done = next(t for t in study.get_trials(states=(TrialState.COMPLETE,)) if t.system_attrs)
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            params=done.params,
            distributions=done.distributions,
            user_attrs=done.user_attrs,
            system_attrs=done.system_attrs,
        )
    )
    failed = study.get_trials(states=(TrialState.FAIL,))[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=1)(study, failed)
    assert study.get_trials(states=(TrialState.WAITING,))


@pytest.mark.slow
def test_search_resume_and_int8_export_write_nothing_foreign_on_stderr(
    tmp_path, synthetic_table, tiny_checkpoint, budget
):
    runs = tmp_path / "runs"
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    search = [*tiny_search_argv(runs, synthetic_table, tiny_checkpoint, 4, budget), "--storage", storage]
    search += ["--study", "s", "--mode", "constrained"]
    assert foreign_stderr(search, tmp_path) == []
    _retry_a_trial(storage, "s")
    resumed = [*search]
    resumed[resumed.index("--trials") + 1] = "6"
    assert foreign_stderr(resumed, tmp_path) == []
    best = runs / "s" / "best.yaml"
    export = ["export", str(best), "--out", str(tmp_path / "m.onnx"), "--precision", "int8"]  # onnxruntime's quantizer
    assert foreign_stderr(export, tmp_path) == []


def test_the_onnx_quantizer_leaves_the_root_logger_as_it_was(tmp_path):
    """onnxruntime's quantizer logs through module-level `logging.warning` ("Axis 1 is out-of-range ..."),
    which would install a stderr handler on the root logger for good (every later warning of any library
    printed as `WARNING:name:...`): nothing reaches stderr, and the root logger keeps no handler after (a
    fresh process: pytest gives the root logger handlers of its own)."""
    code = (
        "import logging, sys\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from quadnas.nn import QuadraNet\n"
        "from quadnas.nn.onnx import write_onnx\n"
        "from quadnas.nn.quantize import quantize_onnx\n"
        "from quadnas.space import SearchSpace\n"
        "space, out = SearchSpace.load('tiny'), Path(sys.argv[1])\n"
        "shape = (1, space.config.in_channels, 32, 32)\n"
        "fp32 = write_onnx(QuadraNet(space, space.largest()).eval(), shape, out / 'm.onnx')\n"
        "calibration = [np.random.default_rng(i).standard_normal(shape, dtype=np.float32) for i in range(2)]\n"
        "quantize_onnx(fp32, out / 'm8.onnx', calibration, shape, 'input')\n"
        "assert logging.getLogger().handlers == [], logging.getLogger().handlers\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""

"""Test data many test modules build: latency table headers and tables (imported as `builders`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from quadnas._search.config import SearchConfig
from quadnas.latency.header import Calibration, TableMeta
from quadnas.latency.table import LatencyTable
from quadnas.space import OpSpec, SearchSpace


def table_meta(space: SearchSpace, **changes: Any) -> TableMeta:
    """A measured-looking table header for `space`; `changes` replace any field."""
    fields: dict[str, Any] = dict(
        device="test-device",
        aliases=["td"],
        backend="onnxruntime",
        backend_version="1.20",
        precision="fp32",
        batch=1,
        threads=1,
        resolution=space.config.resolution,
        space=space.name,
        space_fingerprint=space.fingerprint(),
        created="2025-01-02T03:04:05Z",
        quadnas_version="0.1.0",
        provenance="measured",
        method="median of 30 runs: interleaved",
        calibration=Calibration(a=1.1, b_ms=0.5, mape_pct=3.0, max_err_pct=6.5, networks=4),
        sources=["first: a source", "second # with a hash"],
    )
    return TableMeta(**{**fields, **changes})


def table_of(
    space: SearchSpace, cost_ms: Callable[[OpSpec], float], specs: list[OpSpec] | None = None, **meta: Any
) -> LatencyTable:
    """A table whose row for each op spec (default: every one of the space) is `cost_ms(spec)`."""
    table = LatencyTable(table_meta(space, **meta))
    for spec in specs if specs is not None else space.all_op_specs():
        ms = cost_ms(spec)
        table.upsert(spec, latency_ms=ms, p10_ms=0.9 * ms, p90_ms=1.2 * ms, runs=20)
    return table


def synthetic_table_file(path: Path, space: SearchSpace, cost_ms: Callable[[OpSpec], float], **meta: Any) -> Path:
    """An estimated test table of `cost_ms` rows, written to `path`."""
    fields: dict[str, Any] = dict(
        aliases=[],
        backend="synthetic",
        backend_version="0",
        provenance="estimated",
        method="shape formula for tests",
        calibration=Calibration(),
        sources=[],
    )
    return table_of(space, cost_ms, **(fields | meta)).write(path)


def random_table(space: SearchSpace, specs: list[OpSpec] | None = None, seed: int = 0, **meta: Any) -> LatencyTable:
    """A table of seeded random rows between 0.1 and 5 ms."""
    rng = np.random.default_rng(seed)
    return table_of(space, lambda _: float(rng.uniform(0.1, 5.0)), specs, **meta)


def shape_cost_ms(spec: OpSpec) -> float:
    """A made-up but shape-aware cost: enough for a search to have something to trade."""
    pixels = spec.height * spec.width
    if spec.op == "quadra_block":
        return pixels * spec.cin * (3 * spec.kernel**2 + 2 * spec.expansion * spec.cin) / 2e6
    return pixels * spec.cin * 0.1 / 1e6 + 0.01


def tiny_search_config(runs: Path, table: Path, checkpoint: Path | None, budget: str, **changes: Any) -> SearchConfig:
    """A 12-trial random search of the tiny space on digits, with `table` and `checkpoint`; `changes` on top."""
    values: dict[str, Any] = dict(
        space="tiny",
        data="digits",
        device=str(table),
        budget=budget,
        checkpoint=None if checkpoint is None else str(checkpoint),
        runs_dir=str(runs),
        trials=12,
        sampler="random",
        study="s",
    )
    return SearchConfig(**{**values, **changes})


def tiny_search_argv(runs: Path, table: Path, checkpoint: Path, trials: int, *budget: str) -> list[str]:
    """`quadnas search` of the tiny space on digits, random sampler; `budget`: its words (`30ms`, or `30`, `ms`)."""
    return [
        "search",
        *("--space", "tiny", "--data", "digits", "--device", str(table), "--budget", *budget),
        *("--checkpoint", str(checkpoint), "--runs-dir", str(runs), "--trials", str(trials), "--sampler", "random"),
    ]


# The CLI, with its stderr console writing through a copy kept in the file argv[1].
_DRIVER = (
    "import io, sys\n"
    "from quadnas.cli import common, main\n"
    "copy = open(sys.argv[1], 'w')\n"
    "class Both(io.TextIOBase):\n"
    "    def write(self, text):\n"
    "        copy.write(text)\n"
    "        return sys.__stderr__.write(text)\n"
    "    def flush(self):\n"
    "        copy.flush()\n"
    "        sys.__stderr__.flush()\n"
    "common.err_console.file = Both()\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def foreign_stderr(argv: list[str], where: Path) -> list[str]:
    """The lines on stderr of `quadnas ARGV` (which must succeed) that quadnas did not write."""
    copy = where / f"ours-{len(list(where.glob('ours-*')))}.txt"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(copy), *argv], capture_output=True, text=True, env=env, timeout=900
    )
    assert done.returncode == 0, done.stderr
    ours = copy.read_text().splitlines()
    foreign = []
    for line in done.stderr.splitlines():
        if line in ours:
            ours.remove(line)
        elif line.strip():
            foreign.append(line)
    return foreign

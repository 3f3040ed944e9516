"""A search under several devices at once: one arch within every device's budget (`--device A --budget X ...`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from builders import shape_cost_ms, synthetic_table_file, tiny_search_argv, tiny_search_config

from quadnas._search.config import SearchConfig
from quadnas._search.results import Candidate, pareto_front
from quadnas._search.run import check_budgets, search
from quadnas._search.targets import Targets
from quadnas.cli import main
from quadnas.errors import QuadnasError
from quadnas.latency.budget import Budget
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.record import DeviceRecord, SearchRecord
from quadnas.space import OpSpec, SearchSpace


def kernel_heavy_ms(spec: OpSpec) -> float:
    """A device where large kernels cost ten times more than on `shape_cost_ms`'s, and everything is 10x slower."""
    if spec.op != "quadra_block":
        return 10 * shape_cost_ms(spec)
    return spec.height * spec.width * spec.cin * (30 * spec.kernel**2 + 2 * spec.expansion * spec.cin) / 2e5


def expansion_heavy_ms(spec: OpSpec) -> float:
    """A device 10x faster than `shape_cost_ms`'s on which the MLP's expansion dominates."""
    if spec.op != "quadra_block":
        return shape_cost_ms(spec) / 10
    return spec.height * spec.width * spec.cin * (spec.kernel**2 + 8 * spec.expansion * spec.cin) / 2e7


def _write_table(folder: Path, name: str, space: SearchSpace, cost) -> Path:
    return synthetic_table_file(folder / f"{name}.csv", space, cost, device=name)


def binding_budget(table: Path, space: SearchSpace, at: float = 0.6) -> str:
    """A budget `at` of the way from the table's fastest arch to its slowest."""
    predictor = LatencyPredictor(LatencyTable.read(table), space)
    (_, fast), (_, slow) = predictor.fastest(), predictor.slowest()
    return f"{fast + at * (slow - fast):.4f}ms"


@pytest.fixture(scope="module")
def devices(tmp_path_factory, tiny_space) -> list[tuple[Path, str]]:
    """Three tiny-space tables that rank archs differently, each with a budget that binds on it."""
    folder = tmp_path_factory.mktemp("device-tables")
    costs = {"edge-a": shape_cost_ms, "edge-b": kernel_heavy_ms, "edge-c": expansion_heavy_ms}
    tables = [_write_table(folder, name, tiny_space, cost) for name, cost in costs.items()]
    return [(table, binding_budget(table, tiny_space)) for table in tables]


def _flags(pairs: list[tuple[Path, str]]) -> list[str]:
    return [word for table, budget in pairs for word in ("--device", str(table), "--budget", budget)]


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(capsys, argv: list[str], message: str) -> None:
    code, out, err = _cli(capsys, *argv)
    lines = [line for line in (out + err).strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in out + err, out + err
    assert re.search(message, lines[0]), lines[0]


def _config(tmp_path, pairs, checkpoint, **changes) -> SearchConfig:
    first_table, first_budget = pairs[0]
    config = tiny_search_config(tmp_path / "runs", first_table, checkpoint, first_budget, **changes)
    return SearchConfig.checked({**config.model_dump(), "devices": [{"device": str(t), "budget": b} for t, b in pairs]})


# ---- settings ---------------------------------------------------------------------------------------------------
def test_one_device_keeps_its_form_and_name():
    one = SearchConfig(device="vpu", budget="30ms")
    assert one.devices == SearchConfig().devices and not one.several
    assert (one.device, str(one.budget)) == ("vpu", "30ms")
    assert one.study_name() == "quadranet-t-mnist5k-vpu-30ms-constrained"
    assert SearchConfig(device=["vpu"], budget=["0.03s"]).study_name() == one.study_name()


def test_devices_pair_in_order_and_name_the_study():
    flags = SearchConfig(device=["vpu", "cpu", "gpu"], budget=["30ms", "0.3s", "3ms"])
    listed = SearchConfig(
        devices=[{"device": d, "budget": b} for d, b in (("vpu", "30ms"), ("cpu", "300ms"), ("gpu", "3ms"))]
    )
    assert flags == listed and flags.several
    assert flags.study_name() == "quadranet-t-mnist5k-vpu-30ms-cpu-300ms-gpu-3ms-constrained"
    assert SearchConfig.checked(flags.model_dump()) == flags  # a dump reads back as itself
    with pytest.raises(ValueError, match="3 devices: read SearchConfig.devices"):
        _ = flags.budget


def test_a_device_given_twice_counts_once_with_one_budget():
    twice = SearchConfig(device=["vpu", "cpu", "vpu"], budget=["30ms", "300ms", "0.03s"])
    assert [d.device for d in twice.devices] == ["vpu", "cpu"]
    assert twice.study_name() == SearchConfig(device=["vpu", "cpu"], budget=["30ms", "300ms"]).study_name()


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"device": ["vpu", "vpu"], "budget": ["30ms", "40ms"]},
            "device 'vpu' is given twice, with budgets 30ms and 40ms",
        ),
        ({"device": ["vpu", "cpu"], "budget": ["30ms"]}, r"2 devices \(vpu, cpu\) but 1 budget \(30ms\)"),
        ({"device": ["vpu", "cpu"]}, r"2 devices \(vpu, cpu\) but 1 budget \(30ms\)"),  # the default budget
        ({"budget": ["30ms", "300ms"]}, r"1 device \(vpu\) but 2 budgets"),
        ({"device": ["a/x.csv", "b/x.csv"], "budget": ["1ms", "2ms"]}, "share the name 'x'"),
        ({"devices": [{"device": "vpu", "budget": "30ms"}], "budget": "40ms"}, "either as 'devices'.*not both"),
        ({"devices": [{"device": "vpu"}]}, "'devices.0.budget': Field required"),
        ({"devices": [{"device": "vpu", "budget": "30"}]}, "budget '30' has no unit"),
    ],
)
def test_bad_devices_are_one_line_errors(values, message):
    with pytest.raises(QuadnasError, match=message):
        SearchConfig.checked(values)


def test_config_file_devices_and_flags_over_them(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump({"devices": [{"device": "vpu", "budget": "30ms"}, {"device": "cpu", "budget": "300ms"}]})
    )
    config = SearchConfig.from_sources(str(cfg), {"budget": ["20ms", "200ms"], "device": None})
    assert [(d.device, str(d.budget)) for d in config.devices] == [("vpu", "20ms"), ("cpu", "200ms")]
    config = SearchConfig.from_sources(str(cfg), {"device": ["gpu", "cpu"]})  # the file's budgets, in order
    assert [(d.device, str(d.budget)) for d in config.devices] == [("gpu", "30ms"), ("cpu", "300ms")]
    with pytest.raises(QuadnasError, match=r"1 device \(gpu\) but 2 budgets \(30ms, 300ms\)"):
        SearchConfig.from_sources(str(cfg), {"device": ["gpu"]})
    cfg.write_text(yaml.safe_dump({"device": "cpu", "budget": "300ms"}))  # the single form, with flags of three
    config = SearchConfig.from_sources(str(cfg), {"device": ["vpu", "cpu", "gpu"], "budget": ["30ms", "300ms", "3ms"]})
    assert len(config.devices) == 3


def test_shipped_multi_device_config_is_valid():
    config = SearchConfig.from_sources("configs/vpu-cpu-gpu.yaml", {})
    assert [(d.device, str(d.budget)) for d in config.devices] == [("vpu", "30ms"), ("cpu", "300ms"), ("gpu", "3ms")]


# ---- budgets no arch meets --------------------------------------------------------------------------------------
def test_budgets_each_met_but_never_together_are_an_error(tmp_path):
    """Without identity blocks, small kernels are fastest on one device and large ones on the other."""
    raw = yaml.safe_load(Path("search_spaces/tiny.yaml").read_text())
    space = SearchSpace.from_dict({**raw, "choices": {"kernel": [3, 7], "expansion": [2], "identity": False}})

    def small_fast(spec: OpSpec) -> float:
        return 1.0 if spec.op != "quadra_block" else (1.0 if spec.kernel == 3 else 2.0)

    def large_fast(spec: OpSpec) -> float:
        return 1.0 if spec.op != "quadra_block" else (2.0 if spec.kernel == 3 else 1.0)

    tables = [_write_table(tmp_path, n, space, c) for n, c in (("small", small_fast), ("large", large_fast))]
    fastest = [LatencyPredictor(LatencyTable.read(t), space).fastest()[1] for t in tables]
    just_above = [f"{ms * 1.01:.4f}ms" for ms in fastest]
    config = SearchConfig(space="tiny", device=[str(t) for t in tables], budget=just_above)
    targets = Targets.load(config.devices, space)
    with pytest.raises(QuadnasError, match="no arch of the space was found that fits every budget at once"):
        check_budgets(targets, space)
    assert check_budgets(Targets(targets.items[:1]), space) == []  # each alone is met


def test_a_budget_below_one_devices_fastest_arch_names_that_device(capsys, tmp_path, devices, tiny_checkpoint):
    (a, budget_a), (b, _) = devices[:2]
    argv = tiny_search_argv(tmp_path, a, tiny_checkpoint, 2, budget_a) + ["--device", str(b), "--budget", "0.0001ms"]
    _one_line_error(capsys, argv, f"below the fastest arch of the space on '{b}'.*feasible range")


@pytest.mark.parametrize(
    "second, message",
    [
        (["--device", "{b}"], r"2 devices \({a}, {b}\) but 1 budget"),
        (["--budget", "1ms"], r"1 device \({a}\) but 2 budgets"),
        (["--device", "{a}", "--budget", "1000ms"], r"device '{a}' is given twice, with budgets"),
    ],
)
def test_cli_device_mistakes_are_one_line(capsys, tmp_path, devices, tiny_checkpoint, second, message):
    (a, budget), (b, _) = devices[:2]
    argv = tiny_search_argv(tmp_path, a, tiny_checkpoint, 2, budget) + [w.format(a=a, b=b) for w in second]
    _one_line_error(capsys, argv, message.format(a=re.escape(str(a)), b=re.escape(str(b))))


def test_two_names_of_one_table_are_an_error(capsys, tmp_path):
    argv = ["search", "--device", "vpu", "--budget", "30ms", "--device", "myriad-x", "--budget", "30ms"]
    _one_line_error(capsys, [*argv, "--runs-dir", str(tmp_path)], "'vpu' and 'myriad-x' name one latency table")


# ---- searches ---------------------------------------------------------------------------------------------------
def test_two_devices_constrained(tmp_path, devices, tiny_checkpoint):
    pairs = devices[:2]
    result = search(_config(tmp_path, pairs, tiny_checkpoint, sampler="tpe", trials=16))
    labels = ["edge-a", "edge-b"]
    assert list(result.budgets) == labels
    trials = result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 16
    for t in trials:
        shares = {label: t.user_attrs[f"latency_ms[{label}]"] / result.budgets[label].ms for label in labels}
        assert t.constraints == {f"latency[{label}]": pytest.approx(share - 1) for label, share in shares.items()}
        assert t.user_attrs["feasible"] is all(share <= 1 for share in shares.values())
        assert t.user_attrs["evaluated"] is t.user_attrs["feasible"]  # nothing over a budget is evaluated
    proposed = [t for t in trials if t.number >= 10]  # after the seeds, every proposal fits both budgets
    assert proposed and all(t.user_attrs["feasible"] for t in proposed)
    assert result.best is not None and result.best.feasible(result.budgets)
    assert result.study.user_attrs["device"] == [str(t) for t, _ in pairs]
    assert result.study.user_attrs["budget_ms"] == [result.budgets[label].ms for label in labels]

    text = (result.run_dir / "best.yaml").read_text()
    assert "&id" not in text and "*id" not in text  # plain YAML for people: no anchors or aliases
    best = yaml.safe_load(text)
    assert best["arch"] == str(result.best.arch) and len(best["devices"]) == 2 and "latency_ms" not in best
    for entry, (table, _) in zip(best["devices"], pairs):
        assert entry["device"] == str(table) and entry["latency_ms"] <= entry["budget_ms"]
        assert entry["budget_share"] == pytest.approx(entry["latency_ms"] / entry["budget_ms"], abs=1e-3)
        assert sum(row["ms"] for row in entry["latency_breakdown"]) == pytest.approx(entry["latency_ms"], rel=1e-3)
    assert [entry["label"] for entry in best["devices"]] == labels
    csv = pd.read_csv(result.run_dir / "trials.csv")
    for label in labels:
        assert csv[f"user_attrs_latency_ms[{label}]"].notna().all()
        assert csv[f"user_attrs_budget_share[{label}]"].notna().all()
    assert list(pd.read_csv(result.run_dir / "pareto.csv").columns) == [
        "arch",
        "accuracy",
        "latency_ms[edge-a]",
        "latency_ms[edge-b]",
        "trial",
    ]
    for name in ("pareto.png", "breakdown.png"):
        assert (result.run_dir / name).stat().st_size > 0


def test_three_devices_on_the_command_line(capsys, tmp_path, devices, tiny_checkpoint):
    (a, budget_a), *others = devices
    argv = [*tiny_search_argv(tmp_path, a, tiny_checkpoint, 12, budget_a), *_flags(others), "--json"]
    code, out, err = _cli(capsys, *argv)
    doc = json.loads(out)
    assert code == 0 and doc["best"] is not None
    assert doc["device"] is None and doc["budget_ms"] is None  # several devices: read `devices`
    assert [d["device"] for d in doc["devices"]] == [str(t) for t, _ in devices]
    assert [d["name"] for d in doc["devices"]] == ["edge-a", "edge-b", "edge-c"]
    named = "-".join(f"{t.stem}-{Budget.parse(b)}" for t, b in devices)
    assert doc["study"] == f"tiny-digits-{named}-constrained"
    for c in [doc["best"], *doc["ranked"]]:
        assert c["latency_ms"] is None and c["budget_share"] is None
        assert [d["device"] for d in c["devices"]] == [str(t) for t, _ in devices]
        assert all(
            d["latency_ms"] <= budget["budget_ms"] and d["budget_share"] <= 1
            for d, budget in zip(c["devices"], doc["devices"])
        )
    best = yaml.safe_load(Path(doc["files"]["best.yaml"]).read_text())
    for entry, listed in zip(best["devices"], doc["best"]["devices"]):
        assert entry["latency_ms"] == pytest.approx(listed["latency_ms"], abs=1e-4)

    code, out, _ = _cli(capsys, *argv[:-1])  # the same study, resumed, as text
    assert code == 0 and "12 complete trials" in " ".join(out.split())
    header = next(line for line in out.splitlines() if "edge-a" in line and "arch" in line)
    assert "edge-b" in header and "edge-c" in header


def test_pareto_front_over_accuracy_and_every_latency(tmp_path, devices, tiny_checkpoint):
    result = search(_config(tmp_path, devices[:2], tiny_checkpoint, mode="pareto", trials=14, study="p"))
    assert result.study.metric_names == ["accuracy", "latency_ms[edge-a]", "latency_ms[edge-b]"]
    assert all(len(t.values) == 3 for t in result.study.trials)
    evaluated = [c for c in result.candidates if c.accuracy is not None]

    def beats(x: Candidate, y: Candidate) -> bool:
        better = [x.accuracy >= y.accuracy, *(x.latencies[k] <= y.latencies[k] for k in x.latencies)]
        strictly = [x.accuracy > y.accuracy, *(x.latencies[k] < y.latencies[k] for k in x.latencies)]
        return all(better) and any(strictly)

    front = result.pareto
    assert front and not any(beats(x, f) for f in front for x in evaluated)
    assert all(any(beats(f, c) or f.latencies == c.latencies for f in front) for c in evaluated if c not in front)


def test_pareto_front_of_two_devices_keeps_a_trade_off():
    items = [
        Candidate("fast-on-a", 0.5, {"a": 1.0, "b": 9.0}, 0),
        Candidate("fast-on-b", 0.5, {"a": 9.0, "b": 1.0}, 1),
        Candidate("beaten", 0.4, {"a": 9.0, "b": 9.0}, 2),
        Candidate("best", 0.9, {"a": 9.0, "b": 9.0}, 3),
    ]
    assert [c.arch for c in pareto_front(items)] == ["fast-on-a", "fast-on-b", "best"]  # by latency on a, then b


def test_a_single_device_study_refuses_a_second_device(tmp_path, devices, tiny_checkpoint):
    (a, budget_a), (b, budget_b) = devices[:2]
    search(tiny_search_config(tmp_path / "runs", a, tiny_checkpoint, budget_a, trials=2))
    with pytest.raises(QuadnasError, match="created with other settings.*device.*--study"):
        search(_config(tmp_path, [(a, budget_a), (b, budget_b)], tiny_checkpoint, trials=2))


def test_export_reads_the_budget_of_the_device_it_verifies(tmp_path, devices, tiny_checkpoint):
    from quadnas._export.source import build_model, searched_device

    def budget_ms(record: SearchRecord, device: str | None) -> float | None:
        entry = searched_device(record, device)
        return None if entry is None else entry.budget_ms

    result = search(_config(tmp_path, devices[:2], tiny_checkpoint, trials=4))
    record_path = result.run_dir / "best.yaml"
    source = build_model(record_path)
    assert source.record is not None
    (a, _), (b, _) = devices[:2]
    assert source.arch == result.best.arch
    assert budget_ms(source.record, str(b)) == result.budgets["edge-b"].ms
    assert budget_ms(source.record, str(a)) == budget_ms(source.record, None) == result.budgets["edge-a"].ms
    assert budget_ms(source.record, "vpu") is None  # a device the search did not use: no budget
    entry = {"latency_ms": 20.0, "budget_share": 0.5}
    record = source.record.model_copy(
        update={
            "devices": [
                DeviceRecord(device="vpu", budget_ms=30.0, **entry),
                DeviceRecord(device="cpu", budget_ms=300.0, **entry),
            ]
        }
    )
    assert budget_ms(record, "cortex-a76") == 300.0  # another name of the cpu table


@pytest.mark.slow
def test_the_three_shipped_devices_at_their_headline_budgets(tmp_path):
    """vpu 30 ms, cpu 300 ms and gpu 3 ms at once on the default space: the search finishes and its arch fits all."""
    result = search(
        data="digits",
        device=["vpu", "cpu", "gpu"],
        budget=["30ms", "300ms", "3ms"],
        train_epochs=1,
        trials=6,
        runs_dir=str(tmp_path),
    )
    assert result.best is not None
    assert set(result.budgets) == {"vpu", "cpu", "gpu"}
    assert all(result.best.latencies[d] <= result.budgets[d].ms for d in result.budgets)
    best = yaml.safe_load((result.run_dir / "best.yaml").read_text())
    assert [d["device"] for d in best["devices"]] == ["vpu", "cpu", "gpu"]
    assert all(d["latency_ms"] <= d["budget_ms"] for d in best["devices"])
    assert np.isfinite([d["budget_share"] for d in best["devices"]]).all()

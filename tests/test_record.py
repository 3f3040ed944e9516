"""One search record: best.yaml as a `SearchRecord`, files and studies of the earlier layout, `quadnas.export(...)`."""

import shutil
from pathlib import Path

import optuna
import pytest
import yaml

import quadnas
from quadnas._export import Exported, read_sidecar
from quadnas._search.config import SearchConfig
from quadnas._search.results import candidates
from quadnas._search.run import claim_settings, study_identity
from quadnas._search.storage import open_storage
from quadnas.errors import QuadnasError
from quadnas.record import SearchRecord
from quadnas.space import Arch, SearchSpace

REPO = Path(__file__).resolve().parents[1]
EARLIER = Path(__file__).parent / "fixtures" / "search_v0"  # written by quadnas at commit ca0a459 (make.py)
DEVICE_KEYS = ("device", "latency_ms", "budget_ms", "budget_share")


@pytest.fixture
def in_repo(monkeypatch):
    """The earlier files name the space by a path relative to the repository root."""
    monkeypatch.chdir(REPO)


def test_an_earlier_one_device_best_yaml_reads_as_a_list_of_one():
    raw = yaml.safe_load((EARLIER / "one" / "best.yaml").read_text())
    record = SearchRecord.read(EARLIER / "one" / "best.yaml")
    assert record.arch == Arch.from_text(raw["arch"]) and str(record.arch) == raw["arch"]
    assert len(record.devices) == 1
    device = record.devices[0]
    assert {k: getattr(device, k) for k in DEVICE_KEYS} == {k: raw[k] for k in DEVICE_KEYS}
    assert device.table is not None and device.table.name == raw["table"]["name"]
    assert sum(op.ms for op in device.latency_breakdown) == pytest.approx(device.latency_ms, rel=1e-3)
    assert record.precision == "fp32" and record.study is not None and record.study.name == "one"


def test_an_earlier_two_device_best_yaml_reads_each_device_once():
    raw = yaml.safe_load((EARLIER / "two" / "best.yaml").read_text())
    record = SearchRecord.read(EARLIER / "two" / "best.yaml")
    assert (
        [d.device for d in record.devices]
        == [d["device"] for d in raw["devices"]]
        == [
            "tables/edge-a.csv",
            "tables/edge-b.csv",
        ]
    )
    assert [d.latency_ms for d in record.devices] == [d["latency_ms"] for d in raw["devices"]]


def test_a_record_writes_every_device_under_devices_and_reads_back_equal(tmp_path):
    record = SearchRecord.read(EARLIER / "two" / "best.yaml")
    record.write(tmp_path / "best.yaml")
    written = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert not set(DEVICE_KEYS) & set(written)  # no device written flat beside the list
    assert written["arch"] == str(record.arch) and len(written["devices"]) == 2
    assert SearchRecord.read(tmp_path / "best.yaml") == record


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.pop("arch"), "is not a search result"),
        (lambda r: r.update(arch="k3e2-x9"), "'arch': .*arch token 'x9'"),
        (lambda r: r.update(devices=[]), "'devices': List should have at least 1 item"),
    ],
)
def test_a_broken_record_is_one_line(change, message, tmp_path):
    raw = yaml.safe_load((EARLIER / "one" / "best.yaml").read_text())
    change(raw)
    (tmp_path / "best.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(QuadnasError, match=message) as error:
        SearchRecord.read(tmp_path / "best.yaml")
    assert "\n" not in str(error.value)


def test_an_earlier_study_still_reads_and_claims_its_settings(tmp_path):
    journal = shutil.copy(EARLIER / "one" / "journal.log", tmp_path / "journal.log")
    study = optuna.load_study(study_name="one", storage=open_storage(str(journal)))
    assert study.user_attrs["device"] == "tables/edge-a.csv"  # one device stored as a value then
    found = candidates(study, ["edge-a"])  # the single device's attribute was `latency_ms`, without its label
    assert len(found) == 8 and all(set(c.latencies) == {"edge-a"} for c in found)
    best = SearchRecord.read(EARLIER / "one" / "best.yaml")
    assert any(
        c.arch == best.arch and c.latencies["edge-a"] == pytest.approx(best.devices[0].latency_ms, abs=1e-4)
        for c in found
    )
    config = SearchConfig(
        space="tiny", data="digits", device="tables/edge-a.csv", budget=f"{study.user_attrs['budget_ms']}ms"
    )
    claim_settings(study, study_identity(config, SearchSpace.load("tiny")), "one", "other settings")  # no error
    other = config.model_copy(update={"data": "mnist"})
    with pytest.raises(QuadnasError, match="other settings"):
        claim_settings(study, study_identity(other, SearchSpace.load("tiny")), "one", "other settings")


@pytest.mark.parametrize("study", ["one", "two"])
def test_quadnas_export_writes_an_earlier_result_without_the_command_line(study, tmp_path, in_repo):
    done = quadnas.export(EARLIER / study / "best.yaml", out=tmp_path / "m.onnx", init="random")
    assert isinstance(done, Exported) and done.check is None and done.notes == []
    assert done.result.path.is_file() and done.result.max_abs_diff <= 1e-3 and done.card.is_file()
    record = SearchRecord.read(EARLIER / study / "best.yaml")
    assert done.source.arch == record.arch and done.source.record == record
    searched = read_sidecar(done.result.path)["search"]
    assert [d["device"] for d in searched["devices"]] == [d.device for d in record.devices]
    assert all(f"on `{d.device}` against a budget of {d.budget_ms} ms" in done.card.read_text() for d in record.devices)


def test_quadnas_export_writes_an_arch_without_a_search_result(tmp_path):
    done = quadnas.export(arch="k3e2-id-k5e4-k7e2-id-k3e4", space="tiny", init="random", out=tmp_path / "m.pt")
    assert done.result.format == "torch" and done.source.record is None
    assert "Search:" not in done.card.read_text()


def test_quadnas_export_refuses_bad_settings_before_it_trains_or_writes_anything(tmp_path, in_repo):
    best = EARLIER / "one" / "best.yaml"
    with pytest.raises(QuadnasError, match="--precision int4 is not supported"):
        quadnas.export(best, out=tmp_path / "m.onnx", init="random", precision="int4", finetune_epochs=1)
    with pytest.raises(QuadnasError, match="--precision fp16 compresses OpenVINO IR weights"):
        quadnas.export(best, out=tmp_path / "m.onnx", init="random", precision="fp16", finetune_epochs=1)
    with pytest.raises(QuadnasError, match="either a search result"):
        quadnas.export(best, arch="k3e2", out=tmp_path / "m.onnx")
    with pytest.raises(QuadnasError, match="--train-device 'tpu' is not supported"):
        quadnas.export(best, out=tmp_path / "m.onnx", init="random", finetune_epochs=1, train_device="tpu")
    assert list(tmp_path.iterdir()) == []

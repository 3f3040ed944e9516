"""A search's result as one value: `SearchRecord`, the `best.yaml` a study writes and an export reads.

Every device of the search has one `DeviceRecord` (a single-device search has a list of one);
the arch is an `Arch`, written as its text. Files of earlier versions still read: those listed
the first device's keys at the top level and, with several devices, every device again under
`devices`; a single-device one had no `devices` at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, ValidationError, model_validator

from quadnas.errors import Invalid, QuadnasError
from quadnas.space import Arch

RECORD_FIX = "give the best.yaml of a search (runs/<study>/best.yaml) or --arch TEXT --space PATH"
# The keys that files of earlier versions wrote at the top level for their first device.
FLAT_DEVICE_KEYS = ("latency_ms", "budget_ms", "budget_share", "latency_breakdown", "device", "table")


def _arch(value: object) -> Arch:
    """An `Arch` field's value from its text (files) or an `Arch` (code)."""
    if isinstance(value, Arch):
        return value
    if isinstance(value, str):
        try:
            return Arch.from_text(value)
        except QuadnasError as e:
            raise ValueError(str(e)) from None
    raise ValueError(f"an arch is text such as k3e2-id-k5e4, not {type(value).__name__}")


ArchField = Annotated[Arch, PlainValidator(_arch), PlainSerializer(str, return_type=str)]


class _Section(BaseModel):
    """A part of the record: read-only; keys it does not know (a later version's) are left out."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class TableInfo(_Section):
    """The latency table a device's prediction came from."""

    name: str
    path: str | None = None
    provenance: str | None = None
    backend: str | None = None
    precision: str | None = None
    method: str | None = None


class OpLatency(_Section):
    op: str
    ms: float


class DeviceRecord(_Section):
    """The best arch on one device: its predicted latency, the device's budget and its share, the table."""

    device: str  # the name the search was given: a table name or path
    label: str | None = None  # the device's short name in columns and trial attributes; None in earlier files
    latency_ms: float
    budget_ms: float
    budget_share: float | None = None  # latency_ms / budget_ms
    latency_breakdown: list[OpLatency] = Field(default_factory=list)
    table: TableInfo | None = None


class SpaceInfo(_Section):
    name: str
    path: str | None = None
    fingerprint: str | None = None


class SupernetInfo(_Section):
    checkpoint: str | None = None
    sha256_16: str | None = None
    width: float = 1.0  # < 1: a proxy supernet ranked the archs


class StudyInfo(_Section):
    name: str
    trial: int | None = None
    mode: str | None = None
    sampler: str | None = None
    trials: int | None = None


class RerankInfo(_Section):
    """How a zero-cost proxy re-ranked the archs under the budget: the best arch's score and its supernet place."""

    proxy: str
    score: float | None = None
    supernet_place: int
    of: int


class Finalist(_Section):
    arch: ArchField
    trained_accuracy: float | None = None
    supernet_accuracy: float | None = None
    origin: str = "search"


class FinalistsInfo(_Section):
    """How short stand-alone training picked the best arch among the finalists."""

    epochs: float | None = None
    trained_accuracy: float | None = None
    origin: str = "search"
    supernet_place: int
    of: int
    all: list[Finalist] = Field(default_factory=list)


class SearchRecord(_Section):
    """Everything needed to rebuild, export and trust a search's best arch."""

    arch: ArchField
    accuracy: float | None = None  # with the weights it inherits from the supernet
    devices: list[DeviceRecord] = Field(min_length=1)  # in the search's device order
    precision: str | None = None  # of the files the tables predict (int8 or fp32); None in the earliest files
    rerank: RerankInfo | None = None
    finalists: FinalistsInfo | None = None
    space: SpaceInfo
    data: str | None = None
    resolution: int | None = None
    supernet: SupernetInfo = SupernetInfo()
    study: StudyInfo | None = None
    quadnas_version: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _earlier_layout(cls, values: Any) -> Any:
        """An earlier file's top-level device keys become its one device, unless it lists them under `devices`."""
        if not isinstance(values, dict) or "latency_ms" not in values:
            return values
        values = dict(values)
        first = {key: values.pop(key) for key in FLAT_DEVICE_KEYS if key in values}
        values.setdefault("devices", [first])
        return values

    @classmethod
    def read(cls, path: str | Path) -> SearchRecord:
        """The record of a `best.yaml`; a missing, unreadable or foreign file is one line naming the fix."""
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise QuadnasError(f"{path} does not exist: {RECORD_FIX}") from None
        except (OSError, yaml.YAMLError) as e:
            raise QuadnasError(f"cannot read {path}: {' '.join(str(e).split())}") from None
        if not (isinstance(values, dict) and "arch" in values and "space" in values):
            raise QuadnasError(f"{path} is not a search result (no 'arch' and 'space' keys): {RECORD_FIX}")
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            invalid = Invalid.of(e)
            raise QuadnasError(
                f"{path} is not a readable search result ('{invalid.key}': {invalid.message}): {RECORD_FIX}"
            ) from None

    def write(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False))

"""The header of a latency table: core keys, then one typed section per kind of table.

    meta.measurement   # Measurement: target, clock, per-call overhead, calibration networks, runtime settings
    meta.adapted       # Adapted: the table it was adapted from and the fit
    meta.estimate      # Estimate: the operator cost model and the networks it was fitted to

A section is None where the table has none (an estimate has no measurement). Each field's default
lives here, once. A file keeps every section's keys flat (`# clock: wall`, `# adapted_from: {...}`),
as earlier releases wrote and read them: `TableMeta` gathers them into their sections when it reads
a header, and `file_items` spreads them out again.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from quadnas.latency.host import Host

if TYPE_CHECKING:
    from quadnas.latency.estimate.model import DeviceModel

Provenance = Literal["measured", "estimated", "adapted"]  # adapted: another table corrected by whole networks
Clock = Literal["wall", "cpu"]  # the clocks a measurement times on (`quadnas.portable.clocks.CLOCKS`)


class Calibration(BaseModel):
    """Whole-network correction `measured ≈ a * sum_of_rows + b_ms` and its held-out error."""

    model_config = ConfigDict(extra="forbid")
    a: float = Field(default=1.0, gt=0, description="scale (positive: calibration is monotone)")
    b_ms: float = 0.0
    mape_pct: float | None = Field(default=None, ge=0, description="mean abs. % error on held-out networks")
    max_err_pct: float | None = Field(default=None, ge=0, description="worst abs. % error on held-out networks")
    networks: int = Field(default=0, ge=0, description="number of whole networks it was fitted on")

    def apply(self, raw_ms: float | np.ndarray) -> float | np.ndarray:
        return self.a * raw_ms + self.b_ms

    def error_text(self) -> str | None:
        """'1.5% mean, 4.5% max' where the held-out error is known, else None."""
        if self.mape_pct is None or self.max_err_pct is None:
            return None
        return f"{self.mape_pct:.1f}% mean, {self.max_err_pct:.1f}% max"


class _Section(BaseModel):
    """A group of header keys; keys a later release adds are kept."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)
    FILE_KEYS: ClassVar[dict[str, str]] = {}  # field -> its key in a file, where the two differ

    @classmethod
    def file_key(cls, field: str) -> str:
        return cls.FILE_KEYS.get(field, field)


class NetworkPoint(_Section):
    """One whole network timed end to end (a calibration or adaptation network)."""

    arch: str
    measured_ms: float = Field(gt=0, description="median of its calls")
    p10_ms: float
    p90_ms: float
    runs: int


class Measurement(_Section):
    """How a timed (measured or adapted) table was timed."""

    target: str = "CPU"
    clock: Clock = "wall"
    overhead_ms: float = Field(default=0.0, ge=0, description="per-call cost taken off every row")
    runtime_config: dict[str, str] | None = Field(default=None, description="every setting the runtime ran with")
    input_layout: str | None = Field(default=None, description="eager torch: the memory layout of op inputs")
    delegate: str | None = Field(default=None, description="LiteRT: the delegate that ran the models")
    calibration_networks: list[NetworkPoint] = Field(default_factory=list)


class SourceRecord(_Section):
    """What an adapted table says of the table it corrects."""

    name: str
    provenance: str
    device: str | None = None
    backend: str | None = None
    threads: int | None = None
    space: str | None = None
    space_fingerprint: str | None = None
    host: str | None = None
    host_fingerprint: str | None = None
    created: str | None = None
    rows_sha: str | None = Field(default=None, description="digest of the source's rows (`rows_digest`)")


class AdaptationFit(_Section):
    """The fitted correction (`latency.adaptation.Adaptation`), everything needed to recompute the rows."""

    global_scale: float
    offset_ms: float = 0.0
    factors: dict[str, float] = Field(default_factory=dict)
    shifts: dict[str, float] = Field(default_factory=dict)
    typical_ms: dict[str, float] = Field(default_factory=dict)
    strength: dict[str, float] = Field(default_factory=dict)
    fit_mape_pct: float | None = None
    loo_mape_pct: float | None = None
    loo_max_err_pct: float | None = None
    loo_errors_pct: list[float] = Field(default_factory=list)
    networks: int = 0


class Adapted(_Section):
    """An adapted table's source and fit (None until its networks are timed)."""

    FILE_KEYS: ClassVar[dict[str, str]] = {"source": "adapted_from", "fit": "adaptation"}
    source: SourceRecord
    fit: AdaptationFit | None = None


class FittedNetwork(_Section):
    """A published network latency the cost model was fitted to."""

    network: str
    resolution: int
    target_ms: float
    weight: float = 1.0
    model_ms: float
    residual_pct: float
    device_override: dict[str, Any] = Field(default_factory=dict)


class Estimate(_Section):
    """An estimated table's operator cost model and the networks it was fitted to."""

    cost_model: dict[str, Any]
    fit_points: list[FittedNetwork] = Field(default_factory=list)

    def device_model(self) -> DeviceModel:
        """The cost model, ready to price op specs (imported here: it brings in scipy)."""
        from quadnas.latency.estimate.model import DeviceModel

        return DeviceModel.model_validate(self.cost_model)


SECTIONS: dict[str, type[_Section]] = {"measurement": Measurement, "adapted": Adapted, "estimate": Estimate}


class TableMeta(BaseModel):
    """The header of a latency table. Unknown keys are kept (forward compatible)."""

    model_config = ConfigDict(extra="allow")
    device: str = Field(min_length=1)
    aliases: list[str]
    backend: str
    backend_version: str
    precision: str = Field(
        description="what the runtime inferred in: a float runtime's own precision as compiled (OpenVINO's CPU "
        "plugin given INFERENCE_PRECISION_HINT f32, its default bf16 on bf16 CPUs), int8 for quantized models"
    )
    batch: int = Field(gt=0)
    threads: int | None = Field(description="fixed thread count; null where the runtime has none")
    resolution: int = Field(gt=0)
    space: str
    space_fingerprint: str
    created: datetime
    quadnas_version: str
    provenance: Provenance
    method: str
    calibration: Calibration
    sources: list[str] = Field(default_factory=list)
    host: Host | None = Field(default=None, description="the machine a measured table was timed on")
    host_fingerprint: str | None = Field(default=None, description="Host.fingerprint of `host`")
    measurement: Measurement | None = None
    adapted: Adapted | None = None
    estimate: Estimate | None = None

    @model_validator(mode="before")
    @classmethod
    def _gather_sections(cls, data: Any) -> Any:
        """A file's flat keys (`clock`, `adapted_from`, `cost_model`, ...) into their sections."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, section in SECTIONS.items():
            keys = {section.file_key(f): f for f in section.model_fields}
            found = {keys[k]: data.pop(k) for k in list(data) if k in keys}
            if found:
                data[name] = found
        return data

    @property
    def target(self) -> str | None:
        """The target a timed table ran on; None for an estimate."""
        return self.measurement.target if self.measurement is not None else None

    @property
    def clock(self) -> Clock:
        """The clock a timed table was timed on (an estimate: the default)."""
        return (self.measurement or Measurement()).clock

    def networks(self) -> list[NetworkPoint]:
        """The whole networks timed for the calibration or adaptation (none for an estimate)."""
        return self.measurement.calibration_networks if self.measurement is not None else []

    def with_networks(self, networks: list[NetworkPoint]) -> TableMeta:
        """A copy whose measurement holds `networks`."""
        measurement = (self.measurement or Measurement()).model_copy(update={"calibration_networks": networks})
        return self.model_copy(update={"measurement": measurement})

    def file_items(self) -> dict[str, Any]:
        """The header as a file writes it: core keys (no host where none is known), each section's keys
        (None ones left out), then the keys this release does not know."""
        items = self.model_dump(mode="json", exclude=set(SECTIONS))
        extras = {key: items.pop(key) for key in self.model_extra or {}}
        for key in ("host", "host_fingerprint"):  # an estimate has no host: no line at all
            if items[key] is None:
                del items[key]
        for name, section in SECTIONS.items():
            value = getattr(self, name)
            if value is not None:
                dumped = value.model_dump(mode="json", exclude_none=True)
                items.update({section.file_key(k): v for k, v in dumped.items()})
        return {**items, **extras}


def file_location(loc: tuple[str, ...]) -> tuple[str, ...]:
    """A validation error's path into TableMeta as the file's keys name it (`measurement.clock` -> `clock`)."""
    if len(loc) > 1 and loc[0] in SECTIONS:
        return (SECTIONS[loc[0]].file_key(loc[1]), *loc[2:])
    return loc


ONE_ITEM_A_LINE = {"sources", "calibration_networks", "fit_points"}  # list keys a file writes one item a line
LIST_KEYS = ONE_ITEM_A_LINE | {"aliases"}

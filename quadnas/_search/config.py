"""What a search is: one `SearchConfig` value (the keys of `configs/*.yaml`), checked once.

A search runs under one or more devices, each with its own budget: `device` and `budget` (one
of each, or lists paired in order, as the repeatable `--device`/`--budget` flags give them) or a
`devices:` list of `{device, budget}` pairs. Both forms become `SearchConfig.devices`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from quadnas._search.names import DEFAULT_MODE, DEFAULT_SAMPLER, Mode, SamplerName
from quadnas.errors import Invalid, QuadnasError
from quadnas.latency.budget import Budget

# Parsed where the settings are read (a bad one is the parser's one-line error); written back as its canonical text.
BudgetField = Annotated[Budget, BeforeValidator(Budget.parse), PlainSerializer(str, return_type=str)]
# The single-device form's keys and their defaults; given as lists they pair in order. They become `devices`.
PAIRED_DEFAULTS = {"device": "vpu", "budget": "30ms"}
PAIRED_KEYS = tuple(PAIRED_DEFAULTS)


class DeviceBudget(BaseModel):
    """One device a search runs under and its budget: an arch must fit every one."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    device: str = Field(min_length=1)  # a table name, alias or path
    budget: BudgetField

    @property
    def label(self) -> str:
        """The short name in study names, trial attributes and columns: a table path's file stem."""
        return Path(self.device).stem


class SearchConfig(BaseModel):
    """A whole search in one value; `configs/*.yaml` files hold these keys."""

    model_config = ConfigDict(extra="forbid")
    space: str = "quadranet-t"
    data: str = "mnist5k"
    resolution: int = Field(default=32, gt=0)
    checkpoint: str | None = None
    train_epochs: int | None = Field(default=None, gt=0)
    train_width: float | None = Field(default=None, gt=0, le=1)  # of the supernet a search trains (default by data)
    train_device: str = "cpu"  # the torch device that trains and evaluates the supernet
    # given as `devices`, or as `device` and `budget` (see _pair_devices)
    devices: tuple[DeviceBudget, ...] = Field(default=(DeviceBudget.model_validate(PAIRED_DEFAULTS),), min_length=1)
    mode: Mode = DEFAULT_MODE
    sampler: SamplerName = DEFAULT_SAMPLER
    trials: int = Field(default=100, gt=0)
    seed: int = 0
    study: str | None = None
    storage: str | None = None
    runs_dir: str = "runs"
    reward_exponent: float = -0.07
    rerank: str | None = None  # a zero-cost proxy (quadnas.supernet.proxies) that re-ranks the archs under the budget
    # the best archs under the budget trained stand-alone (with the hand designs that fit) to pick the best;
    # None: the default for the data (quadnas._search.finalists.default_finalists), 0: none
    finalists: int | None = Field(default=None, ge=0)
    finalist_epochs: float | None = Field(default=None, gt=0)  # None: the default for the data

    @model_validator(mode="before")
    @classmethod
    def _pair_devices(cls, values: Any) -> Any:
        """`device` and `budget` (one each, or lists of equal length paired in order; missing: the
        default) as `devices`."""
        if not isinstance(values, dict):
            return values
        if values.get("devices") is not None:
            if any(values.get(key) is not None for key in PAIRED_KEYS):
                raise QuadnasError(
                    "give the devices either as 'devices' (a list of {device, budget}) or as 'device' and "
                    "'budget', not both"
                )
            return values
        rest = {k: v for k, v in values.items() if k not in (*PAIRED_KEYS, "devices")}
        return {**rest, **_paired(values)}

    @model_validator(mode="after")
    def _training_settings_need_training(self) -> SearchConfig:
        """`train_epochs` and `train_width` shape the supernet a search trains: none with a checkpoint."""
        given = [key for key in ("train_epochs", "train_width") if getattr(self, key) is not None]
        if self.checkpoint is not None and given:
            raise QuadnasError(
                f"{' and '.join(given)} apply only to a supernet the search trains, not to checkpoint "
                f"{self.checkpoint}: drop one or the other"
            )
        return self

    @field_validator("rerank")
    @classmethod
    def _known_proxy(cls, rerank: str | None) -> str | None:
        from quadnas.supernet.proxies import PROXIES  # imported on use: it imports torch

        if rerank is not None and rerank not in PROXIES:
            raise QuadnasError(f"unknown proxy '{rerank}' for rerank: use one of {', '.join(PROXIES)}")
        return rerank

    @field_validator("devices")
    @classmethod
    def _once_each(cls, devices: tuple[DeviceBudget, ...]) -> tuple[DeviceBudget, ...]:
        """A device given twice with one budget counts once; with two budgets (or two tables of one file name),
        it is an error."""
        kept: dict[str, DeviceBudget] = {}
        for entry in devices:
            same = kept.get(entry.label)
            if same is None:
                kept[entry.label] = entry
            elif same.device != entry.device:
                raise QuadnasError(
                    f"devices '{same.device}' and '{entry.device}' share the name '{entry.label}': "
                    "give tables of different file names"
                )
            elif same.budget != entry.budget:
                raise QuadnasError(
                    f"device '{entry.device}' is given twice, with budgets {same.budget} and {entry.budget}: "
                    "give each device once, with its one budget"
                )
        return tuple(kept.values())

    @property
    def several(self) -> bool:
        """Whether the search runs under more than one device."""
        return len(self.devices) > 1

    @property
    def device(self) -> str:
        """The device of a single-device search (`devices` holds every device)."""
        return self._only().device

    @property
    def budget(self) -> Budget:
        """The budget of a single-device search (`devices` holds every device's)."""
        return self._only().budget

    def _only(self) -> DeviceBudget:
        if self.several:
            raise ValueError(f"this search runs under {len(self.devices)} devices: read SearchConfig.devices")
        return self.devices[0]

    @classmethod
    def from_sources(cls, config_path: str | None, overrides: dict[str, Any]) -> SearchConfig:
        """Values from a YAML config, then non-None `overrides` on top."""
        values: dict[str, Any] = {}
        if config_path:
            try:
                loaded = yaml.safe_load(Path(config_path).read_text()) or {}
            except (OSError, yaml.YAMLError) as e:
                reason = " ".join(str(e).split())  # YAML errors span several lines
                raise QuadnasError(f"cannot read config {config_path}: {reason}") from None
            if not isinstance(loaded, dict):
                raise QuadnasError(f"config {config_path} must be a YAML mapping of search settings")
            values.update(loaded)
        return cls.checked(overridden(values, overrides), f"config {config_path}" if config_path else "search settings")

    @classmethod
    def checked(cls, values: dict[str, Any], where: str = "search settings") -> SearchConfig:
        """`values` validated; a bad one is a one-line QuadnasError naming the key."""
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            bad = Invalid.of(e)
            allowed = ", ".join([*cls.override_keys(), "devices"])
            raise QuadnasError(f"{where}: '{bad.key}': {bad.message} (allowed keys: {allowed})") from None

    @classmethod
    def override_keys(cls) -> tuple[str, ...]:
        """The keys a flag may set: every field, with `device` and `budget` in place of `devices`."""
        return (*PAIRED_KEYS, *(key for key in cls.model_fields if key != "devices"))

    def study_name(self) -> str:
        """`--study`, else space, data, every device and its budget, and mode: one study per setting."""
        if self.study:
            return self.study
        devices = "-".join(f"{d.label}-{d.budget}" for d in self.devices)
        name = f"{Path(self.space).stem}-{Path(self.data).stem}-{devices}-{self.mode}"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def overridden(values: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with the non-None `overrides` on top.

    A `device` or `budget` override replaces that half of the devices `values` give (as
    `devices` or as `device` and `budget`), so `--budget 40ms` over a one-device config keeps its
    device, and the halves must still pair up.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    merged = {**values, **given}
    if "devices" in given or not any(k in given for k in PAIRED_KEYS) or values.get("devices") is None:
        return merged
    pairs = [p.model_dump() if isinstance(p, DeviceBudget) else p for p in merged.pop("devices")]
    if not all(isinstance(p, dict) for p in pairs):
        raise QuadnasError("'devices' must be a list of {device: NAME, budget: LATENCY} entries")
    for key in PAIRED_KEYS:
        merged.setdefault(key, [p.get(key) for p in pairs])
    return merged


def _paired(values: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """`devices` from `device` and `budget` (each a value or a list; missing: the default)."""
    devices, budgets = (_listed(values.get(key), default) for key, default in PAIRED_DEFAULTS.items())
    if len(devices) != len(budgets):
        raise QuadnasError(
            f"{_count(devices, 'device')} ({', '.join(map(str, devices))}) but {_count(budgets, 'budget')} "
            f"({', '.join(map(str, budgets))}): give one budget per device, paired in order "
            "(--device A --budget X --device B --budget Y)"
        )
    return {"devices": [{"device": d, "budget": b} for d, b in zip(devices, budgets)]}


def _listed(value: Any, default: Any) -> list[Any]:
    if value is None:
        return [default]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _count(items: list[Any], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"

"""What a search is: one `SearchConfig` value (the keys of `configs/*.yaml`), checked once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError

from quadnas.errors import Invalid, QuadnasError
from quadnas.latency.budget import Budget
from quadnas.study.names import DEFAULT_MODE, DEFAULT_SAMPLER, Mode, SamplerName

# Parsed where the settings are read (a bad one is the parser's one-line error); written back as its canonical text.
BudgetField = Annotated[Budget, BeforeValidator(Budget.parse), PlainSerializer(str, return_type=str)]


class SearchConfig(BaseModel):
    """A whole search in one value; `configs/*.yaml` files hold these keys."""

    model_config = ConfigDict(extra="forbid")
    space: str = "quadranet-t"
    data: str = "mnist5k"
    resolution: int = Field(default=32, gt=0)
    checkpoint: str | None = None
    train_epochs: int | None = Field(default=None, gt=0)
    train_device: str = "cpu"  # the torch device that trains and evaluates the supernet
    device: str = Field(default="vpu", min_length=1)
    budget: BudgetField = Budget(30.0)
    mode: Mode = DEFAULT_MODE
    sampler: SamplerName = DEFAULT_SAMPLER
    trials: int = Field(default=100, gt=0)
    seed: int = 0
    study: str | None = None
    storage: str | None = None
    runs_dir: str = "runs"
    reward_exponent: float = -0.07

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
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.checked(values, f"config {config_path}" if config_path else "search settings")

    @classmethod
    def checked(cls, values: dict[str, Any], where: str = "search settings") -> SearchConfig:
        """`values` validated; a bad one is a one-line QuadnasError naming the key."""
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            bad = Invalid.of(e)
            raise QuadnasError(
                f"{where}: '{bad.key}': {bad.message} (allowed keys: {', '.join(cls.model_fields)})"
            ) from None

    def study_name(self) -> str:
        if self.study:
            return self.study
        name = f"{Path(self.space).stem}-{Path(self.data).stem}-{Path(self.device).stem}-{self.budget}-{self.mode}"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", name)

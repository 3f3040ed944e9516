"""Supernet training settings: one small value, stored in every checkpoint (light to import)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    """Supernet training settings; stored in every checkpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(default=20, ge=1)
    batch_size: int = Field(default=64, ge=1, description="global batch (split over ranks)")
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=0.05, ge=0)
    warmup_epochs: float = Field(default=1.0, ge=0)
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    sandwich: bool = False
    sandwich_random: int = Field(default=2, ge=0, description="random paths per sandwich step")
    seed: int = 0
    memory_efficient: bool = True
    # ConvNeXt's 1e-6 suits 300-epoch training; after a short supernet training it leaves every
    # block near identity, and all subnets scored alike (95.83% on digits after 5 epochs).
    layer_scale_init: float = Field(default=0.1, gt=0, description="initial layer scale of every block")
    resolution: int = Field(default=32, gt=0)
    val_fraction: float = Field(default=0.2, gt=0, lt=1)
    width: float = Field(default=1.0, gt=0, le=1, description="stage widths as a fraction of the space's (proxy)")
    # "auto": pad-and-crop (random-resized crop above 32 px) with a left-right mirror, without the
    # mirror on the bundled digit sets (a mirrored digit is another glyph); see data.transforms
    augment: Literal["auto", "none", "crop", "crop-flip"] = "auto"

    @classmethod
    def for_search(cls, **overrides: Any) -> TrainConfig:
        """The recipe `quadnas search` trains its cached supernet with on first run.

        A proxy a quarter as wide as the space (`SearchSpace.scaled`), 4 epochs: it ranks the
        same archs at about 1/8 of the training and 1/9 of the evaluation cost of the full
        width (`scripts/bench_train.py`), and as well as the full width did on mnist5k's
        rank-correlation benchmark (4 epochs each), so a first search on mnist5k (4,000 training
        and 1,000 validation images at 32 px) stays short: 51 s on the 2-core AVX-512 host of
        docs/benchmarks.md, longer on slower CPUs. On the harder
        mnist5k-clutter it ranked clearly worse than the half and the full width
        (docs/benchmarks.md): on data where archs differ, search with `--train-width 0.5` or 1, or
        pass a `quadnas train` supernet as `--checkpoint`. At 32 px memory is no concern, so
        nothing is recomputed in backward. No augmentation: in 4 epochs random crops cost the
        proxy accuracy (README's first search, run once with crops: its top archs at 0.81, against
        0.92 without crops in docs/figures/bench_first_run.json).
        """
        return cls(**{"epochs": 4, "width": 0.25, "memory_efficient": False, "augment": "none", **overrides})

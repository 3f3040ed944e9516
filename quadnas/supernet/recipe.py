"""Supernet training settings: one small value, stored in every checkpoint (light to import)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The bundled demo sets: there every arch under a budget trains to within the seeds' spread of the others,
# so a search needs no sharp ranking: it trains the quickest proxy and judges no finalists.
QUICK_DATA = ("mnist5k", "digits")
# Epochs of the supernet `quadnas search` trains, and of each finalist it judges: one training length for both
# (twice as long ranked clutter's archs a little better but picked no better: docs/benchmarks.md, "A longer
# half-width supernet").
SEARCH_EPOCHS = 4


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
    def for_search(cls, data: str, **overrides: Any) -> TrainConfig:
        """The recipe `quadnas search` trains its cached supernet with on first run, for data named `data`.

        A proxy narrower than the space (`SearchSpace.scaled`), SEARCH_EPOCHS epochs, no augmentation (in runs this
        short random crops cost the proxy accuracy) and nothing recomputed in backward (at 32 px memory is no
        concern). Its width is chosen by the data (docs/benchmarks.md, "The proxy's width chosen by the
        data"): a quarter on the quick demo sets, where it ranks as well as wider proxies at about 1/8 of
        the full width's training cost; half elsewhere, where archs differ and the quarter width ranks
        them clearly worse.
        """
        width = 0.25 if data in QUICK_DATA else 0.5
        return cls(
            **{"epochs": SEARCH_EPOCHS, "width": width, "memory_efficient": False, "augment": "none", **overrides}
        )

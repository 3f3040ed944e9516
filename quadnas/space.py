"""Search space, architectures and op specs.

A `SearchSpace` is loaded from YAML; an `Arch` is one choice per searchable block.
Inside quadnas an arch is always an `Arch`; the space owns its other forms, converted at the edges:
text (`k3e2-k7e4q-id-...`, in files and on screen: `str(arch)`, `parse`), Optuna trial parameters
(`to_params`, `from_params`) and choice indices (`to_indices`, `from_indices`, for vectorised
prediction). `SearchSpace.op_specs(arch)` lists the ops an arch runs at the deployment resolution,
the one source the profiler, predictor and exporter share. `sample` and `spread` draw archs.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from quadnas.errors import Invalid, QuadnasError
from quadnas.resources import shipped_space


@dataclass(frozen=True, order=True)
class BlockChoice:
    """One searchable block: a quadratic block of `kernel` and `expansion`, or identity (kernel 0).

    `enhanced`: its MLP's two 1x1 convs carry a QuadEnhancer (token suffix `q`: `k5e4q`).
    """

    kernel: int = 0
    expansion: int = 0
    enhanced: bool = False

    @property
    def is_identity(self) -> bool:
        return self.kernel == 0

    def __str__(self) -> str:
        return "id" if self.is_identity else f"k{self.kernel}e{self.expansion}{'q' if self.enhanced else ''}"


IDENTITY = BlockChoice()
ARCH_TOKEN = re.compile(r"id|k(\d+)e(\d+)(q?)")  # one block of an arch's text


@dataclass(frozen=True)
class Arch:
    """An architecture: one `BlockChoice` per searchable block, stage by stage."""

    blocks: tuple[BlockChoice, ...]

    def __str__(self) -> str:
        return "-".join(str(b) for b in self.blocks)

    @classmethod
    def from_text(cls, text: str) -> Arch:
        """The arch `str(arch)` wrote (`k3e2-k7e4q-id-...`), of whichever space; `SearchSpace.check` fits it to one."""
        blocks = []
        for token in text.strip().split("-"):
            match = ARCH_TOKEN.fullmatch(token.strip())
            if match is None:
                raise QuadnasError(f"arch token '{token}' of '{text}' is not a block: use id or kKeE[q], e.g. k3e2")
            kernel, expansion, enhanced = match.group(1, 2, 3)
            blocks.append(IDENTITY if kernel is None else BlockChoice(int(kernel), int(expansion), bool(enhanced)))
        return cls(tuple(blocks))

    def __len__(self) -> int:
        return len(self.blocks)


OpKind = Literal["stem", "quadra_block", "downsample", "head"]


@dataclass(frozen=True, order=True)
class OpSpec:
    """An op and the shape it works on; the key of a latency-table row."""

    op: OpKind
    height: int
    width: int
    cin: int
    cout: int
    kernel: int = 0
    expansion: int = 0
    enhance: int = 0

    COLUMNS = ("op", "height", "width", "cin", "cout", "kernel", "expansion", "enhance")

    def __str__(self) -> str:
        text = f"{self.op} in={self.height}x{self.width}x{self.cin}"
        if self.op == "quadra_block":
            return f"{text} k={self.kernel} e={self.expansion}" + (f" q={self.enhance}" if self.enhance else "")
        return f"{text} out={self.cout}"

    def as_row(self) -> dict[str, int | str]:
        return {c: getattr(self, c) for c in self.COLUMNS}


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dim: int = Field(gt=0)
    depth: int = Field(gt=0)


class ChoicesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kernel: list[int] = Field(min_length=1)
    expansion: list[int] = Field(min_length=1)
    enhance: list[bool] = Field(default=[False], min_length=1, description="QuadEnhanced MLP: [false], [true] or both")
    identity: bool = True

    @field_validator("kernel")
    @classmethod
    def _odd_kernels(cls, v: list[int]) -> list[int]:
        if any(k < 1 or k % 2 == 0 for k in v):
            raise ValueError(f"kernels must be odd and positive, got {v}")
        return sorted(set(v))

    @field_validator("expansion")
    @classmethod
    def _positive_expansions(cls, v: list[int]) -> list[int]:
        if any(e < 1 for e in v):
            raise ValueError(f"expansions must be positive, got {v}")
        return sorted(set(v))

    @field_validator("enhance")
    @classmethod
    def _distinct(cls, v: list[bool]) -> list[bool]:
        return sorted(set(v))


class SpaceConfig(BaseModel):
    """The YAML schema of a search space."""

    model_config = ConfigDict(extra="forbid")
    name: str
    in_channels: int = Field(default=3, gt=0)
    resolution: int = Field(default=224, gt=0, description="deployment resolution (latency)")
    num_classes: int = Field(default=1000, gt=0, description="classes of the deployed head (latency)")
    stem_patch: int = Field(default=4, gt=0)
    stages: list[StageConfig] = Field(min_length=1)
    choices: ChoicesConfig
    enhancer_k: int = Field(default=1, gt=0, description="neighbours each QuadEnhancer mixes (its k)")

    @model_validator(mode="after")
    def _resolution_divides(self) -> SpaceConfig:
        stride = self.stem_patch * 2 ** (len(self.stages) - 1)
        if self.resolution % stride:
            raise ValueError(f"resolution {self.resolution} must be a multiple of {stride}")
        return self


class SearchSpace:
    """A validated search space with arch parsing, sampling and op specs."""

    def __init__(self, config: SpaceConfig, source: str = "<memory>"):
        self.config = config
        self.source = source
        c = config.choices
        self.choices: tuple[BlockChoice, ...] = tuple(
            BlockChoice(k, e, q) for k in c.kernel for e in c.expansion for q in c.enhance
        ) + ((IDENTITY,) if c.identity else ())

    # ---- loading ---------------------------------------------------------
    @classmethod
    def load(cls, path_or_name: str | Path | None = None) -> SearchSpace:
        """Load a space from a YAML path or the name of a shipped space."""
        path = shipped_space(path_or_name)
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise QuadnasError(f"cannot read search space {path}: {e}") from None
        if not isinstance(raw, dict):
            raise QuadnasError(f"search space {path} must be a YAML mapping")
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "<memory>") -> SearchSpace:
        try:
            return cls(SpaceConfig.model_validate(raw), source)
        except ValidationError as e:
            bad = Invalid.of(e)
            allowed = ", ".join(SpaceConfig.model_fields)
            hint = f" (allowed top-level keys: {allowed})" if bad.kind == "extra_forbidden" else ""
            raise QuadnasError(f"search space {source}: key '{bad.key or '<root>'}': {bad.message}{hint}") from None

    # ---- shape -----------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def dims(self) -> list[int]:
        return [s.dim for s in self.config.stages]

    @property
    def depths(self) -> list[int]:
        return [s.depth for s in self.config.stages]

    @property
    def num_blocks(self) -> int:
        return sum(self.depths)

    @property
    def max_kernel(self) -> int:
        return max(self.config.choices.kernel)

    @property
    def max_expansion(self) -> int:
        return max(self.config.choices.expansion)

    @property
    def stride(self) -> int:
        """Total downsampling: stem patch times one 2x2 downsample per later stage."""
        downsamples: int = 2 ** (len(self.depths) - 1)  # int ** int is typed Any (a negative power is a float)
        return self.config.stem_patch * downsamples

    def check_resolution(self, resolution: int) -> int:
        """Training/eval resolutions must be positive multiples of the network stride."""
        if resolution <= 0 or resolution % self.stride:
            raise QuadnasError(
                f"resolution {resolution} is not a positive multiple of {self.stride} "
                f"(the stride of space '{self.name}'): use e.g. {self.stride} or {self.stride * 2}"
            )
        return resolution

    def stage_of_block(self) -> list[int]:
        """Stage index of each searchable block."""
        return [i for i, d in enumerate(self.depths) for _ in range(d)]

    @property
    def enhances(self) -> bool:
        """Whether any choice carries a QuadEnhancer."""
        return True in self.config.choices.enhance

    @property
    def enhancer(self) -> int:
        """The k of this space's QuadEnhancers; 0 where no choice is enhanced."""
        return self.config.enhancer_k if self.enhances else 0

    def fingerprint(self) -> str:
        """Hash of everything that affects weights or latency (not the name); without enhanced choices, the
        enhancer's keys are left out, so such a space keeps the hash its tables and checkpoints hold."""
        payload = self.config.model_dump(exclude={"name"})
        if not self.enhances:
            del payload["enhancer_k"], payload["choices"]["enhance"]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def scaled(self, width: float) -> SearchSpace:
        """The same space with every stage `width` times as wide (multiples of 8, at least 8).

        Its archs are this space's archs; a supernet trained on it is a cheaper proxy
        for ranking them (accuracy only: latency is always predicted at full width).
        """
        if width == 1:
            return self
        stages = [s.model_copy(update={"dim": max(8, round(s.dim * width / 8) * 8)}) for s in self.config.stages]
        config = self.config.model_copy(update={"name": f"{self.name}-w{width:g}", "stages": stages})
        return SearchSpace(config, self.source)

    # ---- architectures ---------------------------------------------------
    def parse(self, text: str) -> Arch:
        """Parse `k3e2-k7e4q-id-...`; errors name the bad token and what is allowed, then a wrong count."""
        tokens = [t.strip() for t in text.strip().split("-")]
        allowed = {str(c): c for c in self.choices}
        for i, token in enumerate(tokens):
            if token not in allowed:
                raise QuadnasError(
                    f"arch token {i + 1} '{token}' is not in space '{self.name}': use one of {', '.join(allowed)}"
                )
        if len(tokens) != self.num_blocks:
            raise QuadnasError(
                f"arch has {len(tokens)} tokens but space '{self.name}' has {self.num_blocks} "
                f"searchable blocks (depths {self.depths}): give one token per block"
            )
        return Arch(tuple(allowed[t] for t in tokens))

    def check(self, arch: Arch) -> Arch:
        """`arch` if it is one of this space's, else the error `parse` gives for its text."""
        return self.parse(str(arch))

    @property
    def param_names(self) -> tuple[str, ...]:
        """The Optuna parameter of each searchable block: `b00`, `b01`, ..."""
        return tuple(f"b{i:02d}" for i in range(self.num_blocks))

    def to_params(self, arch: Arch) -> dict[str, str]:
        """The trial parameters that propose `arch`: block parameter -> choice text."""
        return {name: str(block) for name, block in zip(self.param_names, arch.blocks, strict=True)}

    def from_params(self, params: dict[str, str]) -> Arch:
        """The arch trial parameters propose."""
        return self.parse("-".join(params[name] for name in self.param_names))

    def to_indices(self, archs: Sequence[Arch]) -> np.ndarray:
        """Choice indices into `choices`, shape (len(archs), num_blocks)."""
        lookup = {c: j for j, c in enumerate(self.choices)}
        if any(len(arch.blocks) != self.num_blocks for arch in archs):
            raise QuadnasError(f"every arch must have {self.num_blocks} blocks for space '{self.name}'")
        try:
            flat = [lookup[b] for arch in archs for b in arch.blocks]
        except KeyError as e:
            raise QuadnasError(
                f"block choice {e.args[0]} is not in space '{self.name}': "
                f"use one of {', '.join(map(str, self.choices))}"
            ) from None
        return np.array(flat, dtype=np.intp).reshape(len(archs), self.num_blocks)

    def from_indices(self, indices: Sequence[int] | np.ndarray) -> Arch:
        """The arch of one row of choice indices."""
        return Arch(tuple(self.choices[int(j)] for j in indices))

    def sample(self, rng: random.Random, identity: float | None = None) -> Arch:
        """A random arch: every block uniform over the choices; with `identity`, each block is identity
        with that probability (never in a space without identity), else uniform over the other choices."""
        if identity is None:
            return Arch(tuple(rng.choice(self.choices) for _ in range(self.num_blocks)))
        p, blocks = identity if self.config.choices.identity else 0.0, [c for c in self.choices if not c.is_identity]
        return Arch(tuple(IDENTITY if rng.random() < p else rng.choice(blocks) for _ in range(self.num_blocks)))

    def spread(self, n: int, seed: int, exclude: Iterable[Arch] = ()) -> list[Arch]:
        """`n` distinct archs (none of `exclude`) from small to large, shuffled, the same for one seed:
        arch i is `sample`d with an identity probability rising from 0 to 0.8 over the n."""
        rng, seen, archs = random.Random(seed), set(exclude), list[Arch]()
        for _ in range(100 * n):
            if len(archs) == n:
                break
            arch = self.sample(rng, identity=0.8 * len(archs) / max(n - 1, 1))
            if arch not in seen:
                seen.add(arch)
                archs.append(arch)
        rng.shuffle(archs)
        return archs

    def largest(self) -> Arch:
        return Arch((BlockChoice(self.max_kernel, self.max_expansion, self.enhances),) * self.num_blocks)

    def smallest(self) -> Arch:
        return Arch((IDENTITY if self.config.choices.identity else min(self.choices),) * self.num_blocks)

    def stages_of(self, arch: Arch) -> Iterator[list[BlockChoice]]:
        """The arch's block choices split by stage."""
        start = 0
        for depth in self.depths:
            yield list(arch.blocks[start : start + depth])
            start += depth

    def network(self, arch: Arch) -> Arch:
        """`arch` with each stage's active blocks first, in their order: the network it builds stand-alone (where
        identity blocks are absent) and its predicted latency do not depend on where the identities sit."""
        blocks: list[BlockChoice] = []
        for stage in self.stages_of(arch):
            active = [b for b in stage if not b.is_identity]
            blocks += active + [IDENTITY] * (len(stage) - len(active))
        return Arch(tuple(blocks))

    # ---- op specs --------------------------------------------------------
    def op_specs(self, arch: Arch, resolution: int | None = None) -> list[OpSpec]:
        """The ops `arch` runs at `resolution` (default: the deployment resolution).

        Identity blocks run nothing and have no op spec.
        """
        c = self.config
        size = (resolution or c.resolution) // c.stem_patch
        specs = [OpSpec("stem", size * c.stem_patch, size * c.stem_patch, c.in_channels, self.dims[0])]
        for i, blocks in enumerate(self.stages_of(arch)):
            dim = self.dims[i]
            if i > 0:
                specs.append(OpSpec("downsample", size, size, self.dims[i - 1], dim))
                size //= 2
            specs += [
                OpSpec("quadra_block", size, size, dim, dim, b.kernel, b.expansion, c.enhancer_k * b.enhanced)
                for b in blocks
                if not b.is_identity
            ]
        specs.append(OpSpec("head", size, size, self.dims[-1], c.num_classes))
        return specs

    def all_op_specs(self, resolution: int | None = None) -> list[OpSpec]:
        """Every distinct op spec any arch of this space can run."""
        specs = set(self.op_specs(self.smallest(), resolution))
        for choice in self.choices:
            if not choice.is_identity:
                specs.update(self.op_specs(Arch((choice,) * self.num_blocks), resolution))
        return sorted(specs)

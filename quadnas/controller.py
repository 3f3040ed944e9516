"""The Optuna controller: accuracy from the supernet, latency from the lookup table.

`search(config)` runs (or resumes) one study and returns it with the best result.
Modes: `constrained` (max accuracy s.t. predicted latency <= budget, via Optuna's
`trial.set_constraint`; proposals over budget are never evaluated), `pareto`
(accuracy vs latency), `reward` (MnasNet: acc * (lat / T) ** w).
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import optuna
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quadnas.budget import parse_budget
from quadnas.progress import Progress, stderr_logging
from quadnas.data import load_dataset
from quadnas.errors import QuadnasError
from quadnas.accelerator import torch_device
from quadnas.evaluate import Evaluator
from quadnas.latency.devices import load_device_table
from quadnas.latency.host import foreign_host_note
from quadnas.latency.predictor import LatencyPredictor
from quadnas.report import write_results
from quadnas.space import Arch, SearchSpace
from quadnas.storage import default_storage_url, open_storage
from quadnas.supernet.checkpoint import checkpoint_hash
from quadnas.supernet.provide import provide_supernet
from quadnas.samplers import GuidedSampler, make_sampler

Mode = Literal["constrained", "pareto", "reward"]
SamplerName = Literal["tpe", "nsga2", "gp", "random"]
MODES = ("constrained", "pareto", "reward")
SEED_TRIALS = 10  # predictor-chosen archs a new study starts with (TPE's start-up count)


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
    budget: str = "30ms"
    mode: Mode = "constrained"
    sampler: SamplerName = "tpe"
    trials: int = Field(default=100, gt=0)
    seed: int = 0
    study: str | None = None
    storage: str | None = None
    runs_dir: str = "runs"
    reward_exponent: float = -0.07

    @classmethod
    def from_sources(cls, config_path: str | None, overrides: dict) -> "SearchConfig":
        """Values from a YAML config, then non-None `overrides` on top."""
        values: dict = {}
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
    def checked(cls, values: dict, where: str = "search settings") -> "SearchConfig":
        """`values` validated; a bad one is a one-line QuadnasError naming the key."""
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise QuadnasError(f"{where}: '{key}': {err['msg']} (allowed keys: {', '.join(cls.model_fields)})") from None

    def study_name(self) -> str:
        if self.study:
            return self.study
        name = f"{Path(self.space).stem}-{Path(self.data).stem}-{Path(self.device).stem}-{self.budget}-{self.mode}"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


@dataclass
class Candidate:
    """One evaluated architecture."""

    arch: str
    accuracy: float | None
    latency_ms: float
    trial: int

    def feasible(self, budget_ms: float) -> bool:
        return self.latency_ms <= budget_ms


@dataclass
class SearchResult:
    config: SearchConfig
    study: optuna.Study
    budget_ms: float
    run_dir: Path
    best: Candidate | None
    ranked: list[Candidate]  # feasible, most accurate first
    closest: list[Candidate]  # when nothing is feasible: the fastest proposals
    pareto: list[Candidate]
    candidates: list[Candidate]  # every complete trial's
    supernet_width: float = 1.0  # < 1: a proxy supernet scored the archs
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


class Objective:
    """Proposes an arch per trial, predicts its latency, evaluates accuracy if it can fit."""

    def __init__(self, space: SearchSpace, predictor: LatencyPredictor, accuracy: Callable[[Arch], float],
                 budget_ms: float, mode: str, reward_exponent: float, total: int):
        self.space, self.predictor, self.accuracy = space, predictor, accuracy
        self.budget_ms, self.mode, self.reward_exponent = budget_ms, mode, reward_exponent
        self.total = total
        self.began = datetime.now()  # running trials of workers alive since then hold their place
        self.tokens = [str(c) for c in space.choices]

    def propose(self, trial: optuna.Trial) -> Arch:
        return self.arch_of(self.space, {f"b{i:02d}": trial.suggest_categorical(f"b{i:02d}", self.tokens)
                                         for i in range(self.space.num_blocks)})

    @staticmethod
    def params(arch: Arch) -> dict[str, str]:
        """The trial parameters that propose `arch`."""
        return {f"b{i:02d}": str(b) for i, b in enumerate(arch.blocks)}

    @staticmethod
    def arch_of(space: SearchSpace, params: dict[str, str]) -> Arch:
        return space.parse("-".join(params[f"b{i:02d}"] for i in range(space.num_blocks)))

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        self._stop_if_done(trial)
        value = self._value(trial)
        self._stop_if_done(trial)  # another worker may have completed the last trial meanwhile
        return value

    def _stop_if_done(self, trial: optuna.Trial) -> None:
        """Close `trial` unevaluated once the study holds `total` trials ahead of it: --trials is exact.

        Ahead: complete trials, and running ones of a lower number started since this worker
        began (a live worker's; one a killed worker left running is not waited for).
        """
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
        ahead = [t for t in trial.study.get_trials(deepcopy=False, states=states)
                 if t.state == optuna.trial.TrialState.COMPLETE
                 or (t.number < trial.number and t.datetime_start is not None and t.datetime_start >= self.began)]
        if len(ahead) >= self.total:
            trial.study.stop()
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned(f"the study already holds {self.total} complete or running trials")

    def _value(self, trial: optuna.Trial) -> float | tuple[float, float]:
        arch = self.propose(trial)
        latency = float(self.predictor.predict(arch))
        trial.set_user_attr("arch", str(arch))
        trial.set_user_attr("latency_ms", latency)
        if self.mode == "constrained":
            trial.set_constraint("latency", (latency - self.budget_ms) / self.budget_ms)
            if latency > self.budget_ms:
                trial.set_user_attr("evaluated", False)
                return 0.0  # not evaluated: the predictor already rejects it
        acc = self._accuracy(trial, arch)
        if self.mode == "pareto":
            return acc, latency
        if self.mode == "reward":
            return acc * (latency / self.budget_ms) ** self.reward_exponent
        return acc

    def _accuracy(self, trial: optuna.Trial, arch: Arch) -> float:
        """Accuracy, reused from an earlier trial of the study when any worker evaluated this arch."""
        for done in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if done.user_attrs.get("arch") == str(arch) and "accuracy" in done.user_attrs:
                trial.set_user_attr("reused_from", done.number)
                acc = done.user_attrs["accuracy"]
                break
        else:
            acc = float(self.accuracy(arch))
        trial.set_user_attr("accuracy", acc)
        trial.set_user_attr("evaluated", True)
        return acc


def seed_archs(space: SearchSpace, predictor: LatencyPredictor, limit_ms: float, n: int, seed: int) -> list[Arch]:
    """`n` archs spread evenly over the latency range up to `limit_ms`, to start a study with.

    Uniform sampling rarely lands under a tight budget (each block has 6 of 7 choices that
    cost time), so candidates draw each block's identity probability from U(0, 1) and the
    predictor, which scores about a million archs a second, keeps those that fit.
    """
    rng = np.random.default_rng(seed)
    identity = [j for j, c in enumerate(space.choices) if c.is_identity]
    others = np.array([j for j, c in enumerate(space.choices) if not c.is_identity])
    picks = others[rng.integers(len(others), size=(20_000, space.num_blocks))]
    if identity:
        skip = rng.random((20_000, space.num_blocks)) < rng.random((20_000, 1))
        picks = np.where(skip, identity[0], picks)
    picks = np.unique(picks, axis=0)
    latency = predictor.predict_many(picks)
    fits = np.flatnonzero(latency <= limit_ms)
    if len(fits) == 0:
        return []
    ordered = fits[np.argsort(latency[fits])]
    chosen = ordered[np.unique(np.linspace(0, len(ordered) - 1, n).round().astype(int))]
    return [Arch(tuple(space.choices[j] for j in picks[i])) for i in chosen]


def guided_sampler(config: SearchConfig, space: SearchSpace, predictor: LatencyPredictor,
                   budget_ms: float) -> GuidedSampler:
    """The configured sampler, started on predictor-chosen seeds; kept within budget when constrained."""
    constrained = config.mode == "constrained"
    limit = budget_ms if constrained else predictor.slowest()[1]
    seeds = [Objective.params(a) for a in seed_archs(space, predictor, limit, SEED_TRIALS, config.seed)]
    names = list(Objective.params(space.smallest()))

    def fits(params: dict[str, str]) -> bool:
        return predictor.predict(Objective.arch_of(space, params)) <= budget_ms

    def admits(samples: dict[str, np.ndarray]) -> np.ndarray:
        """Which candidates (choice indices per block parameter, in `space.choices` order) fit."""
        if not samples or not all(name in samples for name in names):
            return np.ones(len(next(iter(samples.values()), ())), dtype=bool)
        indices = np.stack([samples[name] for name in names], axis=1).astype(np.intp)
        return predictor.predict_many(indices) <= budget_ms

    make_base = functools.partial(make_sampler, config.sampler, admits=admits if constrained else None)
    return GuidedSampler(make_base, config.seed, seeds, fits if constrained else None)


def check_budget(predictor: LatencyPredictor, budget_ms: float, device: str) -> list[str]:
    """Errors below the fastest arch; a note above the slowest."""
    (_, fastest), (_, slowest) = predictor.fastest(), predictor.slowest()
    feasible = f"{fastest:.2f}–{slowest:.2f} ms"
    if budget_ms < fastest:
        raise QuadnasError(
            f"budget {budget_ms:.3g} ms is below the fastest arch of the space on '{device}' "
            f"({fastest:.2f} ms): choose a budget in the feasible range {feasible}"
        )
    if budget_ms >= slowest:
        return [f"budget {budget_ms:.3g} ms is above the slowest arch on '{device}' ({slowest:.2f} ms): it does not bind"]
    return []


def candidates(study: optuna.Study) -> list[Candidate]:
    """Every completed trial that has an arch."""
    return [
        Candidate(t.user_attrs["arch"], t.user_attrs.get("accuracy"), t.user_attrs["latency_ms"], t.number)
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if "arch" in t.user_attrs
    ]


def pareto_front(items: list[Candidate]) -> list[Candidate]:
    """Evaluated candidates no other one beats on both accuracy and latency, fastest first."""
    front: list[Candidate] = []
    for c in sorted((c for c in items if c.accuracy is not None), key=lambda c: (c.latency_ms, -c.accuracy)):
        if not front or c.accuracy > front[-1].accuracy:
            front.append(c)
    return front


def rank_feasible(items: list[Candidate], budget_ms: float) -> list[Candidate]:
    """Distinct evaluated archs under the budget, most accurate (then fastest) first."""
    seen: dict[str, Candidate] = {}
    for c in items:
        if c.accuracy is not None and c.feasible(budget_ms):
            seen.setdefault(c.arch, c)
    return sorted(seen.values(), key=lambda c: (-c.accuracy, c.latency_ms))


def search(config: SearchConfig | None = None, progress: Progress | None = None, **overrides) -> SearchResult:
    """Run or resume the study that `config` (plus keyword overrides) describes.

    Long work (loading data, training the supernet, trials) is reported through
    `progress`; by default as plain lines on the `quadnas` logger, shown on stderr when
    the caller has not configured logging. Pass `Progress(callback)` to receive every step.
    """
    if progress is None:
        with stderr_logging():
            return search(config, Progress(), **overrides)
    config = SearchConfig.checked({**(config.model_dump() if config else {}), **overrides})
    space = SearchSpace.load(config.space)
    space.check_resolution(config.resolution)
    budget_ms = parse_budget(config.budget)
    torch_device(config.train_device)  # a bad device fails before anything is opened
    table = load_device_table(config.device)
    predictor = LatencyPredictor(table, space)
    notes = check_budget(predictor, budget_ms, config.device)
    host_note = foreign_host_note(table.meta)
    if host_note:
        notes.append(host_note)
    run_dir = writable_folder(Path(config.runs_dir) / config.study_name(), "--runs-dir")
    storage = open_storage(config.storage or default_storage_url(run_dir))
    for note in notes:
        progress.note(note)

    directions = ["maximize", "minimize"] if config.mode == "pareto" else ["maximize"]
    study = _open_study(storage, config, directions, space, predictor, budget_ms)

    dataset = load_dataset(config.data, config.resolution, channels=space.config.in_channels, progress=progress)
    supernet, checkpoint = provide_supernet(space, dataset, config.checkpoint, config.train_epochs, progress,
                                            device=config.train_device)
    evaluator = Evaluator(supernet, dataset)
    supernet_sha = checkpoint_hash(checkpoint)
    claim_settings(study, {"supernet_sha256_16": supernet_sha}, config.study_name(),
                   "its accuracies came from another supernet")
    study.set_user_attr("checkpoint", str(checkpoint))

    objective = Objective(space, predictor, evaluator.accuracy, budget_ms, config.mode, config.reward_exponent,
                          config.trials)
    _optimize(study, objective, config.trials, progress)
    retried = _retried_trials(study)
    if retried:
        notes.append(retried)
        progress.note(retried)

    items = candidates(study)
    ranked = rank_feasible(items, budget_ms)
    closest = [] if ranked else sorted(items, key=lambda c: c.latency_ms)[:5]
    result = SearchResult(config, study, budget_ms, run_dir, ranked[0] if ranked else None, ranked,
                          closest, pareto_front(items), items, supernet.width, notes)
    result.files = write_results(result, predictor, checkpoint, supernet_sha)
    return result


def writable_folder(path: Path, flag: str) -> Path:
    """`path`, created if needed and checked writable; else a one-line error naming `flag`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".quadnas-write-test"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise QuadnasError(f"cannot write to folder {path}: {e.strerror or e}: pass {flag} with a writable folder") \
            from None
    return path


def _open_study(storage, config: SearchConfig, directions: list[str], space: SearchSpace,
                predictor: LatencyPredictor, budget_ms: float) -> optuna.Study:
    """Create the study or join it (whichever worker creates it, the others join); refuse other settings."""
    study = optuna.create_study(
        storage=storage, study_name=config.study_name(), directions=directions,
        sampler=guided_sampler(config, space, predictor, budget_ms), load_if_exists=True,
    )
    identity = {"space_fingerprint": space.fingerprint(), "device": config.device, "budget_ms": budget_ms,
                "mode": config.mode, "data": config.data}
    claim_settings(study, identity, config.study_name(), "it was created with other settings")
    return study


def claim_settings(study: optuna.Study, settings: dict, name: str, why: str) -> None:
    """Store `settings` in the study where missing, then check what it holds; a difference is an error.

    A worker that joins while the creator is still writing fills the missing keys with the
    same values; two workers with different settings cannot both pass the check after writing.
    """
    for key, value in settings.items():
        if study.user_attrs.get(key) is None:
            study.set_user_attr(key, value)
    stored = study.user_attrs
    differs = [k for k, v in settings.items() if stored.get(k) != v]
    if differs:
        diff = ", ".join(f"{k}: {stored[k]} (stored) vs {settings[k]}" for k in differs)
        raise QuadnasError(f"study '{name}' cannot go on here: {why} ({diff}): "
                           f"pass --study NEW_NAME to start another study")


def _optimize(study: optuna.Study, objective: Objective, total: int, progress: Progress) -> None:
    """Trials until the study holds `total` complete ones, whichever workers ran them."""
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if done >= total:
        return
    stop = optuna.study.MaxTrialsCallback(total, states=(optuna.trial.TrialState.COMPLETE,))
    with progress.task("search", total, done, unit="trial") as task:
        best: list[float] = []

        def advance(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if trial.state != optuna.trial.TrialState.COMPLETE:
                return
            acc, latency = trial.user_attrs.get("accuracy"), trial.user_attrs.get("latency_ms", 0.0)
            if acc is not None and trial.user_attrs.get("evaluated") and latency <= objective.budget_ms:
                best.append(acc)
            shown = f"best {max(best):.4f}" if best else "nothing under the budget yet"
            task.advance(note=f"{shown}; last {latency:.2f} ms" + (f", acc {acc:.4f}" if acc is not None else ""))

        study.optimize(objective, n_trials=total - done, callbacks=[stop, advance])


def _retried_trials(study: optuna.Study) -> str | None:
    """One line on failed trials (a stopped worker's are failed and retried), if any."""
    failed = [t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))]
    if not failed:
        return None
    shown = ", ".join(map(str, failed[:5])) + (", ..." if len(failed) > 5 else "")
    return (f"{len(failed)} failed trial(s) ({shown}): a trial a stopped worker left running is marked failed "
            f"and retried; --trials counts complete trials only")

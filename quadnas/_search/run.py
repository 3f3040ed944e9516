"""`search()`: run or resume one study: open it, provide the supernet, optimise, write the results."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import optuna

from quadnas._search.config import SearchConfig, overridden
from quadnas._search.finalists import FinalistCache, finalist_settings, judge, pick_finalists
from quadnas._search.hand import hand_designs
from quadnas._search.host_share import HostShare
from quadnas._search.names import metric_names
from quadnas._search.objective import Objective
from quadnas._search.report import write_results
from quadnas._search.rerank import rerank
from quadnas._search.results import SearchResult, candidates, closest, latencies_of, pareto_front, rank_feasible
from quadnas._search.samplers import BY_ALTERNATIVE, guided_sampler, seed_archs
from quadnas._search.shared_reads import shared_reads
from quadnas._search.storage import default_storage_url, open_storage
from quadnas._search.targets import Targets
from quadnas.accelerator import torch_device
from quadnas.data import load_dataset
from quadnas.errors import QuadnasError
from quadnas.latency.budget import Budget
from quadnas.latency.host import foreign_host_note
from quadnas.latency.predictor import LatencyPredictor
from quadnas.nn.fused import only_if_built
from quadnas.progress import Progress, stderr_logging
from quadnas.space import SearchSpace
from quadnas.supernet.checkpoint import checkpoint_hash
from quadnas.supernet.evaluate import Evaluator
from quadnas.supernet.provide import provide_supernet

Direction = Literal["maximize", "minimize"]


def check_budget(predictor: LatencyPredictor, budget: Budget, device: str) -> list[str]:
    """Errors below the fastest arch; a note above the slowest."""
    (_, fastest), (_, slowest) = predictor.fastest(), predictor.slowest()
    feasible = f"{fastest:.2f}–{slowest:.2f} ms"
    if not budget.admits(fastest):
        raise QuadnasError(
            f"budget {budget.ms:.3g} ms is below the fastest arch of the space on '{device}' "
            f"({fastest:.2f} ms): choose a budget in the feasible range {feasible}"
        )
    if budget.ms >= slowest:
        return [
            f"budget {budget.ms:.3g} ms is above the slowest arch on '{device}' ({slowest:.2f} ms): it does not bind"
        ]
    return []


def check_budgets(targets: Targets, space: SearchSpace) -> list[str]:
    """`check_budget` for each device; with several, an error when no arch is found that fits them all at once.

    Each device's fastest arch is tried first (in a space with identity blocks one arch is the
    fastest everywhere); then the archs the guided sampler starts from are drawn.
    """
    notes = [note for t in targets for note in check_budget(t.predictor, t.budget, t.device)]
    if not targets.several:
        return notes
    fastest = [t.predictor.fastest()[0] for t in targets]
    if not any(targets.fits(targets.predict(arch)) for arch in fastest) and not seed_archs(space, targets, 1, seed=0):
        budgets = ", ".join(f"{t.budget} on {t.device}" for t in targets)
        raise QuadnasError(
            f"no arch of the space was found that fits every budget at once ({budgets}), though each alone "
            "admits some: raise a budget (`quadnas predict --device D --range` shows each device's range)"
        )
    return notes


def search(config: SearchConfig | None = None, progress: Progress | None = None, **overrides: Any) -> SearchResult:
    """Run or resume the study that `config` (plus keyword overrides) describes.

    Long work (loading data, training the supernet, trials) is reported through
    `progress`; by default as plain lines on the `quadnas` logger, shown on stderr when
    the caller has not configured logging. Pass `Progress(callback)` to receive every step.
    """
    if progress is None:
        with stderr_logging():
            return search(config, Progress(), **overrides)
    with only_if_built():
        return _search(config, progress, **overrides)


def _search(config: SearchConfig | None, progress: Progress, **overrides: Any) -> SearchResult:
    config = SearchConfig.checked(overridden(config.model_dump() if config else {}, overrides))
    space = SearchSpace.load(config.space)
    space.check_resolution(config.resolution)
    torch_device(config.train_device)  # a bad device fails before anything is opened
    targets = Targets.load(config.devices, space)
    notes = check_budgets(targets, space)
    notes += [note for t in targets if (note := foreign_host_note(t.predictor.table.meta))]
    run_dir = writable_folder(Path(config.runs_dir) / config.study_name(), "--runs-dir")
    storage = shared_reads(open_storage(config.storage or default_storage_url(run_dir)))
    for note in notes:
        progress.note(note)

    directions: list[Direction] = ["maximize"]
    if config.mode == "pareto":
        directions += ["minimize"] * len(targets)
    study = _open_study(storage, config, directions, space, targets)

    dataset = load_dataset(config.data, config.resolution, channels=space.config.in_channels, progress=progress)
    supernet, checkpoint = provide_supernet(
        space,
        dataset,
        config.checkpoint,
        config.train_epochs,
        progress,
        width=config.train_width,
        device=config.train_device,
        cache_dir=Path(config.runs_dir) / "supernets",
    )
    evaluator = Evaluator(supernet, dataset)
    supernet_sha = checkpoint_hash(checkpoint)
    claim_settings(
        study, {"supernet_sha256_16": supernet_sha}, config.study_name(), "its accuracies came from another supernet"
    )
    study.set_user_attr("checkpoint", str(checkpoint))
    tables = [t.predictor.table for t in targets]
    study.set_user_attr("table", "; ".join(f"{table.name} ({table.meta.provenance})" for table in tables))

    objective = Objective(
        space, targets, evaluator.accuracy, config.mode, config.reward_exponent, config.trials, storage.refresh
    )
    _optimize(study, objective, config.trials, progress)
    storage.refresh()  # the results read every trial as it is now
    retried = _retried_trials(study)
    if retried:
        notes.append(retried)
        progress.note(retried)

    items = candidates(study, [t.label for t in targets])
    repeated = len(items) - len({c.arch for c in items})
    if repeated:
        note = (
            f"{repeated} of {len(items)} trials repeated an arch the study already held: the sampler found no "
            "new arch under the budget in its redraws, and their accuracy was reused"
        )
        notes.append(note)
        progress.note(note)
    if note := _new_arch_note(study, len(items)):
        notes.append(note)
        progress.note(note)
    ranked = rank_feasible(items, targets.budgets)
    if config.rerank and ranked:
        ranked = rerank(ranked, config.rerank, space, dataset, progress)
    finalists = []
    count, recipe = finalist_settings(config, dataset)
    if ranked and count:  # hand designs carry their supernet score too, for the table and best.yaml
        hand = [replace(c, accuracy=evaluator.accuracy(c.arch)) for c in hand_designs(space, targets)]
        cache = FinalistCache(Path(config.runs_dir) / "finalists", space, dataset)
        picked = pick_finalists(ranked, hand, count, space.network)
        finalists = judge(picked, space, dataset, recipe, cache, progress, config.train_device)
    result = SearchResult(
        config,
        study,
        targets.budgets,
        run_dir,
        finalists[0] if finalists else ranked[0] if ranked else None,
        ranked,
        [] if ranked else closest(items, targets.budgets),
        pareto_front(items),
        items,
        supernet.width,
        finalists,
        recipe.epochs if finalists else None,
        notes,
    )
    result.files = write_results(result, targets, checkpoint, supernet_sha)
    return result


def writable_folder(path: Path, flag: str) -> Path:
    """`path`, created if needed and checked writable; else a one-line error naming `flag`.

    The probe is a file of a unique name, so workers checking one folder at once never meet.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise QuadnasError(
            f"cannot write to folder {path}: {e.strerror or e}: pass {flag} with a writable folder"
        ) from None
    return path


def _open_study(
    storage: optuna.storages.BaseStorage,
    config: SearchConfig,
    directions: list[Direction],
    space: SearchSpace,
    targets: Targets,
) -> optuna.Study:
    """Create the study or join it (whichever worker creates it, the others join); refuse other settings."""
    study = optuna.create_study(
        storage=storage,
        study_name=config.study_name(),
        directions=directions,
        sampler=guided_sampler(config, space, targets),
        load_if_exists=True,
    )
    claim_settings(study, study_identity(config, space), config.study_name(), "it was created with other settings")
    with warnings.catch_warnings():  # metric names are marked experimental; they are what the dashboard shows
        warnings.filterwarnings(
            "ignore", message=".*set_metric_names is experimental", category=optuna.exceptions.ExperimentalWarning
        )
        study.set_metric_names(metric_names(config.mode, [t.label for t in targets]))
    return study


def study_identity(config: SearchConfig, space: SearchSpace) -> dict[str, object]:
    """The settings a study is created with and refuses to mix: `device` and `budget_ms` list every device's."""
    return {
        "space_fingerprint": space.fingerprint(),
        "device": [d.device for d in config.devices],
        "budget_ms": [d.budget.ms for d in config.devices],
        "mode": config.mode,
        "data": config.data,
    }


def claim_settings(study: optuna.Study, settings: Mapping[str, object], name: str, why: str) -> None:
    """Store `settings` in the study where missing, then check what it holds; a difference is an error.

    A worker that joins while the creator is still writing fills the missing keys with the
    same values; two workers with different settings cannot both pass the check after writing.
    """
    before = study.user_attrs  # one storage read
    for key, value in settings.items():
        if before.get(key) is None:
            study.set_user_attr(key, value)
    stored = study.user_attrs
    differs = [k for k, v in settings.items() if _as_list(stored.get(k), v) != v]
    if differs:
        diff = ", ".join(f"{k}: {stored[k]} (stored) vs {settings[k]}" for k in differs)
        raise QuadnasError(
            f"study '{name}' cannot go on here: {why} ({diff}): pass --study NEW_NAME to start another study"
        )


def _as_list(stored: object, wanted: object) -> object:
    """A stored setting as `wanted`'s form: studies of earlier versions stored one device's as a value, not a list."""
    return [stored] if isinstance(wanted, list) and not isinstance(stored, list) else stored


def _optimize(study: optuna.Study, objective: Objective, total: int, progress: Progress) -> None:
    """Trials until the study holds `total` complete ones, whichever workers ran them."""
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if done >= total:
        return
    stop = optuna.study.MaxTrialsCallback(total, states=(optuna.trial.TrialState.COMPLETE,))
    labels, budgets = [t.label for t in objective.targets], objective.targets.budgets
    within = "every budget" if objective.targets.several else "the budget"

    def named(label: str) -> str:
        return f"{label} " if objective.targets.several else ""

    best: list[float] = []  # the best feasible accuracy of the trials seen so far (empty: none yet)
    seen: set[int] = set()

    with progress.task("search", total, done, unit="trial") as task:

        def advance(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            """Count and best over the whole study, so every worker's bar shows all workers' trials.

            Reads the trial's shared snapshot and looks only at the trials it has not seen before."""
            if trial.state != optuna.trial.TrialState.COMPLETE:
                return
            complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            new = [t for t in complete if t.number not in seen] + ([trial] if trial.number not in seen else [])
            seen.update(t.number for t in new)
            found = [
                t.user_attrs["accuracy"]
                for t in new
                if "accuracy" in t.user_attrs
                and (lat := latencies_of(t, labels)) is not None
                and all(budgets[label].admits(ms) for label, ms in lat.items())
            ]
            best[:] = [max(best + found)] if best or found else []
            shown = f"best {best[0]:.4f}" if best else f"nothing under {within} yet"
            acc, latencies = trial.user_attrs.get("accuracy"), latencies_of(trial, labels) or {}
            last = ", ".join(f"{named(label)}{ms:.2f} ms" for label, ms in latencies.items())
            note = f"{shown}; last {last}" + (f", acc {acc:.4f}" if acc is not None else "")
            count = len(complete) + (trial.number not in {t.number for t in complete})  # the snapshot may predate it
            task.advance(max(0, min(count, total) - task.done), note)

        with HostShare() as share:
            threads = [share.threads_before]

            def resize(*_: object) -> None:
                """Workers come and go: each trial runs on this worker's share of the host's cores as it stands."""
                now = share.size_threads()
                if now != threads[0]:
                    workers = share.workers()
                    progress.note(f"{workers} searches share this host's cores: torch runs {now} thread(s) in this one")
                    threads[0] = now

            resize()
            study.optimize(objective, n_trials=total - done, callbacks=[stop, advance, resize])
        # Workers whose last trials end together each read the study before the others' ended: the
        # bar ends at the study's count as it stands now.
        objective.refresh()
        complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        if min(complete, total) > task.done:
            task.advance(min(complete, total) - task.done)


def _new_arch_note(study: optuna.Study, complete: int) -> str | None:
    """One line on the trials whose arch did not come from the sampler itself, if any: a new arch found
    when the sampler kept repeating archs the study held, and trials closed as another's twin."""
    trials = study.get_trials(deepcopy=False)
    alternative = sum(
        t.user_attrs.get("proposed_by") == BY_ALTERNATIVE for t in trials if t.state == optuna.trial.TrialState.COMPLETE
    )
    twins = sum("duplicate_of" in t.user_attrs for t in trials if t.state == optuna.trial.TrialState.PRUNED)
    if not alternative and not twins:
        return None
    return (
        f"{alternative} of {complete} trials took a new arch near a good one (or any new one under the budget) "
        f"because the sampler kept proposing archs the study held; {twins} trial(s) that drew another worker's "
        "arch at the same moment were closed as pruned (not counted)"
    )


def _retried_trials(study: optuna.Study) -> str | None:
    """One line on failed trials (a stopped worker's are failed and retried), if any."""
    failed = [t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))]
    if not failed:
        return None
    shown = ", ".join(map(str, failed[:5])) + (", ..." if len(failed) > 5 else "")
    return (
        f"{len(failed)} failed trial(s) ({shown}): a trial a stopped worker left running is marked failed "
        f"and retried; --trials counts complete trials only"
    )

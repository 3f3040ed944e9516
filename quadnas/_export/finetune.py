"""Stand-alone fine-tuning of an export's network (or training from scratch, when a proxy ranked the arch)."""

from __future__ import annotations

import copy
from dataclasses import replace

from quadnas._export.source import ExportSource
from quadnas.data import load_dataset
from quadnas.data.loader import default_workers
from quadnas.errors import QuadnasError
from quadnas.progress import Progress
from quadnas.supernet.evaluate import accuracy
from quadnas.supernet.runtime import is_main_process, process_group, rank_device
from quadnas.supernet.standalone import train_standalone
from quadnas.supernet.trainer import steps_for


def finetune(
    source: ExportSource,
    epochs: int,
    data: str | None = None,
    lr: float = 5e-4,
    weight_decay: float = 0.05,
    batch_size: int = 128,
    seed: int = 0,
    progress: Progress | None = None,
    device: str = "cpu",
) -> ExportSource:
    """A copy of the network trained stand-alone (`supernet.standalone.train_standalone`), with its validation accuracy.

    Starts from the inherited weights, or from scratch when a proxy supernet ranked the
    arch. Runs on the checkpoint's dataset at its resolution unless `data` names another
    source with the same number of classes. Trains on `device` (under torchrun: one rank per
    process, `cuda:LOCAL_RANK` on GPUs) with the checkpoint's augmentation; returns the model on the CPU.
    """
    progress = progress or Progress()
    meta = source.checkpoint_meta
    if meta is None:
        raise QuadnasError(
            "fine-tuning starts from inherited weights: pass a supernet checkpoint "
            "(drop --init random) or drop --finetune-epochs"
        )
    if epochs < 1:
        raise QuadnasError(f"--finetune-epochs {epochs} must be at least 1")
    dataset = load_dataset(
        data or meta.dataset.source,
        meta.dataset.resolution,
        val_fraction=float(meta.config.get("val_fraction", 0.2)),
        channels=source.space.config.in_channels,
        progress=progress,
    )
    if data is None and dataset.fingerprint != meta.dataset.fingerprint:
        raise QuadnasError(
            f"data '{meta.dataset.source}' changed since the supernet was trained (fingerprint {dataset.fingerprint}, "
            f"trained on {meta.dataset.fingerprint}): pass --data with the data to fine-tune on"
        )
    if dataset.num_classes != source.model.num_classes:
        raise QuadnasError(
            f"data '{dataset.source}' has {dataset.num_classes} classes but the network's head has "
            f"{source.model.num_classes}: fine-tune on data with the checkpoint's classes ({meta.dataset.source})"
        )
    augment = str(meta.config.get("augment", "auto"))
    train_device = rank_device(device)
    with process_group(train_device):
        model = train_standalone(
            copy.deepcopy(source.model),
            dataset.train,
            steps=steps_for(epochs, len(dataset.train), batch_size),
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            seed=seed,
            progress=progress if is_main_process() else None,
            augment=dataset.augment(augment),
            device=train_device,
            workers=default_workers(dataset.train),
        ).cpu()
    how = "training from scratch" if source.weights == "untrained" else "fine-tuning from inherited weights"
    return replace(
        source,
        model=model,
        weights="trained" if source.weights == "untrained" else "fine-tuned",
        classes=dataset.classes,
        mean=dataset.mean,
        std=dataset.std,
        trained_resolution=dataset.resolution,
        accuracy=accuracy(model, dataset.val),
        data=dataset.source,
        accuracy_on=(
            f"validation split of {dataset.source} at {dataset.resolution} px, after {epochs} epoch(s) "
            f"of stand-alone {how}"
        ),
    )

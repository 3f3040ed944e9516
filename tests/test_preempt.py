"""Preemptible training: step checkpoints, SIGTERM / SIGUSR1, bit-identical resume mid-epoch (1 and 2 ranks)."""

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from quadnas.cli import main
from quadnas.data import load_dataset
from quadnas.errors import Stopped
from quadnas.progress import Progress
from quadnas.space import SearchSpace
from quadnas.supernet.checkpoint import load_checkpoint, read_checkpoint
from quadnas.supernet.train import CheckpointPolicy, TrainConfig, resume_candidates, step_dir, train_supernet

RECIPE = dict(epochs=2, batch_size=32, lr=3e-3, warmup_epochs=0.5)  # 8 steps per epoch of 256 images


@pytest.fixture(scope="module")
def digits256():
    data = load_dataset("digits", resolution=32)
    return replace(data, train=data.train.subset(range(256)), val=data.val.subset(range(64)))


def SignalAt(step: int, number: int = signal.SIGTERM) -> Progress:
    """A progress that sends `number` to this process when training has done `step` steps."""

    def callback(event):
        if event.done == step and event.unit == "step":
            os.kill(os.getpid(), number)

    return Progress(callback)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_writes_a_checkpoint_and_resume_is_bit_identical(tiny_space, digits256, tmp_path, number):
    config = TrainConfig(**RECIPE)
    whole = train_supernet(tiny_space, digits256, config, tmp_path / "whole.pt").state_dict()
    cut = tmp_path / "cut.pt"
    with pytest.raises(Stopped) as info:
        train_supernet(tiny_space, digits256, config, cut, progress=SignalAt(5, number))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"stopped by {signal.Signals(number).name} after step 5 of 16")
    assert "--resume" in message and info.value.signal_number == number
    assert resume_candidates(cut) == [step_dir(cut) / "step-000000005.pt"]  # mid-epoch
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are restored
    resumed = train_supernet(tiny_space, digits256, config, cut, resume=True).state_dict()
    assert same_weights(whole, resumed)


def test_step_checkpoints_keep_the_last_k(tiny_space, digits256, tmp_path):
    config = TrainConfig(**RECIPE)
    out = tmp_path / "k.pt"
    written = []

    def stop_at_end_of_first_epoch(stats):
        written.extend(sorted(p.name for p in step_dir(out).glob("*.pt")))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_supernet(
            tiny_space,
            digits256,
            config,
            out,
            policy=CheckpointPolicy(steps=3),
            keep=2,
            on_epoch=stop_at_end_of_first_epoch,
        )
    assert written == ["step-000000006.pt", "step-000000008.pt"]  # steps 3, 6 and the epoch end (8); 2 kept
    state = read_checkpoint(step_dir(out) / "step-000000008.pt")
    assert state["step"] == 8 and state["epoch"] == 1 and state["training"]["steps_done"] == 8


def test_cli_stops_on_sigterm_and_says_how_to_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "cli.pt"
    import quadnas.cli.train as cli_train

    monkeypatch.setattr(cli_train, "progress_for", lambda console: SignalAt(3))
    argv = ["train", "--space", "tiny", "--data", "digits", "--epochs", "1", "--batch-size", "128", "--out", str(out)]
    assert main(argv) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "stopped by SIGTERM after step 3 of 11" in err and "--resume" in err
    monkeypatch.setattr(cli_train, "progress_for", lambda console: Progress())
    assert main([*argv, "--resume"]) == 0
    assert load_checkpoint(out, SearchSpace.load("tiny"))[1].finished


# ---- two gloo ranks under torchrun ----------------------------------------------
RANKS_SCRIPT = """
import os, signal, sys, torch
from quadnas.data import load_dataset
from quadnas.errors import Stopped
from quadnas.progress import Progress
from quadnas.space import SearchSpace
from quadnas.supernet.train import TrainConfig, train_supernet, world_rank

def signal_at(event):  # rank 0 alone is signalled: the ranks must agree on where to stop
    if event.done == int(sys.argv[3]) and event.unit == "step":
        os.kill(os.getpid(), signal.SIGTERM)

torch.set_num_threads(1)
data = load_dataset(sys.argv[1], resolution=32, val_fraction=0.25)
out, rank = sys.argv[2], world_rank()[0]
config = TrainConfig(epochs=2, batch_size=8, lr=3e-3, warmup_epochs=0.5)
progress = Progress(signal_at) if int(sys.argv[3]) and rank == 0 else None
try:
    model = train_supernet(SearchSpace.load("tiny"), data, config, out + "/ckpt.pt", resume=sys.argv[4] == "1",
                           progress=progress, workers=1)
except Stopped:
    sys.exit(0)
torch.save(model.state_dict(), f"{out}/rank{rank}.pt")
"""


def write_images(root: Path, per_class: int = 24) -> Path:
    """3 classes of noisy 36 x 36 PNGs whose mean colour is the class's."""
    generator = torch.Generator().manual_seed(0)
    for c in range(3):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = torch.rand(36, 36, 3, generator=generator) * 120
            pixels[..., c] += 120
            Image.fromarray(pixels.to(torch.uint8).numpy()).save(root / f"c{c}" / f"{i}.png")
    return root


def torchrun(script: Path, *args: str) -> None:
    runner = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(  # the timeout only bounds a hang: a loaded, slow 2-core machine needs minutes
        [str(runner), "--standalone", "--nproc_per_node", "2", str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_two_gloo_ranks_on_disk_data_agree_and_resume_bit_identically(tmp_path):
    images = write_images(tmp_path / "images")  # 54 training images: 6 steps per epoch of 8
    script = tmp_path / "ranks.py"
    script.write_text(RANKS_SCRIPT)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.mkdir(), cut.mkdir()
    torchrun(script, str(images), str(whole), "0", "0")
    rank0, rank1 = (torch.load(whole / f"rank{r}.pt") for r in (0, 1))
    assert same_weights(rank0, rank1)
    assert same_weights(rank0, load_checkpoint(whole / "ckpt.pt", SearchSpace.load("tiny"))[0].state_dict())

    torchrun(script, str(images), str(cut), "2", "0")  # SIGTERM to rank 0 after step 2: both stop at the epoch end
    stopped = resume_candidates(cut / "ckpt.pt")
    assert [p.name for p in stopped] == ["step-000000006.pt"] and not (cut / "rank0.pt").exists()
    torchrun(script, str(images), str(cut), "0", "1")
    assert same_weights(rank0, torch.load(cut / "rank0.pt")) and same_weights(rank0, torch.load(cut / "rank1.pt"))

    # one process, the same global batches: equal up to float summation order (two half-batch gradients summed)
    data = load_dataset(str(images), resolution=32, val_fraction=0.25)
    config = TrainConfig(epochs=2, batch_size=8, lr=3e-3, warmup_epochs=0.5)
    alone = train_supernet(SearchSpace.load("tiny"), data, config, tmp_path / "alone.pt").state_dict()
    for name, value in alone.items():
        torch.testing.assert_close(rank0[name], value, rtol=0, atol=1e-4, msg=name)

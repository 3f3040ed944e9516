import math
import os
import pickle
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from quadnas.cli import main
from quadnas.data import load_dataset
from quadnas.errors import QuadnasError
from quadnas.space import SearchSpace
from quadnas.supernet.checkpoint import checkpoint_hash, default_checkpoint_path, load_checkpoint, save_checkpoint
from quadnas.supernet.train import SupernetTrainer, TrainConfig, resume_candidates, step_dir, train_supernet

FAST = dict(epochs=2, batch_size=32, lr=3e-3, warmup_epochs=0.5)


@pytest.fixture(scope="module")
def small_digits():
    """256 training and 96 validation digits at 32x32: enough to learn, quick to train on."""
    data = load_dataset("digits", resolution=32)
    return replace(data, train=data.train.subset(range(256)), val=data.val.subset(range(96)))


def train(space, data, path, **overrides):
    return train_supernet(space, data, TrainConfig(**{**FAST, **overrides}), path)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_same_seed_gives_identical_weights(tiny_space, small_digits, tmp_path):
    first = train(tiny_space, small_digits, tmp_path / "a.pt").state_dict()
    second = train(tiny_space, small_digits, tmp_path / "b.pt").state_dict()
    other_seed = train(tiny_space, small_digits, tmp_path / "c.pt", seed=1).state_dict()
    assert_same_weights(first, second)
    assert not torch.equal(first["head.fc.weight"], other_seed["head.fc.weight"])


class Interrupted(Exception):
    pass


def test_resume_gives_bit_identical_weights(tiny_space, small_digits, tmp_path):
    config = TrainConfig(**{**FAST, "epochs": 3})
    uninterrupted = train_supernet(tiny_space, small_digits, config, tmp_path / "full.pt")

    def stop_after_first(stats):
        if stats.epoch == 1:
            raise Interrupted

    path = tmp_path / "cut.pt"
    with pytest.raises(Interrupted):
        train_supernet(tiny_space, small_digits, config, path, on_epoch=stop_after_first)
    assert not path.exists() and resume_candidates(path) == [step_dir(path) / "step-000000008.pt"]
    assert load_checkpoint(resume_candidates(path)[0], tiny_space)[1].epoch == 1
    epochs_run = []
    resumed = train_supernet(
        tiny_space,
        small_digits,
        config,
        path,
        resume=True,
        on_epoch=lambda s: epochs_run.append(s.epoch),
    )
    assert epochs_run == [2, 3]
    assert_same_weights(uninterrupted.state_dict(), resumed.state_dict())
    _, meta = load_checkpoint(path, tiny_space)
    assert meta.finished and meta.epoch == 3 and not step_dir(path).exists()


def test_finished_checkpoint_keeps_weights_only_and_an_unfinished_one_can_resume(tiny_space, small_digits, tmp_path):
    from quadnas.supernet.checkpoint import read_checkpoint

    config = TrainConfig(**{**FAST, "epochs": 2})
    path = tmp_path / "w.pt"

    def stop_after_first(stats):
        if stats.epoch == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_supernet(tiny_space, small_digits, config, path, on_epoch=stop_after_first)
    unfinished = read_checkpoint(resume_candidates(path)[0])["training"]
    assert set(unfinished) == {"optimizer", "scheduler", "scaler", "steps_done", "rng", "epoch_totals"}
    resumed = train_supernet(tiny_space, small_digits, config, path, resume=True)
    assert read_checkpoint(path)["training"] == {}
    again = train_supernet(tiny_space, small_digits, config, path, resume=True)  # finished: loaded as it is
    assert_same_weights(resumed.state_dict(), again.state_dict())


def test_a_proxy_supernet_is_narrower_and_its_subnets_match_it(tiny_space, small_digits, tmp_path):
    path = tmp_path / "proxy.pt"
    proxy = train(tiny_space, small_digits, path, epochs=1, width=0.5)
    full = SupernetTrainer(tiny_space, 10, TrainConfig(**FAST), steps_per_epoch=1).model
    assert sum(p.numel() for p in proxy.parameters()) < 0.4 * sum(p.numel() for p in full.parameters())
    loaded, meta = load_checkpoint(path, tiny_space)
    assert meta.config["width"] == 0.5 and loaded.net_space.dims == tiny_space.scaled(0.5).dims
    x = small_digits.val.tensors[0][:4]
    arch = tiny_space.largest()
    with torch.no_grad():
        assert torch.allclose(loaded(x, arch), loaded.extract(arch)(x), atol=1e-5)


def test_scaled_space_keeps_the_archs_and_shrinks_the_widths(tiny_space):
    half = tiny_space.scaled(0.5)
    assert half.choices == tiny_space.choices and half.depths == tiny_space.depths
    assert all(d % 8 == 0 and d >= 8 for d in half.dims) and half.dims != tiny_space.dims
    assert half.parse(str(tiny_space.largest())) == tiny_space.largest()
    assert tiny_space.scaled(1.0) is tiny_space


def test_resume_with_other_settings_is_refused(tiny_space, small_digits, tmp_path):
    path = tmp_path / "s.pt"
    train(tiny_space, small_digits, path, epochs=1)
    with pytest.raises(QuadnasError, match=r"different settings \(lr=0.003\)"):
        train_supernet(tiny_space, small_digits, TrainConfig(**{**FAST, "epochs": 1, "lr": 1e-3}), path, resume=True)


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_sandwich_step_accumulates_all_paths_into_one_update(tiny_space, small_digits, monkeypatch):
    config = TrainConfig(**{**FAST, "sandwich": True})
    trainer = SupernetTrainer(tiny_space, 10, config, steps_per_epoch=4)
    x, y = (t[:16] for t in small_digits.train.tensors)
    state = trainer.arch_rng.getstate()
    archs = trainer.archs()
    trainer.arch_rng.setstate(state)
    assert archs[:2] == [tiny_space.largest(), tiny_space.smallest()] and len(archs) == 2 + config.sandwich_random
    for arch in archs:  # expected: the mean of the paths' gradients
        (torch.nn.functional.cross_entropy(trainer.model(x, arch), y) / len(archs)).backward()
    expected = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    updates = []
    monkeypatch.setattr(
        trainer.optimizer,
        "step",
        lambda: updates.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}),
    )
    trainer.step(x, y, global_batch=len(y))
    assert len(updates) == 1 and updates[0].keys() == expected.keys()
    for name, grad in expected.items():
        torch.testing.assert_close(updates[0][name], grad, msg=name)


def test_sandwich_training_runs(tiny_space, small_digits, tmp_path):
    model = train(tiny_space, small_digits, tmp_path / "w.pt", sandwich=True, epochs=1)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_checkpoint_for_another_space_is_refused(tiny_space, small_digits, tmp_path):
    path = tmp_path / "tiny.pt"
    train(tiny_space, small_digits, path, epochs=1)
    raw = tiny_space.config.model_dump()
    wide = [{**stage, "dim": 2 * stage["dim"]} for stage in raw["stages"]]
    other = SearchSpace.from_dict({**raw, "name": "wide", "stages": wide})
    expected = (
        f"checkpoint {path} was trained for space 'tiny' (fingerprint {tiny_space.fingerprint()}), "
        f"not 'wide' ({other.fingerprint()}): pass --space tiny or retrain"
    )
    with pytest.raises(QuadnasError, match=re.escape(expected)):
        load_checkpoint(path, other)


def test_existing_checkpoint_is_not_overwritten(tiny_space, small_digits, tmp_path):
    path = tmp_path / "done.pt"
    train(tiny_space, small_digits, path, epochs=1)
    digest = checkpoint_hash(path)
    with pytest.raises(QuadnasError, match="already exists: pass --resume to continue it, or another --out"):
        train(tiny_space, small_digits, path, epochs=1)
    assert checkpoint_hash(path) == digest


def test_unreadable_checkpoint_is_one_line_error(tiny_space, tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(QuadnasError) as error:
        load_checkpoint(path, tiny_space)
    assert "\n" not in str(error.value) and "retrain" in str(error.value)


def test_checkpoint_roundtrip_paths_and_hash(tiny_space, small_digits, tmp_path):
    path = tmp_path / "r.pt"
    model = train(tiny_space, small_digits, path, epochs=1)
    loaded, meta = load_checkpoint(path, tiny_space)
    assert_same_weights(model.state_dict(), loaded.state_dict())
    assert meta.dataset.fingerprint == small_digits.fingerprint and meta.dataset.mean == small_digits.mean
    assert meta.dataset.classes == small_digits.classes and meta.config["epochs"] == 1
    assert re.fullmatch(r"[0-9a-f]{16}", checkpoint_hash(path))
    with pytest.raises((pickle.PicklingError, AttributeError)):  # a failed save keeps the previous checkpoint
        save_checkpoint(path, {"unpicklable": lambda: 0})
    assert not list(tmp_path.glob("*.tmp"))
    assert_same_weights(load_checkpoint(path, tiny_space)[0].state_dict(), model.state_dict())
    expected = f"tiny-{tiny_space.fingerprint()[:8]}-digits-{small_digits.fingerprint[:8]}.pt"
    assert default_checkpoint_path(tiny_space, small_digits) == Path("runs/supernets") / expected


DDP_SCRIPT = """
import sys, torch
from dataclasses import replace
from torch.utils.data import TensorDataset
from quadnas.data import load_dataset
from quadnas.space import SearchSpace
from quadnas.supernet.train import TrainConfig, train_supernet, world_rank
torch.set_num_threads(1)
data = load_dataset("digits", resolution=32)
(xt, yt) = data.train.tensors
data = replace(data, train=TensorDataset(xt[:128], yt[:128]))
out = sys.argv[1]
model = train_supernet(SearchSpace.load("tiny"), data, TrainConfig(epochs=1, batch_size=32), out + "/ckpt.pt")
torch.save(model.state_dict(), f"{out}/rank{world_rank()[0]}.pt")
"""


@pytest.mark.slow
def test_two_process_gloo_training_keeps_ranks_identical(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(  # the timeout only bounds a hang: a loaded, slow 2-core machine needs minutes
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert_same_weights(rank0, rank1)
    saved, _ = load_checkpoint(tmp_path / "ckpt.pt", SearchSpace.load("tiny"))
    assert_same_weights(rank0, saved.state_dict())
    # the same global batches in one process: equal up to float summation order (two half-batch gradients
    # averaged vs one batch). AdamW divides by sqrt(v) + 1e-8, so where the 1e-6 layer scales leave gradients
    # near 1e-8 it magnifies that rounding noise (9e-7 at most here); a wrong split moves weights by ~lr = 2e-3
    data = load_dataset("digits", resolution=32)
    xt, yt = data.train.tensors
    data = replace(data, train=TensorDataset(xt[:128], yt[:128]))
    alone = train_supernet(
        SearchSpace.load("tiny"), data, TrainConfig(epochs=1, batch_size=32), tmp_path / "alone.pt"
    ).state_dict()
    for name, value in alone.items():
        torch.testing.assert_close(rank0[name], value, rtol=0, atol=1e-4, msg=name)


def test_cli_trains_and_reports_three_subnets(tmp_path, capsys):
    out = tmp_path / "cli.pt"
    assert main(["train", "--space", "tiny", "--epochs", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert all(label in text for label in ("largest", "smallest", "random", str(out)))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--resolution", "48"], "not a positive multiple of 32"),
        (["--label-smoothing", "1.5"], "--label-smoothing 1.5"),
        (["--data", "no/such/folder"], "does not exist"),
        (["--train-device", "mps"], "--train-device 'mps' is not supported"),
        pytest.param(
            ["--train-device", "cuda"],
            "needs CUDA",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here"),
        ),
    ],
)
def test_cli_user_errors_exit_2(argv, message, tmp_path, capsys):
    assert main(["train", "--space", "tiny", "--out", str(tmp_path / "x.pt"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_refuses_to_overwrite_without_resume(tmp_path, capsys):
    out = tmp_path / "exists.pt"
    out.write_bytes(b"finished work")
    assert main(["train", "--space", "tiny", "--epochs", "1", "--out", str(out)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert out.read_bytes() == b"finished work"


def test_explicit_cpu_device_trains_like_the_default(tiny_space, small_digits, tmp_path):
    default = train(tiny_space, small_digits, tmp_path / "a.pt", epochs=1)
    explicit = train_supernet(
        tiny_space, small_digits, TrainConfig(**{**FAST, "epochs": 1}), tmp_path / "b.pt", device="cpu"
    )
    assert_same_weights(default.state_dict(), explicit.state_dict())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_evaluates_and_loads_on_cpu(tiny_space, small_digits, tmp_path):
    from quadnas.supernet.evaluate import Evaluator

    path = tmp_path / "cuda.pt"
    model = train_supernet(tiny_space, small_digits, TrainConfig(**{**FAST, "epochs": 1}), path, device="cuda")
    assert next(model.parameters()).is_cuda
    assert 0.0 <= Evaluator(model, small_digits).accuracy(tiny_space.largest()) <= 1.0  # data stays on the CPU
    loaded, _ = load_checkpoint(path, tiny_space)
    assert not next(loaded.parameters()).is_cuda


def test_each_cuda_rank_takes_its_local_gpu_and_more_ranks_than_gpus_are_refused(
    tiny_space, small_digits, tmp_path, monkeypatch
):
    from quadnas.supernet.runtime import rank_device

    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert rank_device("cuda") == torch.device("cuda", 1)
    assert rank_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(QuadnasError, match=r"local rank 2 has no GPU: .* 2 GPU\(s\); start at most --nproc_per_node 2"):
        train_supernet(tiny_space, small_digits, TrainConfig(**FAST), tmp_path / "x.pt", device="cuda")


def test_cache_lists_and_clears_cached_supernets(tiny_space, small_digits, tmp_path, monkeypatch, capsys):
    from filelock import FileLock

    monkeypatch.chdir(tmp_path)
    folder = Path("runs/supernets")
    train(tiny_space, small_digits, folder / "a.pt", epochs=1)  # a `quadnas train` checkpoint
    train(tiny_space, small_digits, folder / "t-search-1.pt", epochs=1, width=0.5)
    train(tiny_space, small_digits, folder / "t-search-2.pt", epochs=1, width=0.5)
    (folder / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["cache", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(n in listed for n in ("a.pt", "t-search-1.pt", "junk.pt", "unreadable", "train", "search")), listed
    assert main(["cache", "clear", "nope.pt"]) == 2
    with FileLock(folder / "t-search-2.lock"):  # a search is training it now
        assert main(["cache", "clear"]) == 0
    assert "kept t-search-2.pt" in capsys.readouterr().out
    assert sorted(p.name for p in folder.glob("*.pt")) == ["a.pt", "junk.pt", "t-search-2.pt"]
    assert main(["cache", "clear", "a.pt"]) == 0
    assert main(["cache", "clear", "--all"]) == 0 and not list(folder.glob("*.pt"))


def test_an_unwritable_checkpoint_folder_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["train", "--space", "tiny", "--out", str(blocker / "x.pt")]) == 2
    assert f"{blocker} is a file, not a folder" in capsys.readouterr().err


def test_training_leaves_the_callers_settings_as_they_were(tiny_space, small_digits, tmp_path, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    train(tiny_space, small_digits, tmp_path / "a.pt", epochs=1)
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ and not torch.are_deterministic_algorithms_enabled()
    assert torch.equal(torch.rand(1), expected_next)  # the global RNG is untouched


def test_bf16_autocast_on_the_cpu_trains_with_finite_loss(tiny_space, small_digits, tmp_path):
    from quadnas.supernet import Evaluator

    losses = {}
    models = {}
    for precision in ("fp32", "bf16"):
        stats = []
        config = TrainConfig(**{**FAST, "epochs": 3})
        models[precision] = train_supernet(
            tiny_space, small_digits, config, tmp_path / f"{precision}.pt", precision=precision, on_epoch=stats.append
        )
        losses[precision] = [s.loss for s in stats]
    assert all(math.isfinite(loss) for loss in losses["bf16"]) and losses["bf16"][-1] < losses["bf16"][0]
    assert losses["bf16"] != losses["fp32"]  # autocast ran
    accuracy = {p: Evaluator(m, small_digits).accuracy(tiny_space.largest()) for p, m in models.items()}
    assert accuracy["bf16"] > 0.3 and abs(accuracy["bf16"] - accuracy["fp32"]) < 0.15, accuracy  # chance: 0.1


def test_fp16_on_the_cpu_is_one_line(tiny_space, small_digits, tmp_path):
    with pytest.raises(QuadnasError, match="--amp fp16 needs a CUDA device.*use --amp bf16 on the CPU"):
        train_supernet(tiny_space, small_digits, TrainConfig(**FAST), tmp_path / "x.pt", precision="fp16")

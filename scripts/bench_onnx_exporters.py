"""torch's two ONNX exporters side by side on QuadraNet: TorchScript (what quadnas writes) vs dynamo.

For a few archs of the default space at 224 px (layer scales raised to 1, so every block shapes
the output): export time, graph nodes and opset, file size, parity with PyTorch at batch 1 and 3
(dynamic batch), and batch-1 latency on onnxruntime and OpenVINO with 1 thread, both exporters'
graphs timed in interleaved rounds. Needs `onnxscript` (the dynamo exporter's dependency).

    python scripts/bench_onnx_exporters.py --out docs/figures/onnx_exporters.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from quadnas.latency.host import Host
from quadnas.latency.measure.backends import get_backend
from quadnas.nn import QuadraBlock, QuadraNet
from quadnas.nn.onnx import write_onnx
from quadnas.portable.timing import Schedule, Timing, measure_interleaved
from quadnas.space import Arch, SearchSpace

Exporter = Callable[[QuadraNet, Path, bool], None]


def torchscript(model: QuadraNet, path: Path, dynamic: bool) -> None:
    write_onnx(model, (1, 3, 224, 224), path, input_name="input", output_name="logits", dynamic_batch=dynamic)


def dynamo(model: QuadraNet, path: Path, dynamic: bool) -> None:
    """The torch.export-based exporter; a dynamic batch needs an example of batch >= 2."""
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(
        model,
        (torch.zeros(2 if dynamic else 1, 3, 224, 224),),
        str(path),
        dynamo=True,
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes={"x": {0: batch}} if dynamic else None,
        verbose=False,
    )


EXPORTERS: dict[str, Exporter] = {"torchscript": torchscript, "dynamo": dynamo}


def archs(space: SearchSpace, n_random: int) -> list[Arch]:
    rng = random.Random(0)
    return [space.largest(), *(space.sample(rng) for _ in range(n_random))]


def woken(space: SearchSpace, arch: Arch) -> QuadraNet:
    torch.manual_seed(0)
    net = QuadraNet(space, arch).eval()
    with torch.no_grad():
        for block in net.modules():
            if isinstance(block, QuadraBlock):
                block.gamma1.fill_(1.0)
                block.gamma2.fill_(1.0)
    return net


def parity(model: QuadraNet, path: Path) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in (1, 3):
        x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = model(x).numpy()
        worst = max(worst, float(np.abs(session.run(None, {"input": x.numpy()})[0] - expected).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random-archs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("docs/figures/onnx_exporters.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = SearchSpace.load()
    rows: dict[str, dict[str, Any]] = {}  # "arch index/exporter" -> figures
    with tempfile.TemporaryDirectory(prefix="quadnas-exporters-") as tmp:
        fixed: dict[str, Path] = {}
        for i, arch in enumerate(archs(space, args.random_archs)):
            model = woken(space, arch)
            for name, export in EXPORTERS.items():
                path = Path(tmp) / f"{i}-{name}.onnx"
                start = time.perf_counter()
                export(model, path, True)
                seconds = time.perf_counter() - start
                graph = onnx.load(str(path))
                export(model, fixed.setdefault(f"{i}/{name}", Path(tmp) / f"{i}-{name}-b1.onnx"), False)
                rows[f"{i}/{name}"] = {
                    "arch": str(arch),
                    "exporter": name,
                    "export_s": round(seconds, 2),
                    "nodes": len(graph.graph.node),
                    "opset": graph.opset_import[0].version,
                    "mb": round(path.stat().st_size / 2**20, 2),
                    "parity_max_abs": parity(model, path),
                }
                print(rows[f"{i}/{name}"], flush=True)
        for runtime in ("onnxruntime", "openvino"):
            backend = get_backend(runtime, None, 1, clock="wall")
            timings: dict[str, Timing] = {}
            measure_interleaved(
                list(fixed),
                lambda key, backend=backend: backend.prepare_onnx(fixed[key]),
                Schedule(rounds=args.rounds, round_s=0.2, window=2, warmup_s=0.5),
                timings.__setitem__,
            )
            for key, timing in timings.items():
                row = rows[key]
                row[f"{runtime}_ms"] = round(timing.median_ms, 3)
                row[f"{runtime}_p10_p90_ms"] = [round(timing.p10_ms, 3), round(timing.p90_ms, 3)]
    result = {
        "command": f"python scripts/bench_onnx_exporters.py --random-archs {args.random_archs} --rounds {args.rounds}",
        "host": Host.current().model_dump(mode="json"),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
        "rows": list(rows.values()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows.values():
        print(
            f"{row['exporter']:>11}  {row['export_s']:6.2f} s  {row['nodes']:4d} nodes  opset {row['opset']}  "
            f"parity {row['parity_max_abs']:.1e}  ort {row.get('onnxruntime_ms')} ms  ov {row.get('openvino_ms')} ms"
        )


if __name__ == "__main__":
    main()

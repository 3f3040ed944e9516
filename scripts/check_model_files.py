"""The exported files as their runtimes' own tools see them: metadata read back, FP16 parity, benchmark_app.

Exports one arch of the default space at 224 px (layer scales raised to 1, so every block shapes the
output) as ONNX and as OpenVINO IR with FP32 and FP16 weights; reads the metadata back with
onnxruntime and OpenVINO; states each file's parity to PyTorch; runs OpenVINO's `benchmark_app` on
the FP16 IR (1 thread, latency hint) and keeps its figures.

    python scripts/check_model_files.py --out docs/figures/model_files.json
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import onnxruntime as ort
import openvino as ov
import torch

from quadnas._export import build_model, export_model
from quadnas.latency.host import Host
from quadnas.nn import QuadraBlock


def benchmark_app(xml: Path, shape: tuple[int, ...], seconds: int) -> dict[str, Any]:
    """benchmark_app's own latency figures for `xml` on the CPU: batch 1, one stream of 1 thread."""
    tool = shutil.which("benchmark_app")
    if tool is None:
        raise SystemExit("error: benchmark_app not found: pip install openvino")
    dims = ",".join(map(str, shape))
    argv = [tool, "-m", str(xml), "-d", "CPU", "-hint", "none", "-nstreams", "1", "-nthreads", "1"]
    argv += ["-shape", f"input[{dims}]", "-t", str(seconds)]
    text = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600).stdout
    precision = re.search(r"INFERENCE_PRECISION_HINT: <Type: '(\w+)'>", text)
    figures = {key: float(v) for key, v in re.findall(r"\b(Median|Average|Min|Max):\s+([0-9.]+) ms", text)}
    count = re.search(r"Count:\s+(\d+) iterations", text)
    return {
        "command": "benchmark_app " + " ".join(argv[1:]).replace(str(xml), xml.name),
        "inference_precision": precision.group(1) if precision else None,
        "latency_ms": figures,
        "iterations": int(count.group(1)) if count else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arch", default="k7e4-k3e2-k5e4-id-k7e2-k3e4-k5e2-k7e4-id-k3e2-k5e4-k7e2-id-k3e4-k5e2-k7e4-k3e2-k5e4"
    )
    parser.add_argument("--seconds", type=int, default=10, help="benchmark_app's run time")
    parser.add_argument("--out", type=Path, default=Path("docs/figures/model_files.json"))
    args = parser.parse_args()
    source = build_model(args.arch, init="random")
    with torch.no_grad():
        for block in source.model.modules():
            if isinstance(block, QuadraBlock):
                block.gamma1.fill_(1.0)
                block.gamma2.fill_(1.0)
    with tempfile.TemporaryDirectory(prefix="quadnas-files-") as tmp:
        files = {
            "onnx-opset17": export_model(source, "onnx", Path(tmp) / "m17.onnx"),
            "onnx-opset20": export_model(source, "onnx", Path(tmp) / "m20.onnx", opset=20),
            "ir-fp32": export_model(source, "openvino", Path(tmp) / "fp32.xml"),
            "ir-fp16": export_model(source, "openvino", Path(tmp) / "fp16.xml", precision="fp16"),
        }
        onnx_meta = ort.InferenceSession(str(files["onnx-opset17"].path)).get_modelmeta().custom_metadata_map
        ir = ov.Core().read_model(str(files["ir-fp16"].path))
        ir_keys = sorted(onnx_meta)
        ir_meta = {key: ir.get_rt_info(["model_info", key]).astype(str) for key in ir_keys}
        result = {
            "command": f"python scripts/check_model_files.py --seconds {args.seconds}",
            "host": Host.current().model_dump(mode="json"),
            "arch": args.arch,
            "files": {
                name: {
                    "runtime": r.runtime,
                    "parity_max_abs": r.max_abs_diff,
                    "bound": r.parity_bound,
                    "bound_of_logit_scale": r.options.tolerance,
                    "weights_mb": round(
                        sum(p.stat().st_size for p in r.files if p.suffix in (".onnx", ".bin")) / 2**20, 2
                    ),
                }
                for name, r in files.items()
            },
            "onnxruntime_reads_metadata": {
                key: onnx_meta[key] for key in ("quadnas_arch", "model_type", "quadnas_input")
            },
            "openvino_reads_model_info_alike": ir_meta == onnx_meta,
            "benchmark_app_fp16_ir": benchmark_app(files["ir-fp16"].path, files["ir-fp16"].input_shape, args.seconds),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""A portable profiling kit for a device without quadnas: export here, run there, import here.

`write_kit(out, space)` writes every op spec's ONNX file, the calibration networks'
ONNX files (an INT8 kit: each quantized for one runtime, `models.write_model`; a LiteRT kit: .tflite
files), an empty model for the per-call overhead, `run.py` (the portable core, `quadnas.portable`, as one
zipapp file: numpy plus onnxruntime, openvino or ai-edge-litert is all it needs) and
`manifest.json` (space, fingerprint, op specs <-> files, networks <-> archs); a LiteRT kit also
holds `android/benchmark.sh`, which times the files with LiteRT's benchmark_model on a phone (`android`).
`import_results(results_csv)` turns the runner's results.csv (or the Android logs) into a latency table,
with the calibration fitted from the networks, exactly as `profile` would, and the host
the runner recorded (where it measured, not where it is imported).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from pydantic import ValidationError

from quadnas._version import __version__
from quadnas.errors import Invalid, QuadnasError
from quadnas.latency.calibration import calibrate
from quadnas.latency.header import Measurement
from quadnas.latency.host import Host
from quadnas.latency.measure._adapt import (
    NO_INT8_ADAPTATION,
    adaptation_archs,
    adapted_table,
    check_networks,
    check_source,
)
from quadnas.latency.measure.android import read_android_results, write_android_script
from quadnas.latency.measure.backends import Description
from quadnas.latency.measure.builders import network_input_shape, op_module, overhead_module
from quadnas.latency.measure.headers import network_point, new_meta, row_values
from quadnas.latency.measure.models import model_suffix, write_model
from quadnas.latency.measure.settings import ProfileSettings
from quadnas.latency.precision import INT8, check_profile_precision
from quadnas.latency.table import LatencyTable
from quadnas.nn import QuadraNet
from quadnas.nn.blocks import op_input_shape
from quadnas.portable.bundle import write_runner
from quadnas.portable.files import atomic_write
from quadnas.portable.results import read_header, read_rows
from quadnas.portable.timing import Timing
from quadnas.progress import Progress
from quadnas.space import OpSpec, SearchSpace

MANIFEST = "manifest.json"
RUNNER = "run.py"
SOURCE_DIR = "source"  # an adaptation kit's copy of the table it adapts, under its own name
KIT_FORMAT = 1


def op_file(spec: OpSpec, suffix: str = ".onnx") -> str:
    enhance = f"q{spec.enhance}" if spec.enhance else ""
    return (
        f"ops/{spec.op}_{spec.height}x{spec.width}x{spec.cin}_{spec.cout}_k{spec.kernel}e{spec.expansion}{enhance}"
        f"{suffix}"
    )


def write_kit(
    out: Path,
    space: SearchSpace,
    settings: ProfileSettings = ProfileSettings(),
    progress: Progress | None = None,
    adapt_from: LatencyTable | None = None,
    precision: str = "fp32",
    backend: str | None = None,
) -> Path:
    """Write a kit for `space` into `out`; the manifest's path. With `adapt_from`: a kit that times
    only the adaptation networks of that table. With `precision` int8 every model is quantized for
    `backend` (onnxruntime: QDQ ONNX; openvino: an NNCF IR; litert: the LiteRT quantizer), which the kit
    then runs on only. `backend` litert: .tflite files (FP32 or INT8) for LiteRT, and the Android script."""
    progress = progress or Progress()
    if precision == INT8 and backend is None:
        raise QuadnasError(
            "an INT8 kit's models are quantized for one runtime: add --backend onnxruntime, openvino or litert"
        )
    check_profile_precision(precision, backend or "onnxruntime")
    if precision == INT8 and adapt_from is not None:
        raise QuadnasError(f"cannot adapt to INT8: {NO_INT8_ADAPTATION}")
    runtime, suffix = backend or "onnxruntime", model_suffix(backend or "onnxruntime", precision)
    if out.exists() and not out.is_dir():
        raise QuadnasError(f"--out {out} is a file: give a directory for the kit")
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise QuadnasError(f"{out} exists and is not a kit: give an empty or new directory to --out")
    if adapt_from is not None:
        check_networks(settings.networks)
        check_source(adapt_from, space)
        specs: list[OpSpec] = []
        archs = adaptation_archs(space, settings.networks, settings.seed)
    else:
        specs = space.all_op_specs()
        archs = space.spread(settings.networks, settings.seed)
    module, shape = overhead_module()
    with progress.task("exporting the kit's models", len(specs) + len(archs) + 1, unit="model") as task:
        write_model(module, shape, out / f"overhead{suffix}", runtime, precision)
        task.advance(1, "overhead")
        ops = []
        for spec in specs:
            op_path = out / op_file(spec, suffix)
            write_model(op_module(spec, space), op_input_shape(spec), op_path, runtime, precision, spec.op != "stem")
            ops.append({"key": str(spec), "file": op_file(spec, suffix), "spec": spec.as_row()})
            task.advance(1, str(spec))
        networks = []
        for i, arch in enumerate(archs):
            file = f"networks/net{i:02d}{suffix}"
            write_model(QuadraNet(space, arch).eval(), network_input_shape(space), out / file, runtime, precision)
            networks.append({"key": f"net{i:02d}", "file": file, "arch": str(arch)})
            task.advance(1, str(arch))
    manifest = {
        "format": KIT_FORMAT,
        "quadnas_version": __version__,
        "space": space.name,
        "fingerprint": space.fingerprint(),
        "space_config": space.config.model_dump(),
        "settings": asdict(settings),
        "precision": precision,
        **({"quantized_for": backend} if precision == INT8 else {}),
        **({"runtime": backend} if backend == "litert" else {}),
        "overhead": {"file": f"overhead{suffix}"},
        "ops": ops,
        "networks": networks,
        **({"adapt": {"source": f"{SOURCE_DIR}/{adapt_from.name}.csv"}} if adapt_from is not None else {}),
    }
    if adapt_from is not None:
        LatencyTable(adapt_from.meta, adapt_from.rows).write(out / SOURCE_DIR / f"{adapt_from.name}.csv")
    write_runner(out / RUNNER)
    if backend == "litert":
        files = [f"overhead{suffix}", *(str(o["file"]) for o in ops), *(n["file"] for n in networks)]
        write_android_script(out, files, settings.rounds, settings.round_ms)
    atomic_write(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return out / MANIFEST


def read_results(path: Path) -> tuple[dict[str, str], dict[tuple[str, str], Timing]]:
    """The runner's header and its timings by (kind, key)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise QuadnasError(f"cannot read kit results {path}: {e}: give the results.csv that run.py wrote") from None
    header = read_header(text)
    timings = {}
    try:
        for row in read_rows(text):
            timings[(row["kind"], row["key"])] = Timing(
                float(row["median_ms"]), float(row["p10_ms"]), float(row["p90_ms"]), int(row["runs"])
            )
    except (KeyError, TypeError, ValueError) as e:
        raise QuadnasError(f"{path} is not a kit results file ({e}): give the results.csv that run.py wrote") from None
    return header, timings


def import_results(results: Path, kit_dir: Path | None = None) -> LatencyTable:
    """A latency table from a kit's results.csv (manifest.json from `kit_dir`, default: beside it), or from
    the `android/results` folder of a LiteRT kit (manifest.json two folders up by default)."""
    kit_dir = kit_dir or (results.parent.parent if results.is_dir() else results.parent)
    try:
        manifest = json.loads((kit_dir / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise QuadnasError(
            f"cannot read {kit_dir / MANIFEST} ({e}): import the results.csv from inside "
            "its kit directory, or pass --kit DIR"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != KIT_FORMAT:
        raise QuadnasError(
            f"{kit_dir / MANIFEST} is not a quadnas kit manifest (format {KIT_FORMAT}): "
            "pass --kit DIR of the kit that measured these results"
        )
    header, timings = read_android_results(results, manifest) if results.is_dir() else read_results(results)
    absent = [k for k in ("backend", "backend_version", "target", "threads", "device") if k not in header]
    if absent:
        raise QuadnasError(
            f"{results} lacks header line(s) {', '.join(absent)}: import the results.csv that run.py wrote, unedited"
        )
    measured_on, holds = header.get("kit_precision", "fp32"), manifest.get("precision", "fp32")
    if measured_on != holds:
        raise QuadnasError(
            f"{results} was measured on {measured_on} models, but the kit in {kit_dir} holds {holds} ones: "
            "import it with the manifest.json of the kit it was measured with"
        )
    space = SearchSpace.from_dict(manifest["space_config"], source=f"kit {kit_dir}")
    if header.get("fingerprint") != manifest["fingerprint"] or space.fingerprint() != manifest["fingerprint"]:
        raise QuadnasError(
            f"{results} does not belong to the kit in {kit_dir} (space fingerprints differ): "
            "import it with the manifest.json of the kit it was measured with"
        )
    wanted = (
        [("overhead", "overhead")]
        + [("op", o["key"]) for o in manifest["ops"]]
        + [("network", n["key"]) for n in manifest["networks"]]
    )
    missing = [key for key in wanted if key not in timings]
    if missing:
        raise QuadnasError(
            f"{results} lacks {len(missing)} of {len(wanted)} measurements: rerun "
            + ("android/benchmark.sh" if results.is_dir() else "`python run.py` with the same options on the device")
            + " to finish them"
        )
    settings = ProfileSettings(
        **{**manifest["settings"], "rounds": int(header.get("rounds", manifest["settings"]["rounds"]))}
    )
    described: Description = {
        "backend": header["backend"],
        "backend_version": header["backend_version"],
        "target": header["target"],
        "threads": results_threads(header, results),
        "clock": header.get("clock", Measurement().clock),  # results of kits that had one clock: its default
        "device": header["device"],
        "precision": header.get("precision", "fp32"),
    }
    if "delegate" in header:
        described["delegate"] = header["delegate"]
    if "runtime_config" in header:  # results of kits from before it was recorded have none
        described["runtime_config"] = json.loads(header["runtime_config"])
    host = results_host(header, results)
    if "adapt" in manifest:
        timed = [(space.parse(n["arch"]), timings[("network", n["key"])]) for n in manifest["networks"]]
        source = LatencyTable.read(kit_dir / manifest["adapt"]["source"])
        return adapted_table(source, space, described, settings, host, timed, "measured with a quadnas kit (run.py)")
    overhead = timings[("overhead", "overhead")].median_ms
    meta = new_meta(space, described, settings, overhead, "measured with a quadnas profiling kit (run.py)", host)
    meta = meta.with_networks(
        [network_point(space.parse(n["arch"]), timings[("network", n["key"])]) for n in manifest["networks"]]
    )
    rows = [{**o["spec"], **row_values(timings[("op", o["key"])], overhead)} for o in manifest["ops"]]
    table = LatencyTable(meta).with_rows(rows)
    calibrate(table, space)
    return table


def results_threads(header: dict[str, str], results: Path) -> int:
    """The runner's thread count (its header holds text)."""
    text = str(header["threads"]).strip()
    if not text.isdigit():
        raise QuadnasError(
            f"{results}: its 'threads' header line is {text!r}, not a thread count: "
            "import the results.csv that run.py wrote, unedited"
        )
    return int(text)


def results_host(header: dict[str, str], results: Path) -> Host | None:
    """The host the runner measured on, from its `host` header line; None for results of a kit
    from before hosts were recorded."""
    if "host" not in header:
        return None
    try:
        return Host.model_validate_json(header["host"])
    except ValidationError as e:
        raise QuadnasError(
            f"{results}: its 'host' header line is not a host record ({Invalid.of(e).message}): "
            "import the results.csv that run.py wrote, unedited"
        ) from None

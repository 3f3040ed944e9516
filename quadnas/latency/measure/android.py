"""A LiteRT kit's Android branch: a shell script that times every .tflite file of the kit with LiteRT's
`benchmark_model` on a phone over adb, and the reader that turns its logs into the same header and timings
as a `run.py` results file (`kit.import_results` takes either).

The script runs on the computer the phone is plugged into (POSIX sh and adb; no Python on the phone):

    BENCHMARK_MODEL=path/to/android_aarch64_benchmark_model LITERT_VERSION=2.3.0 sh kit/android/benchmark.sh

It pushes the binary, records the phone (`/proc/cpuinfo`, `getprop`, `nproc`), then pushes each file and runs
`benchmark_model --graph=F --num_threads=T --use_xnnpack=true ...` once, keeping its log as
`android/results/<file>.txt`; a file whose log is there is skipped, so a rerun resumes. `benchmark_model`
reports count, min, max and avg per call in microseconds, and recent releases p5, median and p95 too: a row's
median is its median (its avg where absent), and its p10/p90 columns hold p5/p95 (min/max where absent).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quadnas.errors import QuadnasError
from quadnas.portable.files import atomic_write
from quadnas.portable.host import host_fingerprint, kernel_features, parse_cpuinfo
from quadnas.portable.sessions import LITERT_DELEGATE
from quadnas.portable.timing import Timing

ANDROID_DIR = "android"
SCRIPT = f"{ANDROID_DIR}/benchmark.sh"
MODELS_LIST = f"{ANDROID_DIR}/models.txt"
RESULTS_DIR = f"{ANDROID_DIR}/results"
DEVICE_FILE, CPUINFO_FILE = "device.txt", "cpuinfo.txt"
_STAT = re.compile(r"count=(\d+)\s.*?min=([\d.e+]+)\s+max=([\d.e+]+)\s+avg=([\d.e+]+)")
_PERCENTILES = re.compile(r"p5=([\d.e+]+)\s+median=([\d.e+]+)\s+p95=([\d.e+]+)")

_SCRIPT = """#!/bin/sh
# Time every model of this quadnas LiteRT kit on an Android phone with LiteRT's benchmark_model, over adb.
# Run it on the computer the phone is plugged into (USB debugging on); no Python is needed on the phone:
#   BENCHMARK_MODEL=path/to/android_aarch64_benchmark_model LITERT_VERSION=2.3.0 sh {script}
# then: quadnas profile import {results} --name my-phone
# THREADS (default {threads}), RUNS (timed calls per model, default {runs}), MIN_SECS (default {min_secs}),
# ADB (default adb; e.g. 'adb -s SERIAL') and DEVICE_DIR (default /data/local/tmp/quadnas-kit) can be set too.
# A rerun skips the models whose log is already in {results}/.
set -eu
KIT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$KIT/{results}"
ADB=${{ADB:-adb}}
THREADS=${{THREADS:-{threads}}}
RUNS=${{RUNS:-{runs}}}
MIN_SECS=${{MIN_SECS:-{min_secs}}}
DIR=${{DEVICE_DIR:-/data/local/tmp/quadnas-kit}}
: "${{BENCHMARK_MODEL:?set BENCHMARK_MODEL to LiteRT's benchmark_model built for Android (android_aarch64)}}"
mkdir -p "$OUT"
$ADB shell mkdir -p "$DIR" </dev/null
$ADB push "$BENCHMARK_MODEL" "$DIR/benchmark_model" </dev/null >/dev/null
$ADB shell chmod 755 "$DIR/benchmark_model" </dev/null
$ADB shell cat /proc/cpuinfo </dev/null >"$OUT/{cpuinfo}"
{{
  echo "litert_version: ${{LITERT_VERSION:-unknown}}"
  echo "threads: $THREADS"
  echo "product: $($ADB shell getprop ro.product.model </dev/null | tr -d '\\r')"
  echo "soc: $($ADB shell getprop ro.soc.model </dev/null | tr -d '\\r')"
  echo "android: $($ADB shell getprop ro.build.version.release </dev/null | tr -d '\\r')"
  echo "cores: $($ADB shell nproc </dev/null | tr -d '\\r')"
}} >"$OUT/{device}"
while read -r file; do
  log="$OUT/$file.txt"
  [ -s "$log" ] && continue
  mkdir -p "$(dirname "$log")"
  $ADB push "$KIT/$file" "$DIR/model.tflite" </dev/null >/dev/null
  echo "benchmark_model $file"
  $ADB shell "$DIR/benchmark_model" --graph="$DIR/model.tflite" --num_threads="$THREADS" --use_xnnpack=true \\
    --warmup_runs=5 --warmup_min_secs=0.2 --num_runs="$RUNS" --min_secs="$MIN_SECS" </dev/null >"$log.part" 2>&1
  mv "$log.part" "$log"
done <"$KIT/{models}"
echo "done: $OUT (bring the kit folder back and run: quadnas profile import {results} --name NAME)"
"""


def write_android_script(kit: Path, files: list[str], rounds: int, round_ms: float) -> Path:
    """The kit's `android/benchmark.sh` and the list of files it times; the script's path. A model is timed for
    at least rounds x round_ms (the profiler's time per op) and 50 calls."""
    runs, min_secs = 50, max(rounds * round_ms / 1e3, 0.5)
    script = _SCRIPT.format(
        script=SCRIPT,
        results=RESULTS_DIR,
        models=MODELS_LIST,
        device=DEVICE_FILE,
        cpuinfo=CPUINFO_FILE,
        threads=1,
        runs=runs,
        min_secs=f"{min_secs:g}",
    )
    atomic_write(kit / MODELS_LIST, "".join(f"{file}\n" for file in files))
    atomic_write(kit / SCRIPT, script)
    (kit / SCRIPT).chmod(0o755)
    return kit / SCRIPT


def parse_benchmark_log(text: str, what: str) -> Timing:
    """The timed run of one `benchmark_model` log (its last `count=...` line) in milliseconds."""
    stats = [line for line in text.splitlines() if _STAT.search(line)]
    if not stats:
        raise QuadnasError(
            f"{what} holds no 'count=... avg=...' line of benchmark_model: delete it and rerun android/benchmark.sh "
            "to time that model again"
        )
    line = stats[-1]
    found = _STAT.search(line)
    assert found is not None
    count, low, high, avg = int(found[1]), float(found[2]), float(found[3]), float(found[4])
    percentiles = _PERCENTILES.search(line)
    if percentiles is not None:
        low, median, high = (float(percentiles[i]) for i in (1, 2, 3))
    else:
        median = avg
    return Timing(median / 1e3, low / 1e3, high / 1e3, count)


def _fields(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            found[key.strip()] = value.strip()
    return found


def phone_host(cpuinfo: str, device: Mapping[str, str]) -> dict[str, object]:
    """The phone's identity in `quadnas.portable.host.read_host`'s form, from its /proc/cpuinfo and `device.txt`."""
    fields = parse_cpuinfo(cpuinfo)
    features = set(fields.get("features") or [])  # type: ignore[call-overload]
    features.add("asimd")
    cores = device.get("cores", "")
    soc = device.get("soc") or ""
    name = str(fields.get("name") or "")
    return {
        "name": f"{soc} ({name})" if soc and name else soc or name or "Android phone",
        "vendor": fields.get("vendor"),
        "family": fields.get("family"),
        "model": fields.get("model"),
        "stepping": fields.get("stepping"),
        "features": kernel_features(features),
        "logical_cores": int(cores) if cores.isdigit() else None,
        "os": f"Android {device['android']}" if device.get("android") else "Android",
        "machine": "aarch64",
        **({"product": device["product"]} if device.get("product") else {}),
    }


def read_android_results(
    folder: Path, manifest: Mapping[str, Any]
) -> tuple[dict[str, str], dict[tuple[str, str], Timing]]:
    """The header and timings (by kind and key, as `kit.read_results` gives them) of the logs that
    `android/benchmark.sh` wrote into `folder`; a model without a log is left out."""
    try:
        device = _fields((folder / DEVICE_FILE).read_text())
        cpuinfo = (folder / CPUINFO_FILE).read_text(errors="replace")
    except OSError as e:
        raise QuadnasError(
            f"cannot read {folder}/{DEVICE_FILE} and {CPUINFO_FILE} ({e}): import the {RESULTS_DIR} folder that "
            "android/benchmark.sh filled"
        ) from None
    host = phone_host(cpuinfo, device)
    header = {
        "space": str(manifest["space"]),
        "fingerprint": str(manifest["fingerprint"]),
        "backend": "litert",
        "backend_version": f"{device.get('litert_version', 'unknown')} (benchmark_model)",
        "target": "CPU",
        "threads": device.get("threads", "1"),
        "clock": "wall",
        "device": str(host["name"]),
        "delegate": LITERT_DELEGATE,
        "kit_precision": str(manifest.get("precision", "fp32")),
        "precision": str(manifest.get("precision", "fp32")),
        "host": json.dumps(host),
        "host_fingerprint": host_fingerprint(host),
    }
    entries = [("overhead", "overhead", manifest["overhead"]["file"])]
    entries += [("op", o["key"], o["file"]) for o in manifest["ops"]]
    entries += [("network", n["key"], n["file"]) for n in manifest["networks"]]
    timings = {}
    for kind, key, file in entries:
        log = folder / f"{file}.txt"
        if log.is_file():
            timings[(kind, key)] = parse_benchmark_log(log.read_text(errors="replace"), str(log))
    return header, timings

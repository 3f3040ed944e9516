"""This machine's identity: CPU name, vendor, family/model/stepping, the ISA features that decide kernels,
logical cores, OS and machine, and the fingerprint of what decides speed.

Standard library only (py-cpuinfo where installed), so a kit records on a device exactly the identity
that quadnas records where it profiles (`quadnas.latency.host.Host` reads it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: ISA features that decide which kernels a runtime picks, named as Linux's /proc/cpuinfo names them.
KERNEL_FEATURES = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512dq",
    "avx512cd",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "neon",
    "asimd",
    "asimdhp",
    "asimddp",
    "i8mm",
    "bf16",
    "sve",
    "sve2",
)
#: the host fields that decide speed: what a host fingerprint hashes (not the OS, not the host name)
HOST_SPEED_KEYS = ("name", "family", "model", "stepping", "features", "logical_cores")
ARM_IMPLEMENTERS = {
    "0x41": "ARM",
    "0x42": "Broadcom",
    "0x48": "HiSilicon",
    "0x4e": "NVIDIA",
    "0x51": "Qualcomm",
    "0x61": "Apple",
    "0xc0": "Ampere",
}
ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd0d": "Cortex-A77",
    "0xd40": "Neoverse-V1",
    "0xd41": "Cortex-A78",
    "0xd44": "Cortex-X1",
    "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2",
    "0xd49": "Neoverse-N2",
    "0xd4f": "Neoverse-V2",
}


def kernel_features(flags: Iterable[str]) -> list[str]:
    """The KERNEL_FEATURES among `flags` (any spelling: 'avx512vnni' is 'avx512_vnni'), in KERNEL_FEATURES order."""
    have = {flag.lower().replace("_", "") for flag in flags}
    return [f for f in KERNEL_FEATURES if f.replace("_", "") in have]


def parse_cpuinfo(text: str) -> dict[str, object]:
    """The host fields of a Linux /proc/cpuinfo (x86 or Arm layout), from its first processor."""
    first: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() not in first:
            first[key.strip().lower()] = value.strip()
    if "cpu implementer" in first:  # Arm: implementer, architecture, part, rNpM
        implementer, part = first["cpu implementer"].lower(), first.get("cpu part", "").lower()
        vendor = ARM_IMPLEMENTERS.get(implementer, implementer)
        variant, revision = first.get("cpu variant", ""), first.get("cpu revision", "")
        stepping = f"r{int(variant, 16)}p{revision}" if variant.startswith("0x") and revision.isdigit() else None
        part_name = f"{vendor} {ARM_PARTS[part]}" if implementer == "0x41" and part in ARM_PARTS else None
        return {
            "name": part_name or _first_name(first),
            "vendor": vendor,
            "family": first.get("cpu architecture"),
            "model": part or None,
            "stepping": stepping,
            "features": kernel_features(first.get("features", "").split()),
        }
    return {
        "name": _first_name(first),
        "vendor": first.get("vendor_id"),
        "family": first.get("cpu family"),
        "model": first.get("model"),
        "stepping": first.get("stepping"),
        "features": kernel_features(first.get("flags", "").split()),
    }


def _first_name(fields: dict[str, str]) -> str | None:
    for key in ("model name", "hardware", "processor"):
        name = fields.get(key, "")
        if name and not name.isdigit():
            return name
    return None


def _from_platform() -> dict[str, object]:
    """What the standard library knows (Windows: 'Intel64 Family 6 Model 85 Stepping 7, GenuineIntel')."""
    text = platform.processor()
    found = re.search(r"Family (\d+) Model (\d+) Stepping (\d+), (\w+)", text)
    fields: dict[str, object] = {"name": text or None}
    if found:
        fields.update(family=found[1], model=found[2], stepping=found[3], vendor=found[4])
    if platform.system() == "Darwin":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            brand = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
            fields["name"] = brand or fields["name"]
    return fields


def _from_cpuinfo_package() -> dict[str, object]:
    """What py-cpuinfo says, where it is installed (optional: macOS and Windows flags)."""
    try:
        import cpuinfo  # py-cpuinfo

        info = cpuinfo.get_cpu_info()
    except Exception:  # not installed, or it failed to probe this machine: the host has fewer fields
        return {}
    text = {key: str(info[key]) for key in ("family", "model", "stepping") if info.get(key) is not None}
    return {
        "name": info.get("brand_raw"),
        "vendor": info.get("vendor_id_raw"),
        **text,
        "features": kernel_features(info.get("flags") or []),
    }


def _machine() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def read_host(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, object]:
    """This machine's identity: CPU name, vendor, family/model/stepping, the KERNEL_FEATURES it has,
    logical cores, OS and machine. From /proc/cpuinfo on Linux, else the standard library and,
    where installed, py-cpuinfo; a field nothing reports is None."""
    try:
        fields = parse_cpuinfo(cpuinfo.read_text(errors="replace"))
    except OSError:
        fields = {}
    if not fields.get("name") or not fields.get("features"):
        fields = {**_from_platform(), **_from_cpuinfo_package(), **{k: v for k, v in fields.items() if v}}
    machine = _machine()
    found = fields.get("features")
    features = set(found) if isinstance(found, list) else set()  # kernel_features' list, or none
    if machine == "aarch64":
        features.add("asimd")  # mandatory in 64-bit Arm, though macOS reports no flags
    return {
        "name": fields.get("name") or machine or "unknown CPU",
        "vendor": fields.get("vendor"),
        "family": fields.get("family"),
        "model": fields.get("model"),
        "stepping": fields.get("stepping"),
        "features": kernel_features(features),
        "logical_cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}".strip() or None,
        "machine": machine or None,
    }


def host_fingerprint(host: Mapping[str, Any]) -> str:
    """12 hex digits of a hash of the HOST_SPEED_KEYS of a `read_host()` mapping."""
    speed = {key: sorted(host.get(key) or ()) if key == "features" else host.get(key) for key in HOST_SPEED_KEYS}
    return hashlib.sha256(json.dumps(speed, sort_keys=True).encode()).hexdigest()[:12]


def cpu_name() -> str:
    """This machine's CPU model, e.g. 'AMD EPYC 7763 64-Core Processor'."""
    return str(read_host()["name"])

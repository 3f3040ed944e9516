"""Which host a measured latency table holds for, and what to say when it is used on another.

A measured table is true for one host only: two CPUs of one name (an AVX-512 and an AVX2
"AMD EPYC") differed by 2x on the same network. `Host` is a machine's identity (CPU name,
vendor, family/model/stepping, the ISA features that decide kernels, logical cores, OS,
machine); its `fingerprint` hashes the fields that decide speed (not the OS, not the host
name). Measured tables record it (`host`, `host_fingerprint` header keys); estimated ones do not.

    note = foreign_host_note(table.meta)   # one line, or None where the table holds here

The reader itself is the portable core's (`quadnas.portable.host.read_host`), which a profiling kit
runs on a device without quadnas, so a kit and the profiler record the same identity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from quadnas.portable.host import host_fingerprint, read_host
from quadnas.resources import DEFAULT_SPACE

if TYPE_CHECKING:
    from quadnas.latency.table import TableMeta

HostStatus = Literal["this host", "other host", "not recorded"]


class Host(BaseModel):
    """A machine's identity as a table header records it; fields nothing reported are None."""

    model_config = ConfigDict(frozen=True, extra="allow", protected_namespaces=())
    name: str
    vendor: str | None = None
    family: str | None = None
    model: str | None = None
    stepping: str | None = None
    features: tuple[str, ...] = ()
    logical_cores: int | None = None
    os: str | None = None
    machine: str | None = None

    @classmethod
    def current(cls) -> Host:
        """This machine (Linux: /proc/cpuinfo; elsewhere fewer fields)."""
        return cls.model_validate(read_host())

    @property
    def fingerprint(self) -> str:
        """12 hex digits from name, family/model/stepping, ISA features and logical cores."""
        return host_fingerprint(self.model_dump())

    def describe(self, other: Host | None = None) -> str:
        """'AMD EPYC (family 25 model 17 stepping 1) with avx512f, 2 logical cores'; the features
        named are those that differ from `other` (none without it)."""
        ids = " ".join(
            f"{key} {value}"
            for key, value in (("family", self.family), ("model", self.model), ("stepping", self.stepping))
            if value
        )
        text = self.name + (f" ({ids})" if ids else "")
        if other is not None:
            extra = [f for f in self.features if f not in other.features]
            lacking = [f for f in other.features if f not in self.features]
            text += f" with {', '.join(extra)}" if extra else ""
            text += f" without {', '.join(lacking)}" if lacking else ""
        cores = f", {self.logical_cores} logical cores" if self.logical_cores else ""
        return text + cores


def host_difference(measured: Host, here: Host) -> str | None:
    """One line saying how `here` differs from the host a table was `measured` on; None when
    they are the same by fingerprint."""
    if measured.fingerprint == here.fingerprint:
        return None
    return f"the table was measured on {measured.describe(here)}; this host is {here.describe(measured)}"


def host_status(meta: TableMeta, here: Host | None = None) -> HostStatus | None:
    """Whether a measured (or adapted) table was taken on this host; None for an estimated table."""
    if meta.provenance == "estimated":
        return None
    recorded = recorded_fingerprint(meta)
    if recorded is None:
        return "not recorded"
    return "this host" if recorded == (here or Host.current()).fingerprint else "other host"


def recorded_fingerprint(meta: TableMeta) -> str | None:
    """The table's `host_fingerprint`, else its `host`'s, else None (measured before hosts were recorded)."""
    if meta.host_fingerprint:
        return meta.host_fingerprint
    return meta.host.fingerprint if meta.host is not None else None


def profile_command(meta: TableMeta) -> str:
    """The `quadnas profile` command that measures a table like `meta` on this host."""
    target = meta.target
    parts = ["quadnas profile", f"--backend {meta.backend}"]
    parts += [f"--target {target}"] if target and str(target).upper() != "CPU" else []
    parts += [f"--threads {meta.threads}"] if meta.threads else []
    parts += [f"--space {meta.space}"] if meta.space != DEFAULT_SPACE else []
    return " ".join(parts + ["--name NAME"])


def foreign_host_note(meta: TableMeta, here: Host | None = None) -> str | None:
    """One line for a measured table taken on another host (or on one it does not record):
    what differs and the fix. None for an estimated table or one measured on this host."""
    status = host_status(meta, here)
    if status in (None, "this host"):
        return None
    here = here or Host.current()
    fix = f"profile this host with `{profile_command(meta)}` (or adapt the table)"
    if status == "not recorded":
        return (
            f"host not recorded: the '{meta.device}' table was measured before quadnas recorded hosts, and CPUs "
            f"of one name can differ 2x (this host: {here.describe()}); unless it was measured here, {fix}"
        )
    if meta.host is None:
        return (
            f"measured on another host (fingerprint {meta.host_fingerprint}, this host {here.fingerprint}: "
            f"{here.describe()}): its latencies hold there, not here; {fix}"
        )
    return f"measured on another host: {host_difference(meta.host, here)}; its latencies hold there, not here; {fix}"

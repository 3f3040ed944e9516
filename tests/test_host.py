"""Host identity: reading it, fingerprinting it, and the note for a table measured on another host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

from builders import random_table

from quadnas.latency.host import Host, foreign_host_note, host_difference, host_status
from quadnas.portable import host as hostinfo
from quadnas.portable.bundle import PACKAGE, write_runner

EPYC_AVX512 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14 96-Core Processor
stepping\t: 1
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
"""

PI4 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""


def epyc(**changes) -> Host:
    fields = dict(
        name="AMD EPYC",
        vendor="AuthenticAMD",
        family="25",
        model="17",
        stepping="1",
        features=("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw"),
        logical_cores=2,
        os="Linux 6.1",
        machine="x86_64",
    )
    return Host(**{**fields, **changes})


AVX2_EPYC = epyc(family="23", model="49", stepping="0", features=("sse4_2", "avx", "avx2", "fma"))


def test_cpuinfo_of_an_x86_host():
    fields = hostinfo.parse_cpuinfo(EPYC_AVX512)
    assert fields["name"] == "AMD EPYC 9R14 96-Core Processor" and fields["vendor"] == "AuthenticAMD"
    assert (fields["family"], fields["model"], fields["stepping"]) == ("25", "17", "1")
    assert fields["features"] == [
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512dq",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
    ]


def test_cpuinfo_of_an_arm_board_names_the_core_not_the_board():
    fields = hostinfo.parse_cpuinfo(PI4)
    assert fields["name"] == "ARM Cortex-A72" and fields["vendor"] == "ARM"
    assert (fields["family"], fields["model"], fields["stepping"]) == ("8", "0xd08", "r0p3")
    assert fields["features"] == ["asimd"]


def test_feature_spellings_of_other_tools_are_understood():
    assert hostinfo.kernel_features(["AVX512VNNI", "avx512_bf16", "amx-tile", "sse4_2", "mmx"]) == [
        "sse4_2",
        "avx512_vnni",
        "avx512_bf16",
    ]


def test_this_host_is_read(tmp_path):
    host = Host.current()
    assert host.name.strip() and host.logical_cores == os.cpu_count() and host.os and host.machine
    assert len(host.fingerprint) == 12 and int(host.fingerprint, 16) >= 0
    assert Host.model_validate(hostinfo.read_host(tmp_path / "no-cpuinfo")).name  # /proc/cpuinfo absent


def test_a_host_without_proc_cpuinfo_falls_back_to_the_standard_library(tmp_path, monkeypatch):
    monkeypatch.setattr(hostinfo.platform, "system", lambda: "Windows")
    monkeypatch.setattr(hostinfo.platform, "machine", lambda: "AMD64")
    monkeypatch.setattr(hostinfo.platform, "processor", lambda: "Intel64 Family 6 Model 85 Stepping 7, GenuineIntel")
    monkeypatch.setitem(sys.modules, "cpuinfo", None)  # py-cpuinfo not installed
    host = Host.model_validate(hostinfo.read_host(tmp_path / "no-cpuinfo"))
    assert (host.family, host.model, host.stepping, host.vendor) == ("6", "85", "7", "GenuineIntel")
    assert host.machine == "x86_64" and host.features == () and host.os.startswith("Windows")


def test_py_cpuinfo_fills_in_flags_where_it_is_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(hostinfo.platform, "system", lambda: "Windows")
    fake = types.SimpleNamespace(
        get_cpu_info=lambda: {
            "brand_raw": "Intel(R) Xeon(R) Gold 6230",
            "vendor_id_raw": "GenuineIntel",
            "family": 6,
            "model": 85,
            "stepping": 7,
            "flags": ["avx2", "avx512f", "avx512vnni", "sse4_2"],
        }
    )
    monkeypatch.setitem(sys.modules, "cpuinfo", fake)
    host = Host.model_validate(hostinfo.read_host(tmp_path / "no-cpuinfo"))
    assert host.name == "Intel(R) Xeon(R) Gold 6230" and host.model == "85"
    assert host.features == ("sse4_2", "avx2", "avx512f", "avx512_vnni")


def test_the_kits_standalone_reader_gives_the_identity_quadnas_reads(tmp_path):
    """A kit's run.py is the portable core as a zipapp; on the device it runs without quadnas."""
    runner = write_runner(tmp_path / "run.py")
    code = (
        "import json, sys; sys.modules['quadnas'] = None; sys.path.insert(0, sys.argv[1]); "
        f"from {PACKAGE}.host import host_fingerprint, read_host; "
        "host = read_host(); print(json.dumps({'host': host, 'fingerprint': host_fingerprint(host)}))"
    )
    done = subprocess.run([sys.executable, "-I", "-c", code, str(runner)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    standalone = json.loads(done.stdout)
    here = Host.current()
    assert Host.model_validate(standalone["host"]) == here and standalone["fingerprint"] == here.fingerprint


def test_the_fingerprint_follows_what_decides_speed_not_the_os():
    host = epyc()
    assert host.fingerprint == epyc(os="Linux 6.9", vendor="AMD").fingerprint
    assert host.fingerprint == epyc(features=tuple(reversed(host.features))).fingerprint
    for change in (
        {"features": ("sse4_2", "avx", "avx2", "fma")},
        {"logical_cores": 4},
        {"model": "1"},
        {"stepping": "2"},
        {"name": "AMD EPYC 7763"},
    ):
        assert epyc(**change).fingerprint != host.fingerprint, change


def test_the_difference_says_which_features_one_host_lacks():
    text = host_difference(epyc(), AVX2_EPYC)
    assert text == (
        "the table was measured on AMD EPYC (family 25 model 17 stepping 1) with avx512f, avx512bw, "
        "2 logical cores; this host is AMD EPYC (family 23 model 49 stepping 0) without avx512f, "
        "avx512bw, 2 logical cores"
    )
    assert host_difference(epyc(), epyc(os="Darwin 23")) is None


def measured_table(tiny_space, host: Host | None, **meta):
    fields = {"host": host, "host_fingerprint": host.fingerprint} if host is not None else {}
    return random_table(tiny_space, [], device="AMD EPYC", **fields, **meta)


def test_note_for_a_table_of_another_host_says_what_differs_and_the_fix(tiny_space):
    meta = measured_table(tiny_space, epyc(), backend="openvino", threads=2).meta
    note = foreign_host_note(meta, here=AVX2_EPYC)
    assert note.startswith("measured on another host: the table was measured on AMD EPYC (family 25 model 17")
    assert "this host is AMD EPYC (family 23 model 49 stepping 0) without avx512f, avx512bw" in note
    assert note.endswith(
        "profile this host with `quadnas profile --backend openvino --threads 2 --space tiny "
        "--name NAME` (or adapt the table)"
    )
    assert "\n" not in note and host_status(meta, AVX2_EPYC) == "other host"


def test_note_for_a_table_that_records_no_host(tiny_space):
    meta = measured_table(tiny_space, None, target="CUDA").meta
    note = foreign_host_note(meta, here=AVX2_EPYC)
    assert note.startswith("host not recorded") and "'AMD EPYC' table" in note
    assert "`quadnas profile --backend onnxruntime --target CUDA --threads 1 --space tiny --name NAME`" in note
    assert host_status(meta, AVX2_EPYC) == "not recorded"


def test_no_note_on_the_same_host_or_for_an_estimate(tiny_space):
    assert foreign_host_note(measured_table(tiny_space, epyc()).meta, here=epyc(os="Linux 7.0")) is None
    estimated = measured_table(tiny_space, None, provenance="estimated").meta
    assert foreign_host_note(estimated, here=AVX2_EPYC) is None and host_status(estimated, AVX2_EPYC) is None


def test_an_adapted_table_holds_for_its_host_too(tiny_space):
    adapted = measured_table(tiny_space, epyc(), provenance="adapted").meta
    assert host_status(adapted, epyc()) == "this host" and host_status(adapted, AVX2_EPYC) == "other host"
    assert foreign_host_note(adapted, here=AVX2_EPYC).startswith("measured on another host")


def test_a_fingerprint_alone_still_tells_hosts_apart(tiny_space):
    meta = random_table(tiny_space, [], host_fingerprint="0123456789ab").meta
    assert host_status(meta, epyc()) == "other host"
    assert "fingerprint 0123456789ab" in foreign_host_note(meta, here=epyc())


def test_the_shipped_measured_tables_name_their_host():
    from quadnas.latency.devices import load_device_table

    for name in ("amd-epyc-onnxruntime-1t", "amd-epyc-openvino-1t"):
        meta = load_device_table(name).meta
        assert meta.host is not None and meta.host_fingerprint == meta.host.fingerprint
        note = foreign_host_note(meta, here=AVX2_EPYC)
        assert note.startswith("measured on another host") and "--threads 1 --space quadranet-t-qe --name NAME" in note

import importlib.util
import sys

import onnx
import pytest

from quadnas.errors import QuadnasError
from quadnas.latency.measure.backends import BACKENDS, get_backend, parse_threads
from quadnas.latency.measure.builders import op_module
from quadnas.nn.blocks import op_input_shape
from quadnas.nn.onnx import write_onnx
from quadnas.portable import sessions
from quadnas.portable.host import cpu_name
from quadnas.portable.timing import Schedule, Timing, measure_interleaved

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
needs_openvino = pytest.mark.skipif(
    not HAS_OPENVINO, reason="openvino is not installed (pip install quadnas[openvino])"
)

HAS_LITERT = all(
    importlib.util.find_spec(p) is not None for p in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert")
)
needs_litert = pytest.mark.skipif(not HAS_LITERT, reason="needs the litert extra (pip install 'quadnas[litert]')")
NEEDS = {"openvino": needs_openvino, "litert": needs_litert}


@pytest.fixture(scope="module")
def block(tiny_space):
    spec = next(s for s in tiny_space.all_op_specs() if s.op == "quadra_block")
    return op_module(spec, tiny_space), op_input_shape(spec)


@pytest.mark.parametrize("name", [pytest.param(b, marks=NEEDS.get(b, ())) for b in BACKENDS])
def test_backend_times_an_op(name, block):
    backend = get_backend(name)
    runner = backend.prepare(*block)
    times = runner.time(5)
    assert len(times) == 5 and all(t > 0 for t in times)
    described = backend.describe()
    assert described["backend"] == name and described["threads"] == 1
    assert described["backend_version"] and described["device"] and described["precision"] == "fp32"


def test_cpu_clock_times_an_op(block):
    times = get_backend("onnxruntime", clock="cpu").prepare(*block).time(3)
    assert all(t > 0 for t in times)


def test_export_is_opset_17(tmp_path, block):
    model = onnx.load(str(write_onnx(*block, tmp_path / "b.onnx")))
    assert {o.domain: o.version for o in model.opset_import}[""] == 17


@pytest.mark.parametrize(
    "name, hint", [("openvino", "pip install quadnas[openvino]"), ("onnxruntime", "pip install onnxruntime")]
)
def test_missing_package_names_the_install(monkeypatch, name, hint):
    monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(QuadnasError, match=hint.replace("[", r"\[").replace("]", r"\]")):
        get_backend(name)


def test_litert_without_its_extra_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    with pytest.raises(QuadnasError, match=r"backend 'litert' needs the .* package.*pip install 'quadnas\[litert\]'"):
        get_backend("litert")


def test_unknown_backend_lists_them():
    with pytest.raises(QuadnasError, match="onnxruntime, openvino, torch"):
        get_backend("tensorrt")


@pytest.mark.parametrize("threads", [0, -1, "abc", "1.5", True])
def test_nonsense_threads(threads):
    with pytest.raises(QuadnasError, match="threads must be a whole number"):
        get_backend("onnxruntime", threads=threads)


def test_threads_parse():
    assert parse_threads("2") == 2 and parse_threads(3) == 3


@needs_openvino
def test_unknown_openvino_device_lists_available():
    with pytest.raises(QuadnasError, match="is not available here: use one of .*CPU"):
        get_backend("openvino", target="FPGA")


@needs_openvino
def test_myriad_needs_old_openvino():
    with pytest.raises(QuadnasError, match="2022.3"):
        get_backend("openvino", target="MYRIAD")


def test_unknown_ort_provider_lists_available():
    with pytest.raises(QuadnasError, match="no execution provider 'TPU'.*CPU"):
        get_backend("onnxruntime", target="TPU")


def test_torch_cuda_or_bad_target():
    with pytest.raises(QuadnasError, match="use cpu or cuda"):
        get_backend("torch", target="metal")


def test_cpu_clock_needs_one_thread():
    with pytest.raises(QuadnasError, match="1 thread"):
        get_backend("onnxruntime", threads=2, clock="cpu")


def test_timing_summary():
    t = Timing.of([0.001 * i for i in range(1, 12)])
    assert t.median_ms == pytest.approx(6.0) and t.p10_ms == pytest.approx(2.0) and t.runs == 11


class FakeSession:
    open_now = 0
    most_open = 0

    def __init__(self, seconds):
        self.seconds = seconds
        self.calls = 0
        FakeSession.open_now += 1
        FakeSession.most_open = max(FakeSession.most_open, FakeSession.open_now)

    def time(self, n):
        self.calls += n
        return [self.seconds] * n


def test_measure_interleaved_rounds_and_window():
    sessions = {}

    def open_session(key):
        sessions[key] = FakeSession(0.001 * (1 + int(key)))
        return sessions[key]

    done = {}

    def on_done(key, timing):
        done[key] = timing
        FakeSession.open_now -= 1

    schedule = Schedule(rounds=3, round_s=0.004, window=2, warmup_s=0.0)
    measure_interleaved([str(i) for i in range(5)], open_session, schedule, on_done)
    assert sorted(done) == [str(i) for i in range(5)]
    assert FakeSession.most_open == 2
    # key 0 takes 1 ms a call: 4 calls a round, 3 rounds; key 4 takes 5 ms: 1 call a round
    assert done["0"].runs == 12 and done["4"].runs == 3
    assert done["2"].median_ms == pytest.approx(3.0)


def test_profile_times_every_op_of_the_default_space_at_once_and_networks_in_a_bounded_window():
    """Every op's rounds must spread over the whole run (a slow spell of a shared machine then moves every row
    alike); whole networks hold far more memory, so the ops' window must not open them all."""
    from dataclasses import asdict

    from quadnas.latency.measure.settings import ProfileSettings
    from quadnas.portable.timing import NETWORK_WINDOW, network_schedule
    from quadnas.space import SearchSpace

    settings = ProfileSettings()
    assert settings.op_schedule().window >= len(SearchSpace.load("quadranet-t").all_op_specs())
    assert network_schedule(asdict(settings), 50).window == NETWORK_WINDOW < settings.window
    assert network_schedule(asdict(settings), 3).window == 3


def test_cpu_name_is_not_empty():
    assert cpu_name().strip()


def test_torch_ops_see_the_layout_a_network_gives_them(tiny_space):
    """After the stem every activation is NHWC in memory (LayerNorm2d permutes); the
    profiler's torch inputs must be too, or it times copies the network never makes."""
    import torch

    from quadnas.nn.net import QuadraNet

    net = QuadraNet(tiny_space, tiny_space.largest()).eval()
    seen = []
    net.stages[0][0].register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    net(torch.randn(1, 3, tiny_space.config.resolution, tiny_space.config.resolution))
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    spec = next(s for s in tiny_space.all_op_specs() if s.op == "quadra_block")
    runner = get_backend("torch").prepare(op_module(spec, tiny_space), op_input_shape(spec), channels_last=True)
    assert runner.input.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_cuda_times_an_op(block):
    backend = get_backend("torch", target="cuda")
    times = backend.prepare(*block, channels_last=True).time(5)
    assert len(times) == 5 and all(t > 0 for t in times)
    assert backend.describe()["clock"] == "wall" and "cuda" in backend.describe()["target"]


@pytest.mark.parametrize("threads", [1, 2])
def test_onnxruntime_sessions_run_with_the_settings_their_tables_record(threads, block):
    """A pool of several threads runs with ORT_POOL_ENTRIES; one thread has no pool to set."""
    backend = get_backend("onnxruntime", threads=threads)
    session = backend.prepare(*block)
    assert isinstance(session, sessions.OnnxRuntimeSession)
    options = session.session.get_session_options()
    recorded = backend.describe()["runtime_config"]
    assert options.intra_op_num_threads == threads == int(recorded["intra_op_num_threads"])
    entries = {k: v for k, v in recorded.items() if k.startswith("session.")}
    assert entries == sessions.ort_session_entries(threads) == ({} if threads == 1 else sessions.ORT_POOL_ENTRIES)
    for key, value in entries.items():
        assert options.get_session_config_entry(key) == value


@needs_openvino
def test_openvino_sessions_run_with_the_settings_their_tables_record(block):
    backend = get_backend("openvino", threads=2)
    session = backend.prepare(*block)
    assert isinstance(session, sessions.OpenVinoSession)
    recorded = backend.describe()["runtime_config"]
    assert recorded == sessions.openvino_config(2)
    assert str(session.compiled.get_property("INFERENCE_NUM_THREADS")) == recorded["INFERENCE_NUM_THREADS"] == "2"

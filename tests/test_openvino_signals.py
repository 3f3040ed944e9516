"""OpenVINO sessions leave the process able to handle signals, whatever order they are dropped in."""

import importlib.util
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed (pip install quadnas[openvino])"
)

# Sessions and compiled exports made in one order and dropped in the other (as garbage collection may
# drop them), a read-only Core between them, then a signal with a Python handler: each Core's CPU
# plugin swaps the thread's signal stack, and a stack left unmapped turns that signal into SIGSEGV.
SCRIPT = textwrap.dedent(
    """
    import gc, os, signal, sys
    from pathlib import Path
    import torch
    import openvino as ov
    from quadnas._export.formats import compile_openvino
    from quadnas.portable.sessions import OpenVinoSession
    from quadnas.nn.onnx import write_onnx

    path = write_onnx(torch.nn.Conv2d(3, 4, 3), (1, 3, 8, 8), Path(sys.argv[1]) / "conv.onnx")
    first, second = OpenVinoSession(path), OpenVinoSession(path)
    reader = ov.Core()
    reader.read_model(str(path))
    compiled = [compile_openvino(ov, path)[0] for _ in range(2)]
    del first; gc.collect()
    del second, reader; gc.collect()
    del compiled[0]; gc.collect()
    del compiled; gc.collect()
    handled = []
    signal.signal(signal.SIGUSR1, lambda number, frame: handled.append(number))
    os.kill(os.getpid(), signal.SIGUSR1)
    print("handled", handled == [signal.SIGUSR1])
    """
)


def test_a_signal_after_openvino_sessions_is_handled(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.strip().endswith("handled True")

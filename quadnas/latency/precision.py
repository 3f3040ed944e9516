"""Precisions of latency tables, and the rule that a table and an export never mix them.

A table's `precision` is the arithmetic it timed: `int8` for a table of quantized graphs
(`quadnas profile --precision int8`), else the runtime's float precision on FP32 files (`fp32`; `fp16`
or `bf16` where a device computes so, e.g. OpenVINO on a GPU or NPU). An INT8 table predicts INT8
files and a float table FP32 files (an IR with FP16 weights runs as FP32 on a CPU): any other pairing
is a one-line error.

Light on purpose (no numpy): the command line checks `--precision` before importing a runtime.
"""

from __future__ import annotations

from quadnas.errors import QuadnasError

INT8 = "int8"
PROFILE_PRECISIONS = ("fp32", INT8)
INT8_BACKENDS = ("onnxruntime", "openvino", "litert")


def check_profile_precision(precision: str, backend: str) -> str:
    """`precision` if `quadnas profile` can measure it on `backend`, else a one-line error."""
    if precision not in PROFILE_PRECISIONS:
        fp16 = (
            " (FP16 is not profiled on request; a device that computes in FP16, such as OpenVINO's GPU or NPU, "
            "records fp16 in its table by itself)"
            if precision == "fp16"
            else ""
        )
        raise QuadnasError(
            f"--precision {precision} is not a profiling precision: use {' or '.join(PROFILE_PRECISIONS)}{fp16}"
        )
    if precision == INT8 and backend not in INT8_BACKENDS:
        raise QuadnasError(
            f"--precision int8 times quantized ONNX/IR/.tflite graphs, which backend '{backend}' does not run: "
            f"use --backend {' or --backend '.join(INT8_BACKENDS)}"
        )
    return precision


def file_precision(table_precision: str) -> str:
    """The precision of the files a table of `table_precision` predicts: int8, else fp32."""
    return INT8 if table_precision == INT8 else "fp32"


def check_same_precision(table: str, table_precision: str, precision: str, what: str = "the export") -> None:
    """A one-line error when table `table` (of `table_precision`) and `what` (of `precision`) mix INT8
    with float."""
    if (table_precision == INT8) == (precision == INT8):
        return
    hint = " (quadnas profile --precision int8)" if precision == INT8 else ""
    raise QuadnasError(
        f"table {table} is {table_precision} but {what} is {precision}: pass --precision "
        f"{file_precision(table_precision)} or use an {file_precision(precision)} table{hint}"
    )

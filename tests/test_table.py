"""LatencyTable: format round trip, validation errors, lookup and changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builders import random_table, table_meta

from quadnas.errors import QuadnasError
from quadnas.latency.host import Host
from quadnas.latency.table import COLUMNS, LatencyTable
from quadnas.space import SearchSpace


@pytest.fixture
def table_file(tmp_path: Path, tiny_space: SearchSpace) -> Path:
    return random_table(tiny_space).write(tmp_path / "t.csv")


def edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def test_round_trip_keeps_meta_rows_and_bytes(tmp_path, tiny_space):
    table = random_table(tiny_space)
    path = table.write(tmp_path / "sub" / "t.csv")
    back = LatencyTable.read(path)
    assert back.meta == table.meta
    assert list(back.rows.columns) == list(COLUMNS)
    np.testing.assert_allclose(back.rows.latency_ms, table.rows.latency_ms, rtol=1e-5)
    assert back.specs() == table.specs() == tiny_space.all_op_specs()
    assert back.to_text() == path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["t.csv"]  # no temporary file left behind


def test_a_file_without_the_enhance_column_reads_as_plain_blocks(table_file):
    text = table_file.read_text()
    new = LatencyTable.read(table_file)
    drop = COLUMNS.index("enhance")
    lines = [
        line if line.startswith("#") else ",".join(f for i, f in enumerate(line.split(",")) if i != drop)
        for line in text.splitlines()
    ]
    assert ",enhance," not in "\n".join(lines)
    table_file.write_text("\n".join(lines) + "\n")
    old = LatencyTable.read(table_file)
    assert (old.rows["enhance"] == 0).all()
    assert old.rows.equals(new.rows)


def test_header_lists_may_be_repeated_or_inline(table_file):
    text = table_file.read_text()
    assert "# aliases: [td]" in text
    assert text.count("# sources: ") == 2
    edit(table_file, "# aliases: [td]", "# aliases: td\n# aliases: other")
    assert LatencyTable.read(table_file).meta.aliases == ["td", "other"]


def test_extra_header_keys_survive(tmp_path, tiny_space):
    table = random_table(tiny_space)
    table.meta = table_meta(tiny_space, site="box-1", points=[{"a": 1}, {"a": 2}])
    back = LatencyTable.read(table.write(tmp_path / "t.csv"))
    assert back.meta.site == "box-1" and back.meta.points == [{"a": 1}, {"a": 2}]


def test_a_measured_tables_host_round_trips(tmp_path, tiny_space):
    host = Host(
        name="Some CPU",
        vendor="GenuineIntel",
        family="6",
        model="143",
        stepping="8",
        features=("avx2", "avx512f", "amx_tile"),
        logical_cores=8,
        os="Linux 6.1",
        machine="x86_64",
    )
    table = random_table(tiny_space, host=host, host_fingerprint=host.fingerprint)
    text = table.to_text()
    assert "# host: {name: Some CPU, vendor: GenuineIntel, family: '6'" in text
    assert f"# host_fingerprint: {host.fingerprint}\n" in text
    back = LatencyTable.read(table.write(tmp_path / "t.csv"))
    assert back.meta.host == host and back.meta.host_fingerprint == host.fingerprint


def test_a_table_without_host_writes_no_host_lines(tiny_space):
    text = random_table(tiny_space, provenance="estimated").to_text()
    assert "host" not in text


def test_a_bad_host_record_names_the_key(table_file):
    edit(table_file, "# provenance: measured", "# provenance: measured\n# host: {vendor: x}")
    with pytest.raises(QuadnasError, match="header key 'host' lacks 'name'"):
        LatencyTable.read(table_file)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("# device: test-device\n", "", "header lacks key 'device'"),
        ("# provenance: measured", "# provenance: guessed", "header key 'provenance'"),
        ("# batch: 1", "# batch: one", "header key 'batch'"),
        ("# threads: 1", "# threads: 1\nthis is no header", "header line after the first CSV line"),
        ("# batch: 1", "# batch 1", "must read '# key: value'"),
        ("# calibration: {a: 1.1", "# calibration: {a: -1", "header key 'calibration.a'"),
    ],
)
def test_header_errors(table_file, old, new, expected):
    with pytest.raises(QuadnasError, match="t.csv") as err:
        LatencyTable.read(edit(table_file, old, new))
    assert expected in str(err.value)


def _first_row(path: Path) -> str:
    return next(line for line in path.read_text().splitlines() if line.startswith("downsample"))


def _set(row: str, column: str, value: str) -> str:
    """`row` with `column`'s field replaced by `value`."""
    fields = row.split(",")
    fields[COLUMNS.index(column)] = value
    return ",".join(fields)


@pytest.mark.parametrize(
    "mangle, expected",
    [
        (lambda row: row + ",7,8", "corrupted CSV"),
        (lambda row: ",".join(row.split(",")[:5]), f"corrupted CSV line (5 fields, expected {len(COLUMNS)})"),
        (lambda row: _set(row, "latency_ms", ""), "empty 'latency_ms'"),
        (lambda row: _set(row, "latency_ms", "fast"), "'latency_ms' is 'fast'"),
        (lambda row: _set(row, "latency_ms", "-1.5"), "negative latency_ms"),
        (lambda row: _set(row, "latency_ms", "nan"), "empty 'latency_ms'"),
        (lambda row: _set(row, "cin", "2.5"), "'cin' is"),
        (lambda row: row + "\n" + row, "duplicate row for op spec 'downsample in="),
    ],
)
def test_row_errors(table_file, mangle, expected):
    row = _first_row(table_file)
    edit(table_file, row, mangle(row))
    with pytest.raises(QuadnasError, match="t.csv") as err:
        LatencyTable.read(table_file)
    assert expected in str(err.value)


def test_error_names_the_file_line(table_file):
    row = _first_row(table_file)
    lineno = table_file.read_text().splitlines().index(row) + 1
    edit(table_file, row, row.replace(",20", ",-20"))
    with pytest.raises(QuadnasError, match=f"line {lineno}: negative runs"):
        LatencyTable.read(table_file)


def test_wrong_csv_columns(table_file):
    edit(table_file, "latency_ms,p10_ms", "median_ms,p10_ms")
    with pytest.raises(QuadnasError, match="missing column.*latency_ms"):
        LatencyTable.read(table_file)


@pytest.mark.parametrize(
    "content, expected",
    [
        (bytes(range(256)), "is not UTF-8 text"),
        ("# device: café\n".encode("latin-1"), "is not UTF-8 text"),
        (b"name,value\nx,1\n", "is not a quadnas latency table"),
    ],
)
def test_unreadable_files_are_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "junk.csv"
    path.write_bytes(content)
    with pytest.raises(QuadnasError, match=expected) as err:
        LatencyTable.read(path)
    assert "junk.csv" in str(err.value) and "\n" not in str(err.value)


def test_unparseable_rows_are_one_line_errors(table_file):
    header = "".join(line + "\n" for line in table_file.read_text().splitlines() if line.startswith("#"))
    table_file.write_text(header + 'op,"unterminated\nstem,1\n')
    with pytest.raises(QuadnasError, match="t.csv: the CSV rows cannot be parsed"):
        LatencyTable.read(table_file)


def test_a_byte_order_mark_is_read(table_file):
    table_file.write_bytes(b"\xef\xbb\xbf" + table_file.read_bytes())
    assert LatencyTable.read(table_file).meta.device == "test-device"


def test_missing_file_and_empty_body(tmp_path, table_file):
    with pytest.raises(QuadnasError, match="does not exist"):
        LatencyTable.read(tmp_path / "nope.csv")
    header = "".join(line + "\n" for line in table_file.read_text().splitlines() if line.startswith("#"))
    table_file.write_text(header)
    with pytest.raises(QuadnasError, match="no CSV header row"):
        LatencyTable.read(table_file)


def test_lookup_and_missing_specs_error(tiny_space):
    specs = tiny_space.all_op_specs()
    table = random_table(tiny_space, specs[1:])
    assert table.missing(specs + specs) == [specs[0]]
    np.testing.assert_allclose(table.lookup(specs[1:3]), table.rows.latency_ms.iloc[:2])
    with pytest.raises(QuadnasError) as err:
        table.lookup(specs)
    message = str(err.value)
    assert str(specs[0]) in message and "1 op spec" in message
    assert "`quadnas profile --name test-device`" in message


def test_missing_error_names_space_and_table_file(tmp_path, tiny_space):
    specs = tiny_space.all_op_specs()
    table = random_table(tiny_space, specs[:-3])
    table.write(tmp_path / "laptop.csv")
    with pytest.raises(QuadnasError, match=r"--space tiny.yaml --name laptop") as err:
        table.check_covers(specs, space="tiny.yaml")
    assert all(str(s) in str(err.value) for s in specs[-3:])


def test_a_missing_row_in_an_estimate_says_how_to_get_estimates_not_to_profile_this_pc(tiny_space):
    specs = tiny_space.all_op_specs()
    table = random_table(tiny_space, specs[:-1], provenance="estimated", device="myriad-x")
    with pytest.raises(QuadnasError) as err:
        table.check_covers(specs, space="tiny.yaml")
    message = str(err.value)
    assert "is an estimate" in message and "--name" not in message
    assert "quadnas profile estimate --space tiny.yaml --out DIR" in message
    assert "`quadnas profile kit --space tiny.yaml --out kit/`" in message


def test_upsert_with_rows_merged(tiny_space):
    a, b = tiny_space.all_op_specs()[:2]
    table = random_table(tiny_space, [a])
    table.upsert(a, latency_ms=9.0, p10_ms=8.0, p90_ms=10.0, runs=3)
    assert len(table) == 1 and table.lookup([a])[0] == 9.0
    grown = table.with_rows([{**b.as_row(), "latency_ms": 2.0, "p10_ms": 1.0, "p90_ms": 3.0, "runs": 5}])
    assert len(table) == 1 and len(grown) == 2
    other = random_table(tiny_space, [a], seed=5)
    merged = grown.merged(other)
    assert merged.lookup([a, b]).tolist() == [other.lookup([a])[0], 2.0]
    assert merged.meta == grown.meta


def test_upsert_rejects_negative(tiny_space):
    table = random_table(tiny_space, [])
    with pytest.raises(QuadnasError, match="negative latency_ms"):
        table.upsert(tiny_space.all_op_specs()[0], latency_ms=-1.0, p10_ms=0.0, p90_ms=0.0, runs=1)

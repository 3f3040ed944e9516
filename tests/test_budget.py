import pytest

from quadnas.errors import QuadnasError
from quadnas.latency.budget import parse_budget


@pytest.mark.parametrize(
    "text, ms",
    [
        ("30ms", 30.0),
        ("0.03s", 30.0),
        ("500us", 0.5),
        (" 3 MS ", 3.0),
        ("2.5µs", 0.0025),
        ("500μs", 0.5),
        ("500ΜS", 0.5),
    ],
)
def test_budgets_with_units(text, ms):
    assert parse_budget(text) == pytest.approx(ms)


@pytest.mark.parametrize(
    "text, message",
    [
        ("30", "has no unit"),
        ("-5ms", "must be positive"),
        ("0ms", "must be positive"),
        ("fast", "is not a latency"),
        ("30 kg", "is not a latency"),
    ],
)
def test_bad_budgets(text, message):
    with pytest.raises(QuadnasError, match=message):
        parse_budget(text)

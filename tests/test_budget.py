import numpy as np
import pytest

from quadnas.errors import QuadnasError
from quadnas.latency.budget import Budget


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
    assert Budget.parse(text).ms == pytest.approx(ms)


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
        Budget.parse(text)


def test_one_budget_in_any_unit_is_one_value_with_one_text():
    assert Budget.parse("0.03s") == Budget.parse("30ms") == Budget.parse("30000us")
    assert str(Budget.parse("0.03s")) == "30ms" and str(Budget.parse("500us")) == "0.5ms"


def test_a_budget_admits_latencies_up_to_itself():
    budget = Budget.parse("30ms")
    assert budget.admits(30.0) and not budget.admits(30.001)
    assert budget.admits_many(np.array([29.0, 30.0, 31.0])).tolist() == [True, True, False]
    assert budget.share(15.0) == 0.5 and budget.widened(10).ms == pytest.approx(33.0)

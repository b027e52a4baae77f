"""apply's default --parallelism follows --max-qps."""

from __future__ import annotations

import pytest

from dingsync.options import parallelism_for


@pytest.mark.parametrize(
    ("max_qps", "expected"),
    [(20, 8), (10, 8), (21, 9), (100, 40), (160, 64), (1000, 64), (0, 8), (0.5, 8)],
)
def test_parallelism_keeps_two_apis_at_the_cap(max_qps: float, expected: int) -> None:
    assert parallelism_for(max_qps) == expected

"""The textbook download by signal level (TR 36.942's attenuated Shannon bound)."""

from __future__ import annotations

import math

import pytest

from coverage.classify.throughput import (
    CELL_LOAD,
    SHANNON_ALPHA,
    SHANNON_MAX_BPS_HZ,
    download_mbps,
    slow_levels_dbm,
)
from coverage.model.observations import NO_SERVICE_DBM


@pytest.mark.parametrize("tech", ["3G", "4G"])
def test_the_slow_level_is_where_the_download_reaches_the_threshold(tech):
    level = slow_levels_dbm(3.0)[tech]
    assert download_mbps(level, tech) == pytest.approx(3.0)
    assert download_mbps(level - 1, tech) < 3.0 < download_mbps(level + 1, tech)


def test_the_download_is_capped_at_the_highest_code_rate():
    peak = SHANNON_ALPHA * 9.0 * SHANNON_MAX_BPS_HZ * (1 - CELL_LOAD)
    assert download_mbps(-40.0, "4G") == pytest.approx(peak)
    assert download_mbps(-40.0, "4G") == download_mbps(-60.0, "4G")


def test_textbook_levels_at_five_mbps():
    # 4G: 5 Mbps at about 4 dB of SINR, -116 dBm of RSRP; 3G: HSPA peaks at 5.07 Mbps
    got = slow_levels_dbm(5.0)
    assert got["4G"] == pytest.approx(-116.1, abs=0.1)
    assert got["3G"] == pytest.approx(-93.3, abs=0.1)


def test_a_speed_no_code_reaches_is_slow_everywhere_and_no_level_under_the_handover():
    assert math.isinf(slow_levels_dbm(6.0)["3G"])
    assert slow_levels_dbm(0.01)["4G"] == NO_SERVICE_DBM["4G"]

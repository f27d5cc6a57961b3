"""Physics of the propagation kernels against textbook values and limits."""

from __future__ import annotations

import numpy as np
import pytest

from coverage import radio


def test_free_space_matches_friis():
    # 20 log10(4 pi d f / c) at 1 km, 1800 MHz
    d, f = 1000.0, 1800e6
    expected = 20 * np.log10(4 * np.pi * d * f / radio.SPEED_OF_LIGHT_M_S)
    assert radio.free_space_loss_db(d, 1800.0) == pytest.approx(expected, abs=0.02)
    # +6 dB per doubling of distance
    assert (radio.free_space_loss_db(2000.0, 900.0) - radio.free_space_loss_db(1000.0, 900.0)
            == pytest.approx(6.02, abs=0.01))


def test_hata_urban_reference_value_and_slope():
    # Okumura-Hata, 900 MHz, hb = 30 m, hm = 1.5 m, medium city, 5 km: 151.0 dB
    assert radio.hata_loss_db(5000.0, 900.0, 30.0, environment="urban") == pytest.approx(
        151.0, abs=0.1)
    # distance exponent (44.9 - 6.55 log hb) dB per decade
    d1, d10 = radio.hata_loss_db([1000.0, 10_000.0], 1800.0, 30.0, environment="urban")
    assert d10 - d1 == pytest.approx(44.9 - 6.55 * np.log10(30.0), abs=0.01)


def test_hata_environments_and_heights_order_losses():
    args = (8000.0, 1800.0, 30.0)
    urban = radio.hata_loss_db(*args, environment="urban")
    suburban = radio.hata_loss_db(*args, environment="suburban")
    rural = radio.hata_loss_db(*args, environment="rural")
    assert urban > suburban > rural
    assert radio.hata_loss_db(8000.0, 1800.0, 60.0) < radio.hata_loss_db(8000.0, 1800.0, 30.0)
    with pytest.raises(ValueError, match="environment"):
        radio.hata_loss_db(*args, environment="forest")


def test_hata_never_below_free_space():
    d = np.array([10.0, 50.0, 200.0])
    assert np.all(radio.hata_loss_db(d, 900.0, 200.0) >= radio.free_space_loss_db(d, 900.0))


def test_knife_edge_itu_values():
    # ITU-R P.526: J(0) = 6.0 dB; J(v) = 0 for v <= -0.78; about 13.5 dB at v = 1
    assert radio.knife_edge_loss_db(0.0) == pytest.approx(6.03, abs=0.05)
    assert radio.knife_edge_loss_db(-1.0) == 0.0
    assert radio.knife_edge_loss_db(1.0) == pytest.approx(13.9, abs=0.2)
    v = np.linspace(-0.7, 5, 50)
    assert np.all(np.diff(radio.knife_edge_loss_db(v)) > 0)


def test_bullington_clear_path_has_no_loss_and_ridges_add_loss():
    d = np.array([10_000.0])
    flat = np.zeros((1, 30))
    assert radio.bullington_loss_db(d, flat, 100.0, 100.0, 900.0)[0] == pytest.approx(0.0)
    low = flat.copy()
    low[0, 15] = 92.0  # inside the first Fresnel zone, below the line of sight
    high = flat.copy()
    high[0, 15] = 300.0
    l_low = radio.bullington_loss_db(d, low, 100.0, 100.0, 900.0)[0]
    l_high = radio.bullington_loss_db(d, high, 100.0, 100.0, 900.0)[0]
    assert 0 < l_low < l_high
    # Higher frequencies diffract less well.
    assert radio.bullington_loss_db(d, high, 100.0, 100.0, 2100.0)[0] > l_high


def test_bullington_single_edge_equals_knife_edge_plus_earth_term():
    d, h = 10_000.0, 30.0
    terrain = np.array([[0.0, h, 0.0]])
    lam = radio.SPEED_OF_LIGHT_M_S / 900e6
    bulge = 5000.0 * 5000.0 / (2 * 4 / 3 * radio.EARTH_RADIUS_M)
    v = (h + bulge - 10.0) * np.sqrt(2 * d / (lam * 5000.0 * 5000.0))
    j = radio.knife_edge_loss_db(v)
    expected = j + (1 - np.exp(-j / 6)) * (10 + 0.02 * d / 1000)
    got = radio.bullington_loss_db([d], terrain, 10.0, 10.0, 900.0)[0]
    assert got == pytest.approx(expected, rel=1e-9)


def test_sector_pattern():
    assert radio.sector_gain_db(0.0, 0.0, 65.0) == 0.0
    assert radio.sector_gain_db(32.5, 0.0, 65.0) == pytest.approx(-3.0)
    assert radio.sector_gain_db(180.0, 0.0, 65.0) == pytest.approx(-25.0)
    # bearings wrap around north
    assert radio.sector_gain_db(350.0, 10.0, 65.0) == pytest.approx(
        radio.sector_gain_db(30.0, 10.0, 65.0))
    assert radio.sector_gain_db(123.0, np.nan, 65.0) == 0.0

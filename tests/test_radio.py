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


def test_vertical_pattern_of_tr_36_814():
    assert radio.vertical_gain_db(4.0, 4.0, 10.0) == 0.0
    assert radio.vertical_gain_db(9.0, 4.0, 10.0) == pytest.approx(-3.0)
    assert radio.vertical_gain_db(-1.0, 4.0, 10.0) == pytest.approx(-3.0)
    assert radio.vertical_gain_db(60.0, 4.0, 10.0) == pytest.approx(-20.0)  # side lobes
    # horizontal plus vertical, capped at the front-to-back ratio; omni: vertical alone
    assert radio.combined_gain_db(-3.0, -3.0) == pytest.approx(-6.0)
    assert radio.combined_gain_db(-25.0, -20.0) == pytest.approx(-25.0)
    assert radio.combined_gain_db(None, -4.0) == pytest.approx(-4.0)


def test_hata_hand_computed_at_1_and_10_km():
    # Okumura-Hata, 900 MHz, hb = 30 m, hm = 1.5 m, small/medium city, by hand:
    # 69.55 + 26.16 * 2.95424 - 13.82 * 1.47712 - a(hm) with
    # a(hm) = (1.1 * 2.95424 - 0.7) * 1.5 - (1.56 * 2.95424 - 0.8) = 0.0159
    # -> 126.40 dB at 1 km; the slope 44.9 - 6.55 * 1.47712 = 35.22 dB/decade -> 161.63 at 10 km
    l1, l10 = radio.hata_loss_db([1000.0, 10_000.0], 900.0, 30.0, environment="urban")
    assert l1 == pytest.approx(126.40, abs=0.01)
    assert l10 == pytest.approx(161.63, abs=0.01)
    # COST-231 Hata at 1800 MHz, 1 km: 46.3 + 33.9 * 3.25527 - 20.414 - 0.0430 = 136.20 dB
    assert radio.hata_loss_db(1000.0, 1800.0, 30.0, environment="urban") == pytest.approx(
        136.20, abs=0.01)
    # rural (open area) at 10 km, 900 MHz: 161.63 - (4.78 * 2.95424^2 - 18.33 * 2.95424
    # + 40.94) = 161.63 - (41.718 - 54.151 + 40.94) = 161.63 - 28.51 = 133.12 dB
    assert radio.hata_loss_db(10_000.0, 900.0, 30.0) == pytest.approx(133.12, abs=0.02)


def test_knife_edge_of_known_geometry():
    # An edge 10 m above the line of sight halfway along a 2 km path at 900 MHz:
    # lambda = 0.33310 m, nu = 10 * sqrt(2 * 2000 / (0.3331 * 1000 * 1000)) = 1.0958,
    # J = 6.9 + 20 log10(sqrt(0.9958^2 + 1) + 0.9958) = 14.53 dB (ITU-R P.526 eq. 31)
    assert radio.knife_edge_loss_db(1.0958) == pytest.approx(14.53, abs=0.01)
    # The same edge as a terrain profile on a flat earth (k -> infinity): Bullington finds
    # it, and adds the recommendation's (1 - exp(-J/6)) (10 + 0.02 d_km) term.
    terrain = np.array([[0.0, 10.0 + 25.0, 0.0]])
    got = radio.bullington_loss_db([2000.0], terrain, 25.0, 25.0, 900.0, k_factor=1e12)[0]
    j = 14.53
    assert got == pytest.approx(j + (1 - np.exp(-j / 6)) * (10 + 0.04), abs=0.02)


def test_sector_pattern_at_0_65_180_degrees():
    # 3GPP TR 36.814: -min(12 (theta / 65)^2, 25)
    assert radio.sector_gain_db(0.0, 0.0, 65.0) == 0.0
    assert radio.sector_gain_db(65.0, 0.0, 65.0) == pytest.approx(-12.0)
    assert radio.sector_gain_db(-65.0, 0.0, 65.0) == pytest.approx(-12.0)
    assert radio.sector_gain_db(180.0, 0.0, 65.0) == pytest.approx(-25.0)


def _rough_profiles(rays, n, seed=3):
    rng = np.random.default_rng(seed)
    z = np.cumsum(rng.normal(0, 12.0, (rays, n)), axis=1)
    kernel = np.ones(5) / 5
    return 400.0 + np.apply_along_axis(lambda r: np.convolve(r, kernel, "same"), 1, z)


def test_sweep_matches_per_path_bullington():
    ground = _rough_profiles(60, 80)
    tx = ground[:, 0] + 30.0
    nu = radio.ray_sweep_nu_root_m(ground, 100.0, tx, rx_height_m=1.5)
    assert np.all(np.isneginf(nu[:, :2]))
    ref = np.full_like(nu, -np.inf)
    obstructed = np.zeros(nu.shape, bool)
    for j in range(2, 80):
        d = np.full(60, j * 100.0)
        ref[:, j] = radio.bullington_nu_root_m(d, ground[:, 1:j], tx, ground[:, j] + 1.5)
        # the profile cuts the direct path somewhere
        frac = np.arange(1, j) / j
        bulge = frac * (1 - frac) * d[:, None] ** 2 / (2 * 4 / 3 * radio.EARTH_RADIUS_M)
        line = tx[:, None] * (1 - frac) + (ground[:, j] + 1.5)[:, None] * frac
        obstructed[:, j] = np.any(ground[:, 1:j] + bulge > line, axis=1)
    # obstructed paths: Bullington's edge exactly
    np.testing.assert_allclose(nu[obstructed], ref[obstructed], rtol=1e-9, atol=1e-9)
    # line of sight: two tangent points instead of every sample, never more intrusive
    clear = ~obstructed
    clear[:, :2] = False
    assert np.all(nu[clear] <= ref[clear] + 1e-9)
    lam = radio.SPEED_OF_LIGHT_M_S / 1800e6
    loss = radio.knife_edge_loss_db(nu[clear] / np.sqrt(lam))
    loss_ref = radio.knife_edge_loss_db(ref[clear] / np.sqrt(lam))
    assert np.sqrt(np.mean((loss - loss_ref) ** 2)) < 0.5


def test_ray_sweep_evaluates_receivers_between_samples_at_their_own_height():
    ground = _rough_profiles(20, 60, seed=4)
    tx = ground[:, 0] + 25.0
    sweep = radio.RaySweep.build(ground, 100.0, tx)
    rng = np.random.default_rng(0)
    ray = rng.integers(0, 20, 200)
    dist = rng.uniform(150.0, 5800.0, 200)
    rx = rng.uniform(300.0, 700.0, 200)
    nu = sweep.nu_root_m(ray, dist, rx)
    for i in range(200):
        k = round(dist[i] / 100.0) - 1
        # the same samples as a profile (they are not equally spaced along this path, so
        # compare on obstructed paths with an explicit computation of the edge)
        d_i = np.arange(1, k + 1) * 100.0
        h = ground[ray[i], 1:k + 1] + d_i * (dist[i] - d_i) / (2 * 4 / 3 * radio.EARTH_RADIUS_M)
        s_tim = np.max((h - tx[ray[i]]) / d_i)
        s_rim = np.max((h - rx[i]) / (dist[i] - d_i))
        if s_tim < (rx[i] - tx[ray[i]]) / dist[i]:
            continue  # line of sight
        d_bp = (rx[i] - tx[ray[i]] + s_rim * dist[i]) / (s_tim + s_rim)
        h_bp = tx[ray[i]] + s_tim * d_bp - (tx[ray[i]] * (dist[i] - d_bp)
                                            + rx[i] * d_bp) / dist[i]
        expected = h_bp * np.sqrt(2 * dist[i] / (d_bp * (dist[i] - d_bp)))
        assert nu[i] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert np.isneginf(sweep.nu_root_m(np.array([0]), np.array([120.0]), np.array([500.0])))[0]


def _p526_smooth_earth_db(d_km, h1_m, h2_m, f_mhz, k=4 / 3):
    """ITU-R P.526-15 §3.1.1.2 in its own units (MHz, km), beta = 1, by hand."""
    a_km = k * 6371.0
    x = 2.188 * f_mhz ** (1 / 3) * a_km ** (-2 / 3) * d_km
    f_x = 11 + 10 * np.log10(x) - 17.6 * x

    def g(h):
        y = 9.575e-3 * f_mhz ** (2 / 3) * a_km ** (-1 / 3) * h
        return 17.6 * np.sqrt(y - 1.1) - 5 * np.log10(y - 1.1) - 8 if y > 2 else (
            20 * np.log10(y + 0.1 * y**3))

    return -(f_x + g(h1_m) + g(h2_m))


def test_spherical_earth_loss_beyond_the_horizon_by_hand():
    # 60 km at 900 MHz between antennas 30 m and 10 m high: horizon at 35.6 km.
    # X = 3.05, F = -37.8 dB; Y1 = 1.31, G1 = 3.7 dB; Y2 = 0.44, G2 = -7.0 dB: 41.0 dB
    expected = _p526_smooth_earth_db(60.0, 30.0, 10.0, 900.0)
    assert expected == pytest.approx(41.0, abs=0.05)
    got = float(radio.spherical_earth_loss_db(60_000.0, 30.0, 10.0, 900.0))
    assert got == pytest.approx(expected, abs=0.05)  # beta = 0.9998 for land, vertical
    # and in line of sight with room to spare, none
    assert float(radio.spherical_earth_loss_db(2_000.0, 30.0, 10.0, 900.0)) == 0.0


def test_delta_bullington_over_smooth_earth_is_the_spherical_earth_loss():
    # a profile of flat ground (the bulge is the only obstacle), 60 km, 3,000 samples
    d, terrain = 60_000.0, np.zeros((1, 2999))
    bulla = float(radio.bullington_loss_db([d], terrain, 30.0, 10.0, 900.0)[0])
    delta = float(radio.delta_bullington_loss_db([d], terrain, 30.0, 10.0, 900.0,
                                                 tx_ground_m=0.0, rx_ground_m=0.0)[0])
    sph = float(radio.spherical_earth_loss_db(d, 30.0, 10.0, 900.0))
    assert bulla < sph - 15  # a single edge is far too kind to the rounded earth
    assert delta == pytest.approx(sph, abs=0.01)


def test_smooth_bullington_in_closed_form_equals_the_sampled_smooth_profile():
    # P.1812-6 Attachment 4 against Bullington on a profile of zero heights, 20 m apart
    for d, h_t, h_r in [(60_000.0, 30.0, 10.0), (3_000.0, 40.0, 1.5), (10_000.0, 12.5, 12.5),
                        (20_000.0, 50.0, 1.5)]:
        terrain = np.zeros((1, int(d / 20) - 1))
        sampled = float(radio.bullington_loss_db([d], terrain, h_t, h_r, 900.0)[0])
        closed = float(radio.smooth_bullington_loss_db(d, h_t, h_r, 900.0))
        assert sampled > 0.5 and closed == pytest.approx(sampled, abs=0.02), d


def test_smooth_earth_heights_of_a_single_ridge_by_hand():
    # 0, 0, 30, 0, 0 m at 0, 2.5, 5, 7.5, 10 km: the least-squares line is flat at 7.5 m
    # (v1 = 150 km m, v2 = 2250 km2 m); the ridge is 20 m over the 10 m antennas' line,
    # with horizon angles 4 m/km each side, so each end is lowered by 10 m; both ends
    # under the ground, where the recommendation keeps them
    std, srd = radio.smooth_earth_heights_m([10_000.0], np.array([[0.0, 30.0, 0.0]]),
                                            0.0, 0.0, 10.0, 10.0)
    assert (float(std[0]), float(srd[0])) == pytest.approx((-2.5, -2.5))
    # antennas 100 m up: no obstruction; the line at 7.5 m is capped at the ground
    std, srd = radio.smooth_earth_heights_m([10_000.0], np.array([[0.0, 30.0, 0.0]]),
                                            0.0, 0.0, 100.0, 100.0)
    assert (float(std[0]), float(srd[0])) == (0.0, 0.0)
    # a slope: the line through it, whatever the antennas
    std, srd = radio.smooth_earth_heights_m([4_000.0], np.array([[10.0, 20.0, 30.0]]),
                                            0.0, 40.0, 500.0, 500.0)
    assert (float(std[0]), float(srd[0])) == pytest.approx((0.0, 40.0))


def test_published_p1812_validation_paths():
    """Two paths of the ITU-R P.1812 validation examples (SG3; as distributed with the
    recommendation's reference implementation): their smooth-earth heights, and their
    spherical-earth and smooth Bullington losses."""
    # "b2iseac rural land 10 km": Kippure - Dalton, 27 points, antennas 60 m and 7 m
    d_km = np.array([0, 0.2, 0.4, 0.6, 0.8, 1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 3.5, 4, 4.5,
                     5, 5.5, 6, 6.5, 7, 7.5, 8, 8.5, 9, 9.5, 10])
    h_m = np.array([754.4, 754.4, 729.9, 685.3, 634.3, 610.3, 601, 591.7, 530.4, 455.9,
                    385.1, 373.4, 358.5, 309, 316.6, 335.3, 408.1, 532.7, 556.3, 556.3,
                    488.2, 367.7, 304.8, 292.6, 238.3, 265.1, 250.3])
    std, srd = radio.smooth_earth_heights_m(
        [10_000.0], h_m[None, 1:-1], h_m[0], h_m[-1], h_m[0] + 60.0, h_m[-1] + 7.0,
        sample_distance_m=d_km[1:-1] * 1000.0)
    assert float(std[0]) == pytest.approx(537.65013, abs=1e-4)  # h_std, eq. 89
    assert float(srd[0]) == pytest.approx(206.91287, abs=1e-4)  # h_srd
    # "rburg rural, no clutter": 96.2 km at 98.2 MHz, a_e 8930.78 km, the antennas
    # 44.46 m and 19.08 m over the smooth surface (eq. 37): L_dsph 46.716, L_bulls 22.038
    k = 8930.776786 / 6371.0
    args = (96_200.0, 44.46182993, 19.07975011, 98.2)
    assert float(radio.spherical_earth_loss_db(*args, k_factor=k)) == pytest.approx(
        46.71595924, abs=0.01)
    assert float(radio.smooth_bullington_loss_db(*args, k_factor=k)) == pytest.approx(
        22.03839786, abs=0.01)  # closed form (Attachment 4) against the profile's


def test_delta_bullington_on_a_knife_edge_is_bullington_plus_the_smooth_term():
    terrain = np.array([[0.0, 30.0, 0.0]])
    bulla = float(radio.bullington_loss_db([10_000.0], terrain, 10.0, 10.0, 900.0)[0])
    delta = float(radio.delta_bullington_loss_db([10_000.0], terrain, 10.0, 10.0, 900.0,
                                                 tx_ground_m=0.0, rx_ground_m=0.0)[0])
    # antennas 12.5 m over the smooth surface at -2.5 m (above): 10 km is within their
    # 29.1 km horizon, the least clearance 11.0 m under the 15.9 m required
    sph = float(radio.spherical_earth_loss_db(10_000.0, 12.5, 12.5, 900.0))
    bulls = float(radio.smooth_bullington_loss_db(10_000.0, 12.5, 12.5, 900.0))
    assert sph > bulls > 0
    assert delta == pytest.approx(bulla + sph - bulls, abs=1e-9)
    assert delta - bulla == pytest.approx(1.72, abs=0.01)
    # a ridge far above the smooth earth's reach: Bullington's alone
    big = np.array([[0.0, 300.0, 0.0]])
    assert float(radio.delta_bullington_loss_db([4_000.0], big, 10.0, 10.0, 900.0,
                                                tx_ground_m=0.0, rx_ground_m=0.0)[0]) == (
        pytest.approx(float(radio.bullington_loss_db([4_000.0], big, 10.0, 10.0, 900.0)[0])))


def test_sweep_smooth_earth_heights_equal_the_recommendations_on_the_same_samples():
    ground = _rough_profiles(8, 200, seed=5)
    tx = ground[:, 0] + 30.0
    # the sweep takes the obstruction over bulge-corrected heights: compare on a flat earth
    sweep = radio.RaySweep.build(ground, 100.0, tx, k_factor=1e9)
    rng = np.random.default_rng(1)
    checked = 0
    for ray, dist in zip(rng.integers(0, 8, 60), rng.uniform(120.0, 19_500.0, 60),
                         strict=True):
        j = round(dist / 100.0) - 1
        rx_ground = ground[ray, min(j + 1, 199)] + 2.0
        got = sweep.smooth_heights_m(np.array([ray]), np.array([dist]),
                                     np.array([rx_ground + 1.5]), np.array([rx_ground]))
        if j < 1:
            assert (got[0][0], got[1][0]) == (ground[ray, 0], rx_ground)
            continue
        # the recommendation's sums over the profile: site, samples 1..j, the receiver
        d_i = np.r_[np.arange(j + 1) * 100.0, dist]
        h_i = np.r_[ground[ray, :j + 1], rx_ground]
        step = np.diff(d_i)
        v1 = np.sum(step * (h_i[1:] + h_i[:-1]))
        v2 = np.sum(step * (h_i[1:] * (2 * d_i[1:] + d_i[:-1])
                            + h_i[:-1] * (d_i[1:] + 2 * d_i[:-1])))
        h_st, h_sr = (2 * v1 * dist - v2) / dist**2, (v2 - v1 * dist) / dist**2
        inner = d_i[1:-1]
        big_h = h_i[1:-1] - (tx[ray] * (dist - inner) + (rx_ground + 1.5) * inner) / dist
        if big_h.max() > 0:
            a_t, a_r = np.max(big_h / inner), np.max(big_h / (dist - inner))
            h_st -= big_h.max() * a_t / (a_t + a_r)
            h_sr -= big_h.max() * a_r / (a_t + a_r)
            checked += 1
        assert got[0][0] == pytest.approx(min(h_st, ground[ray, 0]), abs=1e-6)
        assert got[1][0] == pytest.approx(min(h_sr, rx_ground), abs=1e-6)
    assert checked > 10


def test_the_effective_height_window_is_p1546s():
    """ITU-R P.1546-6 Annex 5 §3: 3-15 km from the mast on paths of 15 km or more (§3.2),
    0.2 d to d on shorter ones (§3.1.2)."""
    start, end = radio.effective_height_window_m([1000.0, 10_000.0, 15_000.0, 40_000.0])
    np.testing.assert_allclose(start, [200.0, 2000.0, 3000.0, 3000.0])
    np.testing.assert_allclose(end, [1000.0, 10_000.0, 15_000.0, 15_000.0])
    # the samples of the window and the receiver's ground under 15 km; beyond, the
    # samples 3-15 km only (the receiver and the ground past 15 km do not count)
    x = np.arange(1, 200) * 100.0
    g = np.where((x >= 3000.0) & (x <= 15_000.0), 50.0, 900.0)
    assert radio.window_mean_ground_m(x, g, 19_950.0, 0.0) == 50.0
    assert radio.window_mean_ground_m(x[:49], g[:49], 5000.0, 50.0) == pytest.approx(
        (900.0 * 20 + 50.0 * 20 + 50.0) / 41)


def test_the_sweeps_mean_ground_is_the_windows_on_each_profile():
    """Running sums along the rays give each receiver the mean ground of its window over
    the samples before it, as the plain mean over the same profile."""
    ground = _rough_profiles(12, 220, seed=5) * 3.0
    step = 100.0
    sweep = radio.RaySweep.build(ground, step, ground[:, 0] + 30.0)
    rng = np.random.default_rng(2)
    ray = rng.integers(0, 12, 300)
    dist = np.r_[rng.uniform(0.0, 21_800.0, 297), 15_000.0, 50.0, 14_980.0]
    rx_ground = rng.uniform(0.0, 500.0, 300)
    got = sweep.mean_ground_m(ray, dist, rx_ground)
    for i in range(300):
        k = min(round(dist[i] / step) - 1, 219)
        want = radio.window_mean_ground_m(np.arange(1, k + 1) * step, ground[ray[i], 1:k + 1],
                                          dist[i], rx_ground[i])
        assert got[i] == pytest.approx(want, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize(("relief", "higher"), [("flat", None), ("hill", True),
                                                ("valley", False)])
def test_the_effective_height_over_a_plain_a_hill_and_a_valley(relief, higher):
    """Okumura's effective height on a synthetic 20 km profile, 30 m mast: over flat
    ground the mast height; a mast on a 150 m hill over a plain stands higher over the
    plain's mean ground; one in a valley 150 m under the plain stands lower, and is
    clipped to its mast height (as the height above the receiver is)."""
    from coverage.params import ModelParams

    x = np.arange(201) * 100.0
    plain = np.full(x.size, 200.0)
    shape = 150.0 * np.exp(-((x / 1500.0) ** 2))
    ground = {"flat": plain, "hill": plain + shape, "valley": plain - shape}[relief][None, :]
    tx_alt = ground[0, 0] + 30.0
    sweep = radio.RaySweep.build(ground, 100.0, tx_alt)
    dist = np.array([5_000.0, 12_000.0, 19_000.0])
    mean = sweep.mean_ground_m(np.zeros(3, np.int64), dist, ground[0, [50, 120, 190]])
    params = ModelParams(hata_height="effective")
    h = params.hata_tx_height_m(tx_alt, ground[0, [50, 120, 190]], 30.0, mean)
    raw = tx_alt - mean
    if higher is None:
        np.testing.assert_allclose(h, 30.0)
    elif higher:
        assert np.all(h > 150.0) and np.all(h < 181.0)
        np.testing.assert_allclose(h, raw)
    else:
        assert np.all(raw < 30.0) and np.all(raw > -121.0)
        np.testing.assert_allclose(h, 30.0)
    # without a profile (no DEM) the mast height
    np.testing.assert_allclose(params.hata_tx_height_m(tx_alt, ground[0, [50]], 30.0), 30.0)


def test_docstring_examples_run():
    import doctest

    from coverage import calibrate
    from coverage.radio import antenna, diffraction, pathloss

    for module in (pathloss, antenna, diffraction, calibrate):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0

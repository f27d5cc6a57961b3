r"""The Irregular Terrain Model over the model's radial sweep (``path_loss = "itm"``).

:func:`coverage.itm.itm_p2p` evaluates ITM on whole profiles; a coverage grid has tens of
millions of cell paths, and each cell's profile is the start of the profile of the cells
beyond it on the same ray. :class:`ItmRays` keeps, for a batch of rays (those of
:func:`coverage.model.sweep.sweep_rays`), what ITM's point-to-point preparation (its
``qlrpfl``) needs for any receiver on a ray:

- the ground along each ray with its prefix sums (:class:`coverage.itm._Profiles`), so
  that the mean path height and the least-squares lines of the effective heights cost
  O(1) per cell;
- a :class:`coverage.radio.RaySweep` at ITM's effective earth radius at sea level, whose
  running horizon and upper-hull pointers give both terminals' horizons in O(1) amortised
  work per cell (each cell's own radius then gives their angles);
- a table of the terrain irregularity :math:`\Delta h` along every ``DELTA_H_RAY_STEP``-th
  ray of each site, at the distances of :data:`DELTA_H_SAMPLES` (exact ITM ``dlthx`` of the
  profile up to that sample); a cell takes the value of the table's ray at or before its
  own, interpolated linearly in distance.

A cell at distance :math:`D` reads the samples ``0 .. J-1`` of its nearest ray,
:math:`J = \max(\mathrm{round}(D / \mathrm{step}), 2)`, then its own ground as sample
``J``: an ITM profile of ``J`` steps, the ray's own geometry (its length :math:`J\,
\mathrm{step}` within half a step of :math:`D`; the free-space loss is taken at
:math:`D`). Everything else is ITM's
algorithm unchanged (:func:`coverage.itm.effective_heights`,
:func:`coverage.itm.longley_rice`, :func:`coverage.itm.variability_db`). The
approximations, all measured against :func:`coverage.itm.itm_p2p` on the straight profile
to each cell by :func:`coverage.model.reference.predict_reference`
(``benchmarks/bench_model.py --path-loss itm``): the ray's samples instead of the straight
line (at most half a ray spacing aside, as the Bullington sweep) and its length rounded to
the step, the horizons searched at the effective earth radius of sea level (each cell's
own radius then gives its angles), and :math:`\Delta h` shared by neighbouring rays and
interpolated between table distances.
"""

from __future__ import annotations

import logging

import numpy as np

from .. import itm, radio
from ..params import ModelParams

__all__ = ["DELTA_H_RAY_STEP", "DELTA_H_SAMPLES", "ItmRays", "itm_flat_loss_db"]

log = logging.getLogger(__name__)

#: Sample indices along a ray where the terrain irregularity is tabulated (about
#: sqrt(2) apart beyond 8; ITM's own resampling uses 35 to 245 points per path).
DELTA_H_SAMPLES = np.unique(np.concatenate([
    np.arange(2, 9), np.rint(8 * np.sqrt(2.0) ** np.arange(1, 20)).astype(int)]))
#: One ray in this many carries a terrain-irregularity table.
DELTA_H_RAY_STEP = 8


class ItmRays:
    """ITM's path preparation for receivers anywhere on a batch of rays.

    Parameters
    ----------
    ground_m : ndarray, shape (rays, n)
        Ground heights along each ray every ``step_m`` from its site (column 0), metres.
    step_m : float
        Distance between samples, metres.
    mast_m : ndarray, shape (rays,)
        Antenna height above ground of each ray's site, metres.
    unit_start : ndarray of int, shape (rays,)
        First ray of each ray's site (the rays of a site are consecutive).
    lengths : ndarray of int, shape (rays,)
        Samples each ray holds (receivers on it are nearer than ``lengths * step_m``).
    params : ModelParams
        ``rx_height_m`` and the ``itm_*`` settings.
    """

    def __init__(self, ground_m, step_m, mast_m, unit_start, lengths, params: ModelParams):
        self.ground = np.ascontiguousarray(ground_m, dtype=float)
        self.step = float(step_m)
        self.mast = np.asarray(mast_m, float)
        self.unit_start = np.asarray(unit_start, np.int64)
        self.lengths = np.asarray(lengths, np.int64)
        self.params = params
        self.h_rx = params.rx_height_m
        self.flags = 0  # ITM warning flags raised by the paths evaluated on these rays
        rays = self.ground.shape[0]
        # horizons are searched at the effective radius of sea level (whatever the batch,
        # so that a cell's result does not depend on which sites are swept with its own);
        # each cell's own radius then gives its angles
        _, gamma = itm.surface_refractivity(params.itm_refractivity_n0, 0.0)
        self.sweep = radio.RaySweep.build(
            self.ground, self.step, self.ground[:, 0] + self.mast,
            k_factor=1.0 / gamma / radio.EARTH_RADIUS_M, lengths=self.lengths)
        self.profiles = itm._Profiles(self.ground, np.maximum(self.lengths - 1, 0),
                                      np.full(rays, self.step))
        self._delta_h_table()

    @staticmethod
    def table_lengths(lengths: np.ndarray, unit_start: np.ndarray, samples: np.ndarray
                      ) -> np.ndarray:
        """Ray lengths with each table ray swept past the farthest cell reading its table.

        To the next table distance beyond that cell, capped at ``samples`` (the unit's
        samples per ray). A ray of ``L`` samples serves cells at ``jf < L - 0.5`` steps,
        which read the table up to the first distance over ``jf``: the first at or over
        ``L``, at most. Every table entry a cell reads is then computed on the same
        samples whatever the other cells asked for (the sweep is causal), so evaluating a
        few cells gives the levels of the whole grid there
        (:func:`coverage.model.predict.predict_at_cells`; float32 arithmetic on arrays of
        other lengths leaves differences of a few thousandths of a dB).
        """
        rays = np.arange(lengths.size)
        src = unit_start + (rays - unit_start) // DELTA_H_RAY_STEP * DELTA_H_RAY_STEP
        need = np.zeros(lengths.size, np.int64)
        np.maximum.at(need, src, lengths)
        k = np.minimum(np.searchsorted(DELTA_H_SAMPLES, need), DELTA_H_SAMPLES.size - 1)
        table = np.where(need > 0, DELTA_H_SAMPLES[k] + 1, 0)
        return np.minimum(np.maximum(lengths, table), samples)

    def _delta_h_table(self) -> None:
        rays = self.ground.shape[0]
        table_ray = (np.arange(rays) - self.unit_start) % DELTA_H_RAY_STEP == 0
        rows = np.flatnonzero(table_ray & (self.lengths >= 3))
        samples = DELTA_H_SAMPLES
        self.table = np.zeros((rays, samples.size))
        self.table_j = np.tile(samples.astype(float), (rays, 1))
        if rows.size == 0:
            return
        # each table ray's samples, clipped to what it holds (each distinct one once)
        j_all = np.minimum(samples[None, :], self.lengths[rows, None] - 1).ravel()
        r_all = np.repeat(rows, samples.size)
        pairs, back = np.unique(r_all * (samples.max() + 1) + j_all, return_inverse=True)
        r, j = pairs // (samples.max() + 1), pairs % (samples.max() + 1)
        d = j * self.step
        z_rx = self.ground[r, j] + self.h_rx
        i_tx, i_rx = self.sweep.horizon_points(r, j - 1, d, z_rx)
        a_e = self.sweep.k_factor * radio.EARTH_RADIUS_M
        d_hzn = self._horizons(r, j, d, self.step, z_rx, i_tx, i_rx, a_e)[1]
        view = self.profiles.view(r, j, np.full(j.size, self.step))
        d_start = np.minimum(15.0 * self.mast[r], 0.1 * d_hzn[0])
        d_end = d - np.minimum(15.0 * self.h_rx, 0.1 * d_hzn[1])
        dh = itm._delta_h(view, d_start, d_end, many=True)[back].reshape(rows.size,
                                                                          samples.size)
        # every ray reads its table ray (the one at or before it, within its site)
        src = self.unit_start + ((np.arange(rays) - self.unit_start) // DELTA_H_RAY_STEP
                                 ) * DELTA_H_RAY_STEP
        full = np.zeros((rays, samples.size))
        full[rows] = dh
        self.table = full[src]
        jj = np.zeros((rays, samples.size))
        jj[rows] = j_all.reshape(rows.size, samples.size)
        self.table_j = jj[src]

    def _horizons(self, ray, j, d, xi, z_rx, i_tx, i_rx, a_e):
        """ITM's horizon angles and distances from the horizon samples, shape (2, m)."""
        z_tx = self.ground[ray, 0] + self.mast[ray]
        theta = np.empty((2, ray.size))
        d_hzn = np.empty((2, ray.size))
        los = (z_rx - z_tx) / d
        curve = d / (2.0 * a_e)
        d_i = i_tx * xi
        th = (self.ground[ray, i_tx] - z_tx) / d_i - d_i / (2.0 * a_e)
        blocked = th > los - curve
        theta[0] = np.where(blocked, th, los - curve)
        d_hzn[0] = np.where(blocked, d_i, d)
        d_i = d - i_rx * xi
        with np.errstate(divide="ignore", invalid="ignore"):
            th = (self.ground[ray, i_rx] - z_rx) / d_i - d_i / (2.0 * a_e)
        blocked = (i_rx >= 1) & (th > -los - curve)
        theta[1] = np.where(blocked, th, -los - curve)
        d_hzn[1] = np.where(blocked, d_i, d)
        return theta, d_hzn

    def path_parameters(self, ray: np.ndarray, distance_m: np.ndarray,
                        cell_ground_m: np.ndarray) -> dict:
        """ITM's path parameters of receivers at ``distance_m`` on rays ``ray``.

        The receiver stands on ``cell_ground_m`` (its cell's ground), ``rx_height_m``
        above it. Returns the arrays :func:`loss_db` takes.
        """
        ray = np.asarray(ray, np.int64)
        d_true = np.asarray(distance_m, float)
        zc = np.asarray(cell_ground_m, float)
        jf = d_true / self.step
        j = np.minimum(np.maximum(np.rint(jf).astype(np.int64), 2), self.lengths[ray])
        # the profile is the ray's own samples: the receiver at the step after the last
        xi = self.step
        d = j * xi
        view = self.profiles.view(ray, j, np.full(j.size, xi), zc)
        n_s, gamma = itm.surface_refractivity(self.params.itm_refractivity_n0,
                                              view.mean_height())
        a_e = 1.0 / gamma
        z_rx = zc + self.h_rx
        i_tx, i_rx = self.sweep.horizon_points(ray, j - 1, d, z_rx)
        theta, d_hzn = self._horizons(ray, j, d, xi, z_rx, i_tx, i_rx, a_e)
        # terrain irregularity: the table of the ray's table ray, linear in distance
        ns = DELTA_H_SAMPLES.size
        k = np.clip(np.searchsorted(DELTA_H_SAMPLES, jf, side="right") - 1, 0, ns - 2)
        flat = ray * ns + k
        tj, t = self.table_j.ravel(), self.table.ravel()
        j0, j1 = tj[flat], tj[flat + 1]
        w = np.clip((jf - j0) / np.maximum(j1 - j0, 1e-9), 0.0, 1.0)
        delta_h = t[flat] + (t[flat + 1] - t[flat]) * w
        mast = self.mast[ray]
        h_e = itm.effective_heights(view, mast, self.h_rx, a_e, theta, d_hzn, delta_h)
        return dict(theta_hzn=theta, d_hzn_m=d_hzn, h_e_m=h_e, a_e_m=a_e, n_s=n_s,
                    delta_h_m=delta_h, h_m=np.stack([mast, np.full(d.size, self.h_rx)]),
                    distance_m=d, free_space_m=d_true)


def loss_db(path: dict, freq_mhz: float, params: ModelParams) -> tuple[np.ndarray, np.ndarray]:
    """ITM's basic transmission loss of prepared paths at one frequency, dB, and the flags.

    Computed in float32 (numpy's single-precision transcendental functions are several
    times faster; against float64 the loss differs by under 1e-4 dB on random paths).
    """
    s = params.itm_settings
    p = {k: np.asarray(v, np.float32) for k, v in path.items()}
    z_g = itm.ground_impedance(freq_mhz, s["permittivity"], s["conductivity_s_m"],
                               s["polarization"])
    a_ref, _, flags = itm.longley_rice(p["theta_hzn"], p["d_hzn_m"], p["h_e_m"], p["a_e_m"],
                                       p["n_s"], p["delta_h_m"], p["h_m"], p["distance_m"],
                                       freq_mhz, z_g)
    att, vflags = itm.variability_db(a_ref, p["h_e_m"], p["delta_h_m"], freq_mhz,
                                     p["distance_m"], climate=s["climate"], mdvar=s["mdvar"],
                                     time_pct=s["time_pct"], location_pct=s["location_pct"],
                                     situation_pct=s["situation_pct"])
    return itm.free_space_loss_db(p["free_space_m"], freq_mhz) + att, flags | vflags


def itm_flat_loss_db(distance_m: np.ndarray, freq_mhz: float, mast_m, params: ModelParams
                     ) -> np.ndarray:
    """ITM's loss over flat ground (area mode, no terrain irregularity), dB.

    What ``path_loss = "itm"`` gives without a DEM (or with ``terrain = False``): the
    smooth-earth two-ray and diffraction of ITM's area mode, random siting.
    """
    d = np.asarray(distance_m, float)
    mast = np.broadcast_to(np.asarray(mast_m, float), d.shape)
    out = np.empty(d.shape)
    for h in np.unique(mast):
        sel = mast == h
        out[sel] = itm.itm_area(d[sel], float(h), params.rx_height_m, freq_mhz, 0.0,
                                warn=False, **params.itm_settings).loss_db
    return out

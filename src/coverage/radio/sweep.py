"""Terrain profiles along rays and the radial sweep that serves every cell of a ray at once.

References
----------
- Dozier, J., Bruno, J., Downey, P. (1981). A faster solution to the horizon problem.
  Computers & Geosciences 7(2), 145-151 (horizons along a profile by hull pointers).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._compiled import kernels
from .pathloss import EARTH_RADIUS_M, effective_height_window_m

__all__ = [
    "RaySweep",
    "ray_sweep_nu_root_m",
    "sample_profiles",
]


def sample_profiles(
    dem: NDArray[np.floating],
    inv_transform: tuple[float, float, float, float, float, float],
    x0: float,
    y0: float,
    x1: NDArray[np.floating],
    y1: NDArray[np.floating],
    samples: int,
) -> NDArray[np.float64]:
    """Ground heights along straight paths from one point to many (nearest cell).

    Parameters
    ----------
    dem : ndarray, shape (rows, cols)
        Elevation grid in metres, without NaN.
    inv_transform : tuple
        The six coefficients ``(a, b, c, d, e, f)`` of the inverse affine transform, mapping
        map coordinates to fractional ``(col, row)``.
    x0, y0 : float
        Start of every path (the site), map units of the DEM's CRS (metres).
    x1, y1 : ndarray, shape (n,)
        Ends of the paths.
    samples : int
        Number of samples strictly inside each path.

    Returns
    -------
    ndarray, shape (n, samples)
        Heights at fractions ``1/(samples+1) .. samples/(samples+1)`` of each path.
    """
    a, b, c, d, e, f = inv_transform
    t = np.arange(1, samples + 1, dtype=float) / (samples + 1)
    xs = x0 + (np.asarray(x1, dtype=float)[:, None] - x0) * t[None, :]
    ys = y0 + (np.asarray(y1, dtype=float)[:, None] - y0) * t[None, :]
    rows_n, cols_n = dem.shape
    cols = np.clip((a * xs + b * ys + c).astype(np.int64), 0, cols_n - 1)
    rows = np.clip((d * xs + e * ys + f).astype(np.int64), 0, rows_n - 1)
    return np.take(dem, rows * cols_n + cols)


def ray_sweep_nu_root_m(
    ground_m: NDArray[np.floating],
    step_m: float,
    tx_altitude_m: ArrayLike,
    *,
    rx_height_m: float = 1.5,
    k_factor: float = 4.0 / 3.0,
) -> NDArray[np.float32]:
    r"""Bullington edge parameter :math:`\nu\sqrt{\lambda}` for every receiver along rays.

    A radial sweep: each ray from a site is sampled once, and every sample ``j`` is in turn
    the receiver of the path made of samples ``1 .. j-1``, so one profile serves all the
    cells along the ray (O(1) amortised work per receiver instead of O(k) samples per cell
    as in :func:`bullington_nu_root_m`).

    Heights are first taken relative to the site's tangent plane,
    :math:`h^* = h - d^2 / (2 k R_e)`; for a path of length :math:`D` this differs from the
    recommendation's bulge-corrected heights :math:`h + d(D-d)/(2kR_e)` by a term linear in
    :math:`d`, which leaves the equivalent edge's position and its height above the direct
    path (hence :math:`\nu`) unchanged. In that frame (ITU-R P.526-15 section 4.5.1):

    - :math:`S_{tim} = \max_i (h^*_i - h_{ts}) / d_i` is a running maximum along the ray;
    - :math:`S_{rim} = \max_i (h^*_i - h_{rs}) / (D - d_i)` is the slope to the tangent
      point of the upper convex hull of the samples before the receiver, found by walking
      the horizon pointers of Dozier et al. (1981): first from the ground under the
      receiver (which extends the hull), then on from there for the receiver's height
      (raising the observer only moves the tangent point further back along the hull);
    - obstructed paths (:math:`S_{tim} > (h_{rs} - h_{ts}) / D`) then get Bullington's
      equivalent edge exactly as :func:`bullington_nu_root_m` (eq. 49-52);
    - line-of-sight paths take the greater Fresnel-zone intrusion of the two tangent
      points (the transmitter's horizon and the receiver's), where
      :func:`bullington_nu_root_m` scans every sample (eq. 54): the one approximation of
      the sweep, which lowers :math:`\nu` only for paths that clear the terrain.

    Parameters
    ----------
    ground_m : ndarray, shape (rays, n)
        Ground height above sea level at distances ``0, step_m, 2 step_m, ...`` along each
        ray (column 0 under the site), metres, without NaN.
    step_m : float
        Distance between samples, metres.
    tx_altitude_m : array_like, shape (rays,) or scalar
        Antenna altitude above sea level of each ray's site (ground plus mast), metres.
    rx_height_m : float
        Receiver height above the ground, metres.
    k_factor : float
        Effective earth-radius factor.

    Returns
    -------
    ndarray, shape (rays, n), float32
        :math:`\nu\sqrt{\lambda}` in :math:`m^{1/2}` for a receiver at each sample; ``-inf``
        for samples 0 and 1 (no terrain between the terminals).

    Examples
    --------
    A 30 m ridge halfway along a 10 km ray, antennas 10 m above flat ground: the receiver
    at the ray's end sees the same edge as :func:`bullington_nu_root_m` on the three inner
    samples of that path:

    >>> ground = np.zeros((1, 5)); ground[0, 2] = 30.0
    >>> nu = ray_sweep_nu_root_m(ground, 2500.0, 10.0, rx_height_m=10.0)
    >>> per_path = bullington_nu_root_m([10_000.0], ground[:, 1:4], 10.0, 10.0)
    >>> round(float(nu[0, 4]), 4), round(float(per_path[0]), 4)
    (0.6073, 0.6073)
    """
    ground = np.asarray(ground_m, dtype=float)
    rays, n = ground.shape
    sweep = RaySweep.build(ground, step_m, tx_altitude_m, k_factor=k_factor)
    ray = np.repeat(np.arange(rays), n)
    dist = np.tile(np.arange(n) * step_m, rays)
    nu = sweep.nu_root_m(ray, dist, ground.ravel() + rx_height_m)
    return nu.reshape(rays, n).astype(np.float32)


class RaySweep:
    """Terrain state along the rays of a radial sweep, for Bullington at any receiver.

    Built once per batch of rays (:meth:`build`), sample-major (sample ``j`` of ray ``r`` at
    flat index ``j * rays + r``, one sentinel appended): heights in the site's tangent-plane
    frame ``hs``, their distances from the site ``d``, the flat index of the previous
    upper-hull vertex of every sample ``hor`` (Dozier et al. 1981; the sentinel, of height
    ``-inf``, where there is none, so that walks stop without a test), and the running
    maximum of the transmitter-side slope ``s_tim`` with the flat index of its sample
    ``i_tim``. :meth:`nu_root_m` then evaluates any receiver on a ray at its own distance
    and altitude (the cell's ground, not the ray sample's): the samples of the ray up to
    about one step before the receiver (``round(d / step) - 1`` of them, as a straight
    profile sampled at the step) form its profile.
    """

    __slots__ = ("d", "ground_sums", "hor", "hs", "i_tim", "k_factor", "lsq", "rays", "s_tim",
                 "samples", "step_m", "tx")

    def __init__(self, hs, hor, s_tim, i_tim, tx, step_m, k_factor, d=None):
        self.hs, self.hor, self.s_tim, self.i_tim = hs, hor, s_tim, i_tim
        self.tx, self.step_m, self.k_factor = tx, step_m, k_factor
        self.rays = tx.size
        self.samples = (hs.size - 1) // self.rays
        if d is None:
            d = np.append(np.repeat(np.arange(self.samples) * step_m, self.rays), 0.0)
        self.d = d
        self.lsq = None
        self.ground_sums = None

    @classmethod
    def build(cls, ground_m: NDArray[np.floating], step_m: float, tx_altitude_m: ArrayLike,
              *, k_factor: float = 4.0 / 3.0,
              lengths: NDArray[np.integer] | None = None) -> RaySweep:
        """Sweep rays of ground heights ``(rays, n)`` sampled every ``step_m`` from the site.

        ``lengths`` (samples per ray, default ``n``) sweeps each ray only that far: a
        sample's state depends on the samples before it alone, so receivers nearer than
        ``lengths * step_m`` get the same answer; the state beyond is left unset.
        """
        ground = np.asarray(ground_m)
        rays, n = ground.shape
        size = rays * n
        d = np.arange(n, dtype=float) * step_m
        # Sample-major layout: the samples at one distance are contiguous.
        hs = np.empty(size + 1)
        hs[:size].reshape(n, rays)[...] = ground.T
        hs[:size].reshape(n, rays)[...] -= (d**2 / (2.0 * k_factor * EARTH_RADIUS_M))[:, None]
        hs[size] = -np.inf
        return cls._swept(hs, rays, n, step_m, tx_altitude_m, k_factor, lengths)

    @classmethod
    def sample_and_build(cls, heights: NDArray[np.float32], x_m: NDArray[np.float32],
                         y_m: NDArray[np.float32], sin_theta: NDArray[np.float32],
                         cos_theta: NDArray[np.float32], step_m: float,
                         tx_altitude_m: ArrayLike, lengths: NDArray[np.integer], *,
                         k_factor: float = 4.0 / 3.0) -> RaySweep | None:
        """:meth:`build` on rays sampled from a terrain grid in one compiled pass, or None.

        The rays start at ``(x_m, y_m)`` (float32, metres from the terrain grid's top-left
        corner, x east and y north) in the directions ``(sin_theta, cos_theta)``; sample
        ``j`` lies ``j * step_m`` along, bilinear between the centres of the cells of
        ``heights`` (cells ``step_m`` wide), each ray sampled and swept up to its
        ``lengths``. The arithmetic is that of :func:`coverage.model.sweep.sweep_rays`
        (float32 positions and heights) and of :meth:`build`, to the bit. None when the
        compiled kernels are not available (:mod:`coverage._compiled`): then sample in
        numpy and call :meth:`build`.
        """
        compiled = kernels()
        if compiled is None:
            return None
        rays = x_m.size
        lengths = np.asarray(lengths, dtype=np.int64)
        n = max(int(lengths.max()), 1)
        size = rays * n
        d = np.arange(n, dtype=float) * step_m
        bulge = d**2 / (2.0 * k_factor * EARTH_RADIUS_M)
        tx = np.broadcast_to(np.asarray(tx_altitude_m, dtype=float), (rays,)).copy()
        # entries past each ray's length are never read (as with build's lengths)
        hs, d_flat = np.empty(size + 1), np.empty(size + 1)
        hs[size], d_flat[size] = -np.inf, 0.0
        hor = np.empty(size, dtype=np.int32)
        s_tim, i_tim = np.empty(size), np.empty(size, dtype=np.int32)
        compiled.sample_and_sweep(np.ascontiguousarray(heights, dtype=np.float32), x_m, y_m,
                                  sin_theta, cos_theta, float(step_m), np.float32(step_m),
                                  lengths, d, bulge, tx, hs, d_flat, hor, s_tim, i_tim)
        return cls(hs, hor, s_tim, i_tim, tx, step_m, k_factor, d_flat)

    @classmethod
    def _swept(cls, hs, rays, n, step_m, tx_altitude_m, k_factor, lengths) -> RaySweep:
        """The sweep's state over the tangent-plane heights ``hs`` (see :meth:`build`)."""
        size = rays * n
        d = np.arange(n, dtype=float) * step_m
        d_flat = np.empty(size + 1)
        d_flat[:size].reshape(n, rays)[...] = d[:, None]
        d_flat[size] = 0.0
        tx = np.broadcast_to(np.asarray(tx_altitude_m, dtype=float), (rays,)).copy()
        hor = np.full(size, size, dtype=np.int32)
        s_tim = np.full((n, rays), -np.inf)
        i_tim = np.empty((n, rays), dtype=np.int32)
        ray = np.arange(rays, dtype=np.int32)
        i_tim[0] = ray + rays  # sample 1 until one is steeper
        lengths = None if lengths is None else np.asarray(lengths)
        compiled = kernels()
        if compiled is not None:  # the same loop, compiled (coverage._compiled)
            compiled.build(hs, d_flat, d, tx, np.full(rays, n, np.int64) if lengths is None
                           else lengths.astype(np.int64), n, hor, s_tim.reshape(-1),
                           i_tim.reshape(-1))
            return cls(hs, hor, s_tim.ravel(), i_tim.ravel(), tx, step_m, k_factor, d_flat)
        for j in range(1, n):
            # the rays still being swept at this sample (all of them by default)
            act = slice(None) if lengths is None else np.flatnonzero(lengths > j)
            r_act = ray[act]
            if r_act.size == 0:
                break
            h_j = hs[j * rays:(j + 1) * rays][act]
            s = (h_j - tx[act]) / d[j]
            prev_s, prev_i = s_tim[j - 1][act], i_tim[j - 1][act]
            better = s > prev_s
            s_tim[j][act] = np.where(better, s, prev_s)
            i_tim[j][act] = np.where(better, r_act + j * rays, prev_i)
            if j >= 2:
                hor[j * rays:(j + 1) * rays][act] = _hull_tangent(
                    hs, hor, d_flat, np.full(r_act.size, d[j]), h_j, r_act + (j - 1) * rays)[0]
        return cls(hs, hor, s_tim.ravel(), i_tim.ravel(), tx, step_m, k_factor, d_flat)

    def nu_root_m(self, ray: NDArray[np.integer], distance_m: NDArray[np.floating],
                  rx_altitude_m: NDArray[np.floating]) -> NDArray[np.float64]:
        r"""Bullington :math:`\nu\sqrt{\lambda}` of receivers on rays, :math:`m^{1/2}`.

        Parameters
        ----------
        ray : ndarray of int, shape (m,)
            Ray of each receiver.
        distance_m : ndarray, shape (m,)
            Distance of each receiver from the site, metres.
        rx_altitude_m : ndarray, shape (m,)
            Receiver antenna altitude above sea level, metres.

        Returns
        -------
        ndarray, shape (m,)
            ``-inf`` where no sample lies between the terminals.
        """
        ray = np.asarray(ray, dtype=np.int64)
        dist = np.asarray(distance_m, dtype=float)
        rays, n = self.rays, self.samples
        compiled = kernels()
        if compiled is not None:  # the same per receiver, compiled (coverage._compiled)
            out = np.empty(dist.shape)
            rx = np.broadcast_to(np.asarray(rx_altitude_m, dtype=float), dist.shape)
            compiled.nu_root(self.hs, self.hor, self.d, self.s_tim, self.i_tim, self.tx,
                             rays, n, float(self.step_m),
                             2.0 * self.k_factor * EARTH_RADIUS_M, np.ascontiguousarray(ray),
                             np.ascontiguousarray(dist), np.ascontiguousarray(rx), out)
            return out
        # Profile: the samples up to about one step before the receiver (never within half
        # a step, where a sample of the receiver's own slope would act as a knife edge).
        j = np.minimum(np.rint(dist / self.step_m).astype(np.int64) - 1, n - 1)
        out = np.full(dist.shape, -np.inf)
        ok = j >= 1
        if not ok.all():
            ray, dist, j = ray[ok], dist[ok], j[ok]
        tx = self.tx[ray]
        h_rx = np.asarray(rx_altitude_m, dtype=float)
        h_rx = (h_rx[ok] if h_rx.shape == ok.shape else np.broadcast_to(h_rx, dist.shape)) - (
            dist**2 / (2.0 * self.k_factor * EARTH_RADIUS_M))
        j *= rays
        j += ray
        flat = j
        s_tim = self.s_tim[flat]
        # sample j is the last vertex of the hull of 1..j: walk on from it
        cur, s_rim = _hull_tangent(self.hs, self.hor, self.d, dist, h_rx, flat)
        los = s_tim < (h_rx - tx) / dist
        # Obstructed: Bullington's equivalent edge (ITU-R P.526-15 eq. 49-52).
        denom = np.maximum(s_tim + s_rim, 1e-12)
        num = s_rim * dist
        num += h_rx
        num -= tx
        d_bp = np.clip(num / denom, 1e-3 * dist, 0.999 * dist)
        rest = dist - d_bp
        h_bp = tx * rest
        h_bp += h_rx * d_bp
        h_bp /= -dist
        h_bp += tx
        h_bp += s_tim * d_bp
        rest *= d_bp
        np.divide(2.0 * dist, rest, out=rest)
        np.sqrt(rest, out=rest)
        nu = h_bp
        nu *= rest
        if los.any():
            # Line of sight: greatest intrusion of the two tangent points (eq. 54).
            args = (self.hs, self.d, dist[los], tx[los], h_rx[los])
            i_tim = self.i_tim[flat[los]]
            nu[los] = np.maximum(_intrusion(*args, i_tim), _intrusion(*args, cur[los]))
        out[ok] = nu
        return out


    def smooth_heights_m(self, ray: NDArray[np.integer], distance_m: NDArray[np.floating],
                         rx_altitude_m: NDArray[np.floating], rx_ground_m: NDArray[np.floating]
                         ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        r"""Smooth-earth heights at the terminals of receivers on rays, m above sea level.

        :func:`smooth_earth_heights_m` on each receiver's profile (the site's ground, the
        ray's samples up to about one step before the receiver as in :meth:`nu_root_m`,
        the receiver's ``rx_ground_m`` at ``distance_m``), in constant work per receiver:
        the least-squares sums :math:`v_1, v_2` are running sums along the ray (computed
        once per sweep) plus the last segment; the obstruction's height and the two
        horizon angles (P.1812-6 Attachment 1 eq. 90) come from the sweep's transmitter
        slope, the receiver's tangent to the upper hull and a walk back along the hull
        to its highest point above the antennas' line. Those three are taken over the
        bulge-corrected heights the sweep holds, where the recommendation takes them
        flat: the two differ by the bulge :math:`d_i (d - d_i) / (2 k R_e)`, at most
        1.5 m on a 10 km path. ``(site ground, rx_ground_m)`` where no sample lies
        between the terminals.
        """
        ray = np.ascontiguousarray(ray, dtype=np.int64)
        dist = np.ascontiguousarray(distance_m, dtype=float)
        rx = np.ascontiguousarray(np.broadcast_to(np.asarray(rx_altitude_m, float),
                                                  dist.shape))
        ground = np.ascontiguousarray(np.broadcast_to(np.asarray(rx_ground_m, float),
                                                      dist.shape))
        p1, p2 = self._lsq_sums()
        bulge_div = 2.0 * self.k_factor * EARTH_RADIUS_M
        h_std, h_srd = np.empty(dist.shape), np.empty(dist.shape)
        compiled = kernels()
        if compiled is not None:  # the same per receiver, compiled (coverage._compiled)
            compiled.smooth_heights(self.hs, self.hor, self.d, self.s_tim, self.tx, p1, p2,
                                    self.rays, self.samples, float(self.step_m), bulge_div,
                                    ray, dist, rx, ground, h_std, h_srd)
            return h_std, h_srd
        j = np.minimum(np.rint(dist / self.step_m).astype(np.int64) - 1, self.samples - 1)
        h_std[:] = self.hs[ray]
        h_srd[:] = ground
        ok = np.flatnonzero(j >= 1)
        x, r, gr = dist[ok], ray[ok], ground[ok]
        f = j[ok] * self.rays + r
        t = self.tx[r]
        dj = self.d[f]
        gj = self.hs[f] + dj * dj / bulge_div
        seg = x - dj
        v1 = p1[f] + seg * (gr + gj)
        v2 = p2[f] + seg * (gr * (2.0 * x + dj) + gj * (x + 2.0 * dj))
        xx = x * x
        h_st = (2.0 * v1 * x - v2) / xx
        h_sr = (v2 - v1 * x) / xx
        h = rx[ok] - xx / bulge_div
        m = (h - t) / x
        a_t = self.s_tim[f] - m
        o = np.flatnonzero(a_t > 0.0)  # the antennas' line cut by the profile
        if o.size:
            cur, s_rim = _hull_tangent(self.hs, self.hor, self.d, x[o], h[o], f[o])
            a_r = s_rim + m[o]
            h_obs = _hull_highest(self.hs, self.hor, self.d, m[o], cur) - t[o]
            h_st[o] = h_st[o] - h_obs * (a_t[o] / (a_t[o] + a_r))
            h_sr[o] = h_sr[o] - h_obs * (a_r / (a_t[o] + a_r))
        h_std[ok] = np.minimum(h_st, h_std[ok])
        h_srd[ok] = np.minimum(h_sr, gr)
        return h_std, h_srd

    def _lsq_sums(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Running least-squares sums :math:`v_1, v_2` along the rays, by flat index.

        P.1812-6 eq. 85-86 from the site to each sample, over the ground (the sweep's
        heights with the bulge given back).
        """
        if self.lsq is None:
            rays, n = self.rays, self.samples
            d = np.arange(n, dtype=float) * self.step_m
            p1 = np.zeros(rays * n)
            p2 = np.zeros(rays * n)
            if n > 1:
                with np.errstate(all="ignore"):  # samples past a ray's length: never read
                    g = self.hs[:rays * n].reshape(n, rays) + (
                        d**2 / (2.0 * self.k_factor * EARTH_RADIUS_M))[:, None]
                    step = self.step_m
                    s1 = step * (g[1:] + g[:-1])
                    s2 = step * (g[1:] * (2.0 * d[1:] + d[:-1])[:, None]
                                 + g[:-1] * (d[1:] + 2.0 * d[:-1])[:, None])
                    np.cumsum(s1, axis=0, out=p1.reshape(n, rays)[1:])
                    np.cumsum(s2, axis=0, out=p2.reshape(n, rays)[1:])
            self.lsq = (p1, p2)
        return self.lsq

    def mean_ground_m(self, ray: NDArray[np.integer], distance_m: NDArray[np.floating],
                      rx_ground_m: NDArray[np.floating]) -> NDArray[np.float64]:
        """Mean ground of each receiver's effective-height window, metres above sea level.

        :func:`coverage.radio.window_mean_ground_m` on each receiver's profile (the ray's
        samples up to about one step before the receiver, as in :meth:`nu_root_m`, and
        the receiver's ``rx_ground_m`` at ``distance_m``), in constant work per receiver:
        the window's samples are a difference of two running sums of the ground along the
        ray, computed once per sweep. The window (:func:`effective_height_window_m`) is
        3-15 km from the site, or 0.2 d to d on a path of d < 15 km (with the receiver's
        ground); the samples in it are those at ``j * step_m`` within it.
        """
        ray = np.asarray(ray, dtype=np.int64)
        dist = np.asarray(distance_m, dtype=float)
        rx = np.broadcast_to(np.asarray(rx_ground_m, dtype=float), dist.shape)
        start, end = effective_height_window_m(dist)
        last = np.minimum(np.rint(dist / self.step_m).astype(np.int64) - 1, self.samples - 1)
        lo = np.maximum(np.ceil(start / self.step_m - 1e-9).astype(np.int64), 1)
        hi = np.minimum(np.floor(end / self.step_m + 1e-9).astype(np.int64), last)
        count = np.maximum(hi - lo + 1, 0)
        sums = self._ground_sums()
        total = np.where(count > 0, sums[np.maximum(hi, 0) * self.rays + ray]
                         - sums[(lo - 1) * self.rays + ray], 0.0)
        ends_here = dist <= end
        total = total + np.where(ends_here, rx, 0.0)
        count = count + ends_here
        return np.where(count > 0, total / np.maximum(count, 1), rx)

    def _ground_sums(self) -> NDArray[np.float64]:
        """Running sums of the ground along the rays, samples 1..j, by flat index (j = 0: 0).

        Over the ground (the sweep's heights with the bulge given back), as
        :meth:`_lsq_sums`.
        """
        if self.ground_sums is None:
            rays, n = self.rays, self.samples
            d = np.arange(n, dtype=float) * self.step_m
            out = np.zeros(rays * n)
            if n > 1:
                with np.errstate(all="ignore"):  # samples past a ray's length: never read
                    g = self.hs[rays:rays * n].reshape(n - 1, rays) + (
                        d[1:]**2 / (2.0 * self.k_factor * EARTH_RADIUS_M))[:, None]
                    np.cumsum(g, axis=0, out=out.reshape(n, rays)[1:])
            self.ground_sums = out
        return self.ground_sums

    def horizon_points(self, ray: NDArray[np.integer], last: NDArray[np.integer],
                       distance_m: NDArray[np.floating], rx_altitude_m: NDArray[np.floating]
                       ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Samples of the transmitter's and the receiver's horizons among ``1..last``.

        The transmitter's: the sample of steepest slope from the antenna (the running
        maximum of the sweep); the receiver's: the tangent point, from the receiver at
        ``distance_m`` and ``rx_altitude_m``, of the upper hull of the samples up to
        ``last`` (the walk of :meth:`nu_root_m`). Both in the tangent-plane frame of the
        sweep's ``k_factor``; ``last >= 1``. Returns sample indices along the rays.
        """
        ray = np.asarray(ray, dtype=np.int64)
        flat = np.asarray(last, dtype=np.int64) * self.rays + ray
        dist = np.asarray(distance_m, dtype=float)
        h_rx = np.asarray(rx_altitude_m, dtype=float) - dist**2 / (
            2.0 * self.k_factor * EARTH_RADIUS_M)
        cur, _ = _hull_tangent(self.hs, self.hor, self.d, dist, h_rx, flat)
        return self.i_tim[flat] // self.rays, cur // self.rays


def _intrusion(hs, d, dist, tx, h_rx, i):
    di = d[i]
    above = hs[i] - (tx * (dist - di) + h_rx * di) / dist
    return above * np.sqrt(2.0 * dist / (di * (dist - di)))


def _hull_highest(hs, hor, d, slope, start):
    """Highest of ``hs - slope * d`` over the upper hull, walking back from ``start``.

    Along an upper hull the edges steepen going back, so the height above a line of slope
    ``slope`` rises while an edge is gentler than it, then falls; the walk stops there (or
    at the sentinel, of height ``-inf``). Returns that greatest height.
    """
    cur = np.array(start, dtype=np.int64)
    best = hs[cur] - slope * d[cur]
    idx = np.arange(cur.size)
    c, b, sl = cur, best, slope
    while idx.size:
        p = hor[c]
        h_p = hs[p] - sl * d[p]
        move = h_p > b
        if not move.all():
            idx, p, h_p, sl = idx[move], p[move], h_p[move], sl[move]
        c, b = p, h_p
        best[idx] = b
    return best


def _hull_tangent(hs, hor, d, dist, h_obs, start):
    """Tangent point (flat index) and slope from ``(dist, h_obs)`` to the hull before it.

    Walks the hull pointers from ``start`` (flat index of a hull vertex at or before the
    tangent): the slopes from an outside point along the upper hull rise then fall. A
    pointer to the sentinel (height ``-inf``) ends a walk.
    """
    compiled = kernels()
    if compiled is not None:  # the same walk, compiled (coverage._compiled)
        start = np.asarray(start, dtype=np.int64)
        cur, s_cur = np.empty(start.shape, np.int64), np.empty(start.shape)
        dist = np.broadcast_to(np.asarray(dist, dtype=float), start.shape)
        h_obs = np.broadcast_to(np.asarray(h_obs, dtype=float), start.shape)
        compiled.hull_tangent(hs, hor, d, np.ascontiguousarray(dist),
                              np.ascontiguousarray(h_obs), start, cur, s_cur)
        return cur, s_cur
    cur = np.array(start, dtype=np.int64)
    s_cur = (hs[cur] - h_obs) / (dist - d[cur])
    # the walkers still moving, with everything they need carried along (one filter a step)
    idx = np.arange(cur.size)
    c, s_a, h_a, dist_a = cur, s_cur, h_obs, dist
    while idx.size:
        p = hor[c]
        s_p = (hs[p] - h_a) / (dist_a - d[p])
        move = s_p >= s_a
        if not move.all():
            idx, p, s_p = idx[move], p[move], s_p[move]
            h_a, dist_a = h_a[move], dist_a[move]
        c, s_a = p, s_p
        cur[idx] = c
        s_cur[idx] = s_a
    return cur, s_cur

"""The compiled loops of the radial sweep: numba kernels, the numpy code's arithmetic in order.

Imported only by :func:`coverage._compiled.kernels`, where numba is wanted and importable;
numba comes through :func:`coverage._compiled._import_numba`, which keeps it from taking
this package for coverage.py.

The kernels are module-level functions so that numba's on-disk cache (``cache=True``) serves
them to every new process. numba keys a cached kernel on its bytecode, its argument types
and the pickled contents of its closure: a kernel holding the kernels it calls in closure
cells (as when they were all built inside one function) pickles them with an identity that
is new in every process, so it was compiled again in each, and its cache gained a file each
time. Here a kernel calls another (``tangent``, ``intrusion``) as a global, which numba
resolves when it compiles the caller and links into the caller's cached code. numba
invalidates a cached kernel when its own source file changes, not when another file does:
kernels that call one another therefore stay together in this file.
"""

from __future__ import annotations

import numpy as np

from ._compiled import _import_numba

__all__ = ["build", "hull_tangent", "nu_root", "sample_and_sweep", "smooth_heights"]

jit = _import_numba().njit(cache=True, nogil=True)


@jit
def tangent(hs, hor, d, dist, h_obs, start):
    # _hull_tangent for one receiver: the walk while the slope does not fall
    cur = start
    s_cur = (hs[cur] - h_obs) / (dist - d[cur])
    while True:
        p = hor[cur]
        s_p = (hs[p] - h_obs) / (dist - d[p])
        if s_p >= s_cur:
            cur = p
            s_cur = s_p
        else:
            return cur, s_cur


@jit
def hull_tangent(hs, hor, d, dist, h_obs, start, cur, s_cur):
    for k in range(start.size):
        cur[k], s_cur[k] = tangent(hs, hor, d, dist[k], h_obs[k], start[k])


@jit
def build(hs, d_flat, d, tx, lengths, n, hor, s_tim, i_tim):
    # RaySweep.build: sample after sample, the rays still being swept (contiguous)
    rays = tx.size
    for j in range(1, n):
        for r in range(rays):
            if lengths[r] <= j:
                continue
            flat = j * rays + r
            h_j = hs[flat]
            s = (h_j - tx[r]) / d[j]
            prev_s = s_tim[flat - rays]
            if s > prev_s:
                s_tim[flat] = s
                i_tim[flat] = flat
            else:
                s_tim[flat] = prev_s
                i_tim[flat] = i_tim[flat - rays]
            if j >= 2:
                hor[flat] = tangent(hs, hor, d_flat, d[j], h_j, flat - rays)[0]


@jit
def sample_and_sweep(heights, x_ray, y_ray, sin_ray, cos_ray, res, step32, lengths,
                     d, bulge, tx, hs, d_flat, hor, s_tim, i_tim):
    # One ray at a time, in contiguous scratch arrays: RaySweep.sample_and_build's samples
    # (model.terrain.ground_at: bilinear between terrain cell centres, in float32 as there),
    # then RaySweep.build's state, scattered into its sample-major arrays.
    rays = x_ray.size
    size = hor.size
    rows, cols = heights.shape
    flat = heights.reshape(-1)
    last = flat.size - 1
    half = np.float32(0.5)
    zero = np.float32(0.0)
    top_c = np.float32(cols - 1.000001)
    top_r = np.float32(rows - 1.000001)
    n = d.size
    hl = np.empty(n)
    horl = np.empty(n, np.int64)
    for r in range(rays):
        m = min(lengths[r], n)
        for j in range(m):
            dist = np.float32(j * res)
            xs = x_ray[r] + sin_ray[r] * dist
            ys = y_ray[r] + cos_ray[r] * dist
            fc = (xs - zero) / step32 - half
            fr = (zero - ys) / step32 - half
            fc = min(max(fc, zero), top_c)
            fr = min(max(fr, zero), top_r)
            c0 = np.int32(fc)
            r0 = np.int32(fr)
            wc = np.float32(fc - c0)
            wr = np.float32(fr - r0)
            i = np.int64(r0) * cols + c0
            top = flat[i]
            top = top + (flat[min(i + 1, last)] - top) * wc
            i = min(i + cols, last)
            bottom = flat[i]
            bottom = bottom + (flat[min(i + 1, last)] - bottom) * wc
            top = top + (bottom - top) * wr
            hl[j] = np.float64(top) - bulge[j]
            hs[j * rays + r] = hl[j]
            d_flat[j * rays + r] = d[j]
        # the sweep (RaySweep.build for this ray): running slope, hull pointers
        s_prev = -np.inf
        i_prev = rays + r
        s_tim[r] = s_prev
        i_tim[r] = i_prev
        horl[0] = -1
        if m > 1:
            horl[1] = -1
            hor[rays + r] = size
        for j in range(1, m):
            g = j * rays + r
            s = (hl[j] - tx[r]) / d[j]
            if s > s_prev:
                s_prev = s
                i_prev = g
            s_tim[g] = s_prev
            i_tim[g] = i_prev
            if j >= 2:
                cur = j - 1
                s_cur = (hl[cur] - hl[j]) / (d[j] - d[cur])
                while True:
                    p = horl[cur]
                    if p < 0:
                        break
                    s_p = (hl[p] - hl[j]) / (d[j] - d[p])
                    if s_p >= s_cur:
                        cur = p
                        s_cur = s_p
                    else:
                        break
                horl[j] = cur
                hor[g] = cur * rays + r


@jit
def intrusion(hs, d, dist, tx, h_rx, i):
    # radio.sweep._intrusion for one receiver
    di = d[i]
    above = hs[i] - (tx * (dist - di) + h_rx * di) / dist
    return above * np.sqrt(2.0 * dist / (di * (dist - di)))


@jit
def nu_root(hs, hor, d, s_tim, i_tim, tx, rays, n, step, bulge_div, ray, dist, rx_alt,
            out):
    # RaySweep.nu_root_m, one receiver at a time: the same expressions in the same order
    # (np.rint, np.minimum, np.maximum and np.clip as their comparisons)
    for k in range(dist.size):
        x = dist[k]
        j = min(np.int64(np.rint(x / step)) - 1, n - 1)
        if j < 1:
            out[k] = -np.inf
            continue
        f = j * rays + ray[k]
        t = tx[ray[k]]
        h = rx_alt[k] - x * x / bulge_div
        st = s_tim[f]
        cur, s_rim = tangent(hs, hor, d, x, h, f)
        if st < (h - t) / x:
            # line of sight: greatest intrusion of the two tangent points (eq. 54)
            a = intrusion(hs, d, x, t, h, i_tim[f])
            b = intrusion(hs, d, x, t, h, cur)
            out[k] = a if (a >= b or a != a) else b
            continue
        # obstructed: Bullington's equivalent edge (ITU-R P.526-15 eq. 49-52)
        denom = st + s_rim
        if not (denom >= 1e-12 or denom != denom):
            denom = 1e-12
        d_bp = (s_rim * x + h - t) / denom
        lo = 1e-3 * x
        hi = 0.999 * x
        if d_bp < lo:
            d_bp = lo
        if d_bp > hi:
            d_bp = hi
        rest = x - d_bp
        h_bp = (t * rest + h * d_bp) / -x + t + st * d_bp
        out[k] = h_bp * np.sqrt(2.0 * x / (rest * d_bp))


@jit
def smooth_heights(hs, hor, d, s_tim, tx, p1, p2, rays, n, step, bulge_div, ray, dist,
                   rx_alt, rx_ground, h_std, h_srd):
    # RaySweep.smooth_heights_m, one receiver at a time, the same expressions in order
    for k in range(dist.size):
        x = dist[k]
        r = ray[k]
        gr = rx_ground[k]
        j = min(np.int64(np.rint(x / step)) - 1, n - 1)
        if j < 1:
            h_std[k] = hs[r]
            h_srd[k] = gr
            continue
        f = j * rays + r
        t = tx[r]
        dj = d[f]
        gj = hs[f] + dj * dj / bulge_div
        seg = x - dj
        v1 = p1[f] + seg * (gr + gj)
        v2 = p2[f] + seg * (gr * (2.0 * x + dj) + gj * (x + 2.0 * dj))
        xx = x * x
        h_st = (2.0 * v1 * x - v2) / xx
        h_sr = (v2 - v1 * x) / xx
        h = rx_alt[k] - xx / bulge_div
        m = (h - t) / x
        a_t = s_tim[f] - m
        if a_t > 0.0:
            # radio.sweep._hull_tangent, then _hull_highest
            cur, s_rim = tangent(hs, hor, d, x, h, f)
            a_r = s_rim + m
            best = hs[cur] - m * d[cur]
            while True:
                p = hor[cur]
                h_p = hs[p] - m * d[p]
                if h_p > best:
                    cur = p
                    best = h_p
                else:
                    break
            h_obs = best - t
            h_st = h_st - h_obs * (a_t / (a_t + a_r))
            h_sr = h_sr - h_obs * (a_r / (a_t + a_r))
        g0 = hs[r]
        h_std[k] = h_st if h_st < g0 else g0
        h_srd[k] = h_sr if h_sr < gr else gr

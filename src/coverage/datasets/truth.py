"""The hidden truth: best levels per technology, speeds, access, and each village's class.

The village classes apply the contract's ``vn-2025`` rules (:mod:`coverage.datasets.rules`)
to the TRUE fields, population-weighted over the cells of the population raster: a resident
has outdoor broadband where the best 3G level reaches the RSCP threshold or the best 4G level
the RSRP threshold, indoor-usable service 10 dB above, and 2G where the 2G level reaches
``gsm_dbm``.

The test rules measure residents, as the contract words them. Each resident subscribes to
one operator (in proportion to the subscriber shares) and gets that operator's best
technology at home, the one the handset camps on (:data:`~coverage.datasets.observe.CAMP_DBM`,
as in the simulated tests): 4G or 3G at the true throughput of that spot, 2G at a 2G speed
(:data:`SPEED_2G_MBPS`), no service at 0. ``slow_speed`` fires when the median over the
village's residents is under the threshold; ``measured_no_service`` when the share of
residents without service reaches it. Access reasons use the complete access table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .field import FLOOR_DBM, Field
from .observe import CAMP_DBM
from .population import Population
from .rules import TruthRules
from .sites import OPERATORS

__all__ = ["access_table", "speed_fields", "truth_bands", "village_truth"]

NOISE_RE_DBM = -123.0     # thermal noise per 15 kHz resource element, 9 dB noise figure
INTERFERENCE_LOAD = 0.5   # share of neighbour-cell power that interferes
SMARTPHONE_USE = 0.6
#: Download of a handset fallen back to 2G (EDGE), Mbps: the median of the simulated tests.
SPEED_2G_MBPS = 0.12


def truth_bands(field: Field, profile: TruthRules) -> dict[str, NDArray[np.int16]]:
    """Best level per technology over all operators, and the best broadband level, int16 dBm.

    The broadband band is an RSRP equivalent: 3G RSCP shifted by the difference of the
    outdoor thresholds, so that the RSRP thresholds apply to it.
    """
    ops = sorted({o for o, _ in field.best})
    bands = {}
    for tech in ("2G", "3G", "4G"):
        bands[tech] = np.max([field.best[o, tech] for o in ops], axis=0)
    shift = profile.outdoor_rsrp_dbm - profile.outdoor_rscp_dbm
    bands["broadband"] = np.maximum(bands["4G"], bands["3G"] + shift)
    return {k: np.round(np.maximum(v, FLOOR_DBM)).astype(np.int16) for k, v in bands.items()}


def speed_fields(field: Field, tx: pd.DataFrame, pop_on_dem: NDArray, profile: TruthRules
                 ) -> dict[str, dict[str, NDArray]]:
    r"""True download speed (Mbps) per operator on its best broadband technology and per tech.

    4G: :math:`0.7\,B\,\min(0.75 \log_2(1 + \mathrm{SINR}/1.6), 5)\,(1-\rho)`, with SINR
    from the RSRP against noise and half the neighbour cells' power; 3G: HSPA from 0.4 to
    8 Mbps by RSCP; :math:`\rho = 1 - e^{-u/U_0}` the load of the serving cell from the
    smartphone users it serves (market share times population).
    """
    out: dict[str, dict[str, NDArray]] = {}
    for op, (_, _, share, bw) in OPERATORS.items():
        res: dict[str, NDArray] = {}
        for tech, u0 in (("4G", 1500.0), ("3G", 400.0)):
            best = field.best[op, tech].astype(float)
            srv = field.server[op, tech]
            users = pop_on_dem * share * SMARTPHONE_USE
            served = srv >= 0
            load_by_tx = np.bincount(srv[served], weights=users[served], minlength=len(tx))
            rho = np.where(served, np.minimum(0.92, 1 - np.exp(-load_by_tx[np.maximum(srv, 0)]
                                                               / u0)), 0.0)
            if tech == "4G":
                s_mw = 10 ** (best / 10)
                i_mw = INTERFERENCE_LOAD * np.maximum(field.total_mw[op, tech] - s_mw, 0)
                sinr = s_mw / (10 ** (NOISE_RE_DBM / 10) + i_mw)
                eff = np.minimum(0.75 * np.log2(1 + sinr / 1.6), 5.0)
                res[tech] = 0.7 * bw * eff * (1 - rho)
            else:
                q = np.clip((best + 110.0) / 30.0, 0, 1)
                res[tech] = (0.4 + 7.6 * q ** 1.5) * (1 - rho)
        has4 = field.best[op, "4G"] >= profile.outdoor_dbm("4G")
        has3 = field.best[op, "3G"] >= profile.outdoor_dbm("3G")
        res["broadband"] = np.where(has4, res["4G"], np.where(has3, res["3G"], np.nan))
        out[op] = res
    return out


def _weighted_median(values, weights):
    ok = np.isfinite(values) & (weights > 0)
    if not ok.any():
        return np.nan
    v, w = values[ok], weights[ok]
    order = np.argsort(v)
    c = np.cumsum(w[order])
    return float(v[order][np.searchsorted(c, 0.5 * c[-1])])


def access_table(villages: pd.DataFrame, covered: NDArray[np.bool_],
                 rng: np.random.Generator) -> pd.DataFrame:
    """The complete (true) access table; a handful of villages fail each access rule."""
    n = len(villages)
    town = villages["town"].to_numpy()
    hmong = (villages["culture"] == "hmong").to_numpy()
    elec = np.where(town, rng.uniform(0.98, 1.0, n),
                    np.where(hmong, rng.uniform(0.62, 0.97, n), rng.uniform(0.85, 1.0, n)))
    phone = np.where(town, rng.uniform(0.72, 0.9, n),
                     np.where(hmong, rng.uniform(0.33, 0.6, n), rng.uniform(0.48, 0.8, n)))
    income = np.where(town, rng.uniform(4.0e6, 6.5e6, n),
                      np.where(hmong, rng.uniform(1.0e6, 1.7e6, n), rng.uniform(1.8e6, 3.2e6, n)))
    price = np.where(town, rng.uniform(9e3, 12e3, n), rng.uniform(10e3, 17e3, n))
    rural = np.flatnonzero(~town)
    cov, unc = rural[covered[rural]], rural[~covered[rural]]
    for k, (lo, hi) in enumerate(((0.25, 0.47), (0.12, 0.28), (None, None))):
        picks = np.concatenate([rng.choice(cov, min(4, len(cov)), replace=False),
                                rng.choice(unc, min(2, len(unc)), replace=False)])
        if k == 0:
            elec[picks] = rng.uniform(lo, hi, len(picks))
        elif k == 1:
            phone[picks] = rng.uniform(lo, hi, len(picks))
        else:
            income[picks] = rng.uniform(0.7e6, 0.85e6, len(picks))
            price[picks] = rng.uniform(19e3, 24e3, len(picks))
    return pd.DataFrame({
        "village_id": villages["village_id"].to_numpy(),
        "electricity_share": np.round(elec, 3),
        "smartphone_share": np.round(phone, 3),
        "monthly_income": np.round(income, -4),
        "data_price_1gb": np.round(price, -3),
    })


def _shares(vil: NDArray, people: NDArray, n: int):
    """Population-weighted share of each village's residents inside a mask, and the total.

    Parameters
    ----------
    vil : ndarray of int
        Village index of each population cell, -1 outside every village.
    people : ndarray of float
        Residents of each population cell (0 outside the villages).
    n : int
        Number of villages.

    Returns
    -------
    callable
        ``share(mask)`` -> (share of the residents in ``mask`` per village, residents per
        village); 0 where a village has no residents.
    """
    def share(mask):
        num = np.bincount(vil[vil >= 0], weights=(people * mask)[vil >= 0], minlength=n)
        den = np.bincount(vil[vil >= 0], weights=people[vil >= 0], minlength=n)
        return np.divide(num, den, out=np.zeros(n), where=den > 0), den

    return share


def _resident_speeds(vil: NDArray, cell: NDArray, people: NDArray,
                     speeds: dict[str, dict[str, NDArray]], field: Field, n: int
                     ) -> tuple[NDArray, NDArray, NDArray]:
    """Each resident on their own operator's best technology at home (module docstring).

    Parameters
    ----------
    vil, cell, people : ndarray
        Village index, DEM cell index and residents of each population cell.
    speeds : dict
        True download speed (Mbps) per operator and technology, from :func:`speed_fields`.
    field : Field
        The true signal field.
    n : int
        Number of villages.

    Returns
    -------
    median_mbps : ndarray of float
        Residents' median download per village, Mbps (NaN where none).
    no_service : ndarray of float
        Share of the residents without service per village.
    operators : ndarray of int
        Operators with broadband for at least half of each village's residents.
    """
    inside = vil >= 0
    speed_rows, weight_rows, bb_rows = [], [], []
    no_srv_num = np.zeros(n)
    no_srv_den = np.zeros(n)
    for op, (_, _, mshare, _) in OPERATORS.items():
        speed = np.full(cell.shape, np.nan)
        for t in ("4G", "3G", "2G"):
            camps = np.isnan(speed) & (field.best[op, t].ravel()[cell] >= CAMP_DBM[t])
            speed[camps] = (SPEED_2G_MBPS if t == "2G"
                            else speeds[op][t].ravel()[cell][camps])
        w = people * mshare
        no_srv_num += np.bincount(vil[inside], weights=(w * np.isnan(speed))[inside],
                                  minlength=n)
        no_srv_den += np.bincount(vil[inside], weights=w[inside], minlength=n)
        speed_rows.append(np.nan_to_num(speed, nan=0.0))
        weight_rows.append(w)
        bb_rows.append(np.isfinite(speeds[op]["broadband"].ravel()[cell]))
    no_service = np.divide(no_srv_num, no_srv_den, out=np.zeros(n), where=no_srv_den > 0)
    speeds_a, weights_a, bb_a = np.stack(speed_rows), np.stack(weight_rows), np.stack(bb_rows)
    med = np.full(n, np.nan)
    n_ops = np.zeros(n, dtype=int)
    for i in range(n):
        idx = np.flatnonzero(vil == i)
        med[i] = _weighted_median(speeds_a[:, idx].ravel(), weights_a[:, idx].ravel())
        n_ops[i] = int(sum(
            np.sum(people[idx] * bb_a[k, idx]) >= 0.5 * people[idx].sum() > 0
            for k in range(len(OPERATORS))))
    return med, no_service, n_ops


def _unavailable_reasons(cov: float, two: float, profile: TruthRules) -> list[str]:
    """Reasons of a village under the covered-share threshold."""
    r = []
    if cov == 0:
        r.append("no_signal")
    if two >= profile.min_2g_share:
        r.append("2g_only")
    if not r:
        r.append("partial_coverage")
    return r


def _available_reasons(ind: float, med: float, no_service: float, a: pd.Series,
                       profile: TruthRules) -> list[str]:
    """Reasons of a covered village: signal, tests and access rules (empty when served)."""
    r = []
    if ind < profile.min_indoor_share:
        r.append("weak_signal")
    if np.isfinite(med) and med < profile.min_download_mbps:
        r.append("slow_speed")
    if no_service >= profile.max_no_service_share:
        r.append("measured_no_service")
    if a["electricity_share"] < profile.min_electricity_share:
        r.append("no_power")
    if a["smartphone_share"] < profile.min_smartphone_share:
        r.append("no_devices")
    if a["data_price_1gb"] > profile.max_price_income_share * a["monthly_income"]:
        r.append("unaffordable")
    return r


def village_truth(villages: pd.DataFrame, pop: Population, bands: dict[str, NDArray],
                  speeds: dict[str, dict[str, NDArray]], field: Field, access: pd.DataFrame,
                  profile: TruthRules) -> pd.DataFrame:
    """Classify every village on the true fields (see the module docstring)."""
    vals = pop.values.ravel()
    vil = pop.village.ravel()
    cell = pop.dem_cell.ravel()
    people = np.where(vil >= 0, np.maximum(vals, 0), 0.0)
    bb = bands["broadband"].ravel()[cell]
    outdoor = bb >= profile.outdoor_rsrp_dbm
    indoor = bb >= profile.indoor_rsrp_dbm
    g2 = bands["2G"].ravel()[cell] >= profile.gsm_dbm
    n = len(villages)
    share = _shares(vil, people, n)
    cov, total = share(outdoor)
    ind, _ = share(indoor)
    two, _ = share(g2)
    four = bands["4G"].ravel()[cell] >= profile.outdoor_rsrp_dbm
    f4, _ = share(four & outdoor)
    med, no_service, n_ops = _resident_speeds(vil, cell, people, speeds, field, n)

    acc = access.set_index("village_id").reindex(villages["village_id"].to_numpy())
    classes, reasons = [], []
    for i in range(n):
        if cov[i] < profile.min_covered_share:
            cls, r = "unavailable", _unavailable_reasons(cov[i], two[i], profile)
        else:
            r = _available_reasons(ind[i], med[i], no_service[i], acc.iloc[i], profile)
            cls = "available_inaccessible" if r else "served"
        classes.append(cls)
        reasons.append(";".join(r))
    return pd.DataFrame({
        "village_id": villages["village_id"].to_numpy(),
        "name": villages["name"].to_numpy(),
        "commune": villages["commune"].to_numpy(),
        "population": np.round(total).astype(np.int64),
        "class": classes,
        "reasons": reasons,
        "pop_covered_share": np.round(cov, 4),
        "pop_indoor_share": np.round(ind, 4),
        "pop_2g_share": np.round(two, 4),
        "pop_4g_share": np.round(f4, 4),
        "median_download_mbps": np.round(med, 2),
        "no_service_share": np.round(no_service, 4),
        "operators": n_ops,
    })

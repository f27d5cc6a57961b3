r"""A textbook download speed by signal level, for the slow prior of a run without tests.

Without tests nothing says how fast a handset on broadband is where it camps, but the
literature says how fast it can be at a given signal: 3GPP TR 36.942 (Annex A.2) models
the link's throughput as an attenuated and truncated Shannon bound,

.. math:: r = \alpha\, B\, \min\bigl(\log_2(1 + \mathrm{SINR}),\ T_{max}\bigr)\,(1 - \eta),

with the downlink's :math:`\alpha` = 0.6 (:data:`SHANNON_ALPHA`, the implementation
losses) and :math:`T_{max}` = 4.4 bit/s/Hz (:data:`SHANNON_MAX_BPS_HZ`, the highest
modulation and coding), over the carrier's occupied bandwidth :math:`B`
(:data:`BANDWIDTH_HZ`), of which the handset gets the share the cell's other users leave,
:math:`1 - \eta`, at the cell load :math:`\eta` = 0.5 a link budget assumes
(:data:`CELL_LOAD`). The SINR is the modelled level over the thermal noise in the level's
bandwidth (:data:`NOISE_BANDWIDTH_HZ`: one resource element for the 4G RSRP, the chip
rate for the 3G carrier) with the handset's 9 dB noise figure (TR 36.942's UE), plus the
interference margin of that load, :math:`-10 \log_{10}(1 - \eta)` = 3 dB (the noise rise
of a WCDMA cell at load :math:`\eta`: Holma and Toskala, *WCDMA for UMTS*, ch. 8). The 3G
pilot (RSCP) is a tenth of the cell's power (:data:`PILOT_SHARE_DB`, Holma and Toskala's
CPICH): the carrier's SINR is 10 dB above the pilot's.

The speed grows with the level, so a resident is slow exactly where every broadband layer
of their operator is under the level at which :math:`r` reaches the threshold:
:func:`slow_levels_dbm` gives that level per technology (never under the level where
handsets leave the technology, :data:`coverage.model.observations.NO_SERVICE_DBM`), and
the slow prior is the probability that the operator's best margin over them is negative
(:func:`coverage.classify.residents.slow_by_operator`). At 5 Mbps: about -116 dBm of 4G
RSRP (a 9 MHz carrier) and -93 dBm of 3G RSCP (HSPA at this load peaks at 5.1 Mbps).
Nothing here is fitted: the bandwidth, the load and the margin are the textbook's, and
where a province's tests give a speed curve (:func:`coverage.classify.residents.
fit_slow_curve`) they replace it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..model.observations import NO_SERVICE_DBM

__all__ = ["BANDWIDTH_HZ", "CELL_LOAD", "NOISE_BANDWIDTH_HZ", "NOISE_FIGURE_DB",
           "PILOT_SHARE_DB", "SHANNON_ALPHA", "SHANNON_MAX_BPS_HZ", "download_mbps",
           "slow_levels_dbm"]

#: Attenuation of the Shannon bound for the downlink (3GPP TR 36.942, Table A.2-1).
SHANNON_ALPHA = 0.6
#: Highest spectral efficiency of the downlink's codes, bit/s/Hz (TR 36.942, Table A.2-1).
SHANNON_MAX_BPS_HZ = 4.4
#: Occupied bandwidth of a carrier, Hz: 4G 50 resource blocks of 180 kHz (a 10 MHz carrier,
#: 3GPP TS 36.101; 5G taken as no wider), 3G the 3.84 Mcps chip rate of a 5 MHz carrier
#: (TS 25.101).
BANDWIDTH_HZ = {"4G": 9.0e6, "5G": 9.0e6, "3G": 3.84e6}
#: Bandwidth the measured level is taken over, Hz: one 15 kHz resource element for the
#: RSRP (TS 36.214; 5G's SS-RSRP alike), the chip rate for the RSCP (TS 25.215).
NOISE_BANDWIDTH_HZ = {"4G": 15.0e3, "5G": 15.0e3, "3G": 3.84e6}
#: Handset noise figure, dB (TR 36.942's UE).
NOISE_FIGURE_DB = 9.0
#: Load of the serving cell: the share of its resources other users take.
CELL_LOAD = 0.5
#: Level of the 3G pilot (CPICH) under the cell's total power, dB (a tenth of it).
PILOT_SHARE_DB = {"4G": 0.0, "5G": 0.0, "3G": -10.0}
#: Thermal noise density at 290 K, dBm/Hz.
THERMAL_DBM_HZ = -174.0


def _sinr_offset_db(tech: str) -> float:
    """SINR (dB) minus the measured level (dBm): noise, noise figure, pilot share, margin."""
    noise = THERMAL_DBM_HZ + 10 * math.log10(NOISE_BANDWIDTH_HZ[tech]) + NOISE_FIGURE_DB
    margin = -10 * math.log10(1 - CELL_LOAD)
    return -PILOT_SHARE_DB[tech] - noise - margin


def download_mbps(level_dbm: float, tech: str) -> float:
    """Textbook download at a modelled level (RSRP for 4G, RSCP for 3G), Mbps."""
    sinr = 10 ** ((level_dbm + _sinr_offset_db(tech)) / 10)
    eff = min(math.log2(1 + sinr), SHANNON_MAX_BPS_HZ)
    return SHANNON_ALPHA * BANDWIDTH_HZ[tech] * eff * (1 - CELL_LOAD) / 1e6


def slow_levels_dbm(min_download_mbps: float) -> Mapping[str, float]:
    """Per broadband technology, the level under which the textbook download is slow, dBm.

    The level at which :func:`download_mbps` reaches ``min_download_mbps``, never under
    :data:`coverage.model.observations.NO_SERVICE_DBM` (under it the handset leaves the
    technology); where even the highest code rate stays under the threshold, +inf (the
    technology is slow at any level).
    """
    out = {}
    for tech in BANDWIDTH_HZ:
        eff = min_download_mbps * 1e6 / (SHANNON_ALPHA * BANDWIDTH_HZ[tech] * (1 - CELL_LOAD))
        if eff > SHANNON_MAX_BPS_HZ:
            out[tech] = math.inf
            continue
        sinr_db = 10 * math.log10(2 ** eff - 1)
        out[tech] = max(sinr_db - _sinr_offset_db(tech), NO_SERVICE_DBM[tech])
    return out

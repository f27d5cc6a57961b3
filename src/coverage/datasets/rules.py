"""The contract's default rules profile (``vn-2025``), as the worlds' hidden truth applies it.

Written out here from ``CONTRACT.md`` rather than imported from :mod:`coverage.params`, so the
truth does not move when the product's parameters do; a test checks that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VN_2025", "TruthRules"]


@dataclass(frozen=True, slots=True)
class TruthRules:
    """Thresholds of the contract's rules profile.

    Levels in dBm (RSRP for 4G, RSCP for 3G, received level for 2G), shares in 0..1,
    speeds in Mbps.
    """

    outdoor_rsrp_dbm: float = -110.0
    outdoor_rscp_dbm: float = -105.0
    indoor_rsrp_dbm: float = -100.0
    indoor_rscp_dbm: float = -95.0
    gsm_dbm: float = -102.0
    min_covered_share: float = 0.5
    min_indoor_share: float = 0.5
    min_2g_share: float = 0.5
    min_download_mbps: float = 5.0
    max_no_service_share: float = 0.3
    min_electricity_share: float = 0.5
    min_smartphone_share: float = 0.3
    max_price_income_share: float = 0.02

    def outdoor_dbm(self, tech: str) -> float:
        """Outdoor threshold of a broadband technology, dBm."""
        return self.outdoor_rscp_dbm if tech == "3G" else self.outdoor_rsrp_dbm


VN_2025 = TruthRules()

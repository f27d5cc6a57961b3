"""Parameters of every stage, as frozen dataclasses, and the named rules profiles.

Units are in the field names (``_dbm``, ``_mhz``, ``_m``, ``_km``, ``_vnd``). Every object
validates itself on creation and can be rebuilt from a plain ``dict`` (a TOML table) with
:func:`from_mapping`, so a whole run is reproducible from one config file.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .errors import ParameterError, did_you_mean

__all__ = [
    "BROADBAND_TECHS",
    "HATA_HEIGHTS",
    "PROFILES",
    "TECHS",
    "CostModel",
    "ModelParams",
    "PlanParams",
    "Profile",
    "TechDefaults",
    "check",
    "from_mapping",
    "get_profile",
    "load_config",
]

#: Technologies, oldest first. 2G is voice; 3G and later are mobile broadband.
TECHS: tuple[str, ...] = ("2G", "3G", "4G", "5G")
BROADBAND_TECHS: tuple[str, ...] = ("3G", "4G", "5G")
#: Readings of the base-station height in the Hata law (``ModelParams.hata_height``).
HATA_HEIGHTS: tuple[str, ...] = ("mast", "above_receiver", "effective")

T = TypeVar("T")


def check(cond: bool, message: str) -> None:
    """Raise :class:`~coverage.errors.ParameterError` with ``message`` unless ``cond``."""
    if not cond:
        raise ParameterError(message)


_check = check  # the name the classes below use

#: The config-file table of each parameter class, for messages.
_TABLES = {"Profile": "[profile]", "ModelParams": "[model]", "PlanParams": "[plan]",
           "CostModel": "[costs]", "TechDefaults": "[model.techs.<tech>]"}


def _refuse(obj: Any, name: str, valid: str) -> None:
    """Raise ParameterError naming the setting, its value, what is valid and the fix."""
    cls = type(obj)
    default = {f.name: f.default for f in dataclasses.fields(cls)}.get(name)
    if cls is Profile:
        keep = "to keep the profile's own value"
    elif isinstance(default, int | float) and not isinstance(default, bool):
        keep = f"for the default, {default:g}"
    else:
        keep = "for the default"
    raise ParameterError(f"{_TABLES.get(cls.__name__, cls.__name__)} {name} = "
                         f"{getattr(obj, name)!r} is out of range; use {valid}, or delete "
                         f"the line {keep}")


def _one_of(obj: Any, name: str, choices: tuple[str, ...]) -> None:
    """Refuse ``obj.name`` unless one of ``choices``, suggesting the closest."""
    value = getattr(obj, name)
    if value not in choices:
        *first, last = (repr(c) for c in choices)
        raise ParameterError(f"{_TABLES.get(type(obj).__name__, type(obj).__name__)} "
                             f"{name} = {value!r}{did_you_mean(value, choices)}: use "
                             f"{', '.join(first)} or {last}")


def _within(obj: Any, name: str, lo: float, hi: float = math.inf, unit: str = "", *,
            above: bool = False, below: bool = False) -> None:
    """Refuse ``obj.name`` unless a number in ``lo..hi``.

    ``above`` / ``below``: ``lo`` / ``hi`` themselves are out. None is valid too for a
    field that may be None (a rule turned off). NaN is never in range.
    """
    value = getattr(obj, name)
    unset = {f.name: str(f.type) for f in dataclasses.fields(obj)}[name].endswith("| None")
    if value is None and unset:
        return
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and (lo < value if above else lo <= value) and (
            value < hi if below else value <= hi):
        return
    unit = f" {unit}" if unit else ""
    if hi == math.inf:
        valid = f"{'more than' if above else 'at least'} {lo:g}{unit}"
    else:
        out = [f"{lo:g}"] * above + [f"{hi:g}"] * below
        valid = f"{lo:g}..{hi:g}{unit}" + (f", {' and '.join(out)} excluded" if out else "")
    _refuse(obj, name, valid)


@dataclass(frozen=True, slots=True)
class TechDefaults:
    """Link-budget defaults of one radio technology.

    Parameters
    ----------
    eirp_dbm : float
        EIRP of the signal the thresholds measure, in dBm: the reference signal per resource
        element for 4G/5G (RSRP), the CPICH pilot for 3G (RSCP), the BCCH carrier for 2G.
    freq_mhz : float
        Carrier frequency in MHz.
    height_m : float
        Antenna height above ground in metres.
    """

    eirp_dbm: float
    freq_mhz: float
    height_m: float = 30.0

    def __post_init__(self) -> None:
        _within(self, "eirp_dbm", -30, 90, "dBm")
        _within(self, "freq_mhz", 30, 100_000, "MHz")
        _within(self, "height_m", 1, 300, "m")


def _default_techs() -> dict[str, TechDefaults]:
    # Typical Vietnamese deployments: GSM 900, UMTS 2100, LTE band 3 (1800), NR n78 (3500).
    # 2G: 43 dBm BCCH + 17 dBi - 3 dB feeder = 57 dBm.  3G: CPICH 33 dBm + 17 - 3 = 47 dBm.
    # 4G: 46 dBm over 1200 subcarriers = 15.2 dBm per RE, + 17 - 2 = 30 dBm.
    # 5G: 200 W over 3276 subcarriers = 18 dBm per RE, + 24 dBi beamforming - 2 = 40 dBm.
    return {
        "2G": TechDefaults(eirp_dbm=57.0, freq_mhz=900.0),
        "3G": TechDefaults(eirp_dbm=47.0, freq_mhz=2100.0),
        "4G": TechDefaults(eirp_dbm=30.0, freq_mhz=1800.0),
        "5G": TechDefaults(eirp_dbm=40.0, freq_mhz=3500.0),
    }


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Parameters of the coverage model.

    Parameters
    ----------
    resolution_m : float
        Grid cell size in metres, in the analysis CRS.
    terrain_resolution_m : float, optional
        Cell size of the terrain the diffraction profiles are sampled on, and their step,
        metres; a whole fraction of ``resolution_m`` (100 / 2 = 50, 100 / 3 = 33.3...).
        None (the default): ``resolution_m``. Finer terrain keeps the ridges a DEM averaged
        to the analysis grid smooths away, at the cost of more profile samples (the grid of
        the results does not change; at 50 m under 100 m, 1.6 times the time and 1.3 times
        the memory: ``benchmarks/bench_model.py --terrain-m 50``). Set it to a DEM finer
        than the grid, such as SRTM 1" or Copernicus GLO-30 under a 100 m grid: with the
        demo's hidden 50 m terrain sampled at 50 m, the model alone finds ``unavailable``
        villages with recall 0.925 against 0.745 with the published 100 m DEM, and the
        classification with tests reaches 0.837 / 0.836 / 0.925 (accuracy, macro-F1,
        recall) against 0.830 / 0.831 / 0.896 (``benchmarks/classify_ceiling.py
        --terrain``). Not finer than the DEM: the 100 m DEM sampled at 50 m adds no terrain
        and on the demo did worse in a one-off run (0.813 / 0.816 / 0.840). The run logs a
        hint when the DEM
        is at least twice as fine as the profiles' step.
    rx_height_m : float
        Receiver (handset) height above ground, metres.
    path_loss : {"hata", "free_space", "itm"}
        Median path-loss model: Okumura-Hata below 1500 MHz and COST-231 Hata above
        (extended beyond 2000 MHz), never less than free space, plus Bullington
        diffraction over the DEM (``terrain``); or free space alone; or NTIA's Irregular
        Terrain Model (Longley-Rice, :mod:`coverage.itm`), which takes the terrain itself
        (horizons, effective heights, terrain irregularity) and replaces both Hata and
        Bullington: point-to-point over each cell's DEM profile, area mode over flat
        ground without a DEM. ITM is fitted to measurements over 20 MHz-20 GHz and
        1-2000 km; it has no land-use (clutter) term, so the per-cell clutter losses
        (``environment``, foliage) are added to it as to Hata. ITM takes its effective
        earth radius from the refractivity and the antenna heights from the terrain, so
        ``k_factor``, ``hata_height``, ``diffraction`` and ``interpolate_rays`` (each cell
        reads its nearest ray) do not apply to it. See ``docs/itm.md``.
    environment : {"auto", "urban", "suburban", "rural"}
        Hata environment correction (rural is the open area of Hata 1980). ``"auto"``
        decides it per grid cell from the population raster by the Degree of
        Urbanisation, or from a land-cover raster's built-up share
        (:mod:`coverage.model.clutter`); rural where neither is given.
    hata_height : {"mast", "above_receiver", "effective"}
        Base-station height in the Hata law, metres. ``"mast"``: the antenna's height above
        the ground at the mast, the terrain being the diffraction term's job (a hilltop
        mast's advantage is its clearance over the profile, counted once).
        ``"above_receiver"``: the antenna's altitude above the receiver's ground (clipped
        to mast height..300 m), the older effective-height reading, which counts the
        terrain twice when diffraction over the DEM is on (on the demo, open rural cells
        +10.6 dB too strong against +3.2 dB with the mast height:
        ``benchmarks/model_bias_by_clutter.py``). ``"effective"``: Okumura's effective
        base-station height, the one his curves (and so Hata's fit) were drawn with, as
        ITU-R P.1546-6 Annex 5 §3 defines its :math:`h_1` over terrain: the antenna's
        altitude above the mean ground between 3 and 15 km from the mast towards the
        receiver (§3.2, paths of 15 km or more), or between :math:`0.2 d` and :math:`d`
        on a path of :math:`d` < 15 km (§3.1.2), the receiver's own ground included
        (:func:`coverage.radio.effective_height_window_m`); clipped to mast height..300 m as
        ``"above_receiver"``. The mean is taken over the ground samples of the cell's ray
        that the diffraction reads (:meth:`coverage.radio.RaySweep.mean_ground_m`).
        Without a DEM, or with ``terrain = False`` (no profiles), it is the mast height.
    foliage_loss_db, foliage_db_per_decade : float
        Loss of a handset under tree canopy at 900 MHz (dB) and its growth per decade of
        frequency, times the cell's tree-cover share from a land-cover raster. 6 dB by
        default; 12 dB (Weissberger's model 50 m inside the canopy, the pessimistic end of
        the 8-13 dB the literature gives there, :mod:`coverage.model.clutter`) is an
        option: it helped the towers-only model on independent worlds and not the
        classification with tests (``docs/validation.md``).
    tree_classes, built_up_classes : tuple of int
        Land-cover codes of tree canopy and of built-up land (ESA WorldCover by default).
    terrain : bool
        Add knife-edge diffraction loss over the DEM profile (ITU-R P.526 Bullington),
        with earth curvature, when a DEM is given.
    profile_samples : int
        Not used since the radial sweep samples every profile at each terrain cell
        (``terrain_resolution_m``); kept so that older config files still load.
    max_range_km : float
        No site is modelled beyond this distance.
    k_factor : float
        Effective earth radius factor (4/3 standard atmosphere).
    techs : dict
        :class:`TechDefaults` per technology, for sites that do not state their own.
    diffraction : {"bullington", "delta_bullington", "los"}
        With terrain: Bullington diffraction loss (ITU-R P.526-15 §4.5.1, one equivalent
        knife edge); the delta-Bullington method of ITU-R P.452-17 §4.2.3 / P.1812-6
        §4.3.4 (Bullington over the profile, plus the spherical-earth loss of the
        profile's smooth-earth path beyond what Bullington gives over that smooth path);
        or line of sight only (a cell whose direct path is cut by the terrain gets no
        signal).
    ray_spacing_cells : float
        Spacing of the radial sweep's rays at each site's useful radius, in grid cells
        (closer near the site); 1 samples every edge cell, 2 every other one.
    interpolate_rays : bool
        Evaluate each cell on the two rays either side of it and interpolate the edge
        parameter linearly in angle (twice the per-cell work, much closer to the exact
        straight profile); otherwise the nearest ray only.
    itm_climate : int
        ITM radio climate, 1-7 (:data:`coverage.itm.CLIMATES`). Default 1, equatorial:
        Vietnam lies between 8.5 and 23.4 N in the humid monsoon tropics; 3 (maritime
        subtropical) is the other reading for the north. The climate only shifts the
        median through the variability's :math:`V_{med}` curves, which grow with distance:
        at most 1.3 dB between the two up to 30 km at 50% (``tests/test_itm.py``).
    itm_refractivity_n0 : float
        ITM's minimum monthly mean surface refractivity at sea level, N-units (250-400).
        Default 350: ITU-R P.453's sea-level refractivity over the humid tropics of
        South-East Asia is about 350-370 N-units through the year (the monthly minimum
        is the lower end); 301 is ITM's temperate default.
    itm_permittivity, itm_conductivity_s_m : float
        Relative permittivity and conductivity (S/m) of the ground: 15 and 0.005, ITM's
        "average ground" ([TR82] table 1).
    itm_polarization : {"vertical", "horizontal"}
        Polarization for ITM's ground reflection (mobile networks' cross-polar antennas
        are closer to vertical for the ground-reflected ray).
    itm_mdvar : int
        ITM's mode of variability: 0 single message, 1 accidental, 2 mobile (default,
        [TR82] p. 11), 3 broadcast; +10 without location variability, +20 without direct
        situation variability.
    itm_time_pct, itm_location_pct, itm_situation_pct : float
        Percentages of time, locations and situations the predicted level is exceeded,
        in (0, 100). Default 50 each: the median, as Hata's; the classification applies
        its own location variability (``Profile.location_sigma_db``), so a location
        percentage other than 50 would count it twice.
    workers : int
        Threads for the prediction (numpy releases the GIL).
    calibrate : bool
        Fit intercept and slope per operator/technology to measured RSRP when fusing.
    krige : bool
        Spread the residuals of measurements over the surface by simple kriging.
    krige_lifts : bool
        Let the kriged residuals lift the surface as well as lower it. False (the default):
        kriging only lowers, as the classification's tests lift a village's untested
        cells only where they decide (five tests or more). A handset reports a level only
        where it camps and testers gather where the signal is good, so the positive
        residuals are partly lucky draws; a measured dead zone (weak levels, no service,
        fallbacks) is the evidence worth spreading. The tested cells themselves keep their
        measured levels either way. With lifting, on
        the tuning and check worlds the tests lowered `unavailable` recall against the
        towers-only run on two worlds of nine (``docs/validation.md``).
    min_calibration_tests : int
        Measurements an operator/technology needs for its own fit (fewer: its
        technology's pooled fit, or none).
    cv_folds : int
        Folds of the cross-validation that reports calibration error.
    cv_block_m : float
        Side of the square blocks assigned whole to one fold, metres (so held-out tests
        are not next to training tests).
    diffraction_scale : float
        Factor on the Bullington diffraction loss (1: the textbook single equivalent knife
        edge; above 1 towards multiple-edge methods such as Deygout's, which lose more
        behind successive ridges; under 1 towards a rounded, partly transparent edge).
    downtilt_deg, vertical_beamwidth_deg : float
        The base-station antennas' vertical pattern, 3GPP TR 36.814 Table A.2.1.1-2:
        -min(12 ((theta - tilt) / beamwidth)^2, 20) dB, its sum with the horizontal
        pattern capped at 25 dB, theta the angle of the handset under the antenna's
        horizontal (from the antenna's altitude and the handset's). On by default with
        3GPP's values: ``downtilt_deg = 4`` (the middle of the 2-6° rural macro cells are
        planned with; the contract's site table states no tilt) and
        ``vertical_beamwidth_deg = 10`` (3GPP's reference antenna, a 65° panel of 1.3-2 m
        at 1.8 GHz); ``downtilt_deg = 0`` or ``vertical_beamwidth_deg = 0`` turns it off.
        A mast on a ridge above its villages puts them under its main beam, 10-20 dB down
        within a kilometre or two: without the pattern the model was 15-25 dB too strong
        there on the independent worlds, and about 8 dB too strong where people live
        (``docs/validation.md``).
    select_structure : bool
        Where the province has tests, choose the model's structure (Hata height
        convention, diffraction method and scale, foliage loss) by blocked
        cross-validation on them (:func:`coverage.model.structure.choose_structure`);
        without tests, or False, the parameters as given (the textbook defaults).
    select_fusion : bool
        Let each fusion stage earn its place on the province's tests: the calibration's
        weight (0 to 1, shrunk towards none) and whether to krige, by blocked
        cross-validation (:func:`coverage.model.crossval.select_fusion`). False: calibration
        and kriging applied whole as ``calibrate`` and ``krige`` say.
    calibration_z : float
        Standard errors of the paired block differences by which the best calibration
        weight must beat a smaller one for the smaller not to be taken
        (:func:`coverage.model.crossval.select_fusion`). 2 (the default): about 97.7%
        one-sided; 1: the one-standard-error rule (Breiman et al. 1984), which takes
        calibration more often. On the tuning and check worlds 1 took calibrations that
        lowered the covered share further and lowered macro-F1 (``docs/validation.md``).
    calibration_propensity_floor : float or None
        Weigh the calibration's tests, in its fit and in its cross-validation, by the
        inverse of their propensity to be taken (:func:`coverage.calibrate.
        inverse_propensity`): a subscriber without service tests this many times as often
        as one with full signal (the floor the classification fits and logs, ``test
        propensity``; :mod:`coverage.classify.selection`). None (the default): every test
        alike. On the tuning and check worlds 0.5 lowered the calibration further and
        lowered macro-F1 on the check worlds (``docs/validation.md``).
    """

    resolution_m: float = 100.0
    terrain_resolution_m: float | None = None
    rx_height_m: float = 1.5
    path_loss: str = "hata"
    environment: str = "auto"
    hata_height: str = "mast"
    foliage_loss_db: float = 6.0
    foliage_db_per_decade: float = 10.0
    tree_classes: tuple[int, ...] = (10, 95)
    built_up_classes: tuple[int, ...] = (50,)
    terrain: bool = True
    profile_samples: int = 32
    max_range_km: float = 30.0
    k_factor: float = 4.0 / 3.0
    techs: Mapping[str, TechDefaults] = field(default_factory=_default_techs)
    diffraction: str = "bullington"
    ray_spacing_cells: float = 2.0
    interpolate_rays: bool = True
    itm_climate: int = 1
    itm_refractivity_n0: float = 350.0
    itm_permittivity: float = 15.0
    itm_conductivity_s_m: float = 0.005
    itm_polarization: str = "vertical"
    itm_mdvar: int = 2
    itm_time_pct: float = 50.0
    itm_location_pct: float = 50.0
    itm_situation_pct: float = 50.0
    workers: int = 2
    calibrate: bool = True
    krige: bool = True
    min_calibration_tests: int = 30
    cv_folds: int = 5
    cv_block_m: float = 2000.0
    select_fusion: bool = True
    diffraction_scale: float = 1.0
    select_structure: bool = True
    krige_lifts: bool = False
    downtilt_deg: float = 4.0
    vertical_beamwidth_deg: float = 10.0
    calibration_z: float = 2.0
    calibration_propensity_floor: float | None = None

    @property
    def terrain_step_m(self) -> float:
        """Cell size of the terrain grid and step of the profiles, metres."""
        return self.terrain_resolution_m or self.resolution_m

    @property
    def hata_environment(self) -> str:
        """The environment of the Hata law itself (``"auto"`` adds per-cell corrections)."""
        return "rural" if self.environment == "auto" else self.environment

    def hata_tx_height_m(self, tx_alt_m, rx_ground_m, mast_height_m, mean_ground_m=None):
        """Base-station height the Hata law takes (see ``hata_height``), metres.

        ``tx_alt_m`` is the antenna's altitude, ``rx_ground_m`` the receivers' ground and
        ``mast_height_m`` the antenna's height over its own ground (m). With
        ``hata_height = "effective"``, ``mean_ground_m`` is the mean ground of the
        receivers' windows (:func:`coverage.radio.effective_height_window_m`, m; None: no
        profile, the mast height). Any lower ground instead gives a height no lower than
        the model's (a bound for pruning).
        """
        below = {"above_receiver": rx_ground_m, "effective": mean_ground_m}.get(
            self.hata_height)
        if below is None:
            return np.broadcast_to(np.asarray(mast_height_m, dtype=float),
                                   np.shape(rx_ground_m)).copy()
        return np.clip(np.asarray(tx_alt_m) - below, mast_height_m, 300.0)

    @property
    def itm_settings(self) -> dict[str, Any]:
        """The ITM settings as the keyword arguments of :func:`coverage.itm.itm_p2p`."""
        return dict(climate=self.itm_climate, refractivity_n0=self.itm_refractivity_n0,
                    polarization=self.itm_polarization, permittivity=self.itm_permittivity,
                    conductivity_s_m=self.itm_conductivity_s_m, mdvar=self.itm_mdvar,
                    time_pct=self.itm_time_pct, location_pct=self.itm_location_pct,
                    situation_pct=self.itm_situation_pct)

    def _check_itm(self) -> None:
        from .itm import CLIMATES, MDVAR_MODES

        _check(self.itm_climate in CLIMATES,
               f"itm_climate={self.itm_climate!r}: use "
               + ", ".join(f"{k} ({v})" for k, v in CLIMATES.items()))
        _within(self, "itm_refractivity_n0", 250, 400, "N-units")
        _within(self, "itm_permittivity", 1)
        _within(self, "itm_conductivity_s_m", 0, unit="S/m", above=True)
        _one_of(self, "itm_polarization", ("vertical", "horizontal"))
        _check(isinstance(self.itm_mdvar, int) and 0 <= self.itm_mdvar <= 33
               and self.itm_mdvar % 10 in MDVAR_MODES,
               f"itm_mdvar={self.itm_mdvar!r}: use 0 (single message), 1 (accidental), "
               "2 (mobile) or 3 (broadcast), plus 10 and/or 20")
        for name in ("itm_time_pct", "itm_location_pct", "itm_situation_pct"):
            _within(self, name, 0, 100, "%", above=True, below=True)

    def __post_init__(self) -> None:
        _one_of(self, "diffraction", ("bullington", "delta_bullington", "los"))
        _within(self, "ray_spacing_cells", 0.25, 8, "grid cells")
        _within(self, "workers", 1, 64, "threads")
        _within(self, "min_calibration_tests", 3, unit="tests")
        _within(self, "cv_folds", 2, 50, "folds")
        _within(self, "cv_block_m", 0, unit="m", above=True)
        _within(self, "calibration_z", 0, 5, "standard errors")
        _within(self, "calibration_propensity_floor", 0.05, 1)
        _within(self, "downtilt_deg", -10, 30, "degrees")
        if self.vertical_beamwidth_deg != 0:
            _within(self, "vertical_beamwidth_deg", 2, 90, "degrees, or 0 for no vertical "
                    "pattern")
        _within(self, "diffraction_scale", 0, 3)
        _within(self, "resolution_m", 5, 5000, "m")
        _within(self, "k_factor", 0.25, 1000, "(4/3: the standard atmosphere)")
        for name in ("tree_classes", "built_up_classes"):
            codes = getattr(self, name)
            _check(all(isinstance(c, Integral) and not isinstance(c, bool) and 0 <= c <= 65535
                       for c in codes),
                   f"[model] {name} = {list(codes)!r}: land-cover codes are whole numbers in "
                   "0..65535 (ESA WorldCover: 10 trees, 50 built-up, 95 mangroves); delete "
                   "the line for the default")
        if self.terrain_resolution_m is not None:
            factor = self.resolution_m / self.terrain_resolution_m
            _check(self.terrain_resolution_m >= 5 and factor >= 1
                   and abs(factor - round(factor)) < 1e-6,
                   f"terrain_resolution_m={self.terrain_resolution_m} must be at least 5 and "
                   f"a whole fraction of resolution_m={self.resolution_m} (e.g. "
                   f"{self.resolution_m / 2:g} or {self.resolution_m / 3:.2f})")
        _within(self, "rx_height_m", 0.5, 10, "m")
        _one_of(self, "path_loss", ("hata", "free_space", "itm"))
        self._check_itm()
        _one_of(self, "environment", ("auto", "urban", "suburban", "rural"))
        _one_of(self, "hata_height", HATA_HEIGHTS)
        _within(self, "foliage_loss_db", 0, 40, "dB")
        _within(self, "foliage_db_per_decade", 0, 40, "dB")
        _within(self, "profile_samples", 4, 1024)
        _within(self, "max_range_km", 0.5, 200, "km")
        _check(set(self.techs) >= set(TECHS), f"techs must define {', '.join(TECHS)}")


@dataclass(frozen=True, slots=True)
class Profile:
    """A named rules profile: when a village is unavailable, inaccessible or served.

    The classes are ``unavailable``, ``available_inaccessible`` and ``served``.
    Signal thresholds are in dBm: RSRP for 4G/5G, RSCP for 3G, received level for 2G.
    ``None`` disables a rule.
    """

    name: str
    description: str = ""
    outdoor_rsrp_dbm: float = -110.0
    outdoor_rscp_dbm: float = -105.0
    indoor_rsrp_dbm: float = -100.0
    indoor_rscp_dbm: float = -95.0
    gsm_dbm: float = -102.0
    min_covered_share: float = 0.5
    min_indoor_share: float | None = 0.5
    min_2g_share: float = 0.5
    min_download_mbps: float | None = 5.0
    min_upload_mbps: float | None = None
    min_speed_tests: int = 5
    max_no_service_share: float | None = 0.3
    min_no_service_tests: int = 5
    min_electricity_share: float | None = 0.5
    min_smartphone_share: float | None = 0.3
    max_price_income_share: float | None = 0.02
    measurement_radius_m: float = 250.0
    # Measurement sufficiency: tests replace the model in a village only with enough of them,
    # from enough devices, spread over enough time (in the spirit of the FCC BDC mobile
    # challenge). Devices and time are checked only where the tests state them.
    min_override_tests: int = 5
    min_override_devices: int = 2
    min_override_span_h: float = 4.0
    # Empirical-Bayes calibration: the model's dB error measured at test points, shrunk from
    # village to commune to province, shifts the model by at most this much (0 disables).
    max_offset_db: float = 20.0
    # Location variability of the model (dB): a modelled cell is covered with probability
    # Phi((margin + offset) / sigma). None: the spread of the model's error at the tests
    # (needs 30 tests with a level), without them the textbook 8 dB of a rural macro cell's
    # shadowing (coverage.classify.metrics.MODEL_SIGMA_DB); 0: hard thresholds on the
    # modelled level.
    location_sigma_db: float | None = None
    # Strength of the model as a prior, in tests, when too few villages have tests to estimate
    # it (the estimate is kept within min..max).
    model_prior_tests: float = 10.0
    min_prior_tests: float = 2.0
    max_prior_tests: float = 60.0
    # The model alone (no tests in the village) never warrants more confidence than this.
    max_model_confidence: float = 0.9
    # Label stability: thresholds moved by this many dB and this relative share.
    stability_db: float = 3.0
    stability_rel: float = 0.10
    unstable_confidence_factor: float = 0.7
    # Per province, the confidence learns how far the model's covered share strays there:
    # the villages whose tests decide, their shares against the model's with their own tests
    # held out, set the spread of the share that the signal does not carry for the villages
    # the model decides (coverage.classify.rules). Under min_recalibration_villages such
    # villages in a province, or with recalibrate_confidence false: the fixed 0.05.
    recalibrate_confidence: bool = True
    min_recalibration_villages: int = 20
    # Fibre targets of the national strategy (Decision 411/QD-TTg): households with fibre.
    fibre_reach_m: float = 1000.0
    fibre_target_2025: float = 0.8
    fibre_target_2030: float = 1.0
    persons_per_household: float = 3.6

    def __post_init__(self) -> None:
        _check(bool(self.name), "a profile needs a name")
        for name in ("min_covered_share", "min_indoor_share", "min_2g_share",
                     "max_no_service_share", "min_electricity_share", "min_smartphone_share",
                     "max_price_income_share", "stability_rel", "unstable_confidence_factor",
                     "max_model_confidence",
                     "fibre_target_2025", "fibre_target_2030"):
            _within(self, name, 0, 1, "(a share: 0.5 is half)")
        for name in ("min_download_mbps", "min_upload_mbps"):
            # 10,000 Mbps: the peak rate of the fastest handset modems (MEASUREMENT_LIMITS)
            _within(self, name, 0, 10_000, "Mbps")
        for name in ("min_speed_tests", "min_no_service_tests", "min_override_tests",
                     "min_override_devices", "min_recalibration_villages"):
            _within(self, name, 1)
        _within(self, "location_sigma_db", 0, 30, "dB")
        for name in ("min_override_span_h", "max_offset_db", "stability_db", "fibre_reach_m",
                     "measurement_radius_m"):
            _within(self, name, 0)
        _within(self, "min_prior_tests", 0, above=True)
        _check(self.min_prior_tests <= self.model_prior_tests <= self.max_prior_tests,
               f"[profile] min_prior_tests = {self.min_prior_tests!r}, model_prior_tests = "
               f"{self.model_prior_tests!r} and max_prior_tests = {self.max_prior_tests!r} "
               "must rise in that order (2, 10 and 60 by default)")
        _within(self, "persons_per_household", 0, above=True)
        for name in ("outdoor_rsrp_dbm", "outdoor_rscp_dbm", "indoor_rsrp_dbm",
                     "indoor_rscp_dbm", "gsm_dbm"):
            # what a handset can report: 3GPP TS 36.133 maps RSRP from -156 to -44 dBm
            _within(self, name, -160, -20, "dBm")

    def outdoor_dbm(self, tech: str) -> float:
        """Outdoor threshold of a broadband technology, dBm."""
        return self.outdoor_rscp_dbm if tech == "3G" else self.outdoor_rsrp_dbm

    def indoor_dbm(self, tech: str) -> float:
        """Indoor-usable threshold of a broadband technology, dBm."""
        return self.indoor_rscp_dbm if tech == "3G" else self.indoor_rsrp_dbm

    def replace(self, **changes: Any) -> Profile:
        """Return a copy with some thresholds changed (validated)."""
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="vn-2025",
            description=(
                "Vietnam, Decision 1437/QD-TTg: broadband unavailable below half the people "
                "covered outdoors (-110 dBm RSRP / -105 dBm RSCP); available but inaccessible "
                "when indoor signal, speed (5 Mbps), service, power, devices or price fail."
            ),
        ),
        Profile(
            name="bead-25-3",
            description="US BEAD 'underserved' tier: 25/3 Mbps measured speed.",
            min_download_mbps=25.0,
            min_upload_mbps=3.0,
        ),
        Profile(
            name="bead-100-20",
            description="US BEAD 'served' tier: 100/20 Mbps measured speed.",
            min_download_mbps=100.0,
            min_upload_mbps=20.0,
        ),
        Profile(
            name="gsma-gap",
            description=(
                "GSMA coverage gap / usage gap: unavailable = coverage gap; available but "
                "inaccessible = usage gap (devices, price, power); no speed or indoor rules."
            ),
            min_indoor_share=None,
            min_download_mbps=None,
            max_no_service_share=None,
        ),
    )
}


def get_profile(name: str, **overrides: Any) -> Profile:
    """Return the named profile, with thresholds overridden.

    Raises
    ------
    ParameterError
        If the name is unknown or an override is not a threshold of the profile.
    """
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ParameterError(
            f"unknown profile {name!r}{did_you_mean(name, PROFILES)}; known profiles: "
            f"{', '.join(sorted(PROFILES))}") from None
    return from_mapping(Profile, overrides, base=profile) if overrides else profile


@dataclass(frozen=True, slots=True)
class CostModel:
    """Costs of building and running a site, in VND (or any one currency).

    Figures are 2024 Vietnamese orders of magnitude for rural sites; every one can be
    overridden in the config file's ``[costs]`` table. A site's cost is the sum of

    - **site**: ``new_tower`` (macro tower, antennas, radio), ``upgrade_4g`` (a 4G radio on an
      existing 2G/3G mast) or ``small_cell`` (a pole-mounted small cell);
    - **backhaul**, the cheapest of: fibre at ``fibre_per_km`` along the route (the shortest
      path over the road graph from the site's nearest road node to the fibre, plus the
      access track; without a road graph, the straight line times ``fibre_route_factor``);
      one ``microwave_hop`` to an existing site with backhaul within ``microwave_max_km`` and
      line of sight (``microwave_clearance`` of the first Fresnel zone at
      ``microwave_freq_ghz`` clear over the DEM); or ``satellite_backhaul`` with its yearly
      fee ``satellite_backhaul_per_year``. Upgrades reuse their site's backhaul;
    - **power**: a grid line at ``grid_power_per_km`` along the access track when the site's
      village has grid power and the line is at most ``grid_max_km``, else ``solar_power``
      (a small cell needs ``small_cell_power_share`` of a macro site's solar kit);
    - **road**: an access track of ``road_per_km`` from the nearest road node (straight line
      times ``road_winding_factor``);
    - **opex**: ``opex_per_year`` (times ``upgrade_opex_share`` / ``small_cell_opex_share``)
      plus any satellite fee, over ``horizon_years`` discounted at ``discount_rate``.

    Villages no site reaches at a fair price can get community satellite terminals instead:
    ``satellite_terminal`` each plus ``satellite_terminal_per_year``, one per
    ``people_per_terminal`` residents.
    """

    currency: str = "VND"
    new_tower: float = 1_500_000_000.0
    upgrade_4g: float = 350_000_000.0
    small_cell: float = 250_000_000.0
    fibre_per_km: float = 120_000_000.0
    fibre_route_factor: float = 1.3
    microwave_hop: float = 250_000_000.0
    microwave_max_km: float = 30.0
    microwave_freq_ghz: float = 15.0
    microwave_clearance: float = 0.6
    satellite_backhaul: float = 300_000_000.0
    satellite_backhaul_per_year: float = 60_000_000.0
    grid_power_per_km: float = 300_000_000.0
    grid_max_km: float = 5.0
    solar_power: float = 450_000_000.0
    road_per_km: float = 800_000_000.0
    road_winding_factor: float = 1.2
    opex_per_year: float = 120_000_000.0
    upgrade_opex_share: float = 0.25
    small_cell_opex_share: float = 0.3
    small_cell_power_share: float = 0.3
    satellite_terminal: float = 20_000_000.0
    satellite_terminal_per_year: float = 18_000_000.0
    people_per_terminal: float = 20.0
    horizon_years: int = 10
    discount_rate: float = 0.08

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float):
                _within(self, f.name, 0)
        _within(self, "discount_rate", 0, 1, "(0.08 = 8% a year)", below=True)
        _within(self, "fibre_route_factor", 1)
        _within(self, "road_winding_factor", 1)
        _within(self, "microwave_clearance", 0, 1.5, "of the first Fresnel zone")
        _within(self, "people_per_terminal", 1)

    @property
    def annuity_factor(self) -> float:
        """Present value of 1 per year over the horizon (end-of-year payments)."""
        r, n = self.discount_rate, self.horizon_years
        return float(n) if r == 0 else (1 - (1 + r) ** -n) / r

    @property
    def opex_present_value(self) -> float:
        """Present value of a macro site's operating cost over the horizon."""
        return self.opex_per_year * self.annuity_factor


@dataclass(frozen=True, slots=True)
class PlanParams:
    """Parameters of rollout planning.

    Parameters
    ----------
    tech : str
        Technology of new sites and upgrades.
    new_site_height_m : float
        Antenna height of new macro sites, metres.
    max_candidates : int
        Generated candidates kept: village centres of the most populous ``unavailable``
        villages, and terrain high points (at most half, and three per such village).
    small_cells : bool
        Also offer a small cell at the centre of each village given a macro candidate.
    small_cell_height_m, small_cell_eirp_dbm : float
        Small-cell antenna height (m) and reference-signal EIRP (dBm per resource element).
    satellite_terminals : bool
        Offer community satellite terminals to each ``unavailable`` village, as one more
        option of the optimiser (chosen where no site is worth its cost).
    high_point_radius_m : float
        Terrain high points are searched within this distance of unserved villages.
    high_point_spacing_m : float
        Minimum distance between two generated high points.
    lock_planned : bool
        Build every ``planned`` site first (their cost counts against the budget).
    carry_over : bool
        With phases, money a year leaves unspent is added to the next year's budget.
    min_site_people : float
        The fewest people (weighted as the plan weighs villages) a site must add, in build
        order, to be built: a site adding fewer is left out of every plan (heuristic, MILP,
        relaxation) and its money left unspent. 0.5: a site must connect one person, rounded.
        0 builds every site that adds anyone.
    milp_max_candidates : int
        Solve the exact MILP when there are at most this many candidates (``exact=None``).
    time_limit_s : float
        Wall-clock safety net of each stage that can run long, seconds: the heuristic's
        local search, the MILP, the LP bound and the Lagrangian bound (each stops with its
        best so far). The budgets below, counted in work, nodes and iterations, end them
        first, so that the same inputs give the same plan on any machine and under any
        load; a stage this limit stops is named in the plan's ``summary["time_limited"]``
        (its result may differ from run to run).
    search_effort : float
        The heuristic's seeds and local search of each phase may do this many times the
        work of its greedy (:mod:`coverage.plan.search`; work units count the array
        elements touched, not seconds).
    search_min_work : float
        ... or this many work units if more (250 million: about 1 s of CPU on the demo
        province, where the search ends at a local optimum well before).
    kernel_max_nodes : int
        Branch-and-bound nodes of the heuristic's kernel MILP (HiGHS ``mip_max_nodes``).
    milp_max_nodes : int
        Branch-and-bound nodes of the exact MILP and of the relaxation's MILP; the MILP
        then reports ``milp_status = "node_limit"`` with the gap it proved.
    lp_max_iterations : int
        Interior point iterations of the LP relaxation (HiGHS ``ipm_iteration_limit``);
        its duals still give a valid bound when it stops there.
    mip_rel_gap : float
        The MILP stops once its plan is proven within this share of the optimum (0.001 =
        0.1%).
    local_search : bool
        Improve the greedy by seeds and local search (:mod:`coverage.plan.search`).
    lp_relaxation : bool
        Where the MILP does not run or does not prove its gap, solve the LP relaxation by
        interior point (:func:`coverage.plan.relaxation_select`): the LP bound and a plan
        from it at any scale. Off: the Lagrangian bound by subgradient steps only.
    milp_warm_start : bool
        Give the heuristic's plan to HiGHS as its first incumbent (on the demo at 40 bn VND
        HiGHS proves its gap in half the time from the heuristic's plan,
        ``benchmarks/bench_plan.py --warm-vs-cold``); the plan is the better of the
        heuristic's and the MILP's either way.
    """

    tech: str = "4G"
    new_site_height_m: float = 40.0
    max_candidates: int = 400
    costs: CostModel = field(default_factory=CostModel)
    small_cells: bool = True
    small_cell_height_m: float = 15.0
    small_cell_eirp_dbm: float = 20.0
    satellite_terminals: bool = True
    high_point_radius_m: float = 5000.0
    high_point_spacing_m: float = 1500.0
    lock_planned: bool = False
    carry_over: bool = True
    min_site_people: float = 0.5
    milp_max_candidates: int = 5000
    time_limit_s: float = 600.0
    search_effort: float = 1.0
    search_min_work: float = 250_000_000.0
    kernel_max_nodes: int = 200
    milp_max_nodes: int = 1000
    lp_max_iterations: int = 500
    mip_rel_gap: float = 0.001
    local_search: bool = True
    lp_relaxation: bool = True
    milp_warm_start: bool = True

    def __post_init__(self) -> None:
        _one_of(self, "tech", BROADBAND_TECHS)
        _within(self, "max_candidates", 1)
        for name in ("new_site_height_m", "small_cell_height_m"):
            _within(self, name, 1, 300, "m")
        _within(self, "small_cell_eirp_dbm", -30, 90, "dBm")
        for name in ("high_point_radius_m", "high_point_spacing_m", "search_effort",
                     "search_min_work", "kernel_max_nodes", "milp_max_nodes",
                     "lp_max_iterations", "min_site_people", "milp_max_candidates"):
            _within(self, name, 0)
        _within(self, "time_limit_s", 0, unit="s", above=True)
        _within(self, "mip_rel_gap", 0, 1, "(0.001 = 0.1%)", below=True)


_KINDS = {"float": "a number", "float | None": "a number", "int": "a whole number",
          "bool": "true or false", "str": "a text in quotes"}


def _checked(owner: str, key: str, value: Any, annotation: Any) -> Any:
    """The setting, refused when of the wrong kind (a TOML text where a number belongs...).

    A whole number written with a decimal point (``6.0``) is taken as the integer.
    """
    kind = _KINDS.get(str(annotation))
    if kind is None or (value is None and str(annotation).endswith("| None")):
        return value
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = {"a number": number,
          "a whole number": number and float(value).is_integer(),
          "true or false": isinstance(value, bool),
          "a text in quotes": isinstance(value, str)}[kind]
    if not ok:
        raise ParameterError(f"{owner} setting {key} = {value!r}: expected {kind}")
    return int(value) if kind == "a whole number" else value


def from_mapping(cls: type[T], values: Mapping[str, Any], *, base: T | None = None) -> T:
    """Build a parameter object from a mapping (a TOML table), refusing unknown keys.

    Nested dataclasses (``techs``, ``costs``) are built from nested tables.
    """
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ParameterError(
            f"unknown {cls.__name__} setting(s) "
            f"{', '.join(k + did_you_mean(k, known) for k in unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    base = base if base is not None else cls()
    changes: dict[str, Any] = {}
    for key, value in values.items():
        current = getattr(base, key)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            value = from_mapping(type(current), value, base=current)
        elif key == "techs" and isinstance(value, Mapping):
            merged = dict(current)
            for tech, tv in value.items():
                tech = str(tech).upper()
                _check(tech in TECHS, f"unknown technology {tech!r} in techs"
                       f"{did_you_mean(tech, TECHS)}; known: {', '.join(TECHS)}")
                try:
                    merged[tech] = from_mapping(TechDefaults, tv, base=merged[tech])
                except ParameterError as exc:
                    raise ParameterError(str(exc).replace("<tech>", tech)) from None
            value = merged
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        else:
            value = _checked(cls.__name__, key, value, known[key].type)
        changes[key] = value
    try:
        return dataclasses.replace(base, **changes)
    except TypeError as exc:
        raise ParameterError(f"bad {cls.__name__} setting: {exc}") from None


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into a dict, with a clear error when it cannot be parsed."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"config file {path} does not exist")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"config file {path} is not valid TOML: {exc}") from None

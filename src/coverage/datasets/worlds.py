"""A family of synthetic worlds that differ where reality is unknown, and their registry.

Every world is a province drawn from a seed (terrain, settlements, roads, three operators'
networks, population, speed tests) whose hidden radio field follows one
:class:`WorldPhysics`: which textbook propagation family, which base-station height
convention, which diffraction construction, how the antennas are tilted, what clutter and
foliage cost, how far each operator's real EIRP sits from what its tables say, how strong and
how wide the shadowing is, and how much the testers favour places with signal. The product's
model knows none of these choices.

The registry :data:`WORLDS` names the worlds; :data:`TUNING_WORLDS` are the ones to tune on
(examine their errors freely), :data:`SCORED_WORLDS` the ones only to score (print their
aggregate figures, never their per-village errors); :data:`DEMO_WORLD` is the embedded demo
of ``data/``. ``benchmarks/worlds.py`` generates and scores them.

Examples
--------
>>> from coverage.datasets.worlds import WORLDS, generate_world   # doctest: +SKIP
>>> paths = generate_world("tune-hata-mast", "/tmp/worlds/tune-hata-mast")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import ParameterError
from .physics import DIFFRACTION_METHODS, KNIFE_EDGE_FORMULAS, PROPAGATION_FAMILIES

__all__ = ["DEMO_WORLD", "HEIGHT_CONVENTIONS", "SCORED_WORLDS", "TUNING_WORLDS", "WORLDS",
           "World", "WorldPhysics", "generate_world", "world"]

#: Base-station height in the median-loss formula: above the mast's ground (``mast``),
#: above the mean terrain 3-15 km out towards the receiver (``effective``, Okumura's and
#: ITU-R P.1546's), or above the receiver's ground (``above_receiver``).
HEIGHT_CONVENTIONS = ("mast", "effective", "above_receiver")


def _check(ok: bool, what: str, why: str) -> None:
    if not ok:
        raise ParameterError(f"world physics: {what} ({why})")


def _in(name: str, value: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, f"{name}={value!r} is unknown",
           f"choose from {', '.join(choices)}")


def _between(name: str, value: float, lo: float, hi: float, why: str) -> None:
    _check(isinstance(value, int | float) and math.isfinite(value) and lo <= value <= hi,
           f"{name}={value!r} is outside {lo:g}..{hi:g}", why)


@dataclass(frozen=True, slots=True)
class WorldPhysics:
    """How one world's radio behaves (every choice the product's model does not see).

    Parameters
    ----------
    propagation : {"hata", "ericsson", "two_ray"}
        Median ground-wave loss family (:mod:`coverage.datasets.physics`).
    height_convention : {"mast", "effective", "above_receiver"}
        Base-station height in that formula (see :data:`HEIGHT_CONVENTIONS`), clamped to
        10..200 m.
    diffraction : {"single", "deygout", "epstein_peterson"}
        Knife edges counted over the hidden 50 m terrain.
    knife_edge : {"p526", "lee"}
        Single knife-edge approximation.
    earth_k : float
        Effective earth-radius factor of the smooth-earth bulge in the profiles (4/3
        standard atmosphere; 1 sub-refractive).
    downtilt_deg, vertical_beamwidth_deg : float
        Electrical plus mechanical downtilt and vertical half-power beamwidth of every
        antenna, degrees (3GPP TR 36.814 pattern).
    foliage_db : float
        Loss of a handset under full forest at 900 MHz, dB, growing as f^0.3 (Weissberger's
        frequency exponent) and in proportion to the forest density.
    builtup_db, hamlet_db : float
        Receiver clutter loss in the towns (built-up) and among houses and fields where
        people live, dB, on top of the median loss.
    eirp_bias_sd_db : float
        Standard deviation of each operator's true EIRP against its published one, dB (one
        draw per operator, the same for all its cells; no table states it).
    shadow_sigma_db : float
        Log-normal shadowing spread, dB.
    shadow_corr_m : float
        Its exponential correlation distance, metres (Gudmundson).
    test_signal_bias : float
        Share (0..1) of the tests a user would have taken where the handset finds no usable
        signal that are never taken: testers favour places with signal.
    test_road_share : float
        Share of tests taken along the roads (the rest where people live).
    test_town_weight : float
        How many times more tests a town resident takes than a rural one.
    """

    propagation: str = "hata"
    height_convention: str = "effective"
    diffraction: str = "deygout"
    knife_edge: str = "p526"
    earth_k: float = 4.0 / 3.0
    downtilt_deg: float = 4.0
    vertical_beamwidth_deg: float = 10.0
    foliage_db: float = 8.0
    builtup_db: float = 3.0
    hamlet_db: float = 2.0
    eirp_bias_sd_db: float = 2.0
    shadow_sigma_db: float = 6.5
    shadow_corr_m: float = 700.0
    test_signal_bias: float = 0.5
    test_road_share: float = 0.2
    test_town_weight: float = 3.0

    def __post_init__(self) -> None:
        _in("propagation", self.propagation, PROPAGATION_FAMILIES)
        _in("height_convention", self.height_convention, HEIGHT_CONVENTIONS)
        _in("diffraction", self.diffraction, DIFFRACTION_METHODS)
        _in("knife_edge", self.knife_edge, KNIFE_EDGE_FORMULAS)
        _between("earth_k", self.earth_k, 0.5, 4.0,
                 "the effective earth radius factor is about 4/3; below 0.5 the bulge "
                 "would block every path")
        _between("downtilt_deg", self.downtilt_deg, -2.0, 15.0,
                 "a macro antenna is tilted 0..10 degrees down")
        _between("vertical_beamwidth_deg", self.vertical_beamwidth_deg, 3.0, 40.0,
                 "a macro panel's vertical beam is 5..15 degrees wide")
        for name in ("foliage_db", "builtup_db", "hamlet_db"):
            _between(name, getattr(self, name), 0.0, 30.0,
                     "a clutter loss is a positive number of dB, under 30")
        _between("eirp_bias_sd_db", self.eirp_bias_sd_db, 0.0, 6.0,
                 "operators do not misstate their power by more than a few dB")
        _between("shadow_sigma_db", self.shadow_sigma_db, 0.0, 12.0,
                 "measured log-normal shadowing spreads are 5..9 dB; 0 turns it off")
        _between("shadow_corr_m", self.shadow_corr_m, 50.0, 5000.0,
                 "the field is drawn on 100 m cells; measured correlation distances are "
                 "200..1,000 m")
        _between("test_signal_bias", self.test_signal_bias, 0.0, 0.95,
                 "a share of the no-signal tests dropped; 1 would leave no no-service test")
        _between("test_road_share", self.test_road_share, 0.0, 0.9, "a share of the tests")
        _between("test_town_weight", self.test_town_weight, 0.1, 20.0,
                 "a ratio of test rates, town against country")


@dataclass(frozen=True, slots=True)
class World:
    """One named world: a seed, a linear scale, its physics, and its role."""

    name: str
    seed: int
    scale: float
    physics: WorldPhysics
    role: str

    def __post_init__(self) -> None:
        _in("role", self.role, ("tuning", "scored", "demo"))
        _between("scale", self.scale, 0.3, 1.0,
                 "the province is 45 x 35 km at scale 1; below 0.3 it holds too few villages "
                 "for three districts")


def _registry(*worlds: World) -> dict[str, World]:
    return {w.name: w for w in worlds}


#: Every world, by name. Scale 0.55: about 90 villages, generated and classified in well
#: under a minute each.
WORLDS: dict[str, World] = _registry(
    World("tune-hata-mast", 101, 0.55, WorldPhysics(
        propagation="hata", height_convention="mast", diffraction="single", knife_edge="lee",
        downtilt_deg=3.0, foliage_db=6.0, builtup_db=2.0, hamlet_db=1.0, eirp_bias_sd_db=1.5,
        shadow_sigma_db=6.0, shadow_corr_m=500.0, test_signal_bias=0.4), role="tuning"),
    World("tune-ericsson-effective", 202, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="effective", diffraction="epstein_peterson",
        downtilt_deg=5.0, foliage_db=10.0, builtup_db=4.0, hamlet_db=3.0,
        eirp_bias_sd_db=2.5, shadow_sigma_db=8.0, shadow_corr_m=900.0, test_signal_bias=0.6),
        role="tuning"),
    World("tune-tworay-receiver", 303, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="above_receiver", diffraction="deygout",
        downtilt_deg=4.0, vertical_beamwidth_deg=8.0, foliage_db=9.0, builtup_db=8.0,
        hamlet_db=5.0, eirp_bias_sd_db=2.0, shadow_sigma_db=7.0, shadow_corr_m=300.0,
        test_signal_bias=0.5, test_road_share=0.3), role="tuning"),
    World("score-hata-effective", 404, 0.55, WorldPhysics(
        propagation="hata", height_convention="effective", diffraction="deygout",
        downtilt_deg=5.0, foliage_db=8.0, builtup_db=3.0, hamlet_db=2.0, eirp_bias_sd_db=2.0,
        shadow_sigma_db=7.5, shadow_corr_m=800.0, test_signal_bias=0.6), role="scored"),
    World("score-tworay-mast", 505, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="mast", diffraction="epstein_peterson",
        knife_edge="lee", earth_k=1.0, downtilt_deg=3.0, foliage_db=7.0, builtup_db=9.0,
        hamlet_db=6.0, eirp_bias_sd_db=2.5, shadow_sigma_db=5.5, shadow_corr_m=250.0,
        test_signal_bias=0.3, test_town_weight=4.0), role="scored"),
    World("score-ericsson-receiver", 606, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="above_receiver", diffraction="single",
        downtilt_deg=6.0, vertical_beamwidth_deg=12.0, foliage_db=11.0, builtup_db=3.0,
        hamlet_db=2.0, eirp_bias_sd_db=1.5, shadow_sigma_db=9.0, shadow_corr_m=600.0,
        test_signal_bias=0.7, test_road_share=0.25), role="scored"),
    World("demo", 20241437, 1.0, WorldPhysics(), "demo"),
)

#: Worlds to tune on: their per-village errors may be examined.
TUNING_WORLDS: tuple[str, ...] = tuple(n for n, w in WORLDS.items() if w.role == "tuning")
#: Worlds only to score: print their aggregate, never their per-village errors.
SCORED_WORLDS: tuple[str, ...] = tuple(n for n, w in WORLDS.items() if w.role == "scored")
#: The embedded demo (``data/``).
DEMO_WORLD = "demo"


def world(name: str) -> World:
    """The registered world ``name``; an unknown name is refused with the valid ones."""
    try:
        return WORLDS[name]
    except KeyError:
        raise ParameterError(f"unknown world {name!r}; choose from "
                             f"{', '.join(WORLDS)}") from None


def generate_world(name: str | World, out_dir: str | Path) -> dict[str, Path]:
    """Generate a world's files (the demo's layout, truth included) under ``out_dir``.

    Parameters
    ----------
    name : str or World
        A registered name (see :data:`WORLDS`) or a :class:`World`.
    out_dir : str or Path
        Output folder (created; existing files replaced).

    Returns
    -------
    dict
        Key (see :data:`coverage.datasets.generate.FILES`) -> path of each file written.
    """
    from .generate import generate_demo

    w = name if isinstance(name, World) else world(name)
    return generate_demo(out_dir, seed=w.seed, scale=w.scale, physics=w.physics)

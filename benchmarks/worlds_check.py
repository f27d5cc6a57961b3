"""The tuning worlds and fifty-three check worlds, classified in process, for comparing defaults.

The check worlds are not registered and never scored: the three tuning physics on new seeds,
the three propagation x height x diffraction combinations that neither the tuning nor the
scored worlds use, with middle settings, three harsher worlds (set ``harsh``: shadowing of
8-9 dB, tests drawn strongly to good signal) on which defaults must hold up, and six worlds
drawn at random over the plausible ranges of every physics setting (set ``wide``), and six
more drawn the same way on other seeds (set ``fresh``): more provinces, so that a default is
judged on more than a dozen layouts; and eight worlds drawn the same way over windows of a real
elevation model (set ``real``: the SRTM tile N21E105 of ``../shared/data``, hill and mountain
country; skipped with the reason when the tile is absent); and six more over synthetic relief
drawn over the span of the ``wide``, ``fresh`` and ``real`` settings (set ``novel``), first run
to judge a change already chosen on the others, and six more drawn the same way (set ``held``)
for the decision after it, and six more (set ``reserve``) for the one after that, and six
more (set ``spare``) for the next. They stand in for held-out worlds when
choosing between candidate defaults (``docs/validation.md``, "The vertical pattern by
default").
Each world is classified with the tests and with the towers only, as ``covgap classify``
does (the same run steps in this process: on the tuning worlds the figures equal
``benchmarks/worlds.py``'s). Prints one JSON line per world and the means per set, then the
test rules (``slow_speed``, ``measured_no_service``) against the truth over every village,
summed per set: found/true (recall) and right/said (precision), with the tests and towers
only, and with the tests by the village's point tests (0, 1-4, 5 or more); and the
reliability of ``confidence`` per set (villages, mean confidence and share right per
confidence bin, with the tests). ``--json`` keeps each village's confidence and whether
its class was right, and what the tests chose (the structure, the fusion, the speeds'
bandwidth).

    PYTHONPATH=src python benchmarks/worlds_check.py [--config run.toml]
        [--cache DIR] [--worlds NAME ...] [--json FILE] [--save DIR]

``--save DIR`` writes each classification with its village metrics
(``DIR/<world>_<tests|towers>.csv``), for reading the rules' estimates against the truth.

``--config``: a run file whose ``[model]`` table sets the candidate (default: the code's
defaults). Never use it on the scored worlds: it refuses them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import worlds as W

import coverage.classify as C
from coverage.classify import classify_villages, fuse_for
from coverage.cli import options as opt
from coverage.datasets import score_classification
from coverage.datasets.generate import generate_demo
from coverage.datasets.worlds import World, WorldPhysics, generate_world
from coverage.execute import Run, select_towers
from coverage.spec import InputPaths


def _same_physics(name: str, seed: int) -> World:
    tuning = W.WORLDS[name]
    return World(name.replace("tune-", "check-") + "-s1", seed, tuning.scale, tuning.physics,
                 "tuning")


CHECK_WORLDS = {w.name: w for w in (
    _same_physics("tune-hata-mast", 1101),
    _same_physics("tune-ericsson-effective", 1202),
    _same_physics("tune-tworay-receiver", 1303),
    World("check-hata-receiver-ep", 1404, 0.55, WorldPhysics(
        propagation="hata", height_convention="above_receiver",
        diffraction="epstein_peterson", downtilt_deg=4.0, foliage_db=9.0, builtup_db=4.0,
        hamlet_db=3.0, eirp_bias_sd_db=2.0, shadow_sigma_db=7.0, shadow_corr_m=600.0,
        test_signal_bias=0.5), "tuning"),
    World("check-ericsson-mast-deygout", 1505, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="mast", diffraction="deygout",
        downtilt_deg=4.0, vertical_beamwidth_deg=10.0, foliage_db=8.0, builtup_db=5.0,
        hamlet_db=3.0, eirp_bias_sd_db=2.0, shadow_sigma_db=7.0, shadow_corr_m=500.0,
        test_signal_bias=0.5, test_road_share=0.3), "tuning"),
    World("check-tworay-effective-single", 1606, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="effective", diffraction="single",
        knife_edge="lee", downtilt_deg=5.0, foliage_db=7.0, builtup_db=6.0, hamlet_db=4.0,
        eirp_bias_sd_db=2.0, shadow_sigma_db=6.5, shadow_corr_m=400.0,
        test_signal_bias=0.5, test_town_weight=2.0), "tuning"),
    # harsher than the rest: wider shadowing, tests drawn more strongly to good signal
    World("harsh-hata-mast-ep", 1707, 0.55, WorldPhysics(
        propagation="hata", height_convention="mast", diffraction="epstein_peterson",
        downtilt_deg=6.0, foliage_db=12.0, builtup_db=4.0, hamlet_db=3.0,
        eirp_bias_sd_db=2.5, shadow_sigma_db=9.0, shadow_corr_m=900.0,
        test_signal_bias=0.75), "tuning"),
    World("harsh-ericsson-effective-single", 1808, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="effective", diffraction="single",
        knife_edge="lee", downtilt_deg=3.0, foliage_db=7.0, builtup_db=8.0, hamlet_db=5.0,
        eirp_bias_sd_db=2.5, shadow_sigma_db=8.5, shadow_corr_m=300.0,
        test_signal_bias=0.7, test_town_weight=5.0), "tuning"),
    World("harsh-tworay-receiver-deygout", 1909, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="above_receiver", diffraction="deygout",
        earth_k=1.0, downtilt_deg=5.0, foliage_db=10.0, builtup_db=5.0, hamlet_db=3.0,
        eirp_bias_sd_db=2.0, shadow_sigma_db=8.0, shadow_corr_m=1000.0,
        test_signal_bias=0.8, test_road_share=0.4), "tuning"),
    # drawn at random (numpy seed 20261207) from the ranges WorldPhysics accepts as
    # plausible, each family, height convention and diffraction twice, then written out
    World("wide-tworay-receiver-single", 2101, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="above_receiver", diffraction="single",
        knife_edge="lee", downtilt_deg=5.6, vertical_beamwidth_deg=8.9, foliage_db=9.3,
        builtup_db=6.6, hamlet_db=3.0, eirp_bias_sd_db=2.7, shadow_sigma_db=7.7,
        shadow_corr_m=960.0, test_signal_bias=0.45, test_road_share=0.1,
        test_town_weight=1.8), "tuning"),
    World("wide-hata-mast-deygout", 2102, 0.55, WorldPhysics(
        propagation="hata", height_convention="mast", diffraction="deygout",
        downtilt_deg=2.8, vertical_beamwidth_deg=8.9, foliage_db=6.8, builtup_db=8.4,
        hamlet_db=6.6, eirp_bias_sd_db=2.7, shadow_sigma_db=7.7, shadow_corr_m=440.0,
        test_signal_bias=0.36, test_road_share=0.13, test_town_weight=1.5), "tuning"),
    World("wide-ericsson-effective-ep", 2103, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="effective", diffraction="epstein_peterson",
        knife_edge="lee", downtilt_deg=4.1, vertical_beamwidth_deg=11.5, foliage_db=12.8,
        builtup_db=8.8, hamlet_db=6.0, eirp_bias_sd_db=1.1, shadow_sigma_db=8.3,
        shadow_corr_m=510.0, test_signal_bias=0.84, test_road_share=0.41,
        test_town_weight=2.1), "tuning"),
    World("wide-ericsson-mast-ep", 2104, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="mast", diffraction="epstein_peterson",
        knife_edge="lee", earth_k=1.0, downtilt_deg=3.8, vertical_beamwidth_deg=11.6,
        foliage_db=6.1, builtup_db=5.8, hamlet_db=4.2, eirp_bias_sd_db=1.8,
        shadow_sigma_db=5.3, shadow_corr_m=780.0, test_signal_bias=0.77,
        test_road_share=0.15, test_town_weight=5.0), "tuning"),
    World("wide-hata-effective-single", 2105, 0.55, WorldPhysics(
        propagation="hata", height_convention="effective", diffraction="single",
        knife_edge="lee", downtilt_deg=3.8, vertical_beamwidth_deg=10.9, foliage_db=10.9,
        builtup_db=2.9, hamlet_db=2.1, eirp_bias_sd_db=2.2, shadow_sigma_db=8.5,
        shadow_corr_m=240.0, test_signal_bias=0.58, test_road_share=0.39,
        test_town_weight=2.9), "tuning"),
    World("wide-tworay-receiver-deygout", 2106, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="above_receiver", diffraction="deygout",
        earth_k=1.0, downtilt_deg=2.6, vertical_beamwidth_deg=9.9, foliage_db=11.7,
        builtup_db=5.9, hamlet_db=3.5, eirp_bias_sd_db=2.4, shadow_sigma_db=5.1,
        shadow_corr_m=910.0, test_signal_bias=0.78, test_road_share=0.39,
        test_town_weight=2.3), "tuning"),
    # drawn again the same way (numpy seed 20261208), on other seeds (set ``fresh``)
    World("fresh-hata-effective-single", 2201, 0.55, WorldPhysics(
        propagation="hata", height_convention="effective", diffraction="single",
        downtilt_deg=3.5, vertical_beamwidth_deg=10.4, foliage_db=11.3, builtup_db=6.9,
        hamlet_db=4.1, eirp_bias_sd_db=2.1, shadow_sigma_db=5.5, shadow_corr_m=760.0,
        test_signal_bias=0.65, test_road_share=0.18, test_town_weight=4.6), "tuning"),
    World("fresh-ericsson-mast-ep", 2202, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="mast", diffraction="epstein_peterson",
        earth_k=1.0, downtilt_deg=2.9, vertical_beamwidth_deg=9.4, foliage_db=11.0,
        builtup_db=5.1, hamlet_db=5.1, eirp_bias_sd_db=2.3, shadow_sigma_db=5.2,
        shadow_corr_m=360.0, test_signal_bias=0.47, test_road_share=0.36,
        test_town_weight=2.2), "tuning"),
    World("fresh-tworay-receiver-single", 2203, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="above_receiver", diffraction="single",
        earth_k=1.0, downtilt_deg=3.5, vertical_beamwidth_deg=9.5, foliage_db=12.3,
        builtup_db=5.6, hamlet_db=5.6, eirp_bias_sd_db=2.1, shadow_sigma_db=8.1,
        shadow_corr_m=920.0, test_signal_bias=0.59, test_road_share=0.35,
        test_town_weight=4.6), "tuning"),
    World("fresh-hata-mast-deygout", 2204, 0.55, WorldPhysics(
        propagation="hata", height_convention="mast", diffraction="deygout",
        downtilt_deg=5.1, vertical_beamwidth_deg=9.8, foliage_db=12.9, builtup_db=5.4,
        hamlet_db=5.4, eirp_bias_sd_db=2.9, shadow_sigma_db=7.7, shadow_corr_m=400.0,
        test_signal_bias=0.31, test_road_share=0.14, test_town_weight=2.1), "tuning"),
    World("fresh-ericsson-effective-ep", 2205, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="effective", diffraction="epstein_peterson",
        knife_edge="lee", earth_k=1.0, downtilt_deg=4.9, vertical_beamwidth_deg=8.7,
        foliage_db=9.1, builtup_db=3.0, hamlet_db=3.0, eirp_bias_sd_db=2.6,
        shadow_sigma_db=5.6, shadow_corr_m=990.0, test_signal_bias=0.49,
        test_road_share=0.28, test_town_weight=2.9), "tuning"),
    World("fresh-tworay-receiver-deygout", 2206, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="above_receiver", diffraction="deygout",
        knife_edge="lee", earth_k=1.0, downtilt_deg=3.1, vertical_beamwidth_deg=8.1,
        foliage_db=11.4, builtup_db=7.7, hamlet_db=3.8, eirp_bias_sd_db=1.3,
        shadow_sigma_db=6.5, shadow_corr_m=490.0, test_signal_bias=0.77,
        test_road_share=0.17, test_town_weight=2.6), "tuning"),
    # drawn before any was run (numpy seed 20261211, set ``novel``): each field uniform over
    # the span the 20 literals of the wide, fresh and real sets cover (knife edge and earth_k
    # one of their two values; hamlet_db at most builtup_db), each family, height convention
    # and diffraction exactly twice over six different combinations; seeds 2401-2406
    World("novel-tworay-receiver-ep", 2401, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="above_receiver", diffraction="epstein_peterson",
        knife_edge="lee", earth_k=1.0, downtilt_deg=4.0, vertical_beamwidth_deg=10.7,
        foliage_db=6.6, builtup_db=3.5, hamlet_db=3.5, eirp_bias_sd_db=2.9, shadow_sigma_db=5.7,
        shadow_corr_m=490.0, test_signal_bias=0.36, test_road_share=0.21,
        test_town_weight=2.3), "tuning"),
    World("novel-tworay-mast-deygout", 2402, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="mast", diffraction="deygout", knife_edge="lee",
        earth_k=1.0, downtilt_deg=3.6, vertical_beamwidth_deg=8.6, foliage_db=6.3, builtup_db=6.7,
        hamlet_db=6.4, eirp_bias_sd_db=2.5, shadow_sigma_db=7.0, shadow_corr_m=270.0,
        test_signal_bias=0.67, test_road_share=0.28, test_town_weight=2.3), "tuning"),
    World("novel-hata-receiver-ep", 2403, 0.55, WorldPhysics(
        propagation="hata", height_convention="above_receiver", diffraction="epstein_peterson",
        knife_edge="lee", downtilt_deg=4.6, vertical_beamwidth_deg=9.9, foliage_db=6.6,
        builtup_db=6.7, hamlet_db=3.8, eirp_bias_sd_db=2.3, shadow_sigma_db=7.7,
        shadow_corr_m=690.0, test_signal_bias=0.69, test_road_share=0.17,
        test_town_weight=1.7), "tuning"),
    World("novel-ericsson-mast-deygout", 2404, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="mast", diffraction="deygout", earth_k=1.0,
        downtilt_deg=5.1, vertical_beamwidth_deg=9.8, foliage_db=10.2, builtup_db=5.4,
        hamlet_db=4.5, eirp_bias_sd_db=2.3, shadow_sigma_db=7.7, shadow_corr_m=680.0,
        test_signal_bias=0.59, test_road_share=0.26, test_town_weight=3.2), "tuning"),
    World("novel-ericsson-effective-single", 2405, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="effective", diffraction="single",
        downtilt_deg=4.8, vertical_beamwidth_deg=10.8, foliage_db=7.0, builtup_db=2.5,
        hamlet_db=2.5, eirp_bias_sd_db=2.6, shadow_sigma_db=8.1, shadow_corr_m=270.0,
        test_signal_bias=0.74, test_road_share=0.36, test_town_weight=1.6), "tuning"),
    World("novel-hata-effective-single", 2406, 0.55, WorldPhysics(
        propagation="hata", height_convention="effective", diffraction="single", downtilt_deg=4.2,
        vertical_beamwidth_deg=9.2, foliage_db=9.4, builtup_db=3.7, hamlet_db=3.0,
        eirp_bias_sd_db=1.7, shadow_sigma_db=7.4, shadow_corr_m=660.0, test_signal_bias=0.83,
        test_road_share=0.35, test_town_weight=2.9), "tuning"),
    # drawn the same way before any was run (numpy seed 20261212, set ``held``), for the next
    # decision to be judged on worlds none was taken on; seeds 2501-2506
    World("held-ericsson-receiver-ep", 2501, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="above_receiver",
        diffraction="epstein_peterson", downtilt_deg=3.3, vertical_beamwidth_deg=10.2,
        foliage_db=9.4, builtup_db=5.2, hamlet_db=3.9, eirp_bias_sd_db=1.8, shadow_sigma_db=7.2,
        shadow_corr_m=730.0, test_signal_bias=0.32, test_road_share=0.11,
        test_town_weight=3.4), "tuning"),
    World("held-tworay-mast-ep", 2502, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="mast", diffraction="epstein_peterson",
        knife_edge="lee", downtilt_deg=3.1, vertical_beamwidth_deg=10.1, foliage_db=6.4,
        builtup_db=2.8, hamlet_db=2.8, eirp_bias_sd_db=1.1, shadow_sigma_db=5.5,
        shadow_corr_m=600.0, test_signal_bias=0.37, test_road_share=0.40,
        test_town_weight=2.7), "tuning"),
    World("held-ericsson-effective-single", 2503, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="effective", diffraction="single",
        downtilt_deg=3.8, vertical_beamwidth_deg=9.5, foliage_db=7.2, builtup_db=3.4,
        hamlet_db=3.4, eirp_bias_sd_db=2.9, shadow_sigma_db=7.5, shadow_corr_m=880.0,
        test_signal_bias=0.54, test_road_share=0.26, test_town_weight=3.8), "tuning"),
    World("held-hata-effective-deygout", 2504, 0.55, WorldPhysics(
        propagation="hata", height_convention="effective", diffraction="deygout",
        downtilt_deg=3.7, vertical_beamwidth_deg=9.6, foliage_db=6.2, builtup_db=6.7,
        hamlet_db=6.6, eirp_bias_sd_db=1.7, shadow_sigma_db=8.0, shadow_corr_m=440.0,
        test_signal_bias=0.58, test_road_share=0.38, test_town_weight=3.1), "tuning"),
    World("held-hata-mast-single", 2505, 0.55, WorldPhysics(
        propagation="hata", height_convention="mast", diffraction="single", knife_edge="lee",
        earth_k=1.0, downtilt_deg=4.1, vertical_beamwidth_deg=11.4, foliage_db=10.8,
        builtup_db=5.7, hamlet_db=5.2, eirp_bias_sd_db=1.4, shadow_sigma_db=7.3,
        shadow_corr_m=560.0, test_signal_bias=0.63, test_road_share=0.22,
        test_town_weight=2.9), "tuning"),
    World("held-tworay-receiver-deygout", 2506, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="above_receiver", diffraction="deygout",
        knife_edge="lee", earth_k=1.0, downtilt_deg=3.9, vertical_beamwidth_deg=9.4,
        foliage_db=10.2, builtup_db=4.8, hamlet_db=4.8, eirp_bias_sd_db=1.7,
        shadow_sigma_db=7.9, shadow_corr_m=480.0, test_signal_bias=0.65, test_road_share=0.17,
        test_town_weight=3.3), "tuning"),
    # drawn the same way before any was run (numpy seed 20261213, set ``reserve``), for the
    # decision after ``held``'s; seeds 2601-2606
    World("reserve-hata-receiver-deygout", 2601, 0.55, WorldPhysics(
        propagation="hata", height_convention="above_receiver", diffraction="deygout",
        knife_edge="lee", earth_k=1.0, downtilt_deg=4.0, vertical_beamwidth_deg=10.8,
        foliage_db=12.4, builtup_db=6.3, hamlet_db=2.3, eirp_bias_sd_db=1.1,
        shadow_sigma_db=7.8, shadow_corr_m=850.0, test_signal_bias=0.40, test_road_share=0.22,
        test_town_weight=3.3), "tuning"),
    World("reserve-ericsson-mast-single", 2602, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="mast", diffraction="single", earth_k=1.0,
        downtilt_deg=3.3, vertical_beamwidth_deg=11.1, foliage_db=6.3, builtup_db=3.7,
        hamlet_db=3.7, eirp_bias_sd_db=2.3, shadow_sigma_db=8.5, shadow_corr_m=880.0,
        test_signal_bias=0.48, test_road_share=0.29, test_town_weight=4.0), "tuning"),
    World("reserve-hata-mast-single", 2603, 0.55, WorldPhysics(
        propagation="hata", height_convention="mast", diffraction="single", knife_edge="lee",
        downtilt_deg=3.4, vertical_beamwidth_deg=11.5, foliage_db=11.6, builtup_db=2.3,
        hamlet_db=2.3, eirp_bias_sd_db=2.6, shadow_sigma_db=6.9, shadow_corr_m=360.0,
        test_signal_bias=0.73, test_road_share=0.37, test_town_weight=3.1), "tuning"),
    World("reserve-tworay-receiver-ep", 2604, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="above_receiver",
        diffraction="epstein_peterson", earth_k=1.0, downtilt_deg=3.8,
        vertical_beamwidth_deg=9.3, foliage_db=12.8, builtup_db=7.0, hamlet_db=4.5,
        eirp_bias_sd_db=1.9, shadow_sigma_db=5.7, shadow_corr_m=600.0, test_signal_bias=0.33,
        test_road_share=0.11, test_town_weight=2.2), "tuning"),
    World("reserve-ericsson-effective-deygout", 2605, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="effective", diffraction="deygout",
        knife_edge="lee", downtilt_deg=2.8, vertical_beamwidth_deg=9.5, foliage_db=11.3,
        builtup_db=2.6, hamlet_db=2.6, eirp_bias_sd_db=1.2, shadow_sigma_db=8.4,
        shadow_corr_m=410.0, test_signal_bias=0.73, test_road_share=0.32,
        test_town_weight=3.8), "tuning"),
    World("reserve-tworay-effective-ep", 2606, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="effective", diffraction="epstein_peterson",
        downtilt_deg=4.3, vertical_beamwidth_deg=9.9, foliage_db=7.9, builtup_db=3.9,
        hamlet_db=2.7, eirp_bias_sd_db=2.4, shadow_sigma_db=6.0, shadow_corr_m=420.0,
        test_signal_bias=0.84, test_road_share=0.17, test_town_weight=3.4), "tuning"),
    # drawn the same way before any was run (numpy seed 20261214, set ``spare``), for the
    # decision after ``reserve``'s; seeds 2701-2706
    World("spare-tworay-mast-single", 2701, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="mast", diffraction="single",
        knife_edge="lee", earth_k=1.0, downtilt_deg=3.0, vertical_beamwidth_deg=8.5,
        foliage_db=12.0, builtup_db=8.4, hamlet_db=3.1, eirp_bias_sd_db=1.7,
        shadow_sigma_db=6.7, shadow_corr_m=640.0, test_signal_bias=0.59, test_road_share=0.36,
        test_town_weight=4.3), "tuning"),
    World("spare-ericsson-receiver-ep", 2702, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="above_receiver",
        diffraction="epstein_peterson", knife_edge="lee", earth_k=1.0, downtilt_deg=3.2,
        vertical_beamwidth_deg=8.5, foliage_db=10.4, builtup_db=8.3, hamlet_db=4.4,
        eirp_bias_sd_db=2.5, shadow_sigma_db=6.4, shadow_corr_m=340.0, test_signal_bias=0.73,
        test_road_share=0.11, test_town_weight=2.4), "tuning"),
    World("spare-hata-receiver-single", 2703, 0.55, WorldPhysics(
        propagation="hata", height_convention="above_receiver", diffraction="single",
        downtilt_deg=3.8, vertical_beamwidth_deg=10.4, foliage_db=12.2, builtup_db=3.9,
        hamlet_db=3.7, eirp_bias_sd_db=1.8, shadow_sigma_db=5.2, shadow_corr_m=510.0,
        test_signal_bias=0.74, test_road_share=0.39, test_town_weight=4.2), "tuning"),
    World("spare-ericsson-effective-deygout", 2704, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="effective", diffraction="deygout",
        earth_k=1.0, downtilt_deg=3.3, vertical_beamwidth_deg=11.2, foliage_db=11.9,
        builtup_db=7.7, hamlet_db=3.9, eirp_bias_sd_db=2.6, shadow_sigma_db=6.1,
        shadow_corr_m=760.0, test_signal_bias=0.81, test_road_share=0.12,
        test_town_weight=3.4), "tuning"),
    World("spare-hata-effective-deygout", 2705, 0.55, WorldPhysics(
        propagation="hata", height_convention="effective", diffraction="deygout",
        knife_edge="lee", earth_k=1.0, downtilt_deg=3.4, vertical_beamwidth_deg=10.9,
        foliage_db=10.5, builtup_db=7.7, hamlet_db=4.0, eirp_bias_sd_db=1.6,
        shadow_sigma_db=6.7, shadow_corr_m=830.0, test_signal_bias=0.33, test_road_share=0.39,
        test_town_weight=4.5), "tuning"),
    World("spare-tworay-mast-ep", 2706, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="mast", diffraction="epstein_peterson",
        earth_k=1.0, downtilt_deg=5.5, vertical_beamwidth_deg=9.3, foliage_db=7.8,
        builtup_db=2.6, hamlet_db=2.6, eirp_bias_sd_db=2.5, shadow_sigma_db=6.8,
        shadow_corr_m=330.0, test_signal_bias=0.32, test_road_share=0.36,
        test_town_weight=4.9), "tuning"),
)}


#: The real elevation model of the ``real`` set, under ``../shared/data`` (public domain SRTM-3,
#: 21-22N 105-106E; read at run time, never copied into the project).
REAL_DEM = Path("srtm") / "N21E105.hgt"

# drawn at random (numpy seed 20261209) over the ranges of the wide and fresh sets, each
# family, height convention and diffraction at least once, then written out; the centres
# (longitude, latitude) of the windows: Tuyên Quang's hills, the Tam Đảo range, the hills
# north of Thái Nguyên, and Ba Vì with the hills west of it
REAL_WORLDS: dict[str, tuple[World, tuple[float, float]]] = {w.name: (w, c) for w, c in (
    (World("real-tuyenquang-tworay-receiver-deygout", 2301, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="above_receiver", diffraction="deygout",
        knife_edge="lee", downtilt_deg=5.2, vertical_beamwidth_deg=10.8, foliage_db=6.2,
        builtup_db=2.2, hamlet_db=2.2, eirp_bias_sd_db=2.7, shadow_sigma_db=6.4,
        shadow_corr_m=260.0, test_signal_bias=0.31, test_road_share=0.14,
        test_town_weight=2.3), "tuning"), (105.40, 21.88)),
    (World("real-tamdao-ericsson-mast-ep", 2302, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="mast", diffraction="epstein_peterson",
        knife_edge="lee", earth_k=1.0, downtilt_deg=5.6, vertical_beamwidth_deg=10.9,
        foliage_db=6.4, builtup_db=5.6, hamlet_db=5.4, eirp_bias_sd_db=1.9,
        shadow_sigma_db=8.1, shadow_corr_m=500.0, test_signal_bias=0.47,
        test_road_share=0.16, test_town_weight=5.0), "tuning"), (105.60, 21.50)),
    (World("real-thainguyen-hata-effective-single", 2303, 0.55, WorldPhysics(
        propagation="hata", height_convention="effective", diffraction="single",
        downtilt_deg=3.3, vertical_beamwidth_deg=9.9, foliage_db=10.4, builtup_db=7.2,
        hamlet_db=5.4, eirp_bias_sd_db=2.8, shadow_sigma_db=7.6, shadow_corr_m=390.0,
        test_signal_bias=0.45, test_road_share=0.25, test_town_weight=3.0), "tuning"),
     (105.85, 21.86)),
    (World("real-bavi-hata-receiver-deygout", 2304, 0.55, WorldPhysics(
        propagation="hata", height_convention="above_receiver", diffraction="deygout",
        knife_edge="lee", downtilt_deg=2.7, vertical_beamwidth_deg=9.7, foliage_db=11.0,
        builtup_db=6.1, hamlet_db=2.6, eirp_bias_sd_db=1.7, shadow_sigma_db=6.8,
        shadow_corr_m=340.0, test_signal_bias=0.5, test_road_share=0.41,
        test_town_weight=4.7), "tuning"), (105.25, 21.12)),
    # four more drawn before any was run (numpy seed 20261210): each field uniform over the
    # span the 16 literals of the wide, fresh and real sets above cover (knife edge and earth_k
    # one of their two values; hamlet_db at most builtup_db), the family, height convention
    # and diffraction of the four redrawn until each appears; centres over hill country away
    # from the other windows: Yên Sơn around Tuyên Quang town, Sơn Dương with the north end of
    # the Tam Đảo range, Đồng Hỷ and Phú Lương north of Thái Nguyên town, and the hills of Yên
    # Lập and Cẩm Khê west of Việt Trì
    (World("real-yenson-hata-mast-single", 2305, 0.55, WorldPhysics(
        propagation="hata", height_convention="mast", diffraction="single", earth_k=1.0,
        downtilt_deg=4.0, vertical_beamwidth_deg=11.2, foliage_db=12.0, builtup_db=7.8,
        hamlet_db=3.0, eirp_bias_sd_db=2.3, shadow_sigma_db=7.1, shadow_corr_m=770.0,
        test_signal_bias=0.44, test_road_share=0.17, test_town_weight=3.7), "tuning"),
     (105.14, 21.88)),
    (World("real-sonduong-tworay-effective-single", 2306, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="effective", diffraction="single",
        downtilt_deg=4.8, vertical_beamwidth_deg=11.3, foliage_db=6.4, builtup_db=4.8,
        hamlet_db=3.3, eirp_bias_sd_db=1.6, shadow_sigma_db=6.5, shadow_corr_m=510.0,
        test_signal_bias=0.66, test_road_share=0.32, test_town_weight=3.6), "tuning"),
     (105.43, 21.68)),
    (World("real-donghy-tworay-receiver-ep", 2307, 0.55, WorldPhysics(
        propagation="two_ray", height_convention="above_receiver",
        diffraction="epstein_peterson", downtilt_deg=4.0, vertical_beamwidth_deg=11.3,
        foliage_db=10.3, builtup_db=2.2, hamlet_db=2.2, eirp_bias_sd_db=1.5,
        shadow_sigma_db=7.4, shadow_corr_m=800.0, test_signal_bias=0.5, test_road_share=0.36,
        test_town_weight=2.6), "tuning"), (105.87, 21.68)),
    (World("real-yenlap-ericsson-mast-deygout", 2308, 0.55, WorldPhysics(
        propagation="ericsson", height_convention="mast", diffraction="deygout",
        knife_edge="lee", earth_k=1.0, downtilt_deg=4.2, vertical_beamwidth_deg=8.7,
        foliage_db=6.7, builtup_db=4.7, hamlet_db=4.1, eirp_bias_sd_db=2.3,
        shadow_sigma_db=6.5, shadow_corr_m=570.0, test_signal_bias=0.43,
        test_road_share=0.13, test_town_weight=2.7), "tuning"), (105.13, 21.30)),
)}


def real_dem() -> Path | None:
    """The ``real`` set's DEM: in ``$COVGAP_SHARED_DATA`` or ``../shared/data``, else None."""
    repo = Path(__file__).resolve().parents[1]
    roots = [Path(p) for p in (os.environ.get("COVGAP_SHARED_DATA"),) if p]
    roots += [repo.parent / "shared" / "data", repo.parents[1] / "shared" / "data"]
    return next((r / REAL_DEM for r in roots if (r / REAL_DEM).is_file()), None)


def folder_of(name: str, cache: Path) -> Path:
    """A tuning or check world's files, generated when absent."""
    if name in REAL_WORLDS:
        folder = cache / name
        if not (folder / "truth" / "villages_truth.csv").is_file():
            w, centre = REAL_WORLDS[name]
            generate_demo(folder, seed=w.seed, scale=w.scale, physics=w.physics,
                          dem=real_dem(), centre=centre)
        return folder
    if name in CHECK_WORLDS:
        folder = cache / name
        if not (folder / "truth" / "villages_truth.csv").is_file():
            generate_world(CHECK_WORLDS[name], folder)
        return folder
    if W.WORLDS[name].role != "tuning":
        raise SystemExit(f"{name} is not a tuning world: score it with worlds.py only")
    return W.world_folder(name, cache)


#: The test rules scored over every village, and the classes of point tests they are split by.
TEST_RULES = {"slow_speed": "slow", "measured_no_service": "nosrv"}
TEST_BINS = {"0": (0, 1), "1-4": (1, W.MIN_TESTS), "5+": (W.MIN_TESTS, np.inf)}


def _classify(folder: Path, config: Path | None, tests: bool
              ) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    kw = {"towers": [folder / "towers" / "sites.csv", folder / "towers" / "opencellid.csv"],
          "population": folder / "rasters" / "population.tif",
          "dem": folder / "rasters" / "dem.tif",
          "landcover": folder / "rasters" / "landcover.tif",
          "access": folder / "access" / "access.csv"}
    if tests:
        kw["measurements"] = [folder / "measurements" / "tests.csv"]
    run = Run(opt.settings_spec(config, file_limits=False).replace(
        inputs=InputPaths.of(folder / "boundaries" / "villages.gpkg", **kw)))
    inputs, p = run.load(), run.params
    surfaces = run.surfaces()
    towers = select_towers(inputs.towers, inputs.villages, p.model)
    fused = fuse_for(surfaces, inputs.measurements, p.profile) if tests else None
    captured = {}

    def keep(*args, **kw):
        captured["metrics"] = metrics_of(*args, **kw)
        return captured["metrics"]

    metrics_of, C.village_metrics = C.village_metrics, keep
    try:
        out = classify_villages(inputs.villages, surfaces, measurements=inputs.measurements,
                                population=inputs.population, access=inputs.access,
                                profile=p.profile,
                                towers=towers[towers["status"] == "active"], fused=fused)
    finally:
        C.village_metrics = metrics_of
    choices = {**surfaces.choices, **(fused.choices if fused is not None else {}),
               **out.attrs.get("choices", {})}
    return pd.DataFrame(out.drop(columns="geometry")), choices, captured["metrics"]


def rule_counts(truth: pd.DataFrame, out: pd.DataFrame, n_tests: np.ndarray,
                prefix: str) -> dict[str, int]:
    """Per test rule: true villages, found, said, and the same per class of point tests."""
    m = truth.merge(out, on="village_id", suffixes=("_true", "_pred"))
    row = {}
    for code, key in TEST_RULES.items():
        pos = W._has(m["reasons_true"], code)
        said = W._has(m["reasons_pred"], code)
        for b, (lo, hi) in {"": (0, np.inf), **TEST_BINS}.items():
            inb = (n_tests >= lo) & (n_tests < hi)
            tag = f"{prefix}_{key}" + (f"_{b}" if b else "")
            row[tag + "_true"] = int((pos & inb).sum())
            row[tag + "_found"] = int((pos & said & inb).sum())
            row[tag + "_said"] = int((said & inb).sum())
    return row


def rule_table(df: pd.DataFrame) -> pd.DataFrame:
    """found/true (recall) and right/said (precision) per set, rule, run and test class."""
    rows = []
    for (s, run, key), b in [((s, r, k), b) for s in sorted(df["set"].unique())
                             for r in ("towers", "tests") for k in TEST_RULES.values()
                             for b in ("", *(TEST_BINS if r == "tests" else ()))]:
        part = df[df["set"] == s]
        tag = f"{run}_{key}" + (f"_{b}" if b else "")
        t, f, said = (int(part[f"{tag}_{x}"].sum()) for x in ("true", "found", "said"))
        rows.append({"set": s, "run": run, "rule": key, "tests": b or "all",
                     "recall": f"{f}/{t}" + (f" {f / t:.2f}" if t else ""),
                     "precision": f"{f}/{said}" + (f" {f / said:.2f}" if said else "")})
    return pd.DataFrame(rows)


def score(name: str, cache: Path, config: Path | None, save: Path | None = None) -> dict:
    """The figures of ``benchmarks/worlds.py`` for one world, and the tests' choices."""
    c0 = time.process_time()
    folder = folder_of(name, cache)
    with_tests, choices, m_tests = _classify(folder, config, True)
    towers, _, m_towers = _classify(folder, config, False)
    truth = pd.read_csv(folder / "truth" / "villages_truth.csv", dtype={"village_id": str})
    for t in (with_tests, towers):
        t["village_id"] = t["village_id"].astype(str)
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        for run, out, met in (("tests", with_tests, m_tests), ("towers", towers, m_towers)):
            extra = met.reset_index(drop=True).drop(columns=[c for c in met.columns
                                                             if c in out.columns])
            pd.concat([out.reset_index(drop=True), extra], axis=1).to_csv(
                save / f"{name}_{run}.csv", index=False)
    s_tests = score_classification(with_tests, truth)
    s_towers = score_classification(towers, truth)
    m = truth.merge(with_tests, on="village_id", suffixes=("_true", "_pred"))
    m["n_point_tests"] = W.tests_per_village(folder).reindex(m["village_id"]).to_numpy()
    ok = (m["class_true"] == m["class_pred"]).to_numpy()
    measured = (m["evidence"] == "measured").to_numpy()
    many = m["n_point_tests"].to_numpy() >= W.MIN_TESTS
    row = {"world": name, "f1_tests": s_tests["macro_f1"],
           "unav_tests": s_tests["recall"]["unavailable"], "f1_towers": s_towers["macro_f1"],
           "unav_towers": s_towers["recall"]["unavailable"],
           "brier": float(np.mean((m["confidence"].to_numpy(float) - ok) ** 2)),
           "acc_measured": float(ok[measured].mean()), "acc_model": float(ok[~measured].mean())}
    row["unav_gain"] = row["unav_tests"] - row["unav_towers"]
    # the covered share's mean error (predicted minus true) by evidence, and towers only
    err = (m["pop_covered_share_pred"] - m["pop_covered_share_true"]).to_numpy(float)
    for ev, key in (("measured", "cov_bias_measured"), ("model+sparse_tests", "cov_bias_sparse")):
        sel = (m["evidence"] == ev).to_numpy()
        row[key] = float(np.nanmean(err[sel])) if sel.any() else np.nan
    mt = truth.merge(towers, on="village_id", suffixes=("_true", "_pred"))
    row["cov_bias_towers"] = float(np.nanmean(mt["pop_covered_share_pred"]
                                              - mt["pop_covered_share_true"]))
    row["ai_to_unav"] = int(((m["class_true"] == "available_inaccessible")
                             & (m["class_pred"] == "unavailable")).sum())
    for code, key in (("slow_speed", "slow"), ("measured_no_service", "nosrv")):
        pos = W._has(m["reasons_true"], code) & many
        row[f"{key}_pos"] = int(pos.sum())
        row[f"{key}_hit"] = int((pos & W._has(m["reasons_pred"], code)).sum())
    n_point = W.tests_per_village(folder).reindex(truth["village_id"]).to_numpy()
    row |= rule_counts(truth, with_tests, n_point, "tests")
    row |= rule_counts(truth, towers, n_point, "towers")
    row["structure"] = choices.get("structure", {}).get("name")
    row["structure_cv"] = {k: round(v, 4) for k, v in
                           choices.get("structure", {}).get("cv_error", {}).items()}
    fusion = choices.get("fusion", {})
    row["fusion"] = {k: (v if isinstance(v, str | float | int) else str(v))
                     for k, v in fusion.items() if k != "cv_error"}
    row["slow_bandwidth"] = choices.get("slow_bandwidth", {}).get("bandwidth")
    row["confidence"] = m["confidence"].to_numpy(float).round(3).tolist()
    row["right"] = ok.astype(int).tolist()
    row["cpu_s"] = time.process_time() - c0
    return row


#: Bins of ``confidence`` for the reliability table (the last one holds 1.0).
RELIABILITY_BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0001)


def reliability(rows: pd.DataFrame) -> pd.DataFrame:
    """Villages, mean confidence and share right per confidence bin, per set of worlds."""
    long = rows[["set", "confidence", "right"]].explode(["confidence", "right"])
    long["bin"] = pd.cut(long["confidence"].astype(float), RELIABILITY_BINS, right=False)
    return (long.astype({"confidence": float, "right": float})
            .groupby(["set", "bin"], observed=True)
            .agg(villages=("right", "size"), confidence=("confidence", "mean"),
                 right=("right", "mean")).round(3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    base = Path.home() / ".cache" / "coverage-gap" / "worlds"
    parser.add_argument("--cache", type=Path, default=base)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--worlds", nargs="+",
                        default=[*W.TUNING_WORLDS, *CHECK_WORLDS, *REAL_WORLDS])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--save", type=Path, help="write each classification with its metrics")
    args = parser.parse_args(argv)
    rows = []
    for name in args.worlds:
        if name in REAL_WORLDS and real_dem() is None:
            print(f"skipped {name}: {REAL_DEM} not found in ../shared/data nor in "
                  "$COVGAP_SHARED_DATA (the real elevation model is not in the project)",
                  file=sys.stderr, flush=True)
            continue
        rows.append(score(name, args.cache, args.config, args.save))
        print(json.dumps({k: v for k, v in rows[-1].items()
                          if k not in ("confidence", "right")}, default=str), flush=True)
    if not rows:
        return 0
    df = pd.DataFrame(rows)
    df["set"] = df["world"].str.split("-").str[0].replace({"tune": "tuning"})
    cols = ["f1_tests", "unav_tests", "f1_towers", "unav_towers", "unav_gain", "brier",
            "acc_measured", "acc_model", "cov_bias_measured", "cov_bias_sparse",
            "cov_bias_towers"]
    table = df.groupby("set")[cols].mean()
    table["least_unav_gain"] = df.groupby("set")["unav_gain"].min()
    table["worst_f1_tests"] = df.groupby("set")["f1_tests"].min()
    table["ai_to_unav"] = df.groupby("set")["ai_to_unav"].sum()
    print(table.round(3).to_string())
    print(rule_table(df).to_string(index=False))
    print(reliability(df).to_string())
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

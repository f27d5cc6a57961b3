"""The DEM's void fill is logged by every prediction; a command shows it once."""

import logging
import sys

import click
import numpy as np
from click.testing import CliRunner

from coverage.cli import _reported
from coverage.model import Grid
from coverage.model.predict import _fill_dem_gaps


def test_the_dem_void_fill_is_shown_once_per_command(caplog) -> None:
    grid = Grid.covering((495_000, 2_495_000, 505_000, 2_505_000), 100.0, 32648)
    heights = np.full(grid.shape, 50.0)
    heights[40:43, 50:52] = np.nan  # a small void inside the DEM
    log = logging.getLogger("coverage")

    @click.command()
    @click.pass_context
    def predict_thrice(ctx: click.Context) -> None:
        ctx.obj = {}
        log.handlers[:] = [logging.StreamHandler(sys.stderr)]  # as main() does
        with _reported(ctx):
            for _ in range(3):
                _fill_dem_gaps(heights, grid, grid)

    saved = log.handlers[:], log.level
    try:
        log.setLevel(logging.INFO)
        result = CliRunner().invoke(predict_thrice, [], catch_exceptions=False)
        assert result.output.count("DEM: 6 void or nodata cell(s) filled") == 1, result.output
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="coverage"):
            for _ in range(2):  # outside a command (the library alone) every call logs
                _fill_dem_gaps(heights, grid, grid)
        assert sum("void or nodata" in r.getMessage() for r in caplog.records) == 2
    finally:
        log.handlers[:], level = saved
        log.setLevel(level)

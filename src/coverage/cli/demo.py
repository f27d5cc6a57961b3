"""``covgap demo``: the main job on the embedded synthetic province."""

from __future__ import annotations

from pathlib import Path

import click

from . import _echo_run, _progress, _reported, main
from . import options as opt


@main.command()
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("out"), show_default=True, help="Folder for the tables.")
@click.option("--map", "map_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("maps/demo.html"), show_default=True, help="The HTML map.")
@opt.budget(default_help="40 billion VND")
@opt.overwrite
@click.pass_context
def demo(ctx: click.Context, out_dir: Path, map_path: Path, budget: float | None,
         overwrite: bool) -> None:
    """Run the main job on the embedded synthetic province.

    Classifies every demo village, plans a rollout, writes the tables and a manifest under
    OUT and the interactive offline map, and prints a summary. This is `covgap run` on the
    embedded run file, which `covgap run --example` prints.

    \b
    Example:
      covgap demo -o out --map maps/demo.html
      covgap demo -o out --budget 80bn --overwrite
    """
    from ..execute import execute
    from ..spec import DEMO_CONFIG

    with _reported(ctx), _progress(ctx, ("modelling coverage", "modelling candidates")) as progress:
        spec = opt.run_file_spec(DEMO_CONFIG, out_dir=out_dir, map_path=map_path,
                                 budget=budget)
        result = execute(spec, progress=progress, overwrite=overwrite)
        _echo_run(ctx, result, result.outputs)

"""``covgap run FILE.toml``: a whole run as a run file says."""

from __future__ import annotations

from pathlib import Path

import click

from . import _echo_run, _progress, _reported, main
from . import options as opt


@main.command()
@click.argument("config", type=opt.FileIn, required=False)
@click.option("--example", is_flag=True,
              help="Print the commented demo run file (its main keys) and exit.")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the tables [default: the file's [outputs] dir].")
@click.option("--map", "map_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML map [default: the file's [outputs] map].")
@opt.budget(default_help="the file's [scenario] budget")
@opt.coverage_option
@opt.engine
@opt.overwrite
@click.pass_context
def run(ctx: click.Context, config: Path | None, example: bool, out_dir: Path | None,
        map_path: Path | None, budget: float | None, coverage: tuple[Path, ...], overwrite: bool,
        engine_kind: str | None, scheduler: str | None) -> None:
    """Classify, plan, map and export in one go, as a TOML run file says.

    CONFIG names the inputs, profile, thresholds, model, costs, budget, technologies and
    outputs; the main keys are documented in the commented demo file
    (src/coverage/datasets/demo.toml, also written by `covgap run --example`). The run
    writes a manifest (tool version, parameters, SHA-256 of every input) beside the tables.

    \b
    Example:
      covgap run --example > lao-cai.toml      # then edit [inputs] and [outputs]
      covgap run lao-cai.toml
      covgap run lao-cai.toml -o out/80bn --budget 80bn --overwrite
      covgap run vietnam.toml --engine dask --scheduler tcp://10.0.0.5:8786
    """
    from ..execute import execute
    from ..spec import DEMO_CONFIG

    if example:
        click.echo(DEMO_CONFIG.read_text(encoding="utf-8"), nl=False)
        return
    if config is None:
        raise click.UsageError("give a run file (covgap run FILE.toml), or --example to "
                               "print a commented one")
    with _reported(ctx), _progress(ctx, ("modelling coverage", "modelling candidates")) as progress:
        spec = opt.run_file_spec(config, out_dir=out_dir, map_path=map_path, budget=budget,
                                   coverage=coverage)
        with opt.engine_for(engine_kind, scheduler) as engine:
            result = execute(spec, engine=engine, progress=progress, overwrite=overwrite)
        _echo_run(ctx, result, result.outputs)

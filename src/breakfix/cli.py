"""Command line: parse, call the engine, hand the result to the renderer. Nothing else."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from breakfix import __version__
from breakfix.errors import BreakfixError
from breakfix.types import TargetSpec

BACKENDS = ("aot_eager", "eager", "inductor")


class BreakfixGroup(click.Group):
    """The one exception boundary: known errors become one line and exit code 2."""

    def main(self, *args, **kwargs):  # type: ignore[override]
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.Abort:
            sys.exit(130)
        except click.ClickException as e:
            ctx = getattr(e, "ctx", None)  # usage errors carry the context --json was recorded in
            _fail(e.format_message().replace("\n", " "), 2, bool(ctx and ctx.meta.get("json")))

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except BreakfixError as e:
            _fail(str(e), e.exit_code, ctx.meta.get("json", False))
        except KeyboardInterrupt:
            sys.exit(130)


def _fail(message: str, exit_code: int, as_json: bool) -> None:
    from breakfix.render import Renderer

    renderer = Renderer()
    renderer.error(message)
    if as_json:
        from breakfix.report_json import error_json

        renderer.json(error_json(message, exit_code))
    sys.exit(exit_code)


def _record_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    # Eager, so it is recorded before the other parameters are validated: a usage error in a
    # --json run still prints its JSON error document.
    ctx.meta["json"] = value
    return value


def _check_spec(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            TargetSpec.parse(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
    return value


@click.group(cls=BreakfixGroup)
@click.version_option(__version__, prog_name="breakfix")
def main() -> None:
    """Find, fix and verify torch.compile graph breaks."""


def _check_specs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        try:
            TargetSpec.parse(value)
        except ValueError as e:
            raise click.BadParameter(str(e), ctx, param_hint="'TARGET'") from None
    return values


@main.command()
@click.argument("targets", metavar="[TARGET]...", nargs=-1, callback=_check_specs)
@click.option("--inputs", "inputs", callback=_check_spec, help="MODULE:FN or FILE.py:FN returning a tuple of positional arguments.")
@click.option("--apply", is_flag=True, help="Write the verified rewrite (default: dry run).")
@click.option("--json", "as_json", is_flag=True, is_eager=True, callback=_record_json, help="Print one JSON object (schema: docs/json-schema.md).")
@click.option("--backend", type=click.Choice(BACKENDS), default="aot_eager", show_default=True,
              help="Backend the rewrite is verified on.")
@click.option("--unsafe-fixes", is_flag=True, help="Also apply fixes that change observable behaviour.")
@click.option("--max-rounds", type=click.IntRange(1), default=5, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Seconds each worker process may run before it is killed.")
@click.option("--root", type=click.Path(exists=True, file_okay=False), default=".",
              help="Project root: only files under it are ever edited.")
@click.option("--rtol", type=float, default=None, help="Relative tolerance for comparing outputs (torch's default).")
@click.option("--atol", type=float, default=None, help="Absolute tolerance for comparing outputs (torch's default).")
@click.option("-j", "--jobs", "parallel", type=click.IntRange(1), default=1, show_default=True,
              help="Targets worked on at once (several targets only).")
@click.pass_context
def run(ctx: click.Context, targets: tuple[str, ...], inputs: str | None, apply: bool, as_json: bool, backend: str,
        unsafe_fixes: bool, max_rounds: int, timeout: float, root: str, rtol: float | None, atol: float | None,
        parallel: int) -> None:
    """Locate, fix and verify the graph breaks of each TARGET (MODULE:QUALNAME or FILE.py:QUALNAME).

    Without TARGET, the targets are those of [tool.breakfix] targets in the root's pyproject.toml.
    """
    from breakfix import workers

    if (rtol is None) != (atol is None):
        raise click.UsageError("--rtol and --atol must be given together", ctx)
    root_path = Path(os.path.realpath(root))
    jobs = _jobs(ctx, targets, inputs, root_path)
    workers.start()  # torch imports in the zygotes while the rest loads here
    from breakfix.engine import Engine
    from breakfix.locator import RunOptions
    from breakfix.render import Renderer

    renderer = Renderer(quiet=as_json)

    def run_one(job, progress):
        options = RunOptions(target=_absolute(job.target, job.base), inputs=job.inputs and _absolute(job.inputs, job.base),
                             root=root_path, backend=backend, timeout=timeout, rtol=rtol, atol=atol)
        report = Engine(options, unsafe_fixes=unsafe_fixes, max_rounds=max_rounds, progress=progress).run(apply)
        report.target = job.target  # as the user typed it
        return report

    if len(targets) == 1:
        report = run_one(jobs[0], renderer.progress)
        if as_json:
            from breakfix.report_json import to_json

            renderer.json(to_json(report, str(root_path)))
        else:
            renderer.report(report, str(root_path))
        sys.exit(report.exit_code)
    from breakfix.batch import run_all

    with renderer.batch_progress(len(jobs)) as events:
        outcomes = run_all(jobs, run_one, parallel, events)
    if as_json:
        from breakfix.report_json import batch_json

        renderer.json(batch_json(outcomes, str(root_path)))
    else:
        renderer.batch_report(outcomes, str(root_path))
    sys.exit(max(outcome.exit_code for outcome in outcomes))


def _jobs(ctx: click.Context, targets: tuple[str, ...], inputs: str | None, root: Path) -> list:
    """The targets typed (all with ``--inputs``), else the project's list (each with its own inputs)."""
    from breakfix.batch import TargetJob, project_targets

    if targets:
        return [TargetJob(target, inputs, os.getcwd()) for target in targets]
    if inputs:
        raise click.UsageError("--inputs needs a TARGET", ctx)
    jobs = project_targets(root)
    if not jobs:
        raise click.UsageError("Missing argument 'TARGET' (and no [tool.breakfix] targets in the root's pyproject.toml)", ctx)
    return jobs


def _absolute(spec: str, base: str) -> str:
    """File specs are resolved against ``base`` (the worker runs in the root)."""
    parsed = TargetSpec.parse(spec)
    if not parsed.is_file:
        return spec
    return f"{os.path.abspath(os.path.join(base, parsed.location))}:{parsed.qualname}"

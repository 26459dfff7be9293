"""`vigia backup run | list | verify | prune` and `vigia restore`: backups and restores from a terminal, at 3 a.m."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Annotated

import typer

from deployments.backup_plans import plan_from_settings
from deployments.cli_support import fail, prefect_api_if_running, read_settings, run_deployment

__all__ = ["backup_app", "plan_from_settings", "restore"]

backup_app = typer.Typer(no_args_is_help=True, help="Daily backups: run one now, list them, check their checksums, prune.")
DEPLOYMENT = "backup/daily"
RTO_SECONDS = 30 * 60


@backup_app.command("run")
def backup_run(
    verify: Annotated[bool, typer.Option(help="Restore every dump into a scratch copy and compare.")] = True,
    prune: Annotated[bool, typer.Option(help="Apply retention after the run.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show the run's Prefect log lines.")] = False,
) -> None:
    """Back up every source now, as a run of backup/daily on the platform; exit 1 when the run failed."""
    settings = read_settings()
    finished = run_deployment(settings, DEPLOYMENT, {"verify": verify, "prune": prune}, verbose)
    if not finished.ok:
        kind, text = finished.error()
        if kind == "BlockMissing":
            text = f"{text}; run `vigia setup` to create it"
        raise fail(text or f"{DEPLOYMENT}: run {finished.name} ended {finished.state_name}")
    run = _backup_of_flow_run(settings, finished.id)
    if run is None:
        raise fail(f"{DEPLOYMENT}: run {finished.name} completed but the store {settings.database_url} has no backup of it")
    steps = (("dump", run.dump_seconds), ("upload", run.upload_seconds), ("verify", run.verify_seconds))
    timings = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in steps if seconds is not None)
    typer.echo(f"backup {run.id} {run.status}: {(run.size_bytes or 0) / 2**20:.1f} MiB ({timings})")


@backup_app.command("list")
def backup_list(
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List backup runs, newest first, with sizes, durations and verification."""
    from store.backups import list_runs
    from store.database import open_session

    settings = read_settings()
    with open_session(settings.database_url) as session:
        runs = list_runs(session, limit, with_items=True)
    rows = [_run_row(run) for run in runs]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        raise fail("no backup has run yet; run `vigia backup run`")
    typer.echo(f"{'run':<19} {'status':<9} {'size':>10} {'dump':>7} {'upload':>7} {'verify':>7}  sources")
    for row in rows:
        typer.echo(
            f"{row['run_id']:<19} {row['status']:<9} {row['size_bytes'] / 2**20 if row['size_bytes'] else 0:>7.1f}MiB "
            f"{_seconds(row['dump_seconds'])} {_seconds(row['upload_seconds'])} {_seconds(row['verify_seconds'])}  {', '.join(row['sources'])}"
        )


@backup_app.command("verify")
def backup_verify(run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run id, from `vigia backup list`.")]) -> None:
    """Check a run's local and remote files against the SHA-256 recorded at backup time."""
    from clients.errors import ClientError
    from tasks.restores import RestoreRefused, check_backup

    settings = read_settings()
    try:
        results = check_backup(plan_from_settings(settings), settings.database_url, run_id)
    except (RestoreRefused, ClientError) as error:
        raise fail(str(error)) from None
    for where, ok, detail in results:
        typer.echo(f"{'OK' if ok else 'FAILED':<7} {where}: {detail}")
    if not all(ok for _, ok, _ in results):
        raise fail(f"backup {run_id} does not match its checksums; restore from another run")


@backup_app.command("prune")
def backup_prune(dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted.")] = False) -> None:
    """Apply retention: local copies after 30 days; on the remote 7 daily, 4 weekly, 12 monthly."""
    from clients.errors import ClientError
    from tasks.backups import backup_lock
    from tasks.retention import prune_backups

    settings = read_settings()
    plan = plan_from_settings(settings)
    try:
        with backup_lock(plan):  # never prune under a running backup
            report = prune_backups.fn(plan, settings.database_url, dry_run)
    except ClientError as error:
        raise fail(str(error)) from None
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"local: {verb} {len(report.local_deleted)} ({', '.join(report.local_deleted) or 'none'})")
    typer.echo(
        f"remote: {verb} {len(report.remote_deleted)} ({', '.join(report.remote_deleted) or 'none'}); kept {len(report.remote_kept)}"
    )


def restore(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run id, from `vigia backup list`.")],
    source: Annotated[str, typer.Option(help="The source to restore (postgres-DB, redis, files, store).")],
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="Target URL or folder, a source's name, or secret/NAME (a Secret block); the source itself when omitted."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite a target that is not empty.")] = False,
) -> None:
    """Restore one backup item (fetched from the remote when needed, SHA-256 checked) and print how long it took; runs here, even while Prefect is down."""
    from clients.errors import ClientError
    from tasks.restores import RestoreRefused, restore_item

    settings = read_settings()
    with prefect_api_if_running(settings), _progress_bars() as progress:
        try:
            outcome = restore_item.fn(plan_from_settings(settings), settings.database_url, run_id, source, to, force, None, progress)
        except (RestoreRefused, ClientError) as error:
            raise fail(str(error)) from None
    within = "within" if outcome.seconds <= RTO_SECONDS else "OUTSIDE"
    typer.echo(
        f"restored {outcome.source} of {outcome.run_id} into {outcome.target} in {outcome.seconds:.1f} s ({within} the 30-minute RTO): {outcome.detail}"
    )


def _backup_of_flow_run(settings, flow_run_id: str):
    from store.backups import list_runs
    from store.database import open_session

    with open_session(settings.database_url) as session:
        return next((run for run in list_runs(session, 50) if run.flow_run_id == flow_run_id), None)


class _progress_bars:
    """Rich progress bars on a terminal, one per step; nothing when stderr is not a terminal."""

    def __enter__(self):
        if not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self.bars = Progress(
            TextColumn("{task.description:<9}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=Console(stderr=True)
        )
        self.tasks: dict[str, int] = {}
        self.bars.start()
        return self.update

    def update(self, step: str, done: int, total: int | None) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.bars.add_task(step, total=total)
        self.bars.update(self.tasks[step], completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if hasattr(self, "bars"):
            self.bars.stop()


def _run_row(run) -> dict:
    return {
        "run_id": run.id,
        "status": run.status,
        "verified": run.verified,
        "started_at": run.started_at.isoformat(),
        "size_bytes": run.size_bytes,
        "dump_seconds": run.dump_seconds,
        "upload_seconds": run.upload_seconds,
        "verify_seconds": run.verify_seconds,
        "remote": run.remote,
        "error": run.error,
        "local_deleted": run.local_deleted_at is not None,
        "remote_deleted": run.remote_deleted_at is not None,
        "sources": [item.source for item in run.items],
        "age_hours": round((datetime.now(timezone.utc) - run.started_at).total_seconds() / 3600, 1),
    }


def _seconds(value: float | None) -> str:
    return f"{value:>6.1f}s" if value is not None else f"{'—':>7}"

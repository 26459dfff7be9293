"""The `restore` flow: bring one item of a backup run back into a target, timed against the 30-minute RTO."""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact
from pydantic import Field

from blocks.backup_plan import BackupPlan
from blocks.vigia import VigiaSettings
from tasks.alerts import raise_alert
from tasks.backups import load_block, restore_failure_body
from tasks.events import emit_restore
from tasks.restores import RestoreOutcome, RestoreRefused, restore_item

RTO_SECONDS = 30 * 60
# A reference, never a URL: run parameters are stored and shown in clear, so a password must not be one.
# The pattern is in the deployment's schema only, so the Prefect API refuses a URL before it stores the run;
# a direct call gets the flow's own one-line refusal instead of a pydantic pattern error.
TARGET_REFERENCE = r"^(secret/[a-z0-9][a-z0-9_-]*|[a-z0-9][a-z0-9_.-]{0,62}|/[^\s]*)$"
TargetReference = Annotated[str | None, Field(default=None, json_schema_extra={"pattern": TARGET_REFERENCE})]


@flow(
    name="restore",
    description="Restore one item of a backup run into a target (fetched and SHA-256 checked first).",
    flow_run_name="restore {run_id} {source}",
)
def restore(run_id: str, source: str, target: TargetReference = None, force: bool = False, plan_block: str = "default") -> RestoreOutcome:
    """Fetch one backup item (from the remote when it is not local), check its SHA-256, restore it, and time it.

    Args:
        run_id: The backup run, as `vigia backup list` shows it (e.g. 2026-11-22T030000Z).
        source: The source to restore, by its name in the backup plan (e.g. postgres-n8n, redis, files, store).
        target: Where to restore: a source's name, `secret/NAME` (a Secret block holding a URL) or a folder; the source itself when empty.
        force: Overwrite a target that is not empty (PostgreSQL: drop and recreate the backup's objects; Redis: replace keys).
        plan_block: Name of the backup-plan Block document that says where the backups are.

    Raises:
        BlockMissing: when vigia-settings/default or the plan's Block does not exist.
        RestoreRefused: for a target given as a URL, or a request that cannot be met.
        ClientError: when a tool, the remote or the target fails, or a Redis target keeps fewer keys than the backup
            holds; a critical alert is sent.
    """
    if target is not None and "://" in target:
        raise RestoreRefused(
            "the target is a URL, which would be stored in clear with the run: "
            "pass a source's name, or save the URL in a Secret block and pass `secret/NAME`"
        )
    logger = get_run_logger()
    settings = load_block(VigiaSettings, "default")
    plan = load_block(BackupPlan, plan_block)
    flow_run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    try:
        outcome = restore_item(plan, settings.database_url.get_secret_value(), run_id, source, target, force, flow_run_id)
    except RestoreRefused:
        raise  # a request that cannot be met as given: the caller is told, nothing broke
    except Exception as error:
        body = restore_failure_body(source, run_id, str(error))
        # raise_alert is an async task: submit it from this sync flow and wait for its delivery record.
        raise_alert.submit(
            "critical", f"restore of {source} from {run_id} failed", body, key=f"restore:{run_id}:{source}", cooldown=None, target="backup"
        ).result()
        raise
    within = "within" if outcome.seconds <= RTO_SECONDS else "OUTSIDE"
    logger.info("restore of %s from %s took %.1f s, %s the 30-minute RTO", source, run_id, outcome.seconds, within)
    _publish(outcome, within)
    emit_restore(run_id, source, outcome.target, outcome.seconds, outcome.seconds <= RTO_SECONDS, flow_run_id)
    return outcome


def _publish(outcome: RestoreOutcome, within: str) -> None:
    lines = [
        f"# Restore of {outcome.source} from backup {outcome.run_id}",
        "",
        "| | |",
        "|---|---|",
        f"| what | {outcome.source}, from backup run {outcome.run_id} |",
        f"| from | {outcome.origin or 'the backup'}, SHA-256 checked |",
        f"| into | {outcome.target} |",
        f"| restored | {outcome.detail} |",
        f"| took | {outcome.seconds:.1f} s, {within} the 30-minute RTO |",
    ]
    create_markdown_artifact("\n".join(lines), key="restore", description=f"Restore of {outcome.source} from {outcome.run_id}")

"""Serve every deployment of prefect.yaml in this process (what `vigia up` runs as a child)."""

from __future__ import annotations

import logging

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType
from prefect.schedules import Cron

from deployments.definitions import read_definitions

RUN_LIMIT = 4  # serve(limit=None) would start a whole backlog of late runs at once

logger = logging.getLogger(__name__)


def build_deployments(environ: dict[str, str] | None = None) -> list:
    """Turn prefect.yaml's definitions into runner deployments, un-paused."""
    deployments = []
    for definition in read_definitions(environ=environ):
        limit = None
        if definition.concurrency_limit is not None:
            limit = ConcurrencyLimitConfig(
                limit=definition.concurrency_limit,
                collision_strategy=ConcurrencyLimitStrategy(definition.collision_strategy or "ENQUEUE"),
            )
        deployments.append(
            definition.load_flow().to_deployment(
                name=definition.name,
                description=definition.description or None,
                tags=definition.tags,
                schedules=[Cron(item.cron, timezone=item.timezone) for item in definition.schedules],
                parameters=definition.parameters or None,
                concurrency_limit=limit,
                # A previous serve() may have paused them on shutdown; start every one un-paused.
                paused=False,
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
        )
    return deployments


def main() -> None:
    """Serve prefect.yaml's deployments until interrupted."""
    deployments = build_deployments()
    logger.info("serving %d deployments", len(deployments))
    serve(*deployments, limit=RUN_LIMIT, pause_on_shutdown=False, print_starting_message=False)


if __name__ == "__main__":
    main()

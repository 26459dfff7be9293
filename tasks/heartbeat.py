"""The heartbeat task: a dead man's switch pinged after each completed health check."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from clients import http
from clients.errors import ClientError
from clients.redaction import mask_secrets


@task(name="ping-heartbeat", cache_policy=NO_CACHE)
async def ping_heartbeat(url: SecretStr) -> bool:
    """GET the heartbeat URL; a failure is logged, never raised, and the URL is never logged."""
    logger = get_run_logger()
    try:
        status = await http.ping(url.get_secret_value(), timeout=10)
    except ClientError as error:
        logger.warning("heartbeat ping failed: %s", mask_secrets(str(error), [url.get_secret_value()]))
        return False
    if status >= 400:
        logger.warning("heartbeat ping answered HTTP %d", status)
        return False
    logger.info("heartbeat ping OK (HTTP %d)", status)
    return True

"""The heartbeat task: a dead man's switch pinged after each completed health check, retried within the interval.

One lost ping would make the outside monitor report Vigia dead, so a transient failure (no connection,
a timeout, 429, 5xx) is retried after 1, 2 and 4 s. Four attempts of at most 10 s each and 7 s of waits
end within ~50 s, well inside the 5-minute interval. A permanent answer (another 4xx: a wrong URL) is not
retried.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from clients import http
from clients.errors import ClientError
from clients.redaction import mask_secrets

ATTEMPT_TIMEOUT_SECONDS = 10.0
RETRY_DELAYS_SECONDS = [1, 2, 4]


class HeartbeatFailed(Exception):
    """A ping did not reach the heartbeat monitor; `transient` says whether trying again may help."""

    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient


def _is_transient(task, task_run, state) -> bool:
    # Prefect's retry condition: the failed state's data is the exception the attempt raised.
    return isinstance(state.data, HeartbeatFailed) and state.data.transient


@task(
    name="ping-heartbeat",
    cache_policy=NO_CACHE,
    retries=len(RETRY_DELAYS_SECONDS),
    retry_delay_seconds=RETRY_DELAYS_SECONDS,
    retry_condition_fn=_is_transient,
)
async def ping_heartbeat(url: SecretStr) -> bool:
    """GET the heartbeat URL once; the URL is never logged.

    Raises:
        HeartbeatFailed: when the ping failed (retried by Prefect when transient).
    """
    logger = get_run_logger()
    try:
        status = await http.ping(url.get_secret_value(), timeout=ATTEMPT_TIMEOUT_SECONDS)
    except ClientError as error:
        # from None: the chained error's text may hold the URL, whose path is the monitor's secret.
        raise HeartbeatFailed(f"heartbeat ping failed: {mask_secrets(str(error), [url.get_secret_value()])}", transient=True) from None
    if status >= 400:
        raise HeartbeatFailed(f"heartbeat ping answered HTTP {status}", transient=status == 429 or status >= 500)
    logger.info("heartbeat ping OK (HTTP %d)", status)
    return True

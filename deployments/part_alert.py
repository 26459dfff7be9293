"""The `critical` alert for a part of `vigia up` that keeps dying, sent by a short-lived child of the supervisor:

    python -m deployments.part_alert --part prefect-server --deaths 4 --log VIGIA_HOME/logs/prefect-server.log

It goes through the same delivery as every alert (claimed and stored in the store, sent with Apprise) but is
configured from the environment (VIGIA_APPRISE_CONFIG), not from Blocks: the part that keeps dying may be the
Prefect server itself. The supervisor does not wait for it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from datetime import timedelta
from pathlib import Path

from deployments.settings import SettingsError, load_settings

COOLDOWN = timedelta(minutes=30)


def alert_text(part: str, deaths: int, log_tail: str) -> tuple[str, str]:
    """The alert's title and body."""
    title = f"[CRITICAL] vigia up: {part} keeps dying"
    body = (
        f"{part} died {deaths} times within 10 minutes on {socket.gethostname()}; vigia up keeps restarting it, "
        f"at most once a minute. Its last log lines: {log_tail}"
    )
    return title, body


def send_part_alert(part: str, deaths: int, log_path: Path) -> str:
    """Raise the alert once per cooldown; return its stored status (logged, sent, partial, failed) or `cooling down`."""
    from blocks.alert_routes import AlertRoutes
    from clients.notify import Router, read_config
    from clients.redaction import mask_phone_numbers, mask_secrets
    from deployments.supervisor import tail
    from tasks.alerts import AlertContext, AlertSpec, deliver_alert
    from tasks.messages import Links

    settings = load_settings()
    router, routes = None, AlertRoutes()
    if settings.apprise_config is not None:
        text, config_format = read_config(settings.apprise_config)
        router = Router(text, f"VIGIA_APPRISE_CONFIG {settings.apprise_config}", config_format)
        routes = AlertRoutes(source=f"VIGIA_APPRISE_CONFIG {settings.apprise_config}")
    title, body = alert_text(part, deaths, mask_phone_numbers(mask_secrets(tail(log_path), settings.secrets())))
    spec = AlertSpec(
        key=f"platform:{part}:keeps-dying", kind="custom", severity="critical", title=title, body=body, cooldown=COOLDOWN, target=part
    )
    context = AlertContext(settings.database_url, router, routes, Links(None, None), None, zone=settings.timezone)
    alert = asyncio.run(deliver_alert(context, spec))
    return "cooling down" if alert is None else alert.status


def main(argv: list[str] | None = None) -> int:
    """Send the alert; log the outcome on one line."""
    parser = argparse.ArgumentParser(prog="python -m deployments.part_alert")
    parser.add_argument("--part", required=True)
    parser.add_argument("--deaths", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        status = send_part_alert(args.part, args.deaths, args.log)
    except SettingsError as error:
        logging.getLogger(__name__).error("critical alert for %s not sent: %s", args.part, error)
        return 1
    logging.getLogger(__name__).info("critical alert for %s (died %d times): %s", args.part, args.deaths, status)
    return 0


if __name__ == "__main__":
    sys.exit(main())

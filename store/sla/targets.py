"""The SLA targets and standard windows of DESIGN §11."""

from datetime import timedelta

UPTIME_TARGET_PERCENT = 99.5  # per critical target
RESPONSE_TARGET_SECONDS = 15.0  # p95, webhook received → reply sent
ERROR_RATE_TARGET_PERCENT = 1.0  # failed ÷ finished, workflows and transcriptions each
RECOVERY_TARGET_SECONDS = 30 * 60.0  # incident resolved − opened
FRESHNESS_TARGET_SECONDS = 26 * 3600.0  # now − newest verified backup
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}

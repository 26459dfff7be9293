"""The webhook receiver: `GET /health` now; the Evolution webhook joins it with transcription."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from deployments.settings import load_settings
from store.database import StoreError, open_session
from store.health_runs import CHECK_INTERVAL, last_health_run_finished_at
from store.states import read_states


def create_app(database_url: str) -> FastAPI:
    """Build the receiver for one store."""
    app = FastAPI(title="Vigia receiver", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    def health() -> JSONResponse:
        """200 with a summary, or 503 when the store is unreachable or the last check is stale."""
        now = datetime.now(timezone.utc)
        try:
            with open_session(database_url) as session:
                finished_at = last_health_run_finished_at(session)
                states = read_states(session)
        except StoreError as error:
            return JSONResponse({"status": "unhealthy", "reason": str(error)}, status_code=503)
        summary = {
            "last_check_at": finished_at.isoformat() if finished_at else None,
            "targets": {state.target: state.state for state in states},
            "down": sorted(state.target for state in states if state.state == "DOWN"),
        }
        if finished_at is None:
            return JSONResponse({"status": "unhealthy", "reason": "no health check has completed yet", **summary}, status_code=503)
        age = now - finished_at
        if age > 2 * CHECK_INTERVAL:
            reason = f"the last health check finished {age.total_seconds() / 60:.0f} min ago (limit {2 * CHECK_INTERVAL.total_seconds() / 60:.0f} min)"
            return JSONResponse({"status": "unhealthy", "reason": reason, **summary}, status_code=503)
        return JSONResponse({"status": "ok", **summary})

    return app


def create_app_from_environment() -> FastAPI:
    """Build the receiver from the environment's settings (uvicorn's factory)."""
    return create_app(load_settings().database_url)

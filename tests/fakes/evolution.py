"""A loopback stand-in for the Evolution API v2 (2.3.6) REST server with its real status codes and bodies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from http import HTTPStatus
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .server import RecordedRequest

InstanceState = Literal["open", "close", "connecting"]
CallNext = Callable[[Request], Awaitable[Response]]

RECORDED_HEADERS = ("apikey", "content-type", "user-agent")
# Paths that stay up when every API route fails (the 2.4 licensing gate exempts the same ones).
UNGATED_PREFIXES = ("/manager", "/assets")
LICENSE_DOCS_URL = "https://docs.evolutionfoundation.com.br/licensing"
# What the Manager single-page app serves for every /manager/* path, with or without a key.
MANAGER_INDEX_HTML = (
    '<!doctype html><html lang="en"><head><meta charset="UTF-8" />'
    "<title>Evolution Manager</title>"
    '<script type="module" crossorigin src="/assets/index-CJ7gpK4v.js"></script>'
    '</head><body><div id="root"></div></body></html>'
)


class ExpressJSONResponse(JSONResponse):
    """JSON with the content type Express's `res.json` sends."""

    media_type = "application/json; charset=utf-8"


def error_body(status: int, message: Any) -> dict[str, Any]:
    """Evolution's error envelope: `{"status", "error": <reason phrase>, "response": {"message"}}`."""
    return {"status": status, "error": HTTPStatus(status).phrase, "response": {"message": message}}


def error_response(status: int, message: Any) -> ExpressJSONResponse:
    """An Evolution error reply with its envelope."""
    return ExpressJSONResponse(error_body(status, message), status_code=status)


@dataclass(eq=False)
class FakeEvolution:
    """Evolution API server state; mutate the fields between requests to script a scenario."""

    api_key: str = "evolution-global-key"
    # None means the instance exists in the database but is not loaded, so `state` is absent.
    instances: dict[str, InstanceState | None] = field(default_factory=dict)
    # Per-instance tokens: each is accepted only on routes naming its own instance.
    instance_tokens: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    fail_with: int | None = None
    version: str = "2.3.6"
    requests: list[RecordedRequest] = field(default_factory=list)

    def is_authorized(self, instance: str, apikey: str | None) -> bool:
        """Whether `apikey` is the global key or the token of `instance`."""
        if not apikey:
            return False
        return apikey == self.api_key or apikey == self.instance_tokens.get(instance)

    def guard_instance(self, instance: str, request: Request) -> Response | None:
        """Run Evolution's route guards in their real order: instance exists (404), then apikey (401)."""
        if instance not in self.instances:
            return error_response(404, [f'The "{instance}" instance does not exist'])
        if not self.is_authorized(instance, request.headers.get("apikey")):
            return error_response(401, "Unauthorized")
        return None

    def forced_failure(self, request: Request) -> Response | None:
        """The reply `fail_with` forces on API routes; `/` and the Manager UI stay up."""
        path = request.url.path
        if self.fail_with is None or path == "/" or path.startswith(UNGATED_PREFIXES):
            return None
        if self.fail_with == 503:
            return license_gate_response(request)
        return error_response(self.fail_with, HTTPStatus(self.fail_with).phrase)

    @cached_property
    def app(self) -> FastAPI:
        """The ASGI app serving this fake's state."""
        return build_app(self)


def license_gate_response(request: Request) -> ExpressJSONResponse:
    """The 503 Evolution 2.4 sends from every API route while its licence is not activated."""
    manager_url = f"{request.url.scheme}://{request.headers.get('host')}/manager/login"
    body = {
        "error": "service not activated",
        "code": "LICENSE_REQUIRED",
        "register_url": manager_url,
        "instance_id": "fake-license-instance",
        "docs_url": LICENSE_DOCS_URL,
        "message": (
            f"This Evolution API instance is not activated. Open {manager_url} to activate, or set "
            f"AUTHENTICATION_API_KEY in your .env with a valid licensing key. Docs: {LICENSE_DOCS_URL}"
        ),
    }
    return ExpressJSONResponse(body, status_code=503)


def build_app(fake: FakeEvolution) -> FastAPI:
    """Build the FastAPI app whose routes read `fake` on every request."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def record_delay_and_fail(request: Request, call_next: CallNext) -> Response:
        fake.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                query=request.url.query,
                headers={k: v for k, v in request.headers.items() if k in RECORDED_HEADERS},
            )
        )
        if fake.delay_seconds > 0:
            await asyncio.sleep(fake.delay_seconds)
        return fake.forced_failure(request) or await call_next(request)

    @app.exception_handler(StarletteHTTPException)
    async def unknown_route(request: Request, exc: StarletteHTTPException) -> Response:
        # Express answers an unmatched method or path with 404 "Cannot <METHOD> <path>".
        return error_response(404, [f"Cannot {request.method} {request.url.path}"])

    @app.get("/")
    async def welcome(request: Request) -> Response:
        base = f"{request.url.scheme}://{request.headers.get('host')}"
        return ExpressJSONResponse(
            {
                "status": 200,
                "message": "Welcome to the Evolution API, it is working!",
                "version": fake.version,
                "clientName": "evolution_exchange",
                "manager": f"{base}/manager",
                "documentation": "https://doc.evolution-api.com",
                "whatsappWebVersion": "2.3000.1028953296",
            }
        )

    @app.get("/manager")
    @app.get("/manager/{rest:path}")
    async def manager_ui(rest: str = "") -> Response:
        return HTMLResponse(MANAGER_INDEX_HTML)

    @app.get("/instance/connectionState/{instance}")
    async def connection_state(instance: str, request: Request) -> Response:
        if refused := fake.guard_instance(instance, request):
            return refused
        body: dict[str, str] = {"instanceName": instance}
        state = fake.instances[instance]
        if state is not None:
            body["state"] = state
        return ExpressJSONResponse({"instance": body})

    return app

"""A loopback stand-in for the Evolution API v2 (2.3.6) REST server with its real status codes and bodies."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from http import HTTPStatus
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .evolution_media import MediaStore
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


# What the fake WhatsApp socket answers when it is not connected (issues #1286, #1772, #2229).
CONNECTION_CLOSED = "Connection Closed"
# A loaded-in-DB but not-in-memory instance crashes the send controller (issues #1412, #2583).
INSTANCE_NOT_LOADED = "Cannot read properties of undefined (reading 'textMessage')"
URL_PATTERN = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class SentText:
    """One message the fake accepted on `POST /message/sendText/{instance}`, for assertions.

    `number` is the body's `number` as sent; `quoted_id` is the id actually quoted (None when the
    request quoted nothing or quoted an id Evolution could not find, which it sends unquoted);
    `link_preview` is the effective setting (on unless the body said `false`).
    """

    instance: str
    number: str
    text: str
    quoted_id: str | None
    link_preview: bool
    delay_ms: int
    remote_jid: str
    message_id: str


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
    # sendText: accepted messages, a forced failure (500 or 400 "Connection Closed"), numbers
    # `onWhatsApp` reports as absent (digits), and message ids quotable without a `quoted.message`.
    sent: list[SentText] = field(default_factory=list)
    send_fails_with: int | None = None
    unregistered_numbers: set[str] = field(default_factory=set)
    stored_message_ids: set[str] = field(default_factory=set)
    # getBase64FromMediaMessage: decrypted media by message id, and how downloads behave (see evolution_media).
    media_store: MediaStore = field(default_factory=MediaStore)

    @property
    def media(self) -> dict[str, tuple[bytes, str]]:
        """Decrypted media by message id: (content, mimetype)."""
        return self.media_store.contents

    @property
    def media_requests(self) -> list[dict[str, Any]]:
        """Every getBase64FromMediaMessage body received, in order."""
        return self.media_store.requests

    async def media_base64(self, instance: str, body: dict[str, Any]) -> Response:
        """Evolution's `getBase64FromMediaMessage`: the message content if given, else the stored message by key.id."""
        return await self.media_store.answer(body, self.stored_message_ids, self.version, error_response, ExpressJSONResponse)

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

    async def deliver_text(self, instance: str, body: dict[str, Any]) -> Response:
        """Evolution's `textMessage` + `sendMessageWithTyping` for a schema-valid body."""
        state = self.instances[instance]
        if state is None:
            return error_response(500, INSTANCE_NOT_LOADED)
        text: str = body["text"]
        if not text.strip():
            return error_response(400, ["Text is required"])
        if self.send_fails_with == 400:
            # The socket dropped inside sendMessageWithTyping, whose catch rethrows it as a 400.
            return error_response(400, [f"Error: {CONNECTION_CLOSED}"])
        if self.send_fails_with is not None:
            status = self.send_fails_with
            return error_response(status, CONNECTION_CLOSED if status == 500 else HTTPStatus(status).phrase)
        if state != "open":
            # The `onWhatsApp` lookup runs outside that catch, so a closed socket surfaces as a 500.
            return error_response(500, CONNECTION_CLOSED)
        remote_jid = create_jid(body["number"])
        digits = remote_jid.split("@")[0]
        if remote_jid.endswith("@s.whatsapp.net") and digits in self.unregistered_numbers:
            return error_response(400, [{"jid": remote_jid, "exists": False, "number": body["number"]}])
        delay_ms: int = body.get("delay") or 0
        if delay_ms > 0:
            # The real server shows "composing" and waits inside the request before answering.
            await asyncio.sleep(delay_ms / 1000)
        quoted = body.get("quoted") if isinstance(body.get("quoted"), dict) else None
        if quoted is not None and ("key" not in quoted or not (quoted.get("message") or quoted["key"]["id"] in self.stored_message_ids)):
            quoted = None  # not found in the store: Evolution sends the reply unquoted, without an error
        link_preview = body.get("linkPreview") is not False
        message_id = new_message_id()
        record = sent_text_record(instance, remote_jid, text, quoted, link_preview, message_id)
        self.stored_message_ids.add(message_id)
        self.sent.append(
            SentText(
                instance=instance,
                number=body["number"],
                text=text,
                quoted_id=quoted["key"]["id"] if quoted else None,
                link_preview=link_preview,
                delay_ms=delay_ms,
                remote_jid=remote_jid,
                message_id=message_id,
            )
        )
        return ExpressJSONResponse({k: v for k, v in record.items() if v is not None}, status_code=201)

    @cached_property
    def app(self) -> FastAPI:
        """The ASGI app serving this fake's state."""
        return build_app(self)


def create_jid(number: str) -> str:
    """Evolution's `createJid`: pass JIDs through, strip `+ ()` and spaces, apply the MX/AR/BR 9-digit fixes."""
    number = re.sub(r":\d+", "", number, count=1)
    if any(suffix in number for suffix in ("@g.us", "@s.whatsapp.net", "@lid", "@broadcast")):
        return number
    number = re.sub(r"[\s+()]", "", number).split(":")[0].split("@")[0]
    if "-" in number and len(number) >= 23:
        return re.sub(r"[^\d-]", "", number) + "@g.us"
    number = re.sub(r"\D", "", number)
    if len(number) >= 18:
        return f"{number}@g.us"
    if number[:2] in ("52", "54") and len(number) == 13:
        number = number[:2] + number[3:]
    if (match := re.fullmatch(r"(\d{2})(\d{2})\d(\d{8})", number)) and match[1] == "55":
        if int(match[3][0]) >= 7 and int(match[2]) >= 31:
            number = match[1] + match[2] + match[3]
    return f"{number}@s.whatsapp.net"


def text_schema_errors(body: Mapping[str, Any]) -> list[str]:
    """The `jsonschema` messages Evolution's `textMessageSchema` yields, in its order (properties, then required).

    A property whose schema has a `description` reports that description instead of the stack line.
    """
    errors: list[str] = []
    if "number" in body and not isinstance(body["number"], str):
        errors.append("Invalid format")
    if "text" in body and not isinstance(body["text"], str):
        errors.append("text is not of a type(s) string")
    if "linkPreview" in body and not isinstance(body["linkPreview"], bool):
        errors.append("linkPreview is not of a type(s) boolean")
    delay = body.get("delay")
    if "delay" in body and (isinstance(delay, bool) or not isinstance(delay, int)):
        errors.append("Enter a value in milliseconds")
    quoted = body.get("quoted")
    if isinstance(quoted, dict) and "key" in quoted:
        key = quoted["key"]
        if not isinstance(key, dict):
            errors.append("quoted.key is not of a type(s) object")
        elif "id" not in key:
            errors.append('quoted.key requires property "id"')
        elif not isinstance(key["id"], str):
            errors.append("quoted.key.id is not of a type(s) string")
        elif not key["id"]:
            errors.append('The "id" cannot be empty')
    errors.extend(f'instance requires property "{name}"' for name in ("number", "text") if name not in body)
    return errors


def new_message_id() -> str:
    """A Baileys outgoing message id: `3EB0` plus 18 upper-case hex digits."""
    return "3EB0" + secrets.token_hex(9).upper()


def sent_text_record(
    instance: str, remote_jid: str, text: str, quoted: Mapping[str, Any] | None, link_preview: bool, message_id: str
) -> dict[str, Any]:
    """The stored message sendText answers with: a plain `conversation`, or an `extendedTextMessage`
    when it quotes a message or previews a link."""
    context_info: dict[str, Any] = {}
    if quoted is not None:
        quoted_key = quoted["key"]
        context_info = {"stanzaId": quoted_key["id"], "participant": quoted_key.get("remoteJid", remote_jid)}
        if quoted.get("message"):
            context_info["quotedMessage"] = quoted["message"]
    url = URL_PATTERN.search(text) if link_preview else None
    if context_info or url:
        extended: dict[str, Any] = {"text": text}
        if url:
            extended["matchedText"] = url.group(0)
        if context_info:
            extended["contextInfo"] = context_info
        message: dict[str, Any] = {"extendedTextMessage": extended}
        message_type = "extendedTextMessage"
    else:
        message = {"conversation": text}
        message_type = "conversation"
    return {
        "key": {"remoteJid": remote_jid, "fromMe": True, "id": message_id},
        "pushName": "Você",
        "status": "PENDING",
        "message": message,
        "contextInfo": context_info or None,
        "messageType": message_type,
        "messageTimestamp": int(time.time()),
        "instanceId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"evolution-instance:{instance}")),
        "source": "web",
    }


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

    @app.post("/chat/getBase64FromMediaMessage/{instance}")
    async def get_base64_from_media_message(instance: str, request: Request) -> Response:
        if refused := fake.guard_instance(instance, request):
            return refused
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            return error_response(400, [f"SyntaxError: {exc}"])
        return await fake.media_base64(instance, body if isinstance(body, dict) else {})

    @app.post("/message/sendText/{instance}")
    async def send_text(instance: str, request: Request) -> Response:
        if refused := fake.guard_instance(instance, request):
            return refused
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            # Express's body-parser rejects malformed JSON before any route code runs.
            return error_response(400, [f"SyntaxError: {exc}"])
        if not isinstance(body, dict):
            body = {}
        if errors := text_schema_errors(body):
            # `dataValidate` throws `new BadRequestException(messages)`, whose rest parameter nests the array.
            return error_response(400, [errors])
        return await fake.deliver_text(instance, body)

    return app

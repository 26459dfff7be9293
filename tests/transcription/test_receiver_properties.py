"""Property-based: real webhook payloads of both serialisations, mutated at random, never get a 5xx or a traceback.

Each example takes a real `messages.upsert` (≤ 2.3.2 base64 and digit strings, 2.3.3–2.3.5 `{"0": …}`
bytes and plain numbers, or 2.3.6 `{"0": …}` bytes and `{"low", "high"}` Longs), replaces or deletes one to three of its values with something hostile
(huge or non-finite numbers, malformed Longs, NULs and lone surrogates, long strings, JSON nested a
thousand deep), and posts it. The answer must be 200, 202 or 400, and nothing is logged as an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clients.evolution_webhook import IncomingVoiceNote, WebhookPayloadError, parse_webhook
from deployments.tokens import request_holds_token
from deployments.webhook import WebhookConfig, create_app
from tests.fakes.evolution_webhook import voice_note_envelope
from tests.fakes.server import serve_app

from .conftest import TOKEN

AUDIO = b"OggS\x00\x02" + bytes(range(256))
PAYLOADS = {
    "2.3.2": voice_note_envelope(AUDIO, variant="2.3.2", message_id="3A7F2C9D41B8E05A6C12"),
    "2.3.5": voice_note_envelope(
        AUDIO,
        variant="2.3.5",
        message_id="3A7F2C9D41B8E05A6C13",
        chat_jid="120363041234567890@g.us",
        participant="5531977776666@s.whatsapp.net",
    ),
    "2.3.6": voice_note_envelope(
        AUDIO,
        variant="2.3.6",
        message_id="3A7F2C9D41B8E05A6C14",
        participant="204711332195863@lid",
        participant_alt="5531977776666@s.whatsapp.net",
        wrapper="ephemeralMessage",
    ),
}
DELETE = object()
BOUNDED = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path to a value inside a JSON document, the root's children first."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, child in children:
        yield (*prefix, name)
        yield from paths(child, (*prefix, name))


def nested(depth: int, opener: str) -> str:
    """JSON text nested `depth` deep (json.dumps itself would hit the recursion limit)."""
    return "[" * depth + "]" * depth if opener == "[" else '{"a":' * depth + "0" + "}" * depth


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(
        ["", "..", "/", "a/../b", "5511987654321@s.whatsapp.net", "data:", "data:audio/ogg;base64,T2dnUw==", "\x00", "\ud800x", "é" * 200]
    )
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8
)
longs = st.fixed_dictionaries({"low": json_values, "high": json_values}, optional={"unsigned": json_values})
byte_objects = st.lists(st.integers(-300, 300) | st.none() | st.text(max_size=2), min_size=1, max_size=6).map(
    lambda items: {str(index): item for index, item in enumerate(items)}
)
raw_texts = st.sampled_from(["1" + "0" * 400, "-1" + "0" * 400, "1e400", "-1e400", "NaN", "Infinity", "1e15", "-1e15"]) | st.builds(
    nested, st.sampled_from([65, 950, 1100, 3000]) | st.integers(1, 1200), st.sampled_from(["[", "{"])
)
replacements = st.one_of(
    json_values.map(lambda value: json.dumps(value)),
    longs.map(lambda value: json.dumps(value)),
    byte_objects.map(lambda value: json.dumps(value)),
    st.text(min_size=100, max_size=300).map(lambda text: json.dumps(text)),
    raw_texts,
    st.just(DELETE),
)


@st.composite
def mutated_bodies(draw) -> bytes:
    """A real payload of either variant with one to three values replaced by raw JSON text or deleted."""
    document = json.loads(json.dumps(PAYLOADS[draw(st.sampled_from(sorted(PAYLOADS)))]))
    every_path = list(paths(document))
    markers = {}
    for number in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(every_path))
        parent = document
        try:
            for name in path[:-1]:
                parent = parent[name]
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced or removed this path
        replacement = draw(replacements)
        if replacement is DELETE and isinstance(parent, dict):
            del parent[path[-1]]
            continue
        marker = f"__mutation_{number}__"
        parent[path[-1]] = marker
        markers[marker] = "null" if replacement is DELETE else replacement
    text = json.dumps(document)
    for marker, raw in markers.items():
        text = text.replace(f'"{marker}"', raw)
    return text.encode()


@given(body=mutated_bodies())
@BOUNDED
def test_parsing_a_mutated_payload_ends_in_a_note_an_ignore_or_a_payload_error(body):
    try:
        outcome = parse_webhook(body)
    except WebhookPayloadError as error:
        assert str(error)
        return
    if isinstance(outcome, IncomingVoiceNote):
        json.dumps(outcome.quoted)  # what the receiver stores must serialise
        assert outcome.seconds is None or 0 <= outcome.seconds <= 24 * 3600


def segment(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).rstrip(b"=").decode()


@given(
    head=replacements.filter(lambda raw: raw is not DELETE),
    claims=replacements.filter(lambda raw: raw is not DELETE),
    signed=st.booleans(),
    junk=st.text(max_size=30),
)
@BOUNDED
def test_any_bearer_token_is_a_yes_or_no_never_an_exception(head, claims, signed, junk):
    # Signed with the token, hostile JSON gets as far as json.loads; unsigned, it must not get there at all.
    signing_input = f"{segment(head)}.{segment(claims)}"
    signature = hmac.new(TOKEN.encode(), signing_input.encode(), hashlib.sha256).digest() if signed else junk.encode()
    jwt = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    for presented in (jwt, junk, f"{junk}.{junk}.{junk}"):
        assert request_holds_token(TOKEN, {"authorization": f"Bearer {presented}"}, {}) in (True, False)
    assert not request_holds_token(TOKEN, {"authorization": f"Bearer {jwt}"}, {}) or json.loads(claims)["exp"]


@pytest.fixture
def receiver(store_url, tmp_path) -> Iterator[str]:
    config = WebhookConfig(token=TOKEN, spool_dir=tmp_path / "spool", max_body_bytes=256 * 1024)
    with serve_app(create_app(store_url, config)) as url:
        yield url


@pytest.fixture
def logs(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record of the test, uvicorn's own (non-propagating) loggers included."""
    uvicorn_logger = logging.getLogger("uvicorn.error")
    uvicorn_logger.addHandler(caplog.handler)
    yield caplog
    uvicorn_logger.removeHandler(caplog.handler)


def test_the_receiver_answers_mutated_payloads_of_every_generation_without_a_5xx_or_a_traceback(receiver, logs):
    statuses: dict[int, int] = {}

    @given(body=mutated_bodies())
    @BOUNDED
    def post_one(body: bytes) -> None:
        response = httpx.post(
            f"{receiver}/webhooks/evolution", content=body, headers={"content-type": "application/json", "X-Vigia-Token": TOKEN}, timeout=10
        )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code in (200, 202, 400), (response.status_code, response.text[:300])
        assert response.json()["status"] in ("accepted", "duplicate", "ignored", "rejected")

    post_one()
    problems = [record for record in logs.records if record.levelno >= logging.ERROR or record.exc_info]
    assert problems == [], [record.getMessage()[:300] for record in problems]
    assert {202, 400} <= set(statuses), statuses  # the mutations reach both the store and the refusals

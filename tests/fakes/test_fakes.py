"""The loopback fakes answer real clients (httpx, the groq SDK) the way Evolution and Groq do."""

from __future__ import annotations

import time
from collections.abc import Iterator

import groq
import httpx
import pytest

from .evolution import FakeEvolution
from .evolution_webhook import media_key_of, voice_note_envelope
from .groq import FakeGroq
from .server import serve_app

EVOLUTION_KEY = "global-key-for-tests"


@pytest.fixture
def fake_evolution() -> FakeEvolution:
    return FakeEvolution(
        api_key=EVOLUTION_KEY,
        instances={"ops-bot": "open", "sales-bot": "close", "pairing-bot": "connecting", "cold-bot": None},
        instance_tokens={"sales-bot": "SALES-TOKEN"},
    )


@pytest.fixture
def evolution(fake_evolution: FakeEvolution) -> Iterator[httpx.Client]:
    with serve_app(fake_evolution.app) as base_url, httpx.Client(base_url=base_url, timeout=5) as client:
        yield client


@pytest.fixture
def fake_groq() -> FakeGroq:
    return FakeGroq(api_key="gsk_right_key")


@pytest.fixture
def groq_url(fake_groq: FakeGroq) -> Iterator[str]:
    with serve_app(fake_groq.app) as base_url:
        yield base_url


def groq_client(base_url: str, api_key: str = "gsk_right_key", max_retries: int = 0) -> groq.Groq:
    """The real SDK pointed at the fake; base_url is the host root, the SDK adds `/openai/v1`."""
    return groq.Groq(api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=5)


def test_serve_app_gives_each_server_its_own_port_and_closes_it_on_exit() -> None:
    with serve_app(FakeEvolution().app) as first_url, serve_app(FakeEvolution().app) as second_url:
        assert first_url != second_url
        assert httpx.get(f"{first_url}/").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{first_url}/", timeout=2)


def test_unknown_instance_is_404_even_without_apikey(evolution: httpx.Client) -> None:
    response = evolution.get("/instance/connectionState/ghost")

    assert response.status_code == 404
    assert response.json() == {
        "status": 404,
        "error": "Not Found",
        "response": {"message": ['The "ghost" instance does not exist']},
    }


@pytest.mark.parametrize("headers", [{}, {"apikey": "wrong-key"}, {"apikey": "SALES-TOKEN"}])
def test_known_instance_without_a_valid_key_is_401(evolution: httpx.Client, headers: dict[str, str]) -> None:
    # SALES-TOKEN belongs to sales-bot, so it must not open ops-bot.
    response = evolution.get("/instance/connectionState/ops-bot", headers=headers)

    assert response.status_code == 401
    assert response.json() == {
        "status": 401,
        "error": "Unauthorized",
        "response": {"message": "Unauthorized"},
    }


@pytest.mark.parametrize(("instance", "state"), [("ops-bot", "open"), ("sales-bot", "close"), ("pairing-bot", "connecting")])
def test_connection_state_reports_each_instance_state(evolution: httpx.Client, instance: str, state: str) -> None:
    response = evolution.get(f"/instance/connectionState/{instance}", headers={"apikey": EVOLUTION_KEY})

    assert response.status_code == 200
    assert response.json() == {"instance": {"instanceName": instance, "state": state}}


def test_instance_not_loaded_has_no_state_key(evolution: httpx.Client) -> None:
    response = evolution.get("/instance/connectionState/cold-bot", headers={"apikey": EVOLUTION_KEY})

    assert response.json() == {"instance": {"instanceName": "cold-bot"}}


def test_instance_token_opens_its_own_instance(evolution: httpx.Client) -> None:
    response = evolution.get("/instance/connectionState/sales-bot", headers={"apikey": "SALES-TOKEN"})

    assert response.json() == {"instance": {"instanceName": "sales-bot", "state": "close"}}


def test_state_changes_show_up_on_the_next_request(evolution: httpx.Client, fake_evolution: FakeEvolution) -> None:
    fake_evolution.instances["ops-bot"] = "close"

    response = evolution.get("/instance/connectionState/ops-bot", headers={"apikey": EVOLUTION_KEY})

    assert response.json()["instance"]["state"] == "close"
    assert fake_evolution.requests[-1].headers["apikey"] == EVOLUTION_KEY


def test_manager_path_is_html_200_without_key_even_when_the_api_is_down(evolution: httpx.Client, fake_evolution: FakeEvolution) -> None:
    fake_evolution.fail_with = 503

    manager = evolution.get("/manager/findInstances")
    api = evolution.get("/instance/connectionState/ops-bot", headers={"apikey": EVOLUTION_KEY})

    assert manager.status_code == 200
    assert manager.headers["content-type"].startswith("text/html")
    assert '<div id="root"></div>' in manager.text
    assert api.status_code == 503
    assert api.json()["code"] == "LICENSE_REQUIRED"


def test_forced_500_uses_the_evolution_error_envelope(evolution: httpx.Client, fake_evolution: FakeEvolution) -> None:
    fake_evolution.fail_with = 500

    response = evolution.get("/instance/connectionState/ops-bot", headers={"apikey": EVOLUTION_KEY})

    assert response.status_code == 500
    assert response.json() == {
        "status": 500,
        "error": "Internal Server Error",
        "response": {"message": "Internal Server Error"},
    }


def test_welcome_route_and_unknown_route_match_evolution(evolution: httpx.Client) -> None:
    welcome = evolution.get("/")
    unknown = evolution.get("/instance/nothingHere")

    assert welcome.json()["message"] == "Welcome to the Evolution API, it is working!"
    assert welcome.json()["version"] == "2.3.6"
    assert unknown.status_code == 404
    assert unknown.json()["response"] == {"message": ["Cannot GET /instance/nothingHere"]}


def test_injected_delay_makes_a_short_client_timeout_fire(evolution: httpx.Client, fake_evolution: FakeEvolution) -> None:
    fake_evolution.delay_seconds = 0.5

    with pytest.raises(httpx.ReadTimeout):
        evolution.get("/instance/connectionState/ops-bot", headers={"apikey": EVOLUTION_KEY}, timeout=0.1)


def test_groq_sdk_lists_models_from_the_fake_at_the_real_path(groq_url: str, fake_groq: FakeGroq) -> None:
    models = groq_client(groq_url).models.list()

    assert [model.id for model in models.data] == [
        "whisper-large-v3",
        "whisper-large-v3-turbo",
        "llama-3.3-70b-versatile",
    ]
    assert models.data[0].owned_by == "OpenAI"
    request = fake_groq.requests[-1]
    assert (request.method, request.path) == ("GET", "/openai/v1/models")
    assert request.headers["authorization"] == "Bearer gsk_right_key"


def test_groq_sdk_raises_authentication_error_for_a_wrong_key(groq_url: str) -> None:
    with pytest.raises(groq.AuthenticationError) as raised:
        groq_client(groq_url, api_key="gsk_wrong_key").models.list()

    assert raised.value.status_code == 401
    # The SDK keeps the whole parsed body, envelope included.
    assert raised.value.body == {"error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}}


def test_groq_sdk_raises_rate_limit_error_carrying_retry_after(groq_url: str, fake_groq: FakeGroq) -> None:
    fake_groq.fail_next(429, headers={"Retry-After": "7"})
    client = groq_client(groq_url)

    with pytest.raises(groq.RateLimitError) as raised:
        client.models.list()

    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.body["error"]["code"] == "rate_limit_exceeded"
    assert "Please try again in 7s" in raised.value.body["error"]["message"]
    assert [model.id for model in client.models.list().data][0] == "whisper-large-v3"


def test_groq_sdk_retries_forced_503s_and_gives_up(groq_url: str, fake_groq: FakeGroq) -> None:
    # retry-after-ms keeps the SDK's backoff to 10 ms instead of its 0.5 s default.
    fake_groq.fail_next(503, headers={"retry-after-ms": "10"}, times=2)

    with pytest.raises(groq.InternalServerError) as raised:
        groq_client(groq_url, max_retries=1).models.list()

    assert raised.value.status_code == 503
    assert raised.value.body["error"]["type"] == "internal_server_error"
    assert [r.headers["x-stainless-retry-count"] for r in fake_groq.requests] == ["0", "1"]


def test_groq_sdk_retrieves_one_model_or_raises_not_found(groq_url: str) -> None:
    client = groq_client(groq_url)

    model = client.models.retrieve("whisper-large-v3-turbo")
    with pytest.raises(groq.NotFoundError) as raised:
        client.models.retrieve("distil-whisper-large-v3-en")

    assert (model.id, model.created) == ("whisper-large-v3-turbo", 1728413088)
    assert raised.value.body["error"]["code"] == "model_not_found"
    assert raised.value.body["error"]["message"] == (
        "The model `distil-whisper-large-v3-en` does not exist or you do not have access to it."
    )


# --- getBase64FromMediaMessage and webhook payloads as Evolution 2.2.3–2.3.6 really produce them ---


def media_body(envelope: dict) -> dict:
    return {"message": {"key": envelope["data"]["key"], "message": envelope["data"]["message"]}, "convertToMp4": False}


@pytest.mark.parametrize("wrapper", [None, "ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2", "viewOnceMessageV2Extension"])
def test_only_a_top_level_voice_note_carries_inline_audio(wrapper) -> None:
    envelope = voice_note_envelope(b"OggS-audio", wrapper=wrapper)

    assert ("base64" in envelope["data"]["message"]) is (wrapper is None)
    assert envelope["data"]["messageType"] == (wrapper or "audioMessage")


@pytest.mark.parametrize(
    ("wrapper", "status"),
    [
        ("ephemeralMessage", 201),
        ("viewOnceMessage", 201),
        ("viewOnceMessageV2", 201),
        ("documentWithCaptionMessage", 201),
        ("viewOnceMessageV2Extension", 400),
    ],
)
def test_get_base64_unwraps_only_the_wrappers_evolution_knows(evolution, fake_evolution, wrapper, status) -> None:
    envelope = voice_note_envelope(None, wrapper=wrapper)
    fake_evolution.media[envelope["data"]["key"]["id"]] = (b"OggS-audio", "audio/ogg; codecs=opus")

    response = evolution.post("/chat/getBase64FromMediaMessage/ops-bot", json=media_body(envelope), headers={"apikey": EVOLUTION_KEY})

    assert response.status_code == status
    if status == 400:
        assert response.json()["response"] == {"message": ["The message is not of the media type"]}
    else:
        assert (response.json()["mediaType"], response.json()["base64"]) == ("audioMessage", "T2dnUy1hdWRpbw==")


def test_a_failed_download_is_retried_after_the_wait_before_evolution_answers_400(evolution, fake_evolution) -> None:
    fake_evolution.media_store.retry_wait_seconds = 0.4
    envelope = voice_note_envelope(None)  # no media registered: both downloads fail
    started = time.monotonic()

    response = evolution.post("/chat/getBase64FromMediaMessage/ops-bot", json=media_body(envelope), headers={"apikey": EVOLUTION_KEY})

    assert time.monotonic() - started >= 0.4
    assert (response.status_code, response.json()["response"]) == (
        400,
        {"message": ["Error: error:1C800064:Provider routines::bad decrypt"]},
    )


def test_the_fallback_download_succeeds_after_the_wait_and_2_3_0_has_no_fallback(evolution, fake_evolution) -> None:
    fake_evolution.media_store.retry_wait_seconds = 0.3
    envelope = voice_note_envelope(None)
    message_id = envelope["data"]["key"]["id"]
    fake_evolution.media[message_id] = (b"OggS-audio", "audio/ogg; codecs=opus")
    fake_evolution.media_store.fallback_only.add(message_id)
    started = time.monotonic()

    recovered = evolution.post("/chat/getBase64FromMediaMessage/ops-bot", json=media_body(envelope), headers={"apikey": EVOLUTION_KEY})
    took = time.monotonic() - started
    fake_evolution.version = "2.3.0"
    old = evolution.post("/chat/getBase64FromMediaMessage/ops-bot", json=media_body(envelope), headers={"apikey": EVOLUTION_KEY})

    assert (recovered.status_code, took >= 0.3) == (201, True)
    assert old.status_code == 400


def test_view_once_media_without_its_keys_cannot_be_downloaded(evolution, fake_evolution) -> None:
    fake_evolution.media_store.retry_wait_seconds = 0.0
    envelope = voice_note_envelope(None, wrapper="viewOnceMessageV2", media_keys=False)
    fake_evolution.media[envelope["data"]["key"]["id"]] = (b"OggS-audio", "audio/ogg; codecs=opus")

    response = evolution.post("/chat/getBase64FromMediaMessage/ops-bot", json=media_body(envelope), headers={"apikey": EVOLUTION_KEY})

    assert response.json()["response"] == {"message": ["Error: Cannot derive from empty media key"]}


@pytest.mark.parametrize(
    ("version", "media_key", "file_length"),
    [
        ("2.2.3", str, "10"),
        ("2.3.2", str, "10"),
        ("2.3.3", dict, 10),
        ("2.3.5", dict, 10),
        ("2.3.6", dict, {"low": 10, "high": 0, "unsigned": True}),
    ],
)
def test_each_generation_serialises_bytes_and_longs_as_that_evolution_does(version, media_key, file_length) -> None:
    envelope = voice_note_envelope(b"OggS-audio", variant=version)
    audio_message = envelope["data"]["message"]["audioMessage"]

    assert (type(audio_message["mediaKey"]), audio_message["fileLength"]) == (media_key, file_length)
    assert len(media_key_of(envelope)) == 32


def test_groq_answers_400_without_a_code_for_audio_it_cannot_decode(groq_url: str, fake_groq: FakeGroq) -> None:
    with pytest.raises(groq.BadRequestError) as raised:
        groq_client(groq_url).audio.transcriptions.create(model="whisper-large-v3-turbo", file=("voice.ogg", b"\x00not audio at all"))

    assert raised.value.body == {
        "error": {"message": "could not process file - is it a valid media file?", "type": "invalid_request_error"}
    }


def test_groq_error_bodies_can_leave_out_the_code_like_older_replies(groq_url: str, fake_groq: FakeGroq) -> None:
    fake_groq.error_codes = False
    fake_groq.fail_next(429, headers={"retry-after": "3"})

    with pytest.raises(groq.RateLimitError) as limited:
        groq_client(groq_url).models.list()
    with pytest.raises(groq.BadRequestError) as refused:
        groq_client(groq_url).audio.transcriptions.create(model="whisper-large-v3-turbo", file=("voice.oga", b"OggS-audio"))

    assert "code" not in limited.value.body["error"] and limited.value.body["error"]["type"] == "requests"
    assert refused.value.body["error"] == {
        "message": "file must be one of the following types: [flac mp3 mp4 mpeg mpga m4a ogg opus wav webm]",
        "type": "invalid_request_error",
    }

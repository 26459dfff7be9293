"""The loopback fakes answer real clients (httpx, the groq SDK) the way Evolution and Groq do."""

from __future__ import annotations

from collections.abc import Iterator

import groq
import httpx
import pytest

from .evolution import FakeEvolution
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


@pytest.mark.parametrize(
    ("instance", "state"), [("ops-bot", "open"), ("sales-bot", "close"), ("pairing-bot", "connecting")]
)
def test_connection_state_reports_each_instance_state(
    evolution: httpx.Client, instance: str, state: str
) -> None:
    response = evolution.get(f"/instance/connectionState/{instance}", headers={"apikey": EVOLUTION_KEY})

    assert response.status_code == 200
    assert response.json() == {"instance": {"instanceName": instance, "state": state}}


def test_instance_not_loaded_has_no_state_key(evolution: httpx.Client) -> None:
    response = evolution.get("/instance/connectionState/cold-bot", headers={"apikey": EVOLUTION_KEY})

    assert response.json() == {"instance": {"instanceName": "cold-bot"}}


def test_instance_token_opens_its_own_instance(evolution: httpx.Client) -> None:
    response = evolution.get("/instance/connectionState/sales-bot", headers={"apikey": "SALES-TOKEN"})

    assert response.json() == {"instance": {"instanceName": "sales-bot", "state": "close"}}


def test_state_changes_show_up_on_the_next_request(
    evolution: httpx.Client, fake_evolution: FakeEvolution
) -> None:
    fake_evolution.instances["ops-bot"] = "close"

    response = evolution.get("/instance/connectionState/ops-bot", headers={"apikey": EVOLUTION_KEY})

    assert response.json()["instance"]["state"] == "close"
    assert fake_evolution.requests[-1].headers["apikey"] == EVOLUTION_KEY


def test_manager_path_is_html_200_without_key_even_when_the_api_is_down(
    evolution: httpx.Client, fake_evolution: FakeEvolution
) -> None:
    fake_evolution.fail_with = 503

    manager = evolution.get("/manager/findInstances")
    api = evolution.get("/instance/connectionState/ops-bot", headers={"apikey": EVOLUTION_KEY})

    assert manager.status_code == 200
    assert manager.headers["content-type"].startswith("text/html")
    assert "<div id=\"root\"></div>" in manager.text
    assert api.status_code == 503
    assert api.json()["code"] == "LICENSE_REQUIRED"


def test_forced_500_uses_the_evolution_error_envelope(
    evolution: httpx.Client, fake_evolution: FakeEvolution
) -> None:
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


def test_injected_delay_makes_a_short_client_timeout_fire(
    evolution: httpx.Client, fake_evolution: FakeEvolution
) -> None:
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
    assert raised.value.body == {
        "error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}
    }


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

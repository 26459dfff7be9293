"""`probe_target` for the outside APIs Vigia depends on: the Evolution WhatsApp gateway and Groq, both faked on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.health_targets import HealthTarget
from tasks.probes import ProbeContext
from tests.fakes.evolution import FakeEvolution
from tests.fakes.groq import FakeGroq
from tests.fakes.server import serve_app
from tests.tasks.servers import probe

EVOLUTION_KEY = "evolution-key-for-probe-tests"
GROQ_KEY = "gsk_probe_tests_right_key"


# --- evolution -----------------------------------------------------------------------------------


@pytest.fixture
def fake_evolution() -> FakeEvolution:
    return FakeEvolution(
        api_key=EVOLUTION_KEY,
        instances={"ops-bot": "open", "sales-bot": "close", "pairing-bot": "connecting", "cold-bot": None},
    )


@pytest.fixture
def evolution_url(fake_evolution: FakeEvolution) -> Iterator[str]:
    with serve_app(fake_evolution.app) as base_url:
        yield base_url


def evolution_context(url: str, instance: str = "ops-bot", api_key: str = EVOLUTION_KEY) -> ProbeContext:
    return ProbeContext(evolution=EvolutionApi(url=url, api_key=api_key, instance=instance))


EVOLUTION_TARGET = HealthTarget(name="whatsapp", kind="evolution")


def test_evolution_probe_of_an_open_instance_is_ok(evolution_url: str, fake_evolution: FakeEvolution) -> None:
    result = probe(EVOLUTION_TARGET, evolution_context(evolution_url))

    assert (result.ok, result.level, result.reason) == (True, "ok", "instance ops-bot open")
    request = fake_evolution.requests[-1]
    assert (request.method, request.path, request.headers["apikey"]) == (
        "GET",
        "/instance/connectionState/ops-bot",
        EVOLUTION_KEY,
    )


@pytest.mark.parametrize(
    ("instance", "shown_state"),
    [("sales-bot", "close"), ("pairing-bot", "connecting"), ("cold-bot", "not loaded")],
)
def test_evolution_probe_of_an_instance_that_is_not_open_fails_naming_its_state(
    evolution_url: str, instance: str, shown_state: str
) -> None:
    result = probe(EVOLUTION_TARGET, evolution_context(evolution_url, instance))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == f"WhatsApp instance {instance!r} is {shown_state}, not open"


def test_evolution_probe_of_an_unknown_instance_fails_with_404(evolution_url: str) -> None:
    result = probe(EVOLUTION_TARGET, evolution_context(evolution_url, "ghost-bot"))

    assert (result.ok, result.reason) == (False, "Evolution API has no instance 'ghost-bot' (404)")


def test_evolution_probe_with_a_wrong_key_fails_with_401_without_the_key(evolution_url: str) -> None:
    result = probe(EVOLUTION_TARGET, evolution_context(evolution_url, api_key="Wr0ng-Evolution-Key"))

    assert (result.ok, result.reason) == (False, "Evolution API rejected the API key (401)")


def test_evolution_probe_fails_while_the_api_is_down_even_though_the_manager_page_answers_200(
    evolution_url: str, fake_evolution: FakeEvolution
) -> None:
    fake_evolution.fail_with = 503  # Evolution 2.4's licence gate: every API route 503, /manager still 200

    result = probe(EVOLUTION_TARGET, evolution_context(evolution_url))

    assert httpx.get(f"{evolution_url}/manager/findInstances").status_code == 200
    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.startswith("Evolution API answered 503: ")
    assert "service not activated" in result.reason
    assert [r.path for r in fake_evolution.requests if r.path != "/manager/findInstances"] == ["/instance/connectionState/ops-bot"]


def test_evolution_probe_slower_than_the_timeout_fails_saying_timed_out(evolution_url: str, fake_evolution: FakeEvolution) -> None:
    fake_evolution.delay_seconds = 0.8

    result = probe(HealthTarget(name="whatsapp", kind="evolution", timeout_seconds=0.3), evolution_context(evolution_url))

    assert (result.ok, result.reason) == (False, "Evolution API timed out after 0.3 s")


def test_evolution_probe_of_a_closed_port_fails_saying_it_cannot_reach_the_api(closed_port: int) -> None:
    result = probe(EVOLUTION_TARGET, evolution_context(f"http://127.0.0.1:{closed_port}"))

    assert (result.ok, result.reason) == (False, "cannot reach Evolution API: All connection attempts failed")


def test_evolution_probe_without_an_evolution_block_fails_as_not_configured() -> None:
    result = probe(EVOLUTION_TARGET, ProbeContext())

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "not configured: set EVOLUTION_API_URL, EVOLUTION_API_KEY and EVOLUTION_INSTANCE"


# --- groq ----------------------------------------------------------------------------------------


@pytest.fixture
def fake_groq() -> FakeGroq:
    return FakeGroq(api_key=GROQ_KEY)


@pytest.fixture
def groq_url(fake_groq: FakeGroq) -> Iterator[str]:
    with serve_app(fake_groq.app) as base_url:
        yield base_url


def groq_context(base_url: str, api_key: str = GROQ_KEY) -> ProbeContext:
    return ProbeContext(groq=GroqApi(api_key=api_key, base_url=base_url))


GROQ_TARGET = HealthTarget(name="groq", kind="groq")


def test_groq_probe_is_ok_when_the_transcription_model_is_listed(groq_url: str, fake_groq: FakeGroq) -> None:
    result = probe(GROQ_TARGET, groq_context(groq_url))

    assert (result.ok, result.level, result.reason) == (True, "ok", "3 models, whisper-large-v3-turbo available")
    request = fake_groq.requests[-1]
    assert (request.method, request.path, request.headers["authorization"]) == (
        "GET",
        "/openai/v1/models",
        f"Bearer {GROQ_KEY}",
    )


def test_groq_probe_fails_when_the_transcription_model_is_not_listed(groq_url: str, fake_groq: FakeGroq) -> None:
    fake_groq.models = ["whisper-large-v3", "llama-3.3-70b-versatile"]

    result = probe(GROQ_TARGET, groq_context(groq_url))

    assert (result.ok, result.reason) == (False, "model 'whisper-large-v3-turbo' is not available to this key")


def test_groq_probe_with_a_wrong_key_fails_with_401_without_the_key(groq_url: str) -> None:
    result = probe(GROQ_TARGET, groq_context(groq_url, api_key="gsk_Wr0ng_Groq_Key"))

    assert (result.ok, result.level, result.reason) == (False, "critical", "Groq rejected the API key (401)")


def test_groq_probe_rate_limited_fails_giving_the_retry_after_seconds(groq_url: str, fake_groq: FakeGroq) -> None:
    fake_groq.fail_next(429, headers={"Retry-After": "17"})

    result = probe(GROQ_TARGET, groq_context(groq_url))

    assert (result.ok, result.reason) == (False, "Groq rate limit (429), retry after 17 s")
    assert len(fake_groq.requests) == 1  # the probe does not retry on its own


def test_groq_probe_of_a_server_error_fails_with_the_status_and_message(groq_url: str, fake_groq: FakeGroq) -> None:
    fake_groq.fail_next(500)

    result = probe(GROQ_TARGET, groq_context(groq_url))

    assert (result.ok, result.reason) == (False, "Groq answered 500: Internal Server Error")
    assert len(fake_groq.requests) == 1


def test_groq_probe_slower_than_the_timeout_fails_saying_timed_out(groq_url: str, fake_groq: FakeGroq) -> None:
    fake_groq.delay_seconds = 0.8

    result = probe(HealthTarget(name="groq", kind="groq", timeout_seconds=0.3), groq_context(groq_url))

    assert (result.ok, result.reason) == (False, "Groq timed out")


def test_groq_probe_of_a_closed_port_fails_saying_it_cannot_reach_groq(closed_port: int) -> None:
    result = probe(GROQ_TARGET, groq_context(f"http://127.0.0.1:{closed_port}"))

    assert (result.ok, result.reason) == (False, "cannot reach Groq: All connection attempts failed")


def test_groq_probe_without_a_groq_block_fails_as_not_configured() -> None:
    result = probe(GROQ_TARGET, ProbeContext())

    assert (result.ok, result.level, result.reason) == (False, "critical", "not configured: set GROQ_API_KEY")

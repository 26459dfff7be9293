"""Masking passwords and secret values out of URLs and free text."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from clients.redaction import channel_secrets, mask_channel_url, mask_secrets, mask_url


def test_mask_url_replaces_the_password_and_keeps_user_host_port_path_and_query() -> None:
    masked = mask_url("postgresql://vigia:Pg-Passw0rd@db.internal:5432/vigia?sslmode=require")

    assert masked == "postgresql://vigia:***@db.internal:5432/vigia?sslmode=require"


def test_mask_url_masks_a_password_given_without_a_user() -> None:
    assert mask_url("redis://:Rd-Passw0rd@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"


def test_mask_url_masks_a_percent_encoded_password_whole() -> None:
    assert mask_url("postgresql+psycopg://vigia:p%40ss%2Fw0rd@db/vigia") == "postgresql+psycopg://vigia:***@db/vigia"


def test_mask_url_masks_a_password_holding_a_raw_at_sign_whole() -> None:
    assert mask_url("redis://:p@ss@cache:6379/0") == "redis://:***@cache:6379/0"


def test_mask_url_keeps_the_fragment() -> None:
    assert mask_url("https://ops:T0ken-xyz@status.example.com/health#db") == "https://ops:***@status.example.com/health#db"


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/9",
        "https://ops@status.example.com/health",
        "postgresql:///vigia?host=/run/postgresql",
        "not a url at all",
        "",
    ],
    ids=["no-userinfo", "user-only", "socket-dsn", "plain-text", "empty"],
)
def test_mask_url_leaves_a_url_without_a_password_unchanged(url: str) -> None:
    assert mask_url(url) == url


def test_mask_url_keeps_the_brackets_of_an_ipv6_host_so_the_url_still_parses() -> None:
    masked = mask_url("postgresql://vigia:Pg-Passw0rd@[::1]:5432/vigia")

    assert masked == "postgresql://vigia:***@[::1]:5432/vigia"
    assert (urlsplit(masked).hostname, urlsplit(masked).port) == ("::1", 5432)


def test_mask_secrets_masks_every_url_password_in_free_text_and_keeps_the_rest() -> None:
    text = (
        "dump of postgresql+psycopg://vigia:Pg-Passw0rd@db:5432/vigia failed; "
        "cache REDIS://:Rd-Passw0rd@cache:6379/0 is up; see https://ops@status.example.com/"
    )

    assert mask_secrets(text) == (
        "dump of postgresql+psycopg://vigia:***@db:5432/vigia failed; "
        "cache REDIS://:***@cache:6379/0 is up; see https://ops@status.example.com/"
    )


def test_mask_secrets_leaves_ports_and_times_that_look_like_user_password_alone() -> None:
    text = "GET https://status.example.com:8443/health at 12:30 returned 503"

    assert mask_secrets(text) == text


def test_mask_secrets_masks_every_occurrence_of_each_given_secret() -> None:
    text = "Authorization: Bearer gsk_live_123456 rejected; key gsk_live_123456 revoked by apikey EVO-KEY-99"

    masked = mask_secrets(text, ["gsk_live_123456", "EVO-KEY-99"])

    assert masked == "Authorization: Bearer *** rejected; key *** revoked by apikey ***"


def test_mask_secrets_ignores_empty_and_shorter_than_four_character_secrets() -> None:
    # Masking "", "a" or "abc" would shred ordinary words, so such values are not treated as secrets.
    text = "a cab at abc street"

    assert mask_secrets(text, ["", "a", "abc"]) == text


def test_mask_secrets_masks_a_whole_dsn_given_as_a_secret() -> None:
    dsn = "host=db user=vigia password=Pg-Passw0rd"

    assert mask_secrets(f"cannot connect with {dsn!r}", [dsn]) == "cannot connect with '***'"


def test_mask_secrets_masks_a_url_password_holding_a_raw_at_sign_whole() -> None:
    # redis-py (urllib) reads `p@ss` as the password of this URL, so none of it may show.
    masked = mask_secrets("cannot connect to redis://:p@ss@cache:6379/0")

    assert masked == "cannot connect to redis://:***@cache:6379/0"
    assert "ss@" not in masked


# --- Apprise channel URLs (DESIGN §7: no secret in what is printed, stored or logged) ----------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "json://127.0.0.1:8080/hook?+X-Token=SuperSecretHeader&method=POST",
            "json://127.0.0.1:8080/hook?+X-Token=***&method=POST",
        ),
        (
            "jsons://hooks.example.com/hook?method=POST&retry=0&%2BX-Token=SuperSecretHeader",
            "jsons://hooks.example.com/hook?method=POST&retry=0&%2BX-Token=***",
        ),
        ("form://127.0.0.1/hook?+X-Api=FormSecret&-apikey=QuerySecret", "form://127.0.0.1/hook?+X-Api=***&-apikey=***"),
        (
            "xml://127.0.0.1/hook?%2BAuthorization=Bearer%20abc123&-token=zz9",
            "xml://127.0.0.1/hook?%2BAuthorization=***&-token=***",
        ),
        ("json://127.0.0.1/hook?:token=PayloadSecret&%3Akey=Other", "json://127.0.0.1/hook?:token=***&%3Akey=***"),
        (
            "ntfys://ntfy.example.com/topic?token=tk_SecretNtfy123&priority=default",
            "ntfys://ntfy.example.com/topic?token=***&priority=default",
        ),
        ("json://bot:chat-token-b81d2e@127.0.0.1/ok/telegram?format=text", "json://bot:***@127.0.0.1/ok/telegram?format=text"),
        (
            "evolutions://EVOLUTION_API_KEY@evolution.example.com/ops-bot/+5511999990000",
            "evolutions://***@evolution.example.com/ops-bot/+5511999990000",
        ),
    ],
    ids=[
        "json-header",
        "json-encoded-header",
        "form-header-and-param",
        "xml-header-and-param",
        "payload-fields",
        "query-token",
        "password",
        "token-as-user",
    ],
)
def test_mask_channel_url_hides_every_header_param_and_unknown_query_value(url: str, masked: str) -> None:
    assert mask_channel_url(url) == masked


def test_mask_channel_url_keeps_apprise_flags_timeouts_and_modes_readable() -> None:
    url = (
        "mailtos://alerts:****@smtp.example.com/oncall%40example.com?overflow=upstream&retry=0&wait=0.5"
        "&optional=no&cto=15&mode=starttls&from=vigia%40example.com"
    )

    assert mask_channel_url(url) == (
        "mailtos://alerts:***@smtp.example.com/oncall%40example.com?overflow=upstream&retry=0&wait=0.5"
        "&optional=no&cto=15&mode=starttls&from=***"
    )


def test_mask_channel_url_leaves_a_url_without_query_or_password_unchanged() -> None:
    assert mask_channel_url("tgram://1...e/-1001234567890/") == "tgram://1...e/-1001234567890/"


def test_channel_secrets_lists_the_values_mask_channel_url_hides() -> None:
    url = "json://bot:chat-token-b81d2e@127.0.0.1/hook?+X-Token=SuperSecretHeader&-token=QuerySecret&method=POST"

    assert sorted(channel_secrets(url)) == ["QuerySecret", "SuperSecretHeader", "chat-token-b81d2e"]

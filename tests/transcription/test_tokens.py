"""The webhook token: a header, an HS256 JWT signed with it (Evolution's jwt_key) with its expiry, or ?token=."""

import time

import pytest

from deployments.tokens import create_token_file, jwt_is_valid, read_token_file, request_holds_token, sign_jwt

TOKEN = "a-long-shared-webhook-secret-123"


def claims(expires_in: float = 600) -> dict:
    now = int(time.time())
    return {"iat": now, "exp": now + expires_in, "app": "evolution", "action": "webhook"}


def test_the_token_is_accepted_as_a_header_a_query_parameter_or_a_signed_jwt():
    assert request_holds_token(TOKEN, {"x-vigia-token": TOKEN}, {})
    assert request_holds_token(TOKEN, {}, {"token": TOKEN})
    assert request_holds_token(TOKEN, {"authorization": f"Bearer {sign_jwt(claims(), TOKEN)}"}, {})


@pytest.mark.parametrize(
    "headers, query",
    [
        ({}, {}),
        ({"x-vigia-token": TOKEN[:-1]}, {}),
        ({}, {"token": TOKEN + "x"}),
        ({"authorization": f"Bearer {TOKEN}"}, {}),
        ({"authorization": f"Bearer {sign_jwt(claims(), 'another-key-entirely')}"}, {}),
        ({"authorization": f"Bearer {sign_jwt(claims(expires_in=-120), TOKEN)}"}, {}),
    ],
    ids=["nothing", "wrong-header", "wrong-query", "token-as-bearer", "jwt-other-key", "jwt-expired"],
)
def test_anything_else_is_refused(headers, query):
    assert not request_holds_token(TOKEN, headers, query)


def test_an_unsigned_or_tampered_jwt_is_refused():
    head, body, signature = sign_jwt(claims(), TOKEN).split(".")
    none_head = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  # {"alg":"none","typ":"JWT"}
    assert not jwt_is_valid(f"{none_head}.{body}.", TOKEN)
    assert not jwt_is_valid(f"{head}.{body[:-2]}e0.{signature}", TOKEN)
    assert not jwt_is_valid(f"{head}.{body}", TOKEN)


def test_a_generated_token_is_kept_under_vigia_home_for_this_user_only(tmp_path):
    assert read_token_file(tmp_path) is None
    token = create_token_file(tmp_path)
    assert len(token) >= 32 and read_token_file(tmp_path) == token
    assert (tmp_path / "webhook-token").stat().st_mode & 0o777 == 0o600

"""Messages stored before the pairing existed are paired by its migration exactly as insert_messages pairs new ones."""

import os

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, select

from store.conversations import insert_messages
from store.database import MIGRATIONS, get_engine, migrate, open_session
from store.models import ConversationMessageRow
from tests.conftest import POSTGRES_ADMIN
from tests.conversations.test_measures import LOG, message


def upgrade(url: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with get_engine(url).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@pytest.fixture(params=["sqlite", "postgres"])
def blank_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'before-pairing.db'}"
        yield url
        get_engine(url).dispose()
        return
    schema = f"vigia_pairing_{os.getpid()}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        connection.execute(f'CREATE SCHEMA "{schema}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    yield url
    get_engine(url).dispose()
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pairing(url: str) -> list[tuple]:
    with open_session(url) as session:
        return session.execute(
            select(ConversationMessageRow.message_id, ConversationMessageRow.answered_at, ConversationMessageRow.previous_at).order_by(
                ConversationMessageRow.message_id
            )
        ).all()


def test_the_migration_pairs_the_messages_stored_before_it_as_insert_messages_does(blank_url, store_url):
    messages = [message(n, *entry) for n, entry in enumerate(LOG)]
    upgrade(blank_url, "0006")
    with open_session(blank_url) as session:
        session.execute(insert(ConversationMessageRow.__table__), [vars(m) for m in messages])  # the columns of 0006 only
    migrate(blank_url)
    with open_session(store_url) as session:
        insert_messages(session, messages)
    assert pairing(blank_url) == pairing(store_url)
    assert sum(1 for _, answered, _ in pairing(blank_url) if answered is not None) == 6  # A's four, B's first, C's

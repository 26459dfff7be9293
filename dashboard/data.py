"""Every store read the pages make goes through one cached reader; a store that fails stops the page with a banner.

`read(query, url, *args)` runs a `store` query — a function taking a session first — in a short
read-only session of its own (no write lock: a flow writing never stalls a page) and keeps the answer
for a minute. The numbers are the ones `store` computes for the CLI and the weekly report.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from store.database import StoreError, describe_url, open_read_session

TTL_SECONDS = 60
T = TypeVar("T")


def read(query: Callable[..., T], url: str, *args, **kwargs) -> T:
    """Return `query(session, *args, **kwargs)` on the store at `url`, cached for a minute.

    When the store fails, show what is down and stop the page (no traceback).
    """
    try:
        return _cached(query.__module__, query.__qualname__, url, args, tuple(sorted(kwargs.items())))
    except (StoreError, ValueError) as error:
        show_store_down(url, error)
        st.stop()
        raise  # st.stop() raises; this keeps type checkers and readers honest


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _cached(module: str, name: str, url: str, args: tuple, kwargs: tuple):
    # Keyed by the query's dotted name (stable across reruns), the store and the arguments.
    query: Callable[..., object] = getattr(importlib.import_module(module), name)
    with open_read_session(url) as session:
        return query(session, *args, **dict(kwargs))


def show_store_down(url: str, error: Exception) -> None:
    """Show a banner naming the store that failed and what to do next."""
    hint = (
        "migrate it with `vigia setup` or `vigia up`"
        if "no such table" in str(error) or "does not exist" in str(error)
        else ("check VIGIA_DATABASE_URL and that the database is running")
    )
    st.error(
        f"**The store is unreachable** — {_safe_url(url)}: {error}. The dashboard retries every minute; {hint}.", icon=":material/error:"
    )


def _safe_url(url: str) -> str:
    try:
        return describe_url(url)
    except Exception:  # an unparsable URL is shown as nothing rather than risk its password
        return "the configured store"

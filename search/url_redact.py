"""Passwords kept out of what nextsweep prints: a storage URL, or a message holding URLs (a
driver's error may echo the URL it was given), with each password replaced by ***."""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# The start of a URL (a message may hold several); SQLAlchemy's make_url reads what follows.
_SCHEME = re.compile(r"\b[a-zA-Z][\w+.-]*://")
_TOKEN = re.compile(_SCHEME.pattern + r"\S+")


def redact(text: str) -> str:
    """`text` (a URL, or a message holding URLs) with every password replaced by ***. A whole URL
    is read as SQLAlchemy's make_url reads it (its password may hold '/', spaces, ':'...); in a
    message a URL ends at a space (scrub() removes a known URL's password wherever it is)."""
    if not _SCHEME.match(text):
        return _TOKEN.sub(lambda m: redact(m.group()), text)
    for start, end in sorted(_password_spans(text), reverse=True):
        text = text[:start] + "***" + text[end:]
    return text


def has_password(url: str) -> bool:
    return redact(url) != url


def scrub(text: str, url: str) -> str:
    """`text` without the passwords of `url`, even where one appears outside a URL."""
    secrets = {url[start:end] for start, end in _password_spans(url)} if _SCHEME.match(url) else set()
    text = redact(text)
    decoded = {unquote(s) for s in secrets} | {unquote_plus(s) for s in secrets}  # user's, query's
    for secret in sorted(secrets | decoded, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _password_spans(url: str) -> list[tuple[int, int]]:
    """Where in `url` its passwords are, as (start, end): the user's (user:PASSWORD@host) and each
    ?password= value (libpq and SQLAlchemy both accept one), none of them empty."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # e.g. a port that is not a number: hide more, not less
        parsed = None
    spans, after = [], url.index("://") + 3
    user = _user_password_span(url, after, parsed)
    if user:
        spans.append(user)
        after = user[1] + 1
    if parsed is None or any(k.lower() == "password" for k in parsed.query):
        spans += _query_password_spans(url, url.find("?", after))
    return [(start, end) for start, end in spans if end > start]


def _user_password_span(url: str, after: int, parsed: URL | None) -> tuple[int, int] | None:
    """The span of `url`'s user password: from the ':' after the user name (which holds no ':' nor
    '/') to the '@' make_url ends it at. An unescaped '@' in the password puts that '@' too early
    (make_url then finds an '@' in the host or the database): the password then runs to the last
    '@' before the query."""
    colon = after + len(url[after:].split(":")[0])
    if "/" in url[after:colon] or colon >= len(url) or "@" not in url[colon:]:
        return None
    if parsed is not None and parsed.password is None:
        return None
    end = url.index("@", colon)
    if parsed is None or "@" in (parsed.host or "") + (parsed.database or ""):
        query = url.find("?", end)
        end = url.rindex("@", colon, query if query >= 0 else len(url))
    return colon + 1, end


def _query_password_spans(url: str, query: int) -> list[tuple[int, int]]:
    """The spans of the values of `url`'s query parameters named password (in any case), the
    query starting at index `query` (-1: none)."""
    spans, start = [], query + 1
    if query < 0:
        return spans
    for field in url[start:].split("&"):
        key, eq, _ = field.partition("=")
        if eq and unquote_plus(key).lower() == "password":
            spans.append((start + len(key) + 1, start + len(field)))
        start += len(field) + 1
    return spans

"""pitchside.results.db: URLs shown without credentials, messages scrubbed of the password."""

from __future__ import annotations

import pytest

from pitchside.errors import ResultsStoreError
from pitchside.results.db import create_db_engine, describe, parse_url, scrub


def test_describe_shows_a_url_without_user_or_password() -> None:
    url = parse_url("postgresql+psycopg://pitch:s3cr%40t@db.local:5432/results")
    shown = describe(url)
    assert "s3cr" not in shown and "pitch" not in shown
    assert shown.startswith("postgresql+psycopg://") and "db.local:5432/results" in shown


@pytest.mark.parametrize("password", ["s3cret", "p@ss w:rd/1"])
def test_scrub_removes_the_password_plain_and_percent_encoded(password: str) -> None:
    from urllib.parse import quote

    url = parse_url(f"postgresql+psycopg://pitch:{quote(password, safe='')}@db/results")
    message = f"failed for {password} and {quote(password, safe='')}"
    assert password not in scrub(message, url)
    assert quote(password, safe="") not in scrub(message, url)


def test_a_url_sqlalchemy_cannot_read_fails_without_echoing_it() -> None:
    with pytest.raises(ResultsStoreError) as caught:
        parse_url("not a url with s3cret")
    assert "s3cret" not in str(caught.value)


def test_an_unknown_driver_fails_as_a_store_error_without_the_password() -> None:
    with pytest.raises(ResultsStoreError) as caught:
        create_db_engine("postgresql+nodriver://pitch:s3cret@db/results")
    assert "s3cret" not in str(caught.value)

"""daemon/http.py against a real loopback HTTP server: errors, retries, conditional GET."""

from __future__ import annotations

import base64
import gzip
import json
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from daemon import __version__
from daemon.errors import (
    FetchConnectionError,
    FetchHTTPError,
    FetchPayloadError,
    FetchRateLimited,
    FetchTimeout,
)
from daemon.http import (
    MAX_REDIRECTS,
    USER_AGENT,
    describe_url,
    parse_retry_after,
    request,
)
from daemon.http_cache import cached_document, fetch_cached, is_due
from daemon.http_client import Client, tls_context
from daemon.store.db import Database
from tests.context_fixtures import Sleeps, fast_policy, hits, refused_url
from tests.hostile_server import HostileServer

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
ICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-CALNAME:节假日\r\nEND:VCALENDAR\r\n"


@pytest.fixture
def client() -> Iterator[Client]:
    with Client() as c:
        yield c


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "chime.db")
    yield database
    database.close()


# --- request --------------------------------------------------------------------------------


def test_user_agent_names_the_project(httpserver: HTTPServer, client: Client) -> None:
    httpserver.expect_request("/ok").respond_with_json({"a": 1})
    reply = request(client, httpserver.url_for("/ok"), policy=fast_policy())
    assert reply.json() == {"a": 1}
    sent = httpserver.log[0][0].headers["User-Agent"]
    assert sent == USER_AGENT == f"chime/{__version__} (+https://github.com/chime-reminder)"


def test_text_defaults_to_utf8_not_latin1(httpserver: HTTPServer, client: Client) -> None:
    httpserver.expect_request("/cal").respond_with_data(ICS.encode(), content_type="text/calendar")
    reply = request(client, httpserver.url_for("/cal"), policy=fast_policy())
    assert "节假日" in reply.text()


def test_read_timeout_is_retried_then_raised(httpserver: HTTPServer, client: Client) -> None:
    release = threading.Event()

    def slow(_req: Request) -> Response:
        release.wait(5)  # answers only after the client gave up
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    sleeps = Sleeps()
    started = time.monotonic()
    try:
        with pytest.raises(FetchTimeout, match="no answer in time"):
            request(client, httpserver.url_for("/slow"),
                    policy=fast_policy(sleeps, read_timeout=0.1, retries=1))
    finally:
        release.set()
    assert sleeps.waits == [0.25]
    assert time.monotonic() - started < 4  # two short timeouts, no real backoff


def test_connection_refused(client: Client) -> None:
    sleeps = Sleeps()
    with pytest.raises(FetchConnectionError, match="cannot connect"):
        request(client, refused_url(), policy=fast_policy(sleeps))
    assert sleeps.waits == [0.25, 0.5]  # bounded: retries=2, backoff doubles


def test_dns_failure_is_a_connection_error(client: Client) -> None:
    with pytest.raises(FetchConnectionError):
        request(client, "http://chime-test.invalid/x", policy=fast_policy(retries=0))


def test_http_500_is_retried_and_keeps_its_status(
    httpserver: HTTPServer, client: Client
) -> None:
    httpserver.expect_request("/boom").respond_with_data("Internal Server Error", status=500)
    sleeps = Sleeps()
    with pytest.raises(FetchHTTPError) as info:
        request(client, httpserver.url_for("/boom"), policy=fast_policy(sleeps))
    assert info.value.status == 500
    assert hits(httpserver, "/boom") == 3 and len(sleeps.waits) == 2


def test_503_then_success(httpserver: HTTPServer, client: Client) -> None:
    httpserver.expect_ordered_request("/flaky").respond_with_data("busy", status=503,
                                                                  headers={"Retry-After": "2"})
    httpserver.expect_ordered_request("/flaky").respond_with_json({"ok": True})
    sleeps = Sleeps()
    reply = request(client, httpserver.url_for("/flaky"), policy=fast_policy(sleeps))
    assert reply.json() == {"ok": True}
    assert sleeps.waits == [2.0]  # Retry-After is longer than the backoff: honoured


def test_400_is_not_retried_and_shows_the_reason(
    httpserver: HTTPServer, client: Client
) -> None:
    httpserver.expect_request("/v1/forecast").respond_with_json(
        {"error": True, "reason": "Latitude must be in range of -90 to 90°."}, status=400)
    with pytest.raises(FetchHTTPError, match="HTTP 400: Latitude must be") as info:
        request(client, httpserver.url_for("/v1/forecast"), policy=fast_policy())
    assert info.value.status == 400 and hits(httpserver, "/v1/forecast") == 1


def test_429_carries_retry_after_and_is_not_retried(
    httpserver: HTTPServer, client: Client
) -> None:
    httpserver.expect_request("/v1/forecast").respond_with_json(
        {"error": True, "reason": "Too many requests"}, status=429, headers={"Retry-After": "120"})
    sleeps = Sleeps()
    with pytest.raises(FetchRateLimited) as info:
        request(client, httpserver.url_for("/v1/forecast"), policy=fast_policy(sleeps))
    assert info.value.status == 429 and info.value.retry_after == 120.0
    assert sleeps.waits == [] and hits(httpserver, "/v1/forecast") == 1


def test_invalid_json(httpserver: HTTPServer, client: Client) -> None:
    httpserver.expect_request("/bad").respond_with_data('{"hourly": [1, 2', content_type="application/json")
    reply = request(client, httpserver.url_for("/bad"), policy=fast_policy())
    with pytest.raises(FetchPayloadError, match="not valid JSON"):
        reply.json()


def test_oversized_body_is_refused(httpserver: HTTPServer, client: Client) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * 5000)
    with pytest.raises(FetchPayloadError, match="larger than 1000 bytes"):
        request(client, httpserver.url_for("/big"), policy=fast_policy(max_bytes=1000))


def test_gzip_is_decoded_and_a_broken_one_is_a_payload_error(
    httpserver: HTTPServer, client: Client
) -> None:
    body = gzip.compress(json.dumps({"reason": "压缩"}).encode())
    httpserver.expect_request("/gz").respond_with_data(
        body, content_type="application/json", headers={"Content-Encoding": "gzip"})
    httpserver.expect_request("/broken").respond_with_data(
        b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert request(client, httpserver.url_for("/gz"), policy=fast_policy()).json() == {
        "reason": "压缩"}
    assert "gzip" in httpserver.log[0][0].headers["Accept-Encoding"]
    with pytest.raises(FetchPayloadError, match="cannot decode the answer"):
        request(client, httpserver.url_for("/broken"), policy=fast_policy())


def test_params_join_the_query_and_messages_never_show_it(
    httpserver: HTTPServer, client: Client
) -> None:
    httpserver.expect_request("/v1/forecast").respond_with_json({})
    request(client, httpserver.url_for("/v1/forecast") + "?a=1",
            policy=fast_policy(), params={"latitude": 31.2, "hourly": "x,y", "none": None})
    assert httpserver.log[0][0].query_string == b"a=1&latitude=31.2&hourly=x%2Cy"
    with pytest.raises(FetchConnectionError) as info:
        request(client, refused_url("/v1/forecast?latitude=31.2"), policy=fast_policy(retries=0),
                params={"longitude": 121.5})
    assert "31.2" not in str(info.value) and "121.5" not in str(info.value)


def test_redirects_are_followed_without_the_token_to_another_host(
    httpserver: HTTPServer, client: Client
) -> None:
    other_host = httpserver.url_for("/b").replace("localhost", "127.0.0.1")
    httpserver.expect_request("/a").respond_with_data("", status=302,
                                                      headers={"Location": other_host})
    httpserver.expect_request("/b").respond_with_json({"at": "b"})
    reply = request(client, httpserver.url_for("/a"), policy=fast_policy(),
                    headers={"Authorization": "Bearer s3cret"})
    assert reply.json() == {"at": "b"}
    first, second = (req for req, _ in httpserver.log)
    assert first.headers["Authorization"] == "Bearer s3cret"
    assert "Authorization" not in second.headers
    with pytest.raises(FetchHTTPError, match="unexpected HTTP 302") as info:
        request(client, httpserver.url_for("/a"), policy=fast_policy(), follow_redirects=False)
    assert info.value.status == 302


def test_a_redirect_loop_ends_after_the_limit(httpserver: HTTPServer, client: Client) -> None:
    httpserver.expect_request("/loop").respond_with_data("", status=301,
                                                         headers={"Location": "/loop"})
    sleeps = Sleeps()
    with pytest.raises(FetchHTTPError, match=f"more than {MAX_REDIRECTS} redirects") as info:
        request(client, httpserver.url_for("/loop"), policy=fast_policy(sleeps))
    assert info.value.status == 301 and sleeps.waits == []  # not worth a retry
    assert hits(httpserver, "/loop") == MAX_REDIRECTS + 1


def test_the_environment_proxy_is_used_unless_no_proxy_names_the_host(
    httpserver: HTTPServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpserver.expect_request("/v1/forecast").respond_with_json({"via": "proxy"})
    proxy = httpserver.url_for("/").replace("http://", "http://me:p%40ss@")
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    url = "http://weather.chime-test.invalid/v1/forecast"  # resolvable only by the proxy
    assert request(client, url, policy=fast_policy()).json() == {"via": "proxy"}
    sent = httpserver.log[0][0].headers["Proxy-Authorization"]
    assert sent == "Basic " + base64.b64encode(b"me:p@ss").decode()
    monkeypatch.setenv("no_proxy", "localhost,.chime-test.invalid")
    with pytest.raises(FetchConnectionError, match="cannot connect"):
        request(client, url, policy=fast_policy(retries=0))
    monkeypatch.delenv("no_proxy")
    monkeypatch.setenv("http_proxy", "socks5://127.0.0.1:1080")
    with pytest.raises(FetchConnectionError, match="socks5:// proxy is not supported"):
        request(client, url, policy=fast_policy(retries=0))


def test_tls_is_verified(httpserver: HTTPServer, client: Client) -> None:
    context = tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the system's (or certifi's) CAs
    plain = httpserver.url_for("/x").replace("http://", "https://")  # no TLS there
    with pytest.raises(FetchConnectionError, match="cannot connect"):
        request(client, plain, policy=fast_policy(retries=0))


def test_messages_hide_query_and_secret_paths() -> None:
    url = "https://calendar.example.com/ical/me/private-s3cr3t/basic.ics?lat=31.2&lon=121.5"
    assert describe_url(url) == "calendar.example.com/…/basic.ics"
    assert describe_url("http://127.0.0.1:8080/v1?latitude=1") == "127.0.0.1:8080/v1"


def test_parse_retry_after() -> None:
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after("Sun, 01 Mar 2026 08:02:00 GMT", now=NOW) == 120.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_is_due_respects_interval_retry_after_and_a_clock_gone_back() -> None:
    hour = timedelta(hours=1)
    assert is_due(NOW, None, None, hour)
    assert not is_due(NOW, NOW - timedelta(minutes=59), None, hour)
    assert is_due(NOW, NOW - hour, None, hour)
    assert not is_due(NOW, NOW - hour, 7200.0, hour)
    assert is_due(NOW, NOW + timedelta(days=400), None, hour)  # RTC was wrong at the last boot


# --- fetch_cached ---------------------------------------------------------------------------


def test_conditional_get_caches_revalidates_and_serves_offline(
    httpserver: HTTPServer, client: Client, db: Database, tmp_path: Path
) -> None:
    url = httpserver.url_for("/holidays.ics")
    policy = fast_policy()
    httpserver.expect_oneshot_request("/holidays.ics").respond_with_data(
        ICS, content_type="text/calendar; charset=utf-8",
        headers={"ETag": '"v1"', "Last-Modified": "Sat, 28 Feb 2026 10:00:00 GMT"})
    first = fetch_cached(db, client, url, now=NOW, policy=policy, min_interval=timedelta(hours=6))
    assert (first.source, first.body, first.changed, first.error) == ("live", ICS, True, None)

    # Not due: no request at all, the cache answers (also from a fresh process: new Database).
    again = Database(tmp_path / "chime.db")
    second = fetch_cached(again, client, url, now=NOW + timedelta(hours=1), policy=policy,
                          min_interval=timedelta(hours=6))
    again.close()
    assert (second.source, second.body) == ("cache", ICS) and hits(httpserver, "/holidays.ics") == 1

    # Due: the request carries the validators; 304 keeps the body.
    httpserver.expect_oneshot_request(
        "/holidays.ics", headers={"If-None-Match": '"v1"',
                                  "If-Modified-Since": "Sat, 28 Feb 2026 10:00:00 GMT"},
    ).respond_with_data("", status=304)
    later = NOW + timedelta(hours=7)
    third = fetch_cached(db, client, url, now=later, policy=policy, min_interval=timedelta(hours=6))
    assert (third.source, third.body, third.changed, third.fetched_at) == ("live", ICS, False, later)
    httpserver.check_assertions()

    # Offline: the cached body serves, the error says why.
    httpserver.clear()
    httpserver.expect_request("/holidays.ics").respond_with_data("down", status=502)
    offline = fetch_cached(db, client, url, now=later + timedelta(hours=7), policy=policy,
                           min_interval=timedelta(hours=6))
    assert offline.source == "cache" and offline.body == ICS
    assert isinstance(offline.error, FetchHTTPError) and offline.fetched_at == later
    cached = cached_document(db, url)
    assert cached is not None and cached.body == ICS and cached.attempted_at == later + timedelta(hours=7)


def test_cold_cache_offline_returns_no_body_and_the_error(
    client: Client, db: Database
) -> None:
    url = refused_url("/feed.ics")
    doc = fetch_cached(db, client, url, now=NOW, policy=fast_policy(retries=0))
    assert doc.body is None and isinstance(doc.error, FetchConnectionError)
    # The attempt is recorded: the next one waits for the interval even after a restart.
    cached = cached_document(db, url)
    assert cached is not None and cached.attempted_at == NOW


def test_429_blocks_even_forced_requests_until_retry_after(
    httpserver: HTTPServer, client: Client, db: Database
) -> None:
    url = httpserver.url_for("/feed.ics")
    httpserver.expect_request("/feed.ics").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "3600"})
    doc = fetch_cached(db, client, url, now=NOW, policy=fast_policy(), min_interval=timedelta(0))
    assert isinstance(doc.error, FetchRateLimited)
    blocked = fetch_cached(db, client, url, now=NOW + timedelta(minutes=30), policy=fast_policy(),
                           force=True)
    assert blocked.error is None and hits(httpserver, "/feed.ics") == 1
    fetch_cached(db, client, url, now=NOW + timedelta(minutes=61), policy=fast_policy(), force=True)
    assert hits(httpserver, "/feed.ics") == 2


def test_validate_refuses_a_bad_body_and_keeps_the_good_one(
    httpserver: HTTPServer, client: Client, db: Database
) -> None:
    url = httpserver.url_for("/feed.ics")

    def must_be_calendar(body: str) -> None:
        if not body.startswith("BEGIN:VCALENDAR"):
            raise ValueError("not an iCalendar document")

    httpserver.expect_oneshot_request("/feed.ics").respond_with_data(ICS)
    fetch_cached(db, client, url, now=NOW, policy=fast_policy(), validate=must_be_calendar)
    httpserver.expect_oneshot_request("/feed.ics").respond_with_data("<html>login</html>")
    doc = fetch_cached(db, client, url, now=NOW + timedelta(days=1), policy=fast_policy(),
                       validate=must_be_calendar)
    assert isinstance(doc.error, FetchPayloadError) and "not an iCalendar" in str(doc.error)
    assert doc.body == ICS and cached_document(db, url).body == ICS  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["silent", "trickle"])
def test_one_deadline_for_the_whole_call(mode: str, client: Client) -> None:
    """Per-read timeouts never trip on a server that sends one byte per second; the call's
    deadline does, retries included."""
    policy = fast_policy(read_timeout=5.0, retries=3, total_timeout=1.5)
    with HostileServer() as server:
        server.mode, server.good = mode, {"json": b'{"ok": true}'}
        started = time.monotonic()
        with pytest.raises(FetchTimeout, match=r"within 1\.5s"):
            request(client, server.url("/x.json"), policy=policy)
    assert time.monotonic() - started < 1.5 + 3.0  # a loaded CI machine; unbounded before

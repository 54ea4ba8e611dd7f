"""Calendar subscriptions against a real loopback HTTP server: first fetch, 304 Not Modified,
404, a changed feed, an invalid answer, a server that went away, the daemon's sync_due hook."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from werkzeug import Request, Response

from daemon.app import App
from daemon.calendars import apply as apply_module
from daemon.calendars import feeds as sync_module
from daemon.calendars import subscribe, subscriptions, sync, sync_due, unsubscribe
from daemon.errors import InputError, NotFoundError, StoreError
from daemon.http_cache import cached_document
from daemon.store import repo
from daemon.store.models import Event, Meta, Occurrence, Subscription
from tests.calendar_fixtures import NOW, corpus_text, events_by_uid, make_app, revision
from tests.context_fixtures import fast_policy, hits, refused_url

PATH = "/calendar/ical/private-3f9a2c/basic.ics"
STANDUP = "3q8v1m2k9s0d7f6g5h4j3k2l1@google.com"
PILLS = "1l2k3j4h5g6f7d8s9a0p@google.com"


class Feed:
    """A calendar server: answers with ``body`` and an ETag, 304 when the client has it."""

    def __init__(self, body: str) -> None:
        self.body, self.version, self.status = body, 1, 200
        self.conditional: list[str | None] = []

    def __call__(self, request: Request) -> Response:
        self.conditional.append(request.headers.get("If-None-Match"))
        if self.status != 200:
            return Response("Not Found", status=self.status)
        etag = f'"v{self.version}"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(self.body, headers={"ETag": etag},
                        content_type="text/calendar; charset=utf-8")

    def publish(self, body: str) -> None:
        self.body, self.version = body, self.version + 1


@pytest.fixture
def cal_app(tmp_path: Path) -> Iterator[App]:
    app = make_app(tmp_path / "chime.db")
    yield app
    app.db.close()


@pytest.fixture
def feed(httpserver: HTTPServer) -> Feed:
    served = Feed(corpus_text("google_work.ics"))
    httpserver.expect_request(PATH).respond_with_handler(served)
    return served


def run(app: App, minutes: float = 0, **kwargs):  # type: ignore[no-untyped-def]
    return sync(app, NOW + timedelta(minutes=minutes), policy=fast_policy(), **kwargs)


def feed_events(app: App) -> list[tuple[int, str, str, str]]:
    with app.db.session() as s:
        return [(e.id, e.uid or "", e.task, e.source) for e in
                s.scalars(select(Event).where(Event.subscription_id.is_not(None))
                          .order_by(Event.id))]


def state(app: App) -> Subscription:
    with app.db.session() as s:
        return s.scalars(select(Subscription)).one()


def test_subscribe_then_sync(cal_app: App, feed: Feed, httpserver: HTTPServer) -> None:
    sub = subscribe(cal_app, httpserver.url_for(PATH), "10m")
    [result] = run(cal_app)
    assert result.status == "changed" and result.outcome is not None
    assert (result.outcome.added, result.outcome.past) == (6, 1)
    got = events_by_uid(cal_app)
    assert got[STANDUP].source == "feed" and got[STANDUP].subscription_id == sub.id
    [view] = subscriptions(cal_app)
    assert view["events"] == 6 and view["every"] == "10m" and view["last_error"] is None
    assert view["last_checked"] == view["last_changed"] == NOW.isoformat()
    assert view["next_check"] == (NOW + timedelta(minutes=10)).isoformat()


def test_not_modified_changes_nothing(cal_app: App, feed: Feed, httpserver: HTTPServer) -> None:
    subscribe(cal_app, httpserver.url_for(PATH), "10m")
    run(cal_app)
    before, rev = feed_events(cal_app), revision(cal_app)
    [result] = run(cal_app, minutes=11)
    assert feed.conditional == [None, '"v1"']  # the second request was conditional → 304
    assert result.status == "unchanged" and result.outcome is None
    assert feed_events(cal_app) == before and revision(cal_app) == rev
    assert state(cal_app).last_checked == NOW + timedelta(minutes=11)
    assert state(cal_app).last_changed == NOW


def test_not_due_is_not_fetched(cal_app: App, feed: Feed, httpserver: HTTPServer) -> None:
    subscribe(cal_app, httpserver.url_for(PATH), "10m")
    run(cal_app)
    [result] = run(cal_app, minutes=3)
    assert result.status == "waiting" and hits(httpserver, PATH) == 1
    [forced] = run(cal_app, minutes=3, force=True)  # `chime sync` fetches now
    assert forced.status == "unchanged" and hits(httpserver, PATH) == 2


def test_404_keeps_events_and_records_error(cal_app: App, feed: Feed,
                                            httpserver: HTTPServer) -> None:
    subscribe(cal_app, httpserver.url_for(PATH), "10m")
    run(cal_app)
    before = feed_events(cal_app)
    feed.status = 404
    [result] = run(cal_app, minutes=11)
    assert result.status == "error" and "HTTP 404" in (result.error or "")
    assert "private-3f9a2c" not in (result.error or "")  # secret path parts stay out
    assert feed_events(cal_app) == before
    assert "HTTP 404" in (state(cal_app).last_error or "")
    feed.status = 200
    [result] = run(cal_app, minutes=22)
    assert result.status == "unchanged" and state(cal_app).last_error is None


def test_changed_feed_updates_in_place_and_removes_gone(cal_app: App, feed: Feed,
                                                        httpserver: HTTPServer) -> None:
    subscribe(cal_app, httpserver.url_for(PATH), "10m")
    run(cal_app)
    got = events_by_uid(cal_app)
    standup, pills = got[STANDUP], got[PILLS]
    first_standup = NOW + timedelta(days=2, hours=-0.5)  # Mon 11-30 09:30
    first_pills = NOW + timedelta(days=3, hours=11)  # Tue 12-01 21:00
    with cal_app.db.session() as s:
        repo.ensure_occurrence(s, s.get(Event, standup.id), first_standup).status = "delivered"
        repo.ensure_occurrence(s, s.get(Event, pills.id), first_pills).status = "delivered"
        repo.update_event(s, s.get(Event, standup.id), paused=True, outputs=["console"])
    text = corpus_text("google_work.ics")
    start = text.index("BEGIN:VEVENT\r\nDTSTART;TZID=Asia/Shanghai:20261201T210000")
    end = text.index("END:VEVENT\r\n", start) + len("END:VEVENT\r\n")
    edited = text[:start] + text[end:]  # 吃药 gone
    feed.publish(edited.replace("SUMMARY:站会\r\n", "SUMMARY:每日站会\r\n", 1))  # renamed
    [result] = run(cal_app, minutes=11)
    assert result.status == "changed" and result.outcome is not None
    assert (result.outcome.updated, result.outcome.removed, result.outcome.added) == (1, 1, 0)
    got = events_by_uid(cal_app)
    assert PILLS not in got
    assert got[STANDUP].id == standup.id and got[STANDUP].task == "每日站会"
    assert got[STANDUP].paused and got[STANDUP].outputs == ["console"]  # local choices stay
    with cal_app.db.session() as s:
        rows = {(o.event_id, o.task, o.status) for o in s.scalars(select(Occurrence))}
    assert rows == {(standup.id, "站会", "delivered"), (None, "吃药", "delivered")}


def test_invalid_answer_keeps_the_good_body(cal_app: App, feed: Feed,
                                            httpserver: HTTPServer) -> None:
    url = httpserver.url_for(PATH)
    subscribe(cal_app, url, "10m")
    run(cal_app)
    before = feed_events(cal_app)
    feed.publish(corpus_text("not_calendar.ics"))  # a login page instead of the calendar
    [result] = run(cal_app, minutes=11)
    assert result.status == "error" and "not an iCalendar file" in (result.error or "")
    assert feed_events(cal_app) == before
    cached = cached_document(cal_app.db, url)
    assert cached is not None and (cached.body or "").startswith("BEGIN:VCALENDAR")
    feed.publish(corpus_text("only_secondly.ics"))  # valid iCalendar, nothing usable
    [result] = run(cal_app, minutes=22)
    assert result.status == "error" and "too frequent" in (result.error or "")
    assert feed_events(cal_app) == before


def test_server_gone_keeps_reminding(cal_app: App) -> None:
    server = HTTPServer(host="127.0.0.1", port=0)
    served = Feed(corpus_text("google_work.ics"))
    server.expect_request(PATH).respond_with_handler(served)
    server.start()
    try:
        url = server.url_for(PATH)
        subscribe(cal_app, url, "10m")
        run(cal_app)
    finally:
        server.clear()
        server.stop()
    before = feed_events(cal_app)
    [result] = run(cal_app, minutes=11)
    assert result.status == "error" and "cannot connect" in (result.error or "")
    assert feed_events(cal_app) == before and len(before) == 6
    assert "cannot connect" in (state(cal_app).last_error or "")


def test_apply_interrupted_is_redone_from_the_cache(cal_app: App, feed: Feed,
                                                    httpserver: HTTPServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    subscribe(cal_app, httpserver.url_for(PATH), "10m")

    def broken_apply(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise StoreError("database is locked")

    monkeypatch.setattr(apply_module, "apply", broken_apply)
    [result] = run(cal_app)
    assert result.status == "error" and "locked" in (result.error or "")
    assert feed_events(cal_app) == []
    monkeypatch.undo()
    [result] = run(cal_app, minutes=11)  # the server answers 304; the cached body is applied
    assert feed.conditional[-1] == '"v1"'
    assert result.status == "changed" and len(feed_events(cal_app)) == 6


def test_sync_due_fetches_only_what_is_due_and_never_raises(
        cal_app: App, feed: Feed, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(sync_module, "FetchPolicy", lambda: fast_policy())
    subscribe(cal_app, httpserver.url_for(PATH), "10m")
    subscribe(cal_app, httpserver.url_for(PATH) + "?hourly", "1h")
    gone = subscribe(cal_app, refused_url("/gone.ics"), "10m")
    sync_due(cal_app, NOW)
    assert hits(httpserver, PATH) == 2
    sync_due(cal_app, NOW + timedelta(minutes=5))
    assert hits(httpserver, PATH) == 2
    with caplog.at_level(logging.WARNING, logger="daemon.calendars"):
        sync_due(cal_app, NOW + timedelta(minutes=11))
    assert hits(httpserver, PATH) == 3
    assert any("gone.ics" in r.getMessage() and "cannot connect" in r.getMessage()
               for r in caplog.records)
    views = {v["id"]: v for v in subscriptions(cal_app)}
    assert "cannot connect" in views[gone.id]["last_error"]

    def explode(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug")

    monkeypatch.setattr(sync_module, "sync", explode)
    sync_due(cal_app, NOW + timedelta(hours=2))  # logged, not raised


def test_unsubscribe_removes_events_and_cache(cal_app: App, feed: Feed,
                                              httpserver: HTTPServer) -> None:
    url = httpserver.url_for(PATH)
    sub = subscribe(cal_app, url, "10m")
    run(cal_app)
    rev = revision(cal_app)
    assert unsubscribe(cal_app, sub.id) == 6
    assert feed_events(cal_app) == [] and subscriptions(cal_app) == []
    assert cached_document(cal_app.db, url) is None and revision(cal_app) > rev
    with cal_app.db.session() as s:
        assert s.scalars(select(Meta).where(Meta.key.like("calendar%"))).all() == []
    with pytest.raises(NotFoundError):
        unsubscribe(cal_app, sub.id)
    with pytest.raises(NotFoundError):
        run(cal_app, ids=[sub.id])


def test_subscribe_checks_its_input(cal_app: App) -> None:
    sub = subscribe(cal_app, "webcal://p07-caldav.icloud.com/published/2/MTIzNDU2", None)
    assert sub.url == "https://p07-caldav.icloud.com/published/2/MTIzNDU2"
    assert sub.every_s == 30 * 60  # [calendars] default_every
    with pytest.raises(InputError, match="already subscribed"):
        subscribe(cal_app, "webcal://p07-caldav.icloud.com/published/2/MTIzNDU2")
    with pytest.raises(InputError, match="not an http"):
        subscribe(cal_app, "ftp://example.com/cal.ics")
    with pytest.raises(InputError, match="no host"):
        subscribe(cal_app, "https:///cal.ics")
    with pytest.raises(InputError, match="between 5m and 7d"):
        subscribe(cal_app, "https://example.com/cal.ics", "1m")
    assert len(subscriptions(cal_app)) == 1

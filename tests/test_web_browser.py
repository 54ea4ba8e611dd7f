"""The pages in headless Chromium at phone width (360 px), against the real `chime web` and the
real daemon (`chime run`) on one database: add in Chinese, edit, pause, done, upload, remove.

One browser, one `chime web` and one daemon for the module. Every page is saved as a screenshot
under the module's temp dir (``screens/``) and checked for horizontal overflow.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from daemon_fixtures import Daemon, occurrences, utc, wait_for
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait
from web_fixtures import WebProcess

pytestmark = pytest.mark.slow

WIDTH = 360
FINAL = ("delivered", "late", "missed", "failed")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:lantern@test
DTSTAMP:20261101T000000Z
DTSTART;TZID=Asia/Shanghai:20370212T190000
SUMMARY:元宵节看花灯
END:VEVENT
END:VCALENDAR
"""


@dataclass
class Site:
    url: str
    db: Path
    screens: Path
    browser: WebDriver
    daemon: Daemon

    def open(self, path: str) -> None:
        self.browser.get(self.url + path)

    def wait(self, condition: object, timeout: float = 20) -> object:
        return WebDriverWait(self.browser, timeout).until(condition)

    def text(self) -> str:
        return str(self.browser.find_element(By.TAG_NAME, "main").text)

    def shot(self, name: str) -> Path:
        """A full-page screenshot; the page must fit the phone's width."""
        b = self.browser
        overflow = b.execute_script(
            "const w = document.documentElement.clientWidth; return [...document.querySelectorAll("
            "'main *, header *')].filter(e => e.getBoundingClientRect().right > w + 1)"
            ".map(e => e.outerHTML.slice(0, 80));")
        assert overflow == [], f"{name}: wider than {WIDTH} px: {overflow}"
        height = b.execute_script("return document.documentElement.scrollHeight")
        png = b.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}})
        path = self.screens / f"{name}.png"
        path.write_bytes(base64.b64decode(png["data"]))
        return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("browser")
    home = root / "home"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local" / "share"), "CHIME_TIMEZONE": "Asia/Shanghai"}
    for key in ("CHIME_CONFIG", "CHIME_DB", "STATE_DIRECTORY", "NOTIFY_SOCKET"):
        os.environ.pop(key, None)
    db = root / "chime.db"
    daemon = Daemon(db, **env)
    daemon.wait_ready()
    web = WebProcess(db, env=env)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={root / 'chromium'}", "--lang=zh-CN",
                 f"--window-size={WIDTH},800"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})
    options.add_experimental_option(
        "mobileEmulation", {"deviceMetrics": {"width": WIDTH, "height": 780, "pixelRatio": 2}})
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    screens = root / "screens"
    screens.mkdir()
    try:
        yield Site(web.url, db, screens, browser, daemon)
    finally:
        browser.quit()
        web.stop()
        assert daemon.stop() == 0


def test_add_in_chinese_with_the_resolved_time_and_a_preview(site: Site) -> None:
    site.open("/add")
    site.browser.find_element(By.NAME, "text").send_keys("给妈妈打电话")
    site.browser.find_element(By.NAME, "at").send_keys("明天晚上8点")
    site.wait(EC.text_to_be_present_in_element((By.ID, "resolved"), "明天 20:00"))
    Select(site.browser.find_element(By.NAME, "every")).select_by_value("workdays")
    site.browser.find_element(By.NAME, "preview").click()
    site.wait(EC.visibility_of_element_located((By.CSS_SELECTOR, "#preview .message")))
    assert "给妈妈打电话" in site.browser.find_element(By.ID, "preview").text
    site.shot("add")
    site.browser.find_element(By.NAME, "save").click()
    site.wait(EC.url_to_be(site.url + "/"))
    site.wait(EC.text_to_be_present_in_element((By.TAG_NAME, "main"), "给妈妈打电话"))
    card = site.browser.find_element(By.CSS_SELECTOR, ".card")
    assert "20:00" in card.text and "法定工作日" in card.text, card.text
    site.shot("next")


def test_edit_then_pause(site: Site) -> None:
    site.open("/")
    site.browser.find_element(By.LINK_TEXT, "修改").click()
    site.wait(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "修改提醒"))
    field = site.browser.find_element(By.NAME, "text")
    field.clear()
    field.send_keys("给爸妈打电话")
    site.wait(EC.text_to_be_present_in_element((By.ID, "resolved"), "20:00"))
    site.shot("edit")
    site.browser.find_element(By.NAME, "save").click()
    site.wait(EC.text_to_be_present_in_element((By.TAG_NAME, "main"), "给爸妈打电话"))
    site.browser.find_element(By.NAME, "pause").click()
    site.wait(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".card .when"), "已暂停"))
    assert site.browser.find_elements(By.NAME, "resume")
    site.shot("next-paused")


def test_added_on_the_page_delivered_on_time_then_done(site: Site) -> None:
    site.open("/add")
    site.browser.find_element(By.NAME, "text").send_keys("收衣服")
    site.browser.find_element(By.NAME, "at").send_keys("in 20 seconds")
    site.wait(EC.text_to_be_present_in_element((By.ID, "resolved"), "将在"))
    site.browser.find_element(By.NAME, "save").click()
    site.wait(EC.text_to_be_present_in_element((By.TAG_NAME, "main"), "收衣服"))
    wait_for(lambda: any(o["task"] == "收衣服" and o["status"] in FINAL
                         for o in occurrences(site.db)), 60, "the delivery")
    row = next(o for o in occurrences(site.db) if o["task"] == "收衣服")
    assert row["status"] == "delivered", row  # not "late": on time
    added = datetime.now(timezone.utc)
    assert 0 <= (utc(row["delivered_at"]) - utc(row["scheduled_at"])).total_seconds() < 5
    assert utc(row["scheduled_at"]) <= added
    assert any("收衣服" in line for line in site.daemon.stdout_lines())
    site.open("/log")
    item = site.browser.find_element(By.ID, f"occurrence-{row['id']}")
    assert "已送达" in item.text and row["message"] in item.text
    site.shot("log")
    item.find_element(By.NAME, "done").click()
    site.wait(EC.text_to_be_present_in_element((By.ID, f"occurrence-{row['id']}"), "已确认"))
    assert not site.browser.find_element(By.ID, f"occurrence-{row['id']}").find_elements(
        By.NAME, "done")
    assert next(o for o in occurrences(site.db) if o["id"] == row["id"])["acknowledged_at"]
    site.shot("log-done")


def test_upload_an_ics(site: Site, tmp_path: Path) -> None:
    ics = tmp_path / "festival.ics"
    ics.write_text(ICS, encoding="utf-8")
    site.open("/calendars")
    site.browser.find_element(By.NAME, "file").send_keys(str(ics))
    site.browser.find_element(By.NAME, "upload").click()
    site.wait(EC.text_to_be_present_in_element((By.ID, "imported"), "新增 1"))
    site.shot("calendars")
    site.open("/")
    assert "元宵节看花灯" in site.text()


def test_remove_asks_first(site: Site) -> None:
    site.open("/")
    card = next(c for c in site.browser.find_elements(By.CSS_SELECTOR, ".card")
                if "元宵节看花灯" in c.text)
    card.find_element(By.LINK_TEXT, "删除").click()
    site.wait(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".question"), "元宵节看花灯"))
    site.shot("remove-confirm")
    site.browser.find_element(By.NAME, "confirm").click()
    site.wait(EC.url_to_be(site.url + "/"))
    site.wait(lambda b: "元宵节看花灯" not in b.find_element(By.TAG_NAME, "main").text)


def test_status_and_login_pages(site: Site) -> None:
    site.open("/status")
    site.wait(EC.text_to_be_present_in_element((By.ID, "daemon"), "运行中"))
    site.shot("status")
    site.open("/login#token=abc_DEF-123")  # the link in `chime web token`'s QR code
    field = site.browser.find_element(By.NAME, "token")
    assert field.get_attribute("value") == "abc_DEF-123"
    assert site.browser.current_url == site.url + "/login"  # the fragment is gone
    site.shot("login")

"""The web token (made once, 0600, beside the database) and the [web] settings."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import Settings, load_settings
from daemon.errors import ConfigError
from daemon.web.token import (
    base_url,
    ensure_token,
    is_loopback,
    read_token,
    token_matches,
    token_path,
)


def test_token_made_once_with_mode_0600(settings: Settings, db_path: Path) -> None:
    assert read_token(settings) is None
    token = ensure_token(settings)
    path = token_path(settings)
    assert path.parent == db_path.parent
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 40
    assert ensure_token(settings) == token == read_token(settings)


def test_empty_token_file_is_replaced(settings: Settings) -> None:
    token_path(settings).write_text("")
    token = ensure_token(settings)
    assert token and read_token(settings) == token
    assert stat.S_IMODE(token_path(settings).stat().st_mode) == 0o600


def test_token_comparison() -> None:
    assert token_matches("abc", "abc")
    assert not token_matches("abd", "abc")
    assert not token_matches(None, "abc")
    assert not token_matches("", "abc")
    assert not token_matches("ünïcode", "abc")


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("192.168.1.5", False), ("::", False),
    ("example.org", False),
])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_web_settings_and_url(tmp_path: Path, db_path: Path) -> None:
    s = load_settings(db=db_path)
    assert (s.web.listen, s.web.port, s.web.public_url) == ("127.0.0.1", 8765, "")
    assert base_url(s) == "http://127.0.0.1:8765"
    cfg = tmp_path / "c.toml"
    cfg.write_text('[web]\nlisten = "::1"\nport = 9000\n')
    assert base_url(load_settings(cfg, db_path)) == "http://[::1]:9000"
    cfg.write_text('[web]\npublic_url = "https://chime.lan/"\n')
    assert base_url(load_settings(cfg, db_path)) == "https://chime.lan"


def test_bad_web_settings_named(tmp_path: Path, db_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[web]\nport = 70000\npublic_url = "chime.lan"\nmax_upload_kb = 0\nlisten = ""\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, db_path)
    for key in ("[web] port", "[web] public_url", "[web] max_upload_kb", "[web] listen"):
        assert key in str(err.value)


def test_token_module_imports_nothing_heavy() -> None:
    code = ("import sys, daemon.web.token; heavy = {'starlette', 'uvicorn', 'jinja2', 'sqlalchemy',"
            " 'torch'} & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

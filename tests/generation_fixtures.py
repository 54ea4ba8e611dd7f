"""Session fixtures for the generation tests: the tiny model, pulled and built once."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.config import Settings
from daemon.generation.files import ModelFiles, pull
from tests.tinymodel import TinyModel, build_tiny


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyModel]:
    """The tiny BLOOM + LoRA in hub layout (trained once per session, a few seconds)."""
    root = tmp_path_factory.mktemp("tinymodel")
    with pytest.MonkeyPatch.context() as mp:  # no library cache may touch the real home
        mp.setenv("HF_HOME", str(root / "hf-home"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield build_tiny(root / "model")


@pytest.fixture(scope="session")
def installed(tiny: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    """A models dir with base + adapter pulled (the pickle converted) and a merged int8 build."""
    from daemon.generation.build import build

    files = ModelFiles(tmp_path_factory.mktemp("models"))
    pull(str(tiny.base), "base", files)
    pull(str(tiny.adapter_bin), "adapter", files)
    build(files, merge=True)
    return files


def copy_models(files: ModelFiles, dest: Path) -> ModelFiles:
    """A private copy of an installed models dir (for tests that damage or rebuild it)."""
    shutil.copytree(files.root, dest)
    return ModelFiles(dest)


def model_settings(models: ModelFiles, tmp_path: Path, **model: object) -> Settings:
    """Settings that point at ``models``, with short, test-friendly timings."""
    settings = Settings()
    settings.daemon.db = str(tmp_path / "chime.db")
    settings.daemon.timezone = "Asia/Shanghai"
    settings.model.models_dir = str(models.root)
    settings.model.keep_warm = timedelta(seconds=30)
    settings.model.timeout = timedelta(seconds=90)
    settings.guards.check_every = timedelta(seconds=0.2)
    settings.guards.use_jtop = False
    for key, value in model.items():
        setattr(settings.model, key, value)
    return settings

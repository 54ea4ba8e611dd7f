# One command to set up and start the daemon (`make run`), one to pass the tests (`make test`).
.PHONY: setup run test lint bench

setup:
	scripts/setup.sh

run: setup
	.venv/bin/chime run

test:
	scripts/system-deps.sh
	CHIME_EXTRAS=llm,cuda,desktop,jetson,web,test scripts/setup.sh
	.venv/bin/ruff check daemon tests bench
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check daemon tests bench
	.venv/bin/mypy daemon

bench:
	.venv/bin/python bench/delivery.py
	.venv/bin/python bench/planning.py
	.venv/bin/python bench/idle_rss.py
	.venv/bin/python bench/writes.py --minutes 16
	.venv/bin/python bench/web.py

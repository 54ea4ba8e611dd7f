"""The web page and JSON API (`chime web`), a process of its own next to the daemon.

This package's ``__init__`` imports nothing: the daemon's outputs import ``daemon.web.token``
(to put the token in a phone's action buttons) without loading Starlette, Jinja2 or uvicorn,
which live in ``daemon.web.server`` and come with the ``[web]`` extra.
"""

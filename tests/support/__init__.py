"""Shared test support, as ordinary modules (``from support.world import SUB``): the documented default
world's IDs, timing helpers. ``pyproject.toml`` puts ``tests/`` on ``sys.path`` for pytest."""

"""Shared paths and fixtures for every test layer."""

import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
for sub in ("_modules", "_states"):
    if str(REPO / sub) not in sys.path:
        sys.path.insert(0, str(REPO / sub))


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def defaults_text():
    return (REPO / "salt/cluster/parameters/defaults.yaml").read_text()


def pytest_unconfigure(config):
    """Salt queues early log records in a deferred handler bound to the
    stream pytest captured; drop them so exit does not write to a closed file
    (pytest already reported what mattered)."""
    import logging

    from salt._logging.handlers import DeferredStreamHandler

    for handler in logging.root.handlers:
        if isinstance(handler, DeferredStreamHandler):
            handler._DeferredStreamHandler__messages.clear()

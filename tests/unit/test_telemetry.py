"""Logs never carry patron text, whatever the configured level."""

from __future__ import annotations

import logging

from shared import telemetry


def test_debug_logging_leaves_the_drivers_quiet():
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    try:
        telemetry.setup("tests", "DEBUG")
        assert root.level == logging.DEBUG
        # PyMongo's command log at DEBUG holds each command's documents: a patron's
        # question and email address.
        for name in ("pymongo.command", "pymongo", "nats.aio.client"):
            assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    finally:
        root.handlers[:], level = before
        root.setLevel(level)
        for name in telemetry.QUIET:
            logging.getLogger(name).setLevel(logging.NOTSET)

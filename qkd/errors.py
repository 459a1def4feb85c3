"""Errors of the qkd package: one root, a branch per subsystem."""

from __future__ import annotations


class QkdError(Exception):
    """Root of every error raised by :mod:`qkd`."""


class ConfigError(QkdError, ValueError):
    """A channel, source or protocol parameter is out of range."""


class ReconciliationError(QkdError):
    """Error correction could not make the two blocks equal."""

"""Errors raised by the benchmark tool; the CLI prints them as one line.

OtelbenchError            exit 1: something failed while running
├── UsageError            exit 2: a bad flag, value or file given by the user
│   ├── ConfigError       a config file or field is invalid
│   └── DatasetError      a dataset cannot be read or parsed
└── ProviderError         an endpoint is unreachable or answered unexpectedly
"""

from __future__ import annotations


class OtelbenchError(Exception):
    """Root of the tool's errors; the message is shown to the user as one line."""

    exit_code = 1


class UsageError(OtelbenchError):
    """The user gave a bad flag, value or file."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file or field is invalid."""


class DatasetError(UsageError):
    """A dataset cannot be read or parsed."""


class ProviderError(OtelbenchError):
    """A provider endpoint is unreachable or misbehaves."""

"""The desired-state file: schema, loading, validation with precise error paths.

The layers inside, lowest first: ``files`` (the one safe read of a file that may have been swapped),
``model`` (the frozen dataclasses the rest of the monitor reads),
``yamltree`` (YAML text to values with line numbers), ``problems`` (the one problems collector of a
load), ``shapes``, ``values`` and ``secrets`` (reader functions, one value each), ``apps``, ``alerting``
and ``document`` (the sections), ``loader`` (the file, and the one ConfigError).
"""

from monitor.config.loader import MAX_FILE_BYTES, load_config, load_config_text
from monitor.config.model import (
    MAX_SECRET_BYTES,
    Alerting,
    AlertmanagerSink,
    AppConfig,
    Config,
    Limits,
    Policy,
    SecretRef,
    UnexpectedCommands,
    WebhookSink,
)
from monitor.config.shapes import parse_duration
from monitor.config.values import (
    FINDING_KINDS,
    MAX_INTERVAL,
    MAX_TIMEOUT,
    MIN_INTERVAL,
    VENDOR_RATE,
    VENDOR_TIMEOUT,
)
from monitor.config.yamltree import MAX_DEPTH, MAX_NODES

__all__ = [
    "FINDING_KINDS",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INTERVAL",
    "MAX_NODES",
    "MAX_SECRET_BYTES",
    "MAX_TIMEOUT",
    "MIN_INTERVAL",
    "VENDOR_RATE",
    "VENDOR_TIMEOUT",
    "Alerting",
    "AlertmanagerSink",
    "AppConfig",
    "Config",
    "Limits",
    "Policy",
    "SecretRef",
    "UnexpectedCommands",
    "WebhookSink",
    "load_config",
    "load_config_text",
    "parse_duration",
]

"""callback-monitor: watches Tencent RTC room callback configurations for drift."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("callback-monitor")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

"""The installed distribution's version (``dememo-bench --version``)."""

from importlib import metadata

try:
    __version__ = metadata.version("dememo")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

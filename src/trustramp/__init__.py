"""trustramp: is this AI feature ready for the next step of its rollout, and at which thresholds?"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("trustramp")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

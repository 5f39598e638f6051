"""trustramp: is this AI feature ready for the next step of its rollout, and at which thresholds?"""

import os
from importlib.metadata import PackageNotFoundError, version

# Arrow's default allocator (mimalloc) hands freed memory back to the system and faults it in
# again: on the 2-core VM of benchmarks/README.md a cached 1M evaluation's first call in a fresh
# process took 2.0-2.7 s with it and 1.1 s with the system allocator (five runs each). Set before
# pyarrow allocates anything, that is when trustramp is imported first; a user's own choice wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

try:
    __version__ = version("trustramp")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

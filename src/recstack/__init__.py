"""recstack: cross-stack characterization of deep recommendation inference."""

import os as _os

# numpy's OpenBLAS threads spin while torch runs and steal the cores inference is measured
# on; this must be set before numpy is first imported to have any effect.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"

"""`python -m tenfold_runtime.cache FLAGS`: the sidecar without the tenfold-runtime CLI."""

import sys

from tenfold_runtime.cache.cli import main

sys.exit(main(sys.argv[1:]))

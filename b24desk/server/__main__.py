"""``python -m b24desk.server [options]``: kept as an alias of ``python -m web.server`` (the server
entry moved to the web layer, which the core must not import): it runs that module with the same
arguments, in place of this process."""

import os
import sys

os.execv(sys.executable, [sys.executable, "-m", "web.server", *sys.argv[1:]])

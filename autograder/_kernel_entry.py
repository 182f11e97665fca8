"""Inside the sandbox: lock the process down, then become an IPython kernel.

Run by :mod:`autograder.kernel_jail` as ``python _kernel_entry.py TOOLS`` where
TOOLS holds ``connection.json``, ``limits.json`` and ``_lockdown.py``. The
resource limits and the seccomp filter are in place before the kernel opens
its sockets or starts a thread, so every thread and every cell runs under them.
"""

import importlib.util
import json
import os
import sys


def main() -> None:
    tools = sys.argv[1]
    loader = importlib.util.spec_from_file_location("_lockdown",
                                                    os.path.join(tools, "_lockdown.py"))
    lockdown = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(lockdown)
    with open(os.path.join(tools, "limits.json")) as handle:
        lockdown.set_limits(json.load(handle))
    # Trusted imports first (what the kernel itself needs), then no way back.
    from ipykernel.kernelapp import IPKernelApp
    lockdown.lock_down(local_sockets=True)
    sys.path[0] = ""  # the notebook's folder, as in a normal kernel, not this one
    app = IPKernelApp.instance()
    app.initialize(["-f", os.path.join(tools, "connection.json")])
    app.start()


if __name__ == "__main__":
    main()

"""Worker processes that end with the process that started them.

The daily run renders in spawned workers and `digest train` searches weights in one.
If the parent is killed (say with -9), an orphaned worker would wait forever on its
task queue, holding memory and the run's stdout and stderr open.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Exit as soon as the run that started this worker is gone (say, killed with -9).

    An orphaned worker would otherwise wait forever on its task queue, holding the
    run's stdout and stderr open. On Linux the kernel sends SIGKILL when the parent
    dies (PR_SET_PDEATHSIG); elsewhere a thread watches the parent id.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()

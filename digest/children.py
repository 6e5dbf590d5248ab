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
#: glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Allocations below this come from the heap, and the heap keeps up to this much free
#: (glibc accepts an mmap threshold up to 32 MiB on 64-bit systems).
_HEAP_KEEP = 32 * 2**20


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


def keep_heap() -> None:
    """Let this process reuse its freed memory for large buffers instead of the kernel's.

    A render worker makes each reader's email, feeds and post (about 200 KB) and hands a
    chunk of them (a few MB) back to the parent, which copies them out. glibc serves such
    sizes with a fresh mmap each time and unmaps them when freed, so every chunk paid
    again for zeroed pages: about 75 page faults per reader in a worker, a tenth of its
    CPU in the kernel. Served from the heap and kept there when freed, the same memory is
    reused: a process holds up to `_HEAP_KEEP` more than it would. A no-op where the C
    library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        # Setting the trim threshold alone would pin the mmap threshold at its default,
        # the opposite of the aim: only when glibc took the first (1) set the second.
        if libc.mallopt(_M_MMAP_THRESHOLD, _HEAP_KEEP) == 1:
            libc.mallopt(_M_TRIM_THRESHOLD, _HEAP_KEEP)

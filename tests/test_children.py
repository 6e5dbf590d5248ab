"""Worker processes end with the process that started them, even one killed with -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

# A parent that starts one spawned worker the way digest does (`initializer`), gives it
# a long task, prints the worker's pid and waits to be killed.
PARENT = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
{setup}
if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer={init},
                               initargs=({args}))
    pool.submit(time.sleep, 120)
    while not pool._processes:
        time.sleep(0.05)
    print(next(iter(pool._processes)), flush=True)
    time.sleep(120)
"""

WORKERS = {
    "weight search": ("from digest import tuning", "tuning._search_worker", "os.getpid(),"),
    "render": (
        "from datetime import datetime\nfrom digest.render import bundle\n"
        "ctx = bundle.RenderContext(sender='d <d@example.org>', list_id='example.org',"
        " now=datetime(2026, 3, 11))",
        "bundle._init",
        "ctx, os.getpid()",
    ),
}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("kind", sorted(WORKERS))
def test_a_worker_dies_with_its_killed_parent(kind: str) -> None:
    setup, init, args = WORKERS[kind]
    code = PARENT.format(setup=setup, init=init, args=args)
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        time.sleep(0.5)  # let the worker finish its initializer
        assert _alive(worker)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), f"the {kind} worker outlived its parent"
    finally:
        parent.kill()


# Pickles fifty chunks of sixteen large buffers, as a render worker pickles its results,
# with or without `keep_heap` first, and prints the page faults that cost.
CHURN = """
import pickle, resource, sys
from digest.children import keep_heap
if sys.argv[1] == "keep":
    keep_heap()
results = [bytes([n]) * (50_000 + 7_000 * n) for n in range(16)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for n in range(50):
    chunk = pickle.dumps([result + b"." for result in results])
    del chunk
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_a_worker_that_keeps_its_heap_reuses_large_buffers() -> None:
    """A worker's large buffers (a chunk of emails, pickled) come back from its own heap:
    without `keep_heap` glibc maps each anew and the kernel faults it in page by page."""

    def faults(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, cwd=ROOT,
            check=True,
        )  # fmt: skip
        return int(done.stdout)

    fresh, kept = faults("fresh"), faults("keep")
    assert fresh > 50 * 200  # each chunk's buffers faulted in afresh
    assert kept < fresh / 10

"""Cold page cache: a data case run again right after the kernel dropped its clean pages.

An image store is read from disk far more often than from RAM (issue 15 item 4): a freshly
uploaded image's first download, the first boot of an image on a host. The warm cases read
the same file every round, so they measure memory bandwidth and CPU; these measure the disk.
Before each cold case every dirty page is written (`sync`) and `/proc/sys/vm/drop_caches` is
given 3 (page cache, dentries, inodes), so the case starts with nothing of its files in RAM -
nor of the services' own code, which is what a service that has been idle a while finds.
Writing there needs root; elsewhere each cold case is skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from bench.harness import Case, Sample, Target

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
SUFFIX = "_cold"
UNAVAILABLE = "cold cache unavailable"


def unavailable() -> str | None:
    """Why caches cannot be dropped here, or None."""
    if os.geteuid() != 0:
        return f"{UNAVAILABLE}: writing {DROP_CACHES} needs root"
    if not os.access(DROP_CACHES, os.W_OK):
        return f"{UNAVAILABLE}: {DROP_CACHES} is not writable (read-only /proc?)"
    return None


def drop_caches() -> None:
    os.sync()  # drop_caches only drops clean pages
    DROP_CACHES.write_text("3\n")


def cold(case: Case) -> Case:
    """The same case, `<key>_cold`, run with the page cache dropped just before it."""

    def run() -> Sample:
        drop_caches()
        return case.run()

    return dataclasses.replace(case, key=case.key + SUFFIX, label=f"{case.label}, cold cache",
                               run=run, skip=case.skip or unavailable())


def cold_cases(cases: list[Case], keys: set[str]) -> list[Case]:
    """Cold copies of the cases named in `keys`, in the order of `cases`."""
    return [cold(case) for case in cases if case.key in keys]


def cold_targets(targets: list[Target], keys: set[str]) -> list[Target]:
    """Each target between cases that were all copied cold, again between the cold copies,
    labelled "cold:"; goals are kept (a ratio of two cold cases means what the warm one does)."""
    copied = []
    for target in targets:
        if target.a not in keys or (target.b is not None and target.b not in keys):
            continue
        copied.append(dataclasses.replace(
            target, label=f"cold: {target.label}", a=target.a + SUFFIX,
            b=None if target.b is None else target.b + SUFFIX))
    return copied

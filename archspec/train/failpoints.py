"""Failpoints: places in the code where a test stops the process at a chosen moment, deterministically, instead of
watching it from outside for a window of time that a loaded machine can miss. Armed only by the test-only
environment variable ARCHSPEC_TEST_FAILPOINT=POINT:VALUE:NTH:SIGNAL, e.g. `checkpoint:50:3:KILL`: the third time
this process completes the checkpoint of step 50, it sends itself SIGKILL (INT: a Ctrl-C; STOP: it stops,
holding what it holds, until the test sends SIGCONT, which a parent sees at once with os.waitpid(pid,
os.WUNTRACED)). Unset, `reached` costs one dictionary lookup."""
from __future__ import annotations

import os
import signal
from collections import Counter

VARIABLE = "ARCHSPEC_TEST_FAILPOINT"
#: `checkpoint`: a checkpoint's files are complete (VALUE: its step); `step`: a training step and any checkpoint of it
#: are done (VALUE: the global step); `record`: `pack` has written a record (VALUE: its number)
POINTS = ("checkpoint", "step", "record")
_passes: Counter[tuple[str, int]] = Counter()  # state: times each (point, value) was reached in this process


def reached(point: str, value: int) -> None:
    """Mark that the process is at `point` with `value`; stops it there when a test armed that moment."""
    armed = os.environ.get(VARIABLE)
    if not armed:
        return
    name, at, nth, sig = _parse(armed)
    if (name, at) != (point, value):
        return
    _passes[point, value] += 1
    if _passes[point, value] == nth:
        os.kill(os.getpid(), sig)


def _parse(armed: str) -> tuple[str, int, int, signal.Signals]:
    parts = armed.split(":")
    if len(parts) != 4 or parts[0] not in POINTS or not parts[1].isdigit() or not parts[2].isdigit() \
            or parts[3] not in ("KILL", "INT", "STOP"):
        raise ValueError(f"{VARIABLE}={armed!r}: expected POINT:VALUE:NTH:KILL|INT|STOP with POINT one of "
                         f"{', '.join(POINTS)}")
    return parts[0], int(parts[1]), int(parts[2]), signal.Signals[f"SIG{parts[3]}"]

"""Run media work in a child process with a time limit.

OpenCV's decoders can hang or crash on hostile files (opencv#22126). Each video is decoded in
its own Python process, so a hang costs at most that file's time limit and a crash costs only
that file: the caller gets an ``Outcome`` saying which, and the other videos of the run go on.

The child is a plain ``python -c`` process fed a pickled call on stdin (not multiprocessing's
spawn, which re-imports the caller's ``__main__`` and breaks scripts without a main guard).
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import subprocess
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

_CHILD = "from verify.media.isolate import _child_main; _child_main()"
log = logging.getLogger(__name__)


@dataclass
class Outcome:
    ok: bool
    value: Any = None
    error: str = ""  # one line for the user when not ok
    detail: str = ""  # the child's traceback, for --debug
    unexpected: bool = False  # the child raised something other than a VerifyError: a bug, not the file's fault


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this child when its parent dies (a killed verify must not leave a decoder running);
    if the parent is already gone, leave now."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's time limit still bounds the child
        pass
    if os.getppid() != parent:
        os._exit(1)


def _child_main() -> None:
    _die_with_parent(int(os.environ.get("VERIFY_PARENT_PID", "0")) or os.getppid())
    module, name, args = pickle.load(sys.stdin.buffer)
    result_fd = os.dup(1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the result
    try:
        func = getattr(importlib.import_module(module), name)
        outcome = Outcome(True, func(*args))
    except Exception as exc:  # becomes this file's failure in the parent
        from verify.errors import VerifyError

        line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        outcome = Outcome(False, error=line, detail=traceback.format_exc(), unexpected=not isinstance(exc, VerifyError))
    with os.fdopen(result_fd, "wb") as result:
        result.write(pickle.dumps(outcome))


def run_isolated(func: Callable, args: tuple, timeout: float) -> Outcome:
    """Call the module-level ``func(*args)`` in a fresh process; never raises for the child's failures."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    env.setdefault("OPENCV_LOG_LEVEL", "OFF")
    env.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    env["VERIFY_PARENT_PID"] = str(os.getpid())
    payload = pickle.dumps((func.__module__, func.__name__, args))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, start_new_session=True,
    )
    try:
        out, err = child.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return Outcome(False, error=f"gave up after {timeout:g} s (decoder hung?)")
    if child.returncode == 0:
        try:
            return pickle.loads(out)
        except Exception:
            pass
    code = child.returncode
    how = f"signal {-code}" if code < 0 else f"exit code {code}"
    return Outcome(False, error=f"the decoder crashed ({how})", detail=err.decode(errors="replace")[-2000:])


def map_isolated(
    func: Callable, jobs: Iterable[tuple], timeout: float, workers: int = 2
) -> Iterator[tuple[tuple, Outcome]]:
    """Run ``func`` on each argument tuple, ``workers`` at a time; yield (args, outcome) as they finish."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(run_isolated, func, args, timeout): args for args in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()



def report_failure(what: str, outcome: Outcome, shown: bool = False) -> None:
    """Log a failed child: a file verify refused is a warning; anything else is an error (a bug to fix).

    ``shown``: the caller reports the refusal to the user itself (a FAIL line), so it is logged at INFO only: a
    warning would print the same reason a second time, bare, above the FAIL line."""
    if outcome.unexpected:
        log.error("%s: unexpected failure in the media child process: %s\n%s", what, outcome.error, outcome.detail)
    else:
        log.log(logging.INFO if shown else logging.WARNING, "%s: %s", what, outcome.error)

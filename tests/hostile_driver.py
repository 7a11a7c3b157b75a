"""Run several `alloy` and `foundry` commands for one test case in one interpreter.

`python tests/hostile_driver.py SCRATCH TIMEOUT COMMANDS_JSON` imports both command lines once,
then runs each command (`["alloy", "check"]`, ...) in a forked child process of its own, with
stdout and stderr in files under SCRATCH. A child still running after TIMEOUT seconds is killed
and reported as hung: a hang fails the test rather than blocking it. Printed: one JSON list of
`{"code", "out", "err", "hung"}`, in the order of the commands. Importing the command lines is
most of what a command costs on a small repository; forking skips it for every command but the
first (tests/test_hostile_inputs.py).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


def _child(prog: str, args: list[str], out: Path, err: Path) -> None:
    """In the forked child: the command, its output in files, then exit with its code."""
    code = 70
    try:
        with out.open("wb") as fo, err.open("wb") as fe:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(fo.fileno(), 1)
            os.dup2(fe.fileno(), 2)
        sys.argv = [prog, *args]
        try:
            if prog == "alloy":
                from alloy.cli import main as alloy_main

                alloy_main(args)
            else:
                from foundry.cli import main as foundry_main

                foundry_main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # noqa: BLE001 - reported as the child's output
        sys.stderr.write(f"driver: {type(exc).__name__}: {exc}\n")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run(prog: str, args: list[str], scratch: Path, index: int, timeout: float) -> dict[str, Any]:
    out, err = scratch / f"{index}.out", scratch / f"{index}.err"
    pid = os.fork()
    if pid == 0:
        _child(prog, args, out, err)
    deadline = time.monotonic() + timeout
    hung = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            hung = True
            # The child's own children (git) are in its process group only if it made one;
            # killing the child is enough for a hang in open() or read().
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = 0
            break
        time.sleep(0.005)
    code = os.waitstatus_to_exitcode(status) if not hung else -9
    return {
        "code": code,
        "out": out.read_text("utf-8", "replace") if out.exists() else "",
        "err": err.read_text("utf-8", "replace") if err.exists() else "",
        "hung": hung,
    }


def main() -> None:
    scratch, timeout, commands = Path(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
    # Import both command lines (and what they import lazily) before forking.
    import alloy.cli
    import alloy.review
    import alloy.workspace
    import controllers.git
    import foundry.cli
    import foundry.workspace

    del alloy, controllers, foundry
    results = [
        _run(command[0], command[1:], scratch, i, timeout) for i, command in enumerate(commands)
    ]
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    main()

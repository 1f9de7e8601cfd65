"""Start ComfyUI's main.py in this process, tied to the harness that launched it.

Run by the runtime venv's Python:

    python launch.py --watch-stdin|--detached|--idle <folder> <ComfyUI dir> -- <arguments>

With ``--watch-stdin`` a thread blocks on standard input, which is a pipe from the harness.
When the harness exits for any reason -- a clean stop, Ctrl-C, ``kill -9``, a crash -- the
kernel closes that pipe, the read returns, and this process ends at once: a managed server
never outlives its test run. ``--detached`` (``comfytest runtime start``) skips the watch.
``--idle <folder>`` (a reusable server, comfytest/runtime/reuse.py) exits instead once no
live process holds a lease in ``<folder>/leases`` and ``<folder>/last_used`` is older
than ``<folder>/idle_s`` seconds, removing the folder, while it holds ``<folder>.lock``.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import shutil
import sys
import threading
import time


def _exit_when_parent_goes() -> None:
    try:
        while sys.stdin.buffer.read(65536):
            pass
    finally:
        os._exit(0)


def _leased(leases: str) -> bool:
    """Whether a live process holds a lease (a dead one's lease is removed)."""
    try:
        names = os.listdir(leases)
    except OSError:
        return False
    alive = False
    for name in names:
        try:
            os.kill(int(name), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(leases, name))
            continue
        except (ValueError, PermissionError):
            pass
        alive = True
    return alive


def _exit_when_idle(folder: str) -> None:
    import fcntl

    began = time.time()
    while True:
        time.sleep(1.0)
        try:
            with open(os.path.join(folder, "idle_s")) as handle:
                idle = float(handle.read())
        except (OSError, ValueError):
            idle = 900.0
        with open(folder.rstrip("/") + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _leased(os.path.join(folder, "leases")):
                continue
            try:
                last = os.stat(os.path.join(folder, "last_used")).st_mtime
            except OSError:
                last = began
            if time.time() - max(last, began) < idle:
                continue
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, "server.json"))  # no later run finds it
            shutil.rmtree(folder, ignore_errors=True)
            sys.stdout.flush()
            os._exit(0)  # the lock goes with the process


def main() -> None:
    argv = sys.argv[1:]
    folder = None
    if argv[:1] == ["--idle"] and len(argv) > 1:
        folder, argv = os.path.abspath(argv[1]), ["--idle", *argv[2:]]
    mode, comfyui_dir, separator, *args = argv
    if separator != "--" or mode not in ("--watch-stdin", "--detached", "--idle"):
        sys.exit("usage: launch.py --watch-stdin|--detached|--idle DIR <ComfyUI dir> -- <args>")
    if mode == "--watch-stdin":
        threading.Thread(target=_exit_when_parent_goes, name="parent-watch", daemon=True).start()
    if folder is not None:
        threading.Thread(
            target=_exit_when_idle, args=(folder,), name="idle-exit", daemon=True
        ).start()
    comfyui_dir = os.path.abspath(comfyui_dir)
    if folder is not None:
        os.chdir(comfyui_dir)  # spawned without a working folder of its own
    sys.path.insert(0, comfyui_dir)
    main_py = os.path.join(comfyui_dir, "main.py")
    sys.argv = [main_py, *args]
    try:
        runpy.run_path(main_py, run_name="__main__")
    except SystemExit as exc:
        if mode != "--watch-stdin":
            raise
        # End at once, as the watch does: a normal interpreter shutdown would wait on the
        # watch thread's read of stdin and abort ("could not acquire lock for <stdin>").
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()

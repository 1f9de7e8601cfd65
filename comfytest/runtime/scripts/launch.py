"""Start ComfyUI's main.py in this process, tied to the harness that launched it.

Run by the runtime venv's Python:

    python launch.py --watch-stdin|--detached <ComfyUI dir> -- <main.py arguments>

With ``--watch-stdin`` a thread blocks on standard input, which is a pipe from the harness.
When the harness exits for any reason -- a clean stop, Ctrl-C, ``kill -9``, a crash -- the
kernel closes that pipe, the read returns, and this process ends at once: a managed server
never outlives its test run. ``--detached`` (``comfytest runtime start``) skips the watch.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading


def _exit_when_parent_goes() -> None:
    try:
        while sys.stdin.buffer.read(65536):
            pass
    finally:
        os._exit(0)


def main() -> None:
    mode, comfyui_dir, separator, *args = sys.argv[1:]
    if separator != "--" or mode not in ("--watch-stdin", "--detached"):
        sys.exit("usage: launch.py --watch-stdin|--detached <ComfyUI dir> -- <args>")
    if mode == "--watch-stdin":
        threading.Thread(target=_exit_when_parent_goes, name="parent-watch", daemon=True).start()
    comfyui_dir = os.path.abspath(comfyui_dir)
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

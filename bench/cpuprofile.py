"""``python -m bench.cpuprofile OUT MODULE ARGS...``: run MODULE under cProfile on CPU time.

cProfile's default clock is wall time, which counts the time the server waited
for the CPU while other processes ran; on a shared machine that swamps the
differences being looked for. ``time.process_time`` counts only this process.
The stats are written to OUT when the module exits (SIGTERM ends the servers
cleanly).
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, module, *rest = sys.argv[1:]
    sys.argv = [module, *rest]
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        prof.disable()
        prof.dump_stats(out)


if __name__ == "__main__":
    main()

"""Start a command from a small address space and report its rusage (fallback for GNU time).

    python -I -S bench/launch.py USAGE_FILE COMMAND [ARGS...]

Writes "<peak RSS KiB> <user s> <system s>" of COMMAND (and the descendants
it reaped) to USAGE_FILE, in GNU time's ``-f "%M %U %S"`` format, and exits
with COMMAND's exit status. See measure.py for why a launcher is needed.
Standard library only, no site packages: the smaller this process, the
lower the floor it puts under the measured peak RSS.
"""

import os
import sys


def main() -> int:
    usage_file, argv = sys.argv[1], sys.argv[2:]
    pid = os.posix_spawnp(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    with open(usage_file, "w") as f:
        f.write(f"{usage.ru_maxrss} {usage.ru_utime:.3f} {usage.ru_stime:.3f}\n")
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())

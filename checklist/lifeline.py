"""A command job's processes die with the worker that started them, and with a lost run.

The worker starts a command as ``python -m checklist.lifeline FD -- ARGV...`` in a new session,
so this shim leads the command's process group. It holds the reading end of a pipe whose
writing end only the worker's job holds (the lifeline, as the engine's own workers have): when
the worker dies for any reason, SIGKILL included, the pipe reads EOF and the shim kills the
whole group, grandchildren too. When the command ends by itself, whatever it left running in
its group is killed as well, so a finished run leaves no process behind.

While the command runs, a small file beside the job's work (`record_group`) names the host,
the group and the leader's start time; marking the run lost kills that group (`kill_recorded_group`),
checking the start time so a recycled pid is never hit. Plain Python (no Django): the shim is
its own short-lived interpreter.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path


def start_time(pid: int):
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def record_group(path: Path, pgid: int) -> None:
    path.write_text(json.dumps({"host": socket.gethostname(), "pgid": pgid, "start": start_time(pgid)}))


def kill_recorded_group(path: Path) -> bool:
    """Kill the process group `path` names, if it is still the one recorded; True if killed."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    killed = False
    if data.get("host") == socket.gethostname() and start_time(data["pgid"]) == data.get("start"):
        try:
            os.killpg(data["pgid"], signal.SIGKILL)
            killed = True
        except ProcessLookupError:
            pass
    Path(path).unlink(missing_ok=True)
    return killed


def _others_in_group() -> list[int]:
    me, group = os.getpid(), os.getpgrp()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me:
            try:
                if os.getpgid(int(entry)) == group:
                    out.append(int(entry))
            except ProcessLookupError:
                pass
    return out


def main(argv: list[str]) -> int:
    fd = int(argv[0])
    command = argv[2:] if argv[1:2] == ["--"] else argv[1:]

    def watch():
        while os.read(fd, 1):  # nobody writes; EOF means the worker is gone
            pass
        os.killpg(0, signal.SIGKILL)  # the whole group, this shim included

    try:
        child = subprocess.Popen(command)  # in our group; stdout/stderr are ours
    except OSError as exc:
        print(f"cannot start {command[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    threading.Thread(target=watch, daemon=True).start()
    code = child.wait()
    for pid in _others_in_group():  # what the command left running
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

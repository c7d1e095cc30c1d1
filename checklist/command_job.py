"""The command job: run a command an admin configured, like a runbook tool's script step.

The command runs in a subprocess with its working directory, a minimal environment plus the
secrets it names (taken from the worker's environment, injected, never logged) and a time limit.
Its stdout/stderr and exit code are the evidence; success is exit 0. It runs in a process group
of its own under `checklist/lifeline.py`, which kills the group when this worker dies (even by
SIGKILL) or when the command ends, so no process outlives its run.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

from django.conf import settings

from . import lifeline
from .job_context import JobCancelled, JobResult, group_file
from .models import CommandSpec

# Where a command without a working directory of its own runs, for a runbook: the app that
# keeps that setting registers it (deploychecks: the MINGUS checkout a lead pointed the runbook
# at, where the shipped init_db.py, performance_test.py, e2e_tests.py live).
DEFAULT_WORKDIRS = []


def _which(program, env):
    return shutil.which(program, path=env.get("PATH", os.defpath))


def default_workdir(runbook):
    """The first working directory a registered provider gives for this runbook, or ''."""
    for provider in DEFAULT_WORKDIRS:
        path = provider(runbook)
        if path:
            return path
    return ""


def command_job(ctx):
    name = ctx.run.kind.removeprefix("command:")
    spec = CommandSpec.named(name)
    if spec is None:
        return JobResult(ok=False, error=f"No command named '{name}' is configured (an admin "
                                         "adds commands in the admin).")
    env = {k: os.environ[k] for k in settings.COMMAND_JOB_ENV_PASSTHROUGH if k in os.environ}
    env.update({str(k): str(v) for k, v in spec.env.items()})
    secrets = []
    for key in spec.secret_env:
        if key in os.environ:
            env[key] = os.environ[key]
            secrets.append(os.environ[key])
    ctx._secrets.extend(s for s in secrets if s)
    workdir = spec.workdir or default_workdir(ctx.runbook) or str(ctx.workdir)
    out_path = ctx.workdir / f"command-{spec.name}-run{ctx.run.pk}.out"
    ctx.log(f"running {spec.name}: {' '.join(map(str, spec.argv))} in {workdir} "
            f"(time limit {spec.timeout_seconds}s)")
    started = time.monotonic()
    argv = [str(a) for a in spec.argv]
    # The shim below starts the program; refuse here what it could not start, in plain words.
    program = argv[0] if os.sep in argv[0] else _which(argv[0], env)
    if program and not os.path.isabs(program):
        program = os.path.join(workdir, program)
    if not os.path.isdir(workdir):
        return JobResult(ok=False, error=f"Could not start {spec.name}: no such working directory {workdir}")
    if not program or not os.access(program, os.X_OK):
        return JobResult(ok=False, error=f"Could not start {spec.name}: {argv[0]}: no such program")
    # Only this job holds the writing end: the shim sees EOF the moment this process dies.
    life_r, life_w = os.pipe()
    pgid_path = group_file(ctx.run)
    with open(out_path, "wb") as out:
        try:
            proc = subprocess.Popen([sys.executable, "-I", lifeline.__file__, str(life_r), "--", *argv],
                                    cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, pass_fds=(life_r,))
        except OSError as exc:
            os.close(life_w)
            return JobResult(ok=False, error=f"Could not start {spec.name}: {exc.strerror or exc}")
        finally:
            os.close(life_r)
        lifeline.record_group(pgid_path, proc.pid)
        timed_out = cancelled = False
        # Poll rather than block, so a cancel or the time limit stops the command promptly.
        while True:
            try:
                proc.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() - started > spec.timeout_seconds:
                timed_out = True
            elif ctx.should_cancel():
                cancelled = True
            else:
                continue
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
    os.close(life_w)
    pgid_path.unlink(missing_ok=True)
    elapsed = time.monotonic() - started
    # The stored output is the redacted one: a secret the command printed never reaches evidence.
    text = ctx.redact(out_path.read_bytes().decode("utf-8", errors="replace"))
    out_path.write_text(text, encoding="utf-8")
    for line in text.splitlines()[-50:]:
        ctx.log(f"| {line}")
    figures = {"exit_code": proc.returncode, "seconds": round(elapsed, 3), "timed_out": timed_out}
    report = {"command": spec.name, "argv": [ctx.redact(a) for a in spec.argv],
              "workdir": workdir, **figures}
    if cancelled:
        raise JobCancelled()
    if timed_out:
        return JobResult(ok=False, report=report, artifacts=[out_path], figures=figures,
                         error=f"{spec.name} ran past its {spec.timeout_seconds}s limit and was killed.")
    if proc.returncode != 0:
        return JobResult(ok=False, report=report, artifacts=[out_path], figures=figures,
                         error=f"{spec.name} exited with code {proc.returncode}.")
    return JobResult(ok=True, report=report, artifacts=[out_path], figures=figures,
                     summary=f"{spec.name} exited 0 in {elapsed:.1f}s")

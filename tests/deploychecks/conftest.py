"""Real local services for the deployment checks: a PKI, a TLS PostgreSQL cluster, fresh
`chk_` databases on the main server, and the test site under gunicorn over TLS.

Nothing here sleeps to synchronise: PostgreSQL is started with `pg_ctl -w` (which waits for
readiness) and gunicorn is waited on by polling its port.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import certs
from .databases import fresh_database

PG_BIN = Path("/usr/lib/postgresql/15/bin")
HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Poll until something accepts on 127.0.0.1:port; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # poll interval, not a guess at readiness
    raise RuntimeError(f"nothing listened on port {port} within {timeout}s")


@dataclass
class PKI:
    directory: Path
    ca_file: Path
    server: certs.Issued
    expired: certs.Issued
    other_ca_file: Path  # a CA that signed nothing we serve


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> PKI:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert, ca_file = certs.make_ca(directory)
    _, _, other = certs.make_ca(directory, "unrelated test CA")
    return PKI(directory, ca_file,
               certs.issue(directory, ca_key, ca_cert, "server"),
               certs.issue(directory, ca_key, ca_cert, "expired", expired=True),
               other)


# --- A second PostgreSQL cluster with TLS ----------------------------------------------------

@dataclass
class TLSPostgres:
    port: int
    password: str
    ca_file: Path

    def url(self, password=None, user="root", dbname="postgres", host="127.0.0.1") -> str:
        pw = self.password if password is None else password
        return f"postgres://{user}:{pw}@{host}:{self.port}/{dbname}"


def _as_postgres_user(args, **kwargs):
    """Run a PostgreSQL binary; as root through runuser, since initdb refuses to run as root."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="session")
def tls_postgres(pki) -> TLSPostgres:
    """initdb + pg_ctl into a fresh /tmp directory, ssl = on with the test CA's server cert.

    The directory is made with tempfile (not pytest's tmp_path, whose parents are private to
    root) and handed to the postgres user when the tests run as root.
    """
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"SKIPPED LOUDLY: {PG_BIN}/initdb is missing, cannot run a TLS PostgreSQL "
                    "cluster; install postgresql-15 to run the connectivity tests")
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("SKIPPED LOUDLY: running as root and there is no 'postgres' user to "
                        "run initdb as")
    base = Path(tempfile.mkdtemp(prefix="chk_pg_tls_"))
    data = base / "data"
    password = secrets.token_urlsafe(18)
    shutil.copy(pki.server.cert_file, base / "server.crt")
    shutil.copy(pki.server.key_file, base / "server.key")
    (base / "pwfile").write_text(password + "\n")
    os.chmod(base / "server.key", 0o600)
    if os.geteuid() == 0:
        for path in (base, base / "server.crt", base / "server.key", base / "pwfile"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    result = _as_postgres_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", "root",
                                f"--pwfile={base / 'pwfile'}", "--auth-host=scram-sha-256",
                                "--auth-local=trust", "--no-sync", "-E", "UTF8"])
    assert result.returncode == 0, f"initdb failed: {result.stderr}"
    port = None
    for _ in range(3):  # a port picked free can be taken before the server binds it
        port = free_port()
        with open(data / "postgresql.auto.conf", "a") as conf:
            conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{base}'\nssl = on\n"
                       f"ssl_cert_file = '{base / 'server.crt'}'\n"
                       f"ssl_key_file = '{base / 'server.key'}'\n"
                       "max_connections = 40\nfsync = off\nshared_buffers = 16MB\n"
                       # the app-database job judges pg_stat_statements (tests/proof)
                       "shared_preload_libraries = 'pg_stat_statements'\n")
        started = _as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l",
                                     str(base / "server.log"), "-w", "-t", "60", "start"])
        if started.returncode == 0:
            break
    else:
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start the TLS PostgreSQL cluster: {started.stderr}\n{log}")
    try:
        yield TLSPostgres(port, password, pki.ca_file)
    finally:
        _as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)


# --- Fresh databases on the main server ------------------------------------------------------

@pytest.fixture
def chk_database():
    """A factory of fresh `chk_` databases on the main server, all dropped afterwards."""
    with contextlib.ExitStack() as stack:
        yield lambda prefix="chk_dc": stack.enter_context(fresh_database(prefix))


# --- The test site under gunicorn ------------------------------------------------------------

@dataclass
class Site:
    url: str          # https, certificate signed by the test CA
    expired_url: str  # https, certificate expired
    http_url: str     # plain http, redirects to `url`
    plain_url: str    # plain http that does not redirect (the TLS site's app over http)
    ca_file: Path


def _gunicorn(port, log_file, cert=None, env_extra=None) -> subprocess.Popen:
    args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
            "--threads", "8", "--chdir", str(HERE), "--log-level", "warning"]
    if cert is not None:
        args += ["--certfile", str(cert.cert_file), "--keyfile", str(cert.key_file)]
    env = dict(os.environ)
    env.pop("SITE_REDIRECT_TO", None)
    env.update(env_extra or {})
    with open(log_file, "ab") as log:
        process = subprocess.Popen(args + ["site_app:application"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
    except RuntimeError as exc:
        process.kill()
        raise RuntimeError(f"{exc}; gunicorn log: {Path(log_file).read_text()[-2000:]}") from None
    return process


@pytest.fixture(scope="session")
def site(pki) -> Site:
    ports = [free_port() for _ in range(4)]
    url = f"https://127.0.0.1:{ports[0]}"
    processes = []
    try:
        log = pki.directory / "gunicorn.log"
        processes.append(_gunicorn(ports[0], log, pki.server))
        processes.append(_gunicorn(ports[1], log, pki.expired))
        processes.append(_gunicorn(ports[2], log, env_extra={"SITE_REDIRECT_TO": url}))
        processes.append(_gunicorn(ports[3], log))
        yield Site(url + "/", f"https://127.0.0.1:{ports[1]}/", f"http://127.0.0.1:{ports[2]}/",
                   f"http://127.0.0.1:{ports[3]}/", pki.ca_file)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

"""A real, throwaway PostgreSQL server for tests: initdb into a temp folder, loopback port.

Usage::

    with PostgresServer() as server:      # skips the test if PostgreSQL is missing
        store = PostgreSQLStore(server.url)

PostgreSQL refuses to run as root: when the tests run as root, the server runs
as the ``postgres`` user (Debian's package creates it), else as ``nobody``, and
its folder is handed to that user.  Set WEBFRAME_REQUIRE_SERVICES=1 (CI does)
to fail instead of skip when the programs are missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess

try:
    from tests.support.services import ServiceProcess, free_port, missing
except ModuleNotFoundError:  # tests/ is not a package and the rootdir is not on sys.path
    from support.services import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        ServiceProcess,
        free_port,
        missing,
    )

__all__ = ["PostgresServer", "find_postgres"]

START_TIMEOUT = 30.0


def find_postgres() -> str:
    """The folder holding ``initdb`` and ``postgres``, or skip (fail in CI)."""
    # Debian keeps the server programs off PATH, one folder per major version.
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb is None:
        missing("PostgreSQL server not installed: apt-get install postgresql")
    initdb = os.path.realpath(initdb)
    return os.path.dirname(initdb)


def _run_as() -> str | None:
    """The user to run PostgreSQL as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    missing("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


class PostgresServer(ServiceProcess):
    """One ``postgres`` process on a loopback port with a fresh cluster, trust auth."""

    user = "webframe"
    database = "postgres"

    def __init__(self) -> None:
        self.bindir = find_postgres()
        self.run_as = _run_as()
        super().__init__("webframe-pg-", "postgres.log")
        self.port = free_port()
        self.data = os.path.join(self._dir, "data")
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self._dir, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def _spawn(self, args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            args,
            user=self.run_as,
            cwd=self._dir,
            stdin=subprocess.DEVNULL,
            **kwargs,
        )

    def start(self) -> PostgresServer:
        """initdb (once), start the server and wait until it accepts connections."""
        if self.running:
            return self
        if not os.path.exists(self.data):
            init = self._spawn(
                [
                    os.path.join(self.bindir, "initdb"),
                    "-D",
                    self.data,
                    "-U",
                    self.user,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--no-instructions",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            out, _ = init.communicate(timeout=120)
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed:\n{out.decode(errors='replace')}")
        if self.run_as is not None:
            # The server appends to its log as the user it runs as.
            entry = pwd.getpwnam(self.run_as)
            with open(self._log_path, "ab"):
                pass
            os.chown(self._log_path, entry.pw_uid, entry.pw_gid)
        self._launch(
            [
                os.path.join(self.bindir, "postgres"),
                "-D",
                self.data,
                "-p",
                str(self.port),
                "-h",
                self.host,
                "-k",
                self._dir,
                # A test database: speed over durability.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            user=self.run_as,
            cwd=self._dir,
        )
        if self._wait_until(self._ready, START_TIMEOUT, 0.05):
            return self
        self.kill()
        raise RuntimeError(f"postgres did not start on port {self.port}:\n{self._log_tail()}")

    def _ready(self) -> bool:
        result = subprocess.run(
            [
                os.path.join(self.bindir, "pg_isready"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                self.database,
                "-t",
                "1",
            ],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def stop(self) -> None:
        """Fast shutdown (SIGINT); `start` brings it back with the same data."""
        self._stop(signal.SIGINT, 15)

    def close(self) -> None:
        self.stop()
        self._remove_dir()

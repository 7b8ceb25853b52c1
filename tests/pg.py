"""A real PostgreSQL for the tests: Debian's server started in a temporary directory.

Fixtures (registered in tests/conftest.py):

- ``pg_cluster`` (session): the server. Started on first use with ``initdb`` and ``pg_ctl``
  from ``pg_config --bindir`` or ``/usr/lib/postgresql/*/bin``, as the ``postgres`` user when
  the tests run as root, listening on a unix socket only (no port to clash), ``fsync`` off
  (test speed; the gateway's own durability settings are still sent). Stopped at the end.
  ``GATEWAY_TEST_POSTGRES_URL`` names an existing server instead (it needs CREATEDB).
  Without either the test is skipped with the reason, or fails under ``CI=true``.
- ``pg_url`` (function): a fresh database for one test, copied from a template database that
  already holds the outbox schema; a libpq URL that other processes can use too.

``PgCluster.new_database()`` makes more databases; ``PgCluster.restart()`` /
``stop()`` / ``start()`` are for fault tests (a database that goes away under load).
Outside pytest (a benchmark): ``cluster = PgCluster.start_local(fsync=True)``, then
``cluster.new_database()`` for a URL any process can use, and ``cluster.close()``.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

URL_VARIABLE = "GATEWAY_TEST_POSTGRES_URL"
BINDIR_VARIABLE = "GATEWAY_TEST_POSTGRES_BINDIR"  # pick one installed version's binaries
TEMPLATE = "wg_template"


def find_bindir() -> Path | None:
    """The newest installed server's binaries (or those ``$GATEWAY_TEST_POSTGRES_BINDIR``
    names), or None."""
    chosen = os.environ.get(BINDIR_VARIABLE, "").strip()
    if chosen:
        path = Path(chosen)
        return path if (path / "initdb").is_file() and (path / "pg_ctl").is_file() else None
    candidates: list[Path] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        candidates.append(Path(out))

    def version(path: str) -> int:
        part = Path(path).parent.name
        return int(part) if part.isdigit() else 0

    candidates += [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version)[::-1]
    ]
    for path in candidates:
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def _as_server_user() -> list[str]:
    """The prefix that runs a server command: ``initdb`` refuses to run as root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "tests run as root and there is no 'postgres' user to run the server as"
            " (install Debian's postgresql package)"
        ) from None
    return ["runuser", "-u", "postgres", "--"]


def _with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    query = f"?{parts.query}" if parts.query else ""
    # built by hand: urlunsplit drops the "//" of a URL without a host (a unix socket's)
    return f"{parts.scheme}://{parts.netloc}/{quote(dbname)}{query}"


class PgCluster:
    """A server the tests may create databases on; ``url`` reaches its maintenance database."""

    def __init__(self, url: str, directory: Path | None = None, bindir: Path | None = None):
        self.url = url
        self.directory = directory  # set when the tests started this server themselves
        self.bindir = bindir
        self._names = itertools.count(1)
        self._template_ready = False
        self._owned: list[str] = []

    # -- starting our own ---------------------------------------------------------------

    @classmethod
    def start_local(cls, bindir: Path | None = None, *, fsync: bool = False) -> PgCluster:
        """Start a server of our own; ``fsync=True`` for benchmarks (tests do not need it)."""
        bindir = bindir or find_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server binaries (install Debian's postgresql)")
        # a short path: a unix socket's path must fit in 107 bytes
        directory = Path(tempfile.mkdtemp(prefix="wgpg-", dir="/tmp"))
        prefix = _as_server_user()
        if prefix:
            shutil.chown(directory, "postgres", "postgres")
        data = directory / "data"
        try:
            subprocess.run(
                [*prefix, str(bindir / "initdb"), "-A", "trust", "-N", "-U", "postgres",
                 "-E", "UTF8", "--locale=C", "-D", str(data)],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(f"initdb failed: {exc.stderr.decode(errors='replace')}") from None
        settings = [
            "listen_addresses = ''",
            f"unix_socket_directories = '{directory}'",
            "max_connections = 200",
        ]
        if not fsync:  # test speed; the gateway's own synchronous_commit is still sent
            settings += ["fsync = off", "full_page_writes = off", "shared_buffers = 32MB"]
        with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n".join(settings) + "\n")
        cluster = cls(f"postgresql:///postgres?host={quote(str(directory))}&user=postgres",
                      directory, bindir)  # fmt: skip
        cluster.start()
        return cluster

    def _pg_ctl(self, *args: str) -> None:
        assert self.directory is not None and self.bindir is not None
        subprocess.run(
            [*_as_server_user(), str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"),
             "-l", str(self.directory / "server.log"), *args],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def start(self) -> None:
        self._pg_ctl("-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash: no shutdown checkpoint)."""
        self._pg_ctl("-w", "stop", "-m", mode)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        if self.directory is None:
            for name in self._owned:
                with contextlib.suppress(Exception):
                    self.drop_database(name)
            with contextlib.suppress(Exception):
                self._execute(f'DROP DATABASE IF EXISTS "{self._template_name}"')
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- databases ----------------------------------------------------------------------

    @property
    def _template_name(self) -> str:
        # a shared server may serve several test runs at once
        return TEMPLATE if self.directory is not None else f"{TEMPLATE}_{os.getpid()}"

    def _execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.encode())

    def database_url(self, dbname: str) -> str:
        return _with_dbname(self.url, dbname)

    def _prepare_template(self) -> None:
        """A database holding the outbox schema: each test's database is a copy of it."""
        if self._template_ready:
            return
        from gateway.outbox.migrate import migrate

        name = self._template_name
        self._execute(f'DROP DATABASE IF EXISTS "{name}"')
        self._execute(f'CREATE DATABASE "{name}"')
        migrate(self.database_url(name))
        self._template_ready = True

    def new_database(self, *, schema: bool = True) -> str:
        """A new database's URL: with the outbox schema applied, or empty."""
        name = f"wg_{os.getpid()}_{next(self._names)}"
        if schema:
            self._prepare_template()
            self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template_name}"')
        else:
            self._execute(f'CREATE DATABASE "{name}"')
        self._owned.append(name)
        return self.database_url(name)

    def drop_database(self, url_or_name: str) -> None:
        name = urlsplit(url_or_name).path.lstrip("/") if "://" in url_or_name else url_or_name
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(ValueError):
            self._owned.remove(name)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL: {reason}")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL server for this test session (see the module docstring)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install -e '.[test]')")
    url = os.environ.get(URL_VARIABLE, "").strip()
    if url:
        cluster = PgCluster(url)
    else:
        bindir = find_bindir()
        if bindir is None:
            _unavailable(
                f"no server binaries (install Debian's postgresql package) and {URL_VARIABLE}"
                " is not set"
            )
            raise AssertionError("unreachable")
        try:
            cluster = PgCluster.start_local(bindir)
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            _unavailable(f"cannot start a server from {bindir}: {exc}")
            raise AssertionError("unreachable") from None
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh database holding the outbox schema, dropped after the test."""
    url = pg_cluster.new_database()
    yield url
    with contextlib.suppress(Exception):
        pg_cluster.drop_database(url)

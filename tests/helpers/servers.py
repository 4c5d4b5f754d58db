"""Extra PostgreSQL servers for tests (standbys, other versions, special settings), always removed."""
import contextlib
import os
import shutil
from pathlib import Path

import pgserver


def params(server, dbname='postgres'):
    """Connection options of the chefcloud.pgindex modules for ``server``."""
    return dict(login_host='127.0.0.1', login_port=server.port, login_user='postgres', db=dbname)


def remove(server):
    """Stop ``server`` and delete its data directory, log and socket directory."""
    server.stop()
    for path in (server.data_dir, Path(str(server.data_dir) + '.log'), Path(str(server.data_dir) + '.sock')):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


@contextlib.contextmanager
def temporary_server(name, version=None, settings=None, standby_of=None):
    """A started server named ``name``-<pid> (a pg_basebackup standby of ``standby_of`` if given),
    removed on exit. ``version`` defaults to PGINDEX_PG_VERSION (or the primary's binaries)."""
    if standby_of is not None:
        bindir = standby_of.bin_dir
    else:
        bindir = pgserver.bin_dir(version or os.environ.get('PGINDEX_PG_VERSION'))
    server = pgserver.Server(bindir, pgserver.cache_dir() / ('%s-%d' % (name, os.getpid())), settings=settings)
    try:
        if standby_of is not None:
            server.basebackup_from(standby_of)
        server.start()
        yield server
    finally:
        remove(server)

# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options shared by every module of chefcloud.pgindex.
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server, or a directory holding its Unix socket.
      - When omitted, libpq uses the E(PGHOST) environment variable, then its compiled-in default (the local Unix socket).
    type: str
    aliases: [host]
  login_port:
    description:
      - TCP port (or socket file extension) of the server.
      - When omitted, libpq uses E(PGPORT), then V(5432).
    type: int
    aliases: [port]
  login_user:
    description:
      - Role to log in as.
      - When omitted, libpq uses E(PGUSER), then the operating system user running the module.
    type: str
    aliases: [login]
  login_password:
    description:
      - Password of O(login_user). Never logged or returned.
      - When omitted, libpq uses E(PGPASSWORD), then the password file (E(PGPASSFILE), C(~/.pgpass)).
    type: str
  login_unix_socket:
    description:
      - Directory of the server's Unix socket. Mutually exclusive with O(login_host).
    type: str
    aliases: [unix_socket]
  db:
    description:
      - Database to connect to.
      - When omitted, libpq uses E(PGDATABASE), then the user name.
    type: str
    aliases: [login_db]
  ssl_mode:
    description:
      - libpq C(sslmode). When omitted, libpq uses E(PGSSLMODE), then V(prefer).
      - See U(https://www.postgresql.org/docs/current/libpq-ssl.html).
    type: str
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - File with the certificate authorities that sign the server certificate (libpq C(sslrootcert)).
    type: path
    aliases: [ssl_rootcert]
  ssl_cert:
    description:
      - Client certificate file (libpq C(sslcert)).
    type: path
  ssl_key:
    description:
      - Client private key file (libpq C(sslkey)).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection to be made.
      - When omitted, libpq uses E(PGCONNECT_TIMEOUT); if that is not set either, V(10) is used so that an
        unreachable host fails quickly instead of hanging the play.
    type: int
  session_role:
    description:
      - Role to switch to with C(SET ROLE) after logging in. All work is done with the privileges of this role.
      - Index builds need ownership of the table (or membership in its owning role).
    type: str
  connect_params:
    description:
      - Any other libpq connection parameters, as a dictionary, for example C(target_session_attrs),
        C(keepalives_idle) or C(options).
      - The module sets C(application_name) to C(chefcloud.pgindex/<module name>) so that its sessions are
        easy to find in C(pg_stat_activity); a value given here replaces it.
      - Parameters that have their own option above cannot be given here.
    type: dict
    default: {}
notes:
  - Every option that is not set falls back to the standard libpq environment variables
    (E(PGHOST), E(PGPORT), E(PGDATABASE), E(PGUSER), E(PGPASSWORD), E(PGSSLMODE), ...) of the host the
    module runs on, so the same playbook can target any server.
  - The connection runs in autocommit mode, because C(CREATE INDEX CONCURRENTLY) and
    C(DROP INDEX CONCURRENTLY) cannot run inside a transaction block.
  - All options in this fragment can be set once for a play with
    C(module_defaults) and the action group C(group/chefcloud.pgindex.postgresql).
requirements:
  - psycopg2 >= 2.8 (C(psycopg2-binary) from PyPI is fine) on the host that runs the module.
"""

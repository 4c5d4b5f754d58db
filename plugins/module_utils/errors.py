# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions of chefcloud.pgindex.

Every failure the collection expects is a PgIndexError: the module base class turns it into one
``fail_json`` with a message a DBA can act on and the structured ``details``, never a traceback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class PgIndexError(Exception):
    """An expected failure, with a message for people and details for machines."""

    def __init__(self, msg, **details):
        super(PgIndexError, self).__init__(msg)
        self.msg = msg
        self.details = details


class SpecError(PgIndexError):
    """The requested index or table is not a valid definition (bad names, unknown columns...)."""


class ConnectError(PgIndexError):
    """The server could not be reached or refused the login."""


class DriftError(PgIndexError):
    """An index of that name exists with another definition or on another table."""


class BuildError(PgIndexError):
    """A statement of the plan failed on the server."""


class VerifyError(PgIndexError):
    """An index failed verification: missing, INVALID, drifted, not used by its query..."""


class IndexFailed(PgIndexError):
    """An unexpected exception (a psycopg2 error, a RuntimeError...) while an index was worked on,
    turned into a failed result; ``cause`` is the original exception."""

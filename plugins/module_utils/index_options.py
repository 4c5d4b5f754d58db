# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of one index build, shared by pg_concurrent_index (one index) and pg_index_set (a
change set).  They are defined once, in changeset.py (the one reader of a change set entry); this
module keeps the old import path."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chefcloud.pgindex.plugins.module_utils.changeset import (  # noqa: F401 pylint: disable=unused-import
    INDEX_ARGUMENT_SPEC, INDEX_REQUIRED_IF, POLICY_DEFAULTS, POLICY_OPTIONS, SESSION_OPTIONS, split_params)

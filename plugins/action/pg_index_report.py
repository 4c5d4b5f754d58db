# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a run's report files on the controller, in one task and without a module run.

The report (chefcloud.pgindex.pgindex_report's ``report``) is written as JSON and, through the role's
Markdown template, as Markdown, to each stem in ``paths`` (this run's record and the "latest" pair).
Each file is written to a temporary file in the same directory and renamed into place, so a reader
never sees half a report. Replaces a file/copy/copy/template sequence that cost one module run per
file (about 5 s of a deploy's fixed overhead); the report is then set as the fact ``pgindex_report``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.action import ActionBase

try:  # ansible-core 2.19+: only trusted text is rendered as a template
    from ansible.template import trust_as_template
except ImportError:  # pragma: no cover - ansible-core before 2.19
    def trust_as_template(value):
        return value

from ansible_collections.chefcloud.pgindex.plugins.modules.pg_index_report import ARGUMENT_SPEC


def _write(path, text, mode):
    """``text`` to ``path`` atomically (a temporary file in the same directory, then a rename)."""
    directory = os.path.dirname(path) or '.'
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(to_bytes(text))
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        try:
            _validated, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        except AnsibleActionFail as exc:
            result.update(failed=True, msg=to_text(exc))
            return result
        report = args['report']
        try:
            mode = int(args['mode'], 8)
        except ValueError:
            result.update(failed=True, msg='mode must be an octal file mode such as 0644, got %r' % args['mode'])
            return result
        try:
            markdown = self._render(args['template'], report, task_vars) if args['template'] else None
        except (AnsibleError, OSError) as exc:
            result.update(failed=True, msg='the Markdown report could not be rendered from %s: %s'
                          % (args['template'], to_text(exc)))
            return result
        document = json.dumps(report, indent=2, sort_keys=True, default=to_text) + '\n'
        written = []
        try:
            for stem in args['paths']:
                directory = os.path.dirname(stem)
                if directory and not os.path.isdir(directory):
                    os.makedirs(directory, 0o755)
                _write(stem + '.json', document, mode)
                written.append(stem + '.json')
                if markdown is not None:
                    _write(stem + '.md', markdown, mode)
                    written.append(stem + '.md')
        except OSError as exc:
            result.update(failed=True, files=written,
                          msg='the report could not be written to %s: %s (set pgindex_report_dir to a writable '
                              'directory on the controller)' % (exc.filename or stem, exc.strerror or exc))
            return result
        # Report files are output, not a change to the database hosts: never "changed", written in check mode too.
        result.update(changed=False, files=written, ansible_facts={args['fact']: report} if args['fact'] else {},
                      msg='report written: %s' % ', '.join(written))
        return result

    def _render(self, template, report, task_vars):
        source = self._find_needle('templates', template)
        data = trust_as_template(self._loader.get_text_file_contents(source)
                                 if hasattr(self._loader, 'get_text_file_contents')
                                 else to_text(open(source, 'rb').read()))
        variables = dict(task_vars)
        variables['pgindex_report'] = report
        templar = self._templar.copy_with_new_env(searchpath=[os.path.dirname(source)], available_variables=variables)
        # the template module's defaults: trim_blocks, no lstrip_blocks, "\n"
        text = templar.template(data, escape_backslashes=False,
                                overrides=dict(trim_blocks=True, lstrip_blocks=False, newline_sequence='\n'))
        return to_text(text if text is not None else '')

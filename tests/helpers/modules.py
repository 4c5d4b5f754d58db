"""Run a chefcloud.pgindex module in-process, exactly as Ansible would call it, and return its result."""
import contextlib
import importlib
import io
import json

from ansible.module_utils import _internal as module_internal
from ansible.module_utils.testing import patch_module_args


def run_module(name, args, check_mode=False, diff=False):
    """Run plugins/modules/<name>.py with ``args``; return (failed, result dict)."""
    module = importlib.import_module('ansible_collections.chefcloud.pgindex.plugins.modules.%s' % name)
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    out = io.StringIO()
    # A module runs in its own process, where warn() collects warnings into the result. Once any controller
    # code was imported in this pytest process (a filter plugin's test imports ansible.errors), ansible-core
    # routes warn() to the controller's Display instead: run the module as the module side it is.
    was_controller, module_internal.is_controller = module_internal.is_controller, False
    try:
        with patch_module_args(args), contextlib.redirect_stdout(out):
            try:
                module.main()
            except SystemExit:
                pass
    finally:
        module_internal.is_controller = was_controller
    result = json.loads(out.getvalue())
    return bool(result.get('failed')), result

"""Run the playbooks as users do: ansible-playbook in a subprocess, against a test database."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# ansible-playbook / ansible-galaxy of this venv, or of PGINDEX_ANSIBLE_BIN (a bin directory): the ansible-core
# version matrix (tools/ansible_matrix.sh) runs the smoke tests with each version's own venv.
BIN = Path(os.environ.get('PGINDEX_ANSIBLE_BIN') or Path(sys.executable).parent)
SIX = ['idx_fr_overview_org_period', 'idx_fr_rankings_org_metric_period', 'idx_fr_budgets_org_cc_period',
       'idx_inv_batches_org_sku', 'idx_po_org_status_created', 'idx_payments_org_status_created']


def playbook(db, *args, env=None, cwd=ROOT):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(('PG', 'ANSIBLE_'))}
    full_env.update(db.env, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    full_env.update(env or {})
    proc = subprocess.run([str(BIN / 'ansible-playbook'), *args], cwd=str(cwd), env=full_env,
                          capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def recap(output):
    """{'changed': n, 'failed': n, ...} of the PLAY RECAP line of local-db."""
    line = re.search(r'^local-db\s*:(.*)$', output, re.M).group(1)
    return {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', line)}


def six_state(db):
    return {name: (db.index(name) or (None,))[0] for name in SIX}

"""AWX / Automation Controller configuration as code (awx/): what can be checked without a controller.

* awx/configure.yml passes ansible-playbook --syntax-check with awx.awx (make venv unpacks it, see
  requirements-awx.txt), and runs to the end against FakeController, a small in-memory stand-in for the
  controller's REST API: the real awx.awx modules template, validate and send every call.
* The arguments each awx.awx task really got (captured by a callback) are valid for the module's argument
  spec as ansible-doc documents it.
* What was sent to the "controller" passes the controller's own rules, ported from AWX (ansible/awx,
  awx/api/views JobTemplateSurveySpec._validate_spec_data, awx/main/fields.py CredentialTypeInputField and
  CredentialTypeInjectorField, awx/main/models/mixins.py _survey_element_validation).
* The surveys offer every change set of changesets/, and each variable reaches the playbook or the role
  entry point the job template runs (accepted by its argument_specs and used by its tasks).

No controller runs here: its behaviour beyond these rules (project sync, launching a job, injecting the
credential into a real EE) is not tested; docs/awx.md lists what is and is not.
"""
import collections
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import yaml
from jinja2 import StrictUndefined, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AWX = ROOT / 'awx'
CONFIGURE = AWX / 'configure.yml'
AWX_COLLECTION = ROOT / '.collections' / 'ansible_collections' / 'awx' / 'awx'
ARGUMENT_SPECS = ROOT / 'roles' / 'pgindex' / 'meta' / 'argument_specs.yml'
TOKEN = 'fake-token-for-tests'
DB_PASSWORD = 'fake-db-password'


# --- helpers -----------------------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """YAML loader that reads Ansible's !unsafe and !vault tags as plain strings."""


_Loader.add_constructor('!unsafe', lambda loader, node: loader.construct_scalar(node))
_Loader.add_constructor('!vault', lambda loader, node: loader.construct_scalar(node))


def load_yaml(path):
    with open(path, encoding='utf-8') as f:
        return yaml.load(f, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def ansible_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'CONTROLLER_', 'TOWER_', 'PG'))}
    env.update(ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', PGINDEX_AWX_DB_PASSWORD='')
    env.update(extra)
    return env


def configure_tasks():
    """The tasks of awx/configure.yml, as written."""
    plays = load_yaml(CONFIGURE)
    return [task for play in plays for task in play.get('tasks', [])]


def awx_module(task):
    return next((key for key in task if key.startswith('awx.awx.')), None)


def survey_files():
    return sorted((AWX / 'surveys').glob('*.yml'))


def job_templates():
    """The job template definitions of configure.yml (its pgindex_awx_job_templates variable)."""
    return load_yaml(CONFIGURE)[0]['vars']['pgindex_awx_job_templates']


@pytest.fixture(scope='module', autouse=True)
def awx_collection():
    if not (AWX_COLLECTION / 'MANIFEST.json').is_file():
        pytest.fail('awx.awx is missing from %s: run `make venv` (it unpacks it from the ansible wheel pinned in '
                    'requirements-awx.txt)' % AWX_COLLECTION.parent.parent)


# --- a stand-in for the controller's REST API ---------------------------------------------------------

Request = collections.namedtuple('Request', 'method path query body')
Run = collections.namedtuple('Run', 'rc output calls')
Configured = collections.namedtuple('Configured', 'controller first second')


class FakeController(object):
    """In-memory objects behind /api/v2/: enough for awx.awx to look up, create and update what configure.yml
    asks for, with every request recorded. It accepts whatever is sent: the controller's validation is
    applied by the tests below to the recorded requests, where a failure names the rule."""

    RELATED = ('survey_spec', 'credentials', 'labels', 'instance_groups', 'update', 'notification_templates_started',
               'notification_templates_success', 'notification_templates_error', 'hosts', 'children',
               'success_nodes', 'failure_nodes', 'always_nodes', 'notification_templates_approvals')
    # /api/v2/unified_job_templates/ lists these (a workflow node names its job template through it)
    UNIFIED = ('job_templates', 'workflow_job_templates', 'workflow_approval_templates', 'projects')

    def __init__(self):
        self.objects = {'organizations': {1: self._object('organizations', 1, {'name': 'Default'})}}
        self.requests = []
        self.next_id = 100
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(('127.0.0.1', 0), self._handler_class())
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @classmethod
    def _object(cls, endpoint, oid, data):
        url = '/api/v2/%s/%d/' % (endpoint, oid)
        singular = {'inventories': 'inventory'}.get(endpoint, endpoint[:-1])
        obj = dict(data, id=oid, type=singular, url=url, summary_fields={},
                   related={name: url + name + '/' for name in cls.RELATED})
        return obj

    def sent(self, method, endpoint):
        """Bodies of the recorded requests with this method to /api/v2/<endpoint>/ (the list, not sub-paths)."""
        return [r.body for r in self.requests if r.method == method and r.path == '/api/v2/%s/' % endpoint]

    def find(self, endpoint, **fields):
        return [o for o in self.objects.get(endpoint, {}).values() if all(o.get(k) == v for k, v in fields.items())]

    def handle(self, method, path, query, body):
        with self.lock:
            self.requests.append(Request(method, path, query, body))
            parts = [p for p in path.split('/') if p][2:]        # after api/v2
            if not parts:
                return 200, {}
            endpoint, rest = parts[0], parts[1:]
            if endpoint == 'unified_job_templates' and not rest and method == 'GET':
                found = [o for e in self.UNIFIED for o in self.objects.get(e, {}).values()]
                return 200, self._list([o for o in found if self._matches(o, query)])
            store = self.objects.setdefault(endpoint, {})
            if not rest:
                if method == 'GET':
                    return 200, self._list([o for o in store.values() if self._matches(o, query)])
                if method == 'POST':
                    oid = self.next_id = self.next_id + 1
                    store[oid] = self._object(endpoint, oid, body)
                    if endpoint == 'projects':
                        self._project_update(store[oid])
                    return 201, store[oid]
            obj = store.get(int(rest[0]))
            if obj is None:
                return 404, {'detail': 'Not found.'}
            if len(rest) == 1:
                if method == 'GET':
                    return 200, obj
                if method == 'PATCH':
                    obj.update(body)
                    return 200, obj
            elif rest[1] == 'survey_spec':
                if method == 'GET':
                    return 200, obj.get('_survey_spec', {})
                if method == 'POST':
                    obj['_survey_spec'] = body
                    return 200, {}
            elif rest[1] == 'create_approval_template' and method == 'POST':
                # AWX: the approval template of a workflow node is created through the node, which then refers to it
                templates = self.objects.setdefault('workflow_approval_templates', {})
                oid = self.next_id = self.next_id + 1
                templates[oid] = self._object('workflow_approval_templates', oid, body)
                obj['unified_job_template'] = oid
                obj['related']['unified_job_template'] = templates[oid]['url']
                return 201, templates[oid]
            elif rest[1] == 'update' and method == 'POST':
                update = self._project_update(obj)
                return 202, update
            else:                                                   # an association list
                ids = obj.setdefault('_associations', {}).setdefault(rest[1], [])
                if method == 'GET':
                    return 200, self._list([{'id': i} for i in ids])
                if method == 'POST':
                    if body.get('disassociate'):
                        ids.remove(body['id'])
                    elif body['id'] not in ids:
                        ids.append(body['id'])
                    return 204, None
            return 405, {'detail': 'Method "%s" not allowed.' % method}

    def _project_update(self, project):
        uid = self.next_id = self.next_id + 1
        update = self._object('project_updates', uid, {'name': project['name'], 'status': 'successful',
                                                       'failed': False, 'finished': '2025-01-01T00:00:00Z',
                                                       'scm_revision': 'f' * 40})
        self.objects.setdefault('project_updates', {})[uid] = update
        project['summary_fields']['current_update'] = {'id': uid}
        project.setdefault('scm_revision', '')
        return update

    @staticmethod
    def _list(results):
        return {'count': len(results), 'next': None, 'previous': None, 'results': results}

    @staticmethod
    def _matches(obj, query):
        ands = {k: v for k, v in query.items() if not k.startswith('or__') and k not in ('page', 'page_size')}
        ors = {k[4:]: v for k, v in query.items() if k.startswith('or__')}
        return (all(str(obj.get(k)) == v for k, v in ands.items())
                and (not ors or any(str(obj.get(k)) == v for k, v in ors.items())))

    def _handler_class(self):
        controller = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                url = urlsplit(self.path)
                length = int(self.headers.get('Content-Length') or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                if self.headers.get('Authorization') != 'Bearer ' + TOKEN:
                    status, data = 401, {'detail': 'Authentication credentials were not provided.'}
                else:
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    status, data = controller.handle(self.command, url.path, query, body)
                payload = b'' if data is None else json.dumps(data).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('X-API-Product-Name', 'AWX')
                self.send_header('X-API-Product-Version', '24.6.1')
                self.send_header('Content-Length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler


CAPTURE_CALLBACK = '''
import json, os
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    """Write the action and the final module arguments (templated, with module_defaults) of each result."""
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'capture_args'
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, result, status):
        task = result._task
        if task.loop and 'results' in result._result:
            return                      # the summary of a loop: its items were written one by one
        args = {k: v for k, v in task.args.items() if not k.startswith('_ansible_')}
        with open(os.environ['CAPTURE_ARGS_FILE'], 'a') as f:
            f.write(json.dumps({'action': task.resolved_action or task.action, 'name': task.get_name(),
                                'status': status, 'args': args, 'msg': result._result.get('msg')},
                               default=str) + '\\n')

    def v2_runner_on_ok(self, result):
        self._write(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write(result, 'failed')

    def v2_runner_item_on_ok(self, result):
        self._write(result, 'ok')

    def v2_runner_item_on_failed(self, result):
        self._write(result, 'failed')
'''


def run_configure(controller, tmp):
    plugins = tmp / 'callbacks'
    plugins.mkdir(exist_ok=True)
    (plugins / 'capture_args.py').write_text(CAPTURE_CALLBACK)
    capture = tmp / 'args.jsonl'
    if capture.exists():
        capture.unlink()
    env = ansible_env(CONTROLLER_HOST=controller.url, CONTROLLER_OAUTH_TOKEN=TOKEN,
                      PGINDEX_AWX_DB_PASSWORD=DB_PASSWORD, ANSIBLE_CALLBACK_PLUGINS=str(plugins),
                      ANSIBLE_CALLBACKS_ENABLED='capture_args', CAPTURE_ARGS_FILE=str(capture))
    proc = subprocess.run([str(BIN / 'ansible-playbook'), str(CONFIGURE)], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    calls = [json.loads(line) for line in capture.read_text().splitlines()] if capture.exists() else []
    return Run(proc.returncode, proc.stdout + proc.stderr, calls)


@pytest.fixture(scope='module')
def configured(tmp_path_factory):
    """configure.yml run twice against one FakeController: (controller, first run, second run)."""
    tmp = tmp_path_factory.mktemp('awx')
    with FakeController() as controller:
        first = run_configure(controller, tmp)
        assert first.rc == 0, first.output
        second = run_configure(controller, tmp)
        assert second.rc == 0, second.output
        yield Configured(controller, first, second)


@pytest.fixture(scope='module')
def module_docs():
    """ansible-doc --json of every awx.awx module configure.yml calls (one ansible-doc run)."""
    modules = sorted({awx_module(t) for t in configure_tasks() if awx_module(t)})
    proc = subprocess.run([str(BIN / 'ansible-doc'), '--json', *modules], cwd=str(ROOT), env=ansible_env(),
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(proc.stdout)


# --- the playbook ------------------------------------------------------------------------------------

def test_configure_passes_syntax_check():
    proc = subprocess.run([str(BIN / 'ansible-playbook'), '--syntax-check', str(CONFIGURE)], cwd=str(ROOT),
                          env=ansible_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_configure_refuses_to_run_without_controller_host_and_token():
    proc = subprocess.run([str(BIN / 'ansible-playbook'), str(CONFIGURE)], cwd=str(ROOT), env=ansible_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert 'Export CONTROLLER_HOST and CONTROLLER_OAUTH_TOKEN' in proc.stdout + proc.stderr


def test_every_awx_task_ran_and_the_second_run_changes_nothing(configured):
    controller, first, second = configured
    written = [t['name'] for t in configure_tasks() if awx_module(t)]
    ran = {c['name'] for c in first.calls if c['action'].startswith('awx.awx.')}
    assert set(written) <= ran, 'tasks that did not run: %s' % (set(written) - ran)
    assert not [c for c in first.calls + second.calls if c['status'] != 'ok'], first.output + second.output
    recap = re.search(r'^localhost\s*:.*changed=(\d+).*failed=(\d+)', second.output, re.M)
    assert recap and recap.groups() == ('0', '0'), second.output
    # ...and the fake controller holds exactly one of each object.
    assert [o['name'] for o in controller.find('credential_types')] == ['PostgreSQL (chefcloud.pgindex)']
    assert len(controller.find('projects')) == len(controller.find('inventories')) == 1
    assert sorted(o['name'] for o in controller.find('groups')) == ['pgindex_bastions', 'pgindex_databases']
    assert sorted(o['name'] for o in controller.find('job_templates')) == sorted(jt['name'] for jt in job_templates())


def test_awx_module_arguments_match_the_module_argument_specs(configured, module_docs):
    """The arguments the modules got (templated, module_defaults merged) against ansible-doc's option specs."""
    calls = configured.first.calls
    keep = ('type', 'elements', 'choices', 'required', 'aliases', 'default', 'no_log')

    def spec_of(options):
        spec = {}
        for name, option in options.items():
            entry = {k: option[k] for k in keep if k in option}
            entry.setdefault('type', 'str')
            if 'suboptions' in option:
                entry['options'] = spec_of(option['suboptions'])
            spec[name] = entry
        return spec

    checked = set()
    for call in calls:
        if not call['action'].startswith('awx.awx.'):
            continue
        doc = module_docs[call['action']]['doc']
        result = ArgumentSpecValidator(spec_of(doc['options'])).validate(call['args'])
        assert not result.error_messages, '%s (%s): %s' % (call['name'], call['action'], result.error_messages)
        checked.add(call['action'])
    assert checked == set(module_docs)


def test_controller_host_and_token_come_from_the_environment(configured):
    calls = configured.first.calls
    for call in calls:
        if call['action'].startswith('awx.awx.'):
            assert call['args']['controller_host'].startswith('http://127.0.0.1:')
            assert call['args']['controller_oauthtoken'] == TOKEN


# --- the credential type and the credential -----------------------------------------------------------

CREDENTIAL_INPUTS_SCHEMA = {   # awx/main/fields.py CredentialTypeInputField.schema
    'type': 'object', 'additionalProperties': False,
    'properties': {
        'required': {'type': 'array', 'items': {'type': 'string'}},
        'fields': {'type': 'array', 'items': {
            'type': 'object', 'additionalProperties': False, 'required': ['id', 'label'],
            'properties': {
                'type': {'enum': ['string', 'boolean']},
                'format': {'enum': ['ssh_private_key', 'url']},
                'choices': {'type': 'array', 'minItems': 1, 'items': {'type': 'string'}, 'uniqueItems': True},
                'id': {'type': 'string', 'pattern': '^[a-zA-Z_]+[a-zA-Z0-9_]*$'},
                'label': {'type': 'string'}, 'help_text': {'type': 'string'}, 'multiline': {'type': 'boolean'},
                'secret': {'type': 'boolean'}, 'ask_at_runtime': {'type': 'boolean'}, 'default': {}}}}}}
CREDENTIAL_INJECTORS_SCHEMA = {   # awx/main/fields.py CredentialTypeInjectorField.schema
    'type': 'object', 'additionalProperties': False,
    'properties': {
        'file': {'type': 'object', 'additionalProperties': False,
                 'patternProperties': {r'^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$': {'type': 'string'}}},
        'env': {'type': 'object', 'additionalProperties': False,
                'patternProperties': {'^[a-zA-Z_]+[a-zA-Z0-9_]*$': {'type': 'string', 'pattern': '^[\x00-\x7F]*$'}}},
        'extra_vars': {'type': 'object', 'additionalProperties': False,
                       'patternProperties': {r'^[a-zA-Z_\{\}]+[a-zA-Z0-9_\{\}]*$': {
                           'anyOf': [{'type': 'string'}, {'type': 'array'}, {'$ref': '#/properties/extra_vars'}]}}}}}
ENV_BLOCKLIST = {'VIRTUAL_ENV', 'PATH', 'PYTHONPATH', 'JOB_ID', 'INVENTORY_ID', 'INVENTORY_SOURCE_ID',
                 'INVENTORY_UPDATE_ID', 'AD_HOC_COMMAND_ID', 'REST_API_URL', 'REST_API_TOKEN', 'MAX_EVENT_RES',
                 'CALLBACK_QUEUE', 'CALLBACK_CONNECTION', 'CACHE', 'JOB_CALLBACK_DEBUG', 'INVENTORY_HOSTVARS',
                 'AWX_HOST', 'PROJECT_REVISION', 'SUPERVISOR_CONFIG_PATH'}


class _Tower(object):
    filename = '/runner/env/tmpCAFILE'


def render_injectors(injectors, inputs, undefined=Undefined):
    """The env the controller injects for a credential with these inputs (awx CredentialType.inject_credential:
    only the inputs the credential has are defined; defaults of the type are not applied)."""
    sandbox = ImmutableSandboxedEnvironment(undefined=undefined)
    namespace = dict(inputs, tower=_Tower())
    return {name: sandbox.from_string(template).render(**namespace) for name, template in injectors['env'].items()}


def test_credential_type_passes_the_controller_validation(configured):
    controller = configured.controller
    (sent,) = controller.sent('POST', 'credential_types')
    assert {k: v for k, v in sent.items() if k != 'managed'} == load_yaml(AWX / 'credential_type.yml'), \
        'the credential type, injector templates included, must reach the controller untouched by Ansible'
    assert sent['kind'] in ('net', 'cloud')                              # the kinds allowed for custom types
    jsonschema.validate(sent['inputs'], CREDENTIAL_INPUTS_SCHEMA)
    jsonschema.validate(sent['injectors'], CREDENTIAL_INJECTORS_SCHEMA)
    ids = [f['id'] for f in sent['inputs']['fields']]
    assert len(ids) == len(set(ids)) and 'tower' not in ids
    assert set(sent['inputs']['required']) <= set(ids)
    for field in sent['inputs']['fields']:
        if 'default' in field:
            assert isinstance(field['default'], str)
            assert field['default'] in field.get('choices', [field['default']])
    for name in sent['injectors']['env']:
        assert not name.startswith('ANSIBLE_') and name not in ENV_BLOCKLIST
    # Every template renders with every field defined (StrictUndefined), as the controller checks on save.
    render_injectors(sent['injectors'], {i: 'EXAMPLE' for i in ids}, undefined=StrictUndefined)
    ImmutableSandboxedEnvironment(undefined=StrictUndefined).from_string(
        sent['injectors']['file']['template']).render({i: 'EXAMPLE' for i in ids})


def test_credential_injects_the_libpq_environment():
    spec = load_yaml(AWX / 'credential_type.yml')
    full = render_injectors(spec['injectors'], {
        'host': 'pg1.internal', 'port': '6432', 'username': 'deployer', 'password': 's3cret',
        'database': 'chefcloud', 'sslmode': 'verify-full', 'sslrootcert': '-----BEGIN CERTIFICATE-----'})
    assert full == {'PGHOST': 'pg1.internal', 'PGPORT': '6432', 'PGUSER': 'deployer', 'PGPASSWORD': 's3cret',
                    'PGDATABASE': 'chefcloud', 'PGSSLMODE': 'verify-full', 'PGSSLROOTCERT': _Tower.filename}
    # Only the required input: every other variable is empty (libpq: unset), except PGSSLMODE (libpq
    # rejects an empty sslmode), which gets libpq's default.
    minimal = render_injectors(spec['injectors'], {'username': 'deployer'})
    assert minimal == {'PGHOST': '', 'PGPORT': '', 'PGUSER': 'deployer', 'PGPASSWORD': '', 'PGDATABASE': '',
                       'PGSSLMODE': 'prefer', 'PGSSLROOTCERT': ''}


def test_credential_has_its_inputs_and_the_password_from_the_environment(configured):
    controller = configured.controller
    (sent,) = controller.sent('POST', 'credentials')
    (credential_type,) = controller.find('credential_types')
    assert sent['credential_type'] == credential_type['id']
    db = load_yaml(CONFIGURE)[0]['vars']['pgindex_awx_db']
    assert sent['inputs'] == dict({k: v for k, v in db.items() if v != ''}, password=DB_PASSWORD)
    fields = {f['id']: f for f in credential_type['inputs']['fields']}
    assert set(sent['inputs']) <= set(fields)
    assert set(credential_type['inputs']['required']) <= set(sent['inputs'])
    for name, value in sent['inputs'].items():
        assert value in fields[name].get('choices', [value]), name
    # update_secrets: false - the second run did not send the password again.
    assert not [r for r in controller.requests if r.method == 'PATCH' and '/credentials/' in r.path]


# --- surveys -----------------------------------------------------------------------------------------

SURVEY_TYPES = {'text': str, 'textarea': str, 'password': str, 'multiplechoice': str, 'multiselect': str,
                'integer': int, 'float': (float, int)}


def controller_survey_errors(spec):
    """The checks of AWX's POST .../survey_spec/ (JobTemplateSurveySpec._validate_spec_data), as a list of errors."""
    errors = []
    for field, kind in (('name', str), ('description', str), ('spec', list)):
        if not isinstance(spec.get(field), kind):
            errors.append('%s missing or not a %s' % (field, kind.__name__))
    if errors:
        return errors
    if not spec['spec']:
        errors.append("'spec' doesn't contain any items")
    variables = set()
    for idx, item in enumerate(spec['spec']):
        for field, kind in (('type', str), ('question_name', str), ('variable', str), ('required', bool)):
            if not isinstance(item.get(field), kind):
                errors.append('question %d: %s missing or not a %s' % (idx, field, kind.__name__))
        if errors:
            continue
        if item['variable'] in variables:
            errors.append('question %d: variable %s duplicated' % (idx, item['variable']))
        variables.add(item['variable'])
        if item['type'] not in SURVEY_TYPES:
            errors.append('question %d: type %s unknown' % (idx, item['type']))
            continue
        if item.get('default', '') != '' and not isinstance(item['default'], SURVEY_TYPES[item['type']]):
            errors.append('question %d: default %r is not a %s' % (idx, item['default'], item['type']))
        for key in ('min', 'max'):
            if item.get(key) is not None and not isinstance(item[key], int):
                errors.append('question %d: %s is not an integer' % (idx, key))
        if item['type'] in ('multiplechoice', 'multiselect'):
            if 'choices' not in item:
                errors.append('question %d: no choices' % idx)
            elif 'default' in item:
                defaults = item['default'].splitlines() if isinstance(item['default'], str) else item['default']
                if item['type'] == 'multiplechoice' and len(defaults) > 1:
                    errors.append('question %d: more than one default' % idx)
                if any(d not in item['choices'] for d in defaults):
                    errors.append('question %d: default not among the choices' % idx)
    return errors


def answer_errors(item, data):
    """AWX's _survey_element_validation: errors for launch data (also decides whether a default is applied)."""
    var, value = item['variable'], data.get(item['variable'])
    if var not in data:
        return ['%s missing' % var] if item['required'] else []
    if item['type'] in ('text', 'textarea', 'password'):
        if not isinstance(value, str):
            return ['%s not a string' % var]
        if item.get('min') not in ('', None) and len(value) < int(item['min']):
            return ['%s too short' % var]
        if item.get('max') not in ('', None) and len(value) > int(item['max']):
            return ['%s too long' % var]
    elif item['type'] == 'integer':
        if isinstance(value, bool) or not isinstance(value, int):   # AWX: type(value) != int
            return ['%s not an integer' % var]
        if item.get('min') not in ('', None) and value < int(item['min']):
            return ['%s too small' % var]
        if item.get('max') not in ('', None) and value > int(item['max']):
            return ['%s too large' % var]
    elif item['type'] == 'multiplechoice':
        choices = item['choices'].splitlines() if isinstance(item['choices'], str) else item['choices']
        if value not in choices:
            return ['%s not one of the choices' % var]
    return []


def applied_defaults(spec):
    """The survey defaults the controller adds to a launch (only those that pass their own validation)."""
    return {item['variable']: item['default'] for item in spec['spec']
            if item.get('default') is not None and not answer_errors(item, {item['variable']: item['default']})}


@pytest.mark.parametrize('path', survey_files(), ids=lambda p: p.name)
def test_survey_passes_the_controller_validation(path):
    spec = load_yaml(path)
    assert controller_survey_errors(spec) == []


def test_job_templates_sent_their_surveys(configured):
    controller = configured.controller
    for jt in job_templates():
        (obj,) = controller.find('job_templates', name=jt['name'])
        assert obj['survey_enabled'] is True
        assert obj['_survey_spec'] == load_yaml(AWX / jt['survey']), jt['name']
        assert controller_survey_errors(obj['_survey_spec']) == []


@pytest.mark.parametrize('path', survey_files(), ids=lambda p: p.name)
def test_change_set_choices_are_the_change_sets(path):
    (question,) = [q for q in load_yaml(path)['spec'] if q['variable'] == 'pgindex_changeset_file']
    changesets = ROOT / 'changesets'
    for choice in question['choices']:
        # vars_files resolves a relative path from the playbook's directory (playbooks/), not from the project root.
        resolved = (ROOT / 'playbooks' / choice).resolve()
        assert resolved.parent == changesets and resolved.is_file(), choice
        assert load_yaml(resolved).get('pgindex_indexes'), '%s has no pgindex_indexes' % choice
    offered = {(ROOT / 'playbooks' / c).resolve() for c in question['choices']}
    missing = sorted(p.name for p in changesets.glob('*.yml') if p.resolve() not in offered)
    assert not missing, 'change sets not offered by %s: %s (add ../changesets/<file> to its choices)' % (
        path.name, missing)


def test_survey_answers_and_defaults_behave_as_intended():
    deploy = load_yaml(AWX / 'surveys' / 'deploy.yml')
    questions = {q['variable']: q for q in deploy['spec']}
    # Without an answer, the target defaults to the playbooks' group and parallelism stays the role's own
    # default (0: chosen from the server version), because "" is not a valid integer default.
    assert applied_defaults(deploy) == {'pgindex_target': 'pgindex_databases'}
    assert answer_errors(questions['pgindex_parallelism'], {'pgindex_parallelism': 4}) == []
    assert answer_errors(questions['pgindex_parallelism'], {'pgindex_parallelism': 9})
    assert answer_errors(questions['pgindex_parallelism'], {'pgindex_parallelism': 0})
    assert answer_errors(questions['pgindex_target'], {'pgindex_target': ''})
    assert answer_errors(questions['pgindex_changeset_file'], {})


IMPORT_PLAYBOOK = ('ansible.builtin.import_playbook', 'import_playbook')
INCLUDE_ROLE = ('ansible.builtin.include_role', 'ansible.builtin.import_role', 'include_role', 'import_role')


def playbook_files(playbook):
    """The playbook and the playbooks it imports (import_playbook), each with the vars the import sets."""
    result = [(playbook, {})]
    for play in load_yaml(playbook):
        key = next((k for k in IMPORT_PLAYBOOK if k in play), None)
        if key:
            result.extend((path, dict(play.get('vars', {}), **variables))
                          for path, variables in playbook_files(playbook.parent / play[key]))
    return result


def role_entry_point(playbook):
    """tasks_from of the include_role of chefcloud.pgindex.pgindex the playbook runs, following import_playbook
    and resolving a tasks_from of the form "{{ variable }}" with the vars of the import (main if no tasks_from)."""
    def walk(tasks, variables):
        for task in tasks or []:
            for key in INCLUDE_ROLE:
                if key in task and task[key]['name'] in ('chefcloud.pgindex.pgindex', 'pgindex'):
                    entry = str(task[key].get('tasks_from', 'main'))
                    templated = re.fullmatch(r'\{\{\s*(\w+)\s*\}\}', entry)
                    yield variables.get(templated.group(1), entry) if templated else entry
            for section in ('block', 'rescue', 'always'):
                yield from walk(task.get(section), variables)
    found = {entry for path, variables in playbook_files(playbook) for play in load_yaml(path)
             for entry in walk(play.get('tasks'), dict(play.get('vars') or {}, **variables))}
    assert len(found) == 1, '%s: expected one role entry point, found %s' % (playbook, found)
    return found.pop()


def entry_point_text(entry):
    """The text of the entry point's task file, of every task file it includes (transitively), and of the templates."""
    tasks_dir = ROOT / 'roles' / 'pgindex' / 'tasks'
    seen, todo, text = set(), [entry + '.yml'], []
    while todo:
        name = todo.pop()
        if name in seen or not (tasks_dir / name).is_file():
            continue
        seen.add(name)
        content = (tasks_dir / name).read_text()
        text.append(content)
        todo.extend(re.findall(r'(?:include|import)_tasks:\s*(?:\n\s*file:\s*)?["\']?([\w./-]+\.ya?ml)', content))
    text.extend(p.read_text() for p in (ROOT / 'roles' / 'pgindex' / 'templates').glob('*'))
    return '\n'.join(text)


SURVEY_TO_SPEC_TYPES = {'integer': {'int', 'raw'}, 'float': {'float', 'raw'}, 'text': {'str', 'path', 'raw'},
                        'textarea': {'str', 'raw'}, 'password': {'str', 'raw'}, 'multiplechoice': {'str', 'path', 'raw'}}


@pytest.mark.parametrize('jt', job_templates(), ids=lambda jt: jt['name'])
def test_survey_variables_reach_the_playbook_or_the_role(jt):
    playbook = ROOT / jt['playbook']
    assert playbook.is_file(), jt['playbook']
    playbook_text = '\n'.join(entry[0].read_text() for entry in playbook_files(playbook))
    entry = role_entry_point(playbook)
    options = load_yaml(ARGUMENT_SPECS)['argument_specs'][entry]['options']
    tasks_text = entry_point_text(entry)
    for question in load_yaml(AWX / jt['survey'])['spec']:
        var = question['variable']
        if re.search(r'\b%s\b' % var, playbook_text):
            continue                                   # a variable of the playbook itself (hosts, vars_files)
        assert var in options, '%s: %s is neither used by %s nor accepted by the role entry point %s' % (
            jt['name'], var, jt['playbook'], entry)
        assert options[var].get('type', 'str') in SURVEY_TO_SPEC_TYPES[question['type']], (jt['name'], var)
        assert re.search(r'\b%s\b' % var, tasks_text), '%s: entry point %s accepts %s but never uses it' % (
            jt['name'], entry, var)


def test_job_templates_are_the_four_intended(configured):
    controller = configured.controller
    wanted = {
        'Deploy indexes': ('playbooks/deploy_indexes.yml', 'run', False),
        'Deploy indexes (dry run)': ('playbooks/deploy_indexes.yml', 'check', True),
        'Roll back indexes': ('playbooks/rollback_indexes.yml', 'run', False),
        'Verify indexes': ('playbooks/verify_indexes.yml', 'run', False),
    }
    (credential,) = controller.find('credentials')
    (project,) = controller.find('projects')
    (inventory,) = controller.find('inventories')
    (ee,) = controller.find('execution_environments')
    assert project['default_environment'] == ee['id']
    for name, (playbook, job_type, diff_mode) in wanted.items():
        (obj,) = controller.find('job_templates', name=name)
        assert (obj['playbook'], obj['job_type'], obj['diff_mode']) == (playbook, job_type, diff_mode)
        assert (ROOT / obj['playbook']).is_file()
        assert (obj['project'], obj['inventory'], obj['execution_environment']) == (project['id'], inventory['id'],
                                                                                    ee['id'])
        assert obj['_associations']['credentials'] == [credential['id']]
        assert obj['ask_limit_on_launch'] is True and obj['allow_simultaneous'] is False


def test_workflow_deploy_with_approval(configured):
    """Dry run (check + diff) -> approval node with a timeout -> deploy (with the watch), as the controller holds it."""
    controller = configured.controller
    (workflow,) = controller.find('workflow_job_templates', name='Deploy with approval')
    settings = load_yaml(CONFIGURE)[0]['vars']['pgindex_awx_workflow']
    assert workflow['survey_enabled'] is True and workflow['_survey_spec'] == load_yaml(AWX / settings['survey'])
    assert controller_survey_errors(workflow['_survey_spec']) == []
    assert workflow['ask_limit_on_launch'] is True and workflow['allow_simultaneous'] is False
    extra_vars = workflow['extra_vars'] if isinstance(workflow['extra_vars'], dict) else yaml.safe_load(workflow['extra_vars'])
    assert extra_vars['pgindex_watch_duration'] == 3600 and extra_vars['pgindex_watch_on_regression'] == 'rollback'
    options = load_yaml(ARGUMENT_SPECS)['argument_specs']['deploy']['options']
    assert set(extra_vars) <= set(options), 'the workflow sets variables the deploy entry point does not accept'
    nodes = dict((n['identifier'], n) for n in controller.find('workflow_job_template_nodes', workflow_job_template=workflow['id']))
    assert sorted(nodes) == ['approval', 'deploy', 'dry-run']
    (dry_run,) = controller.find('job_templates', name='Deploy indexes (dry run)')
    (deploy,) = controller.find('job_templates', name='Deploy indexes')
    assert (dry_run['job_type'], dry_run['diff_mode']) == ('check', True)
    assert nodes['dry-run']['unified_job_template'] == dry_run['id']
    assert nodes['deploy']['unified_job_template'] == deploy['id']
    (approval,) = controller.find('workflow_approval_templates')
    assert nodes['approval']['unified_job_template'] == approval['id']
    assert approval['timeout'] == settings['approval_timeout'] > 0 and approval['name'] == settings['approval_name']

    def successors(node):
        return node.get('_associations', {}).get('success_nodes', [])
    assert successors(nodes['dry-run']) == [nodes['approval']['id']]
    assert successors(nodes['approval']) == [nodes['deploy']['id']]
    assert successors(nodes['deploy']) == []
    # one of each, also after the second run (which changed nothing: test_every_awx_task_ran_...)
    assert len(controller.find('workflow_approval_templates')) == 1 and len(nodes) == 3

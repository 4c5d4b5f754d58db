#!/usr/bin/env bash
# Static checks for the chefcloud.pgindex collection, offline:
#   1. ansible-test sanity --venv   (on a copy at <tmp>/ansible_collections/chefcloud/pgindex)
#   2. ansible-lint --offline       (production profile, see .ansible-lint)
#   3. antsibull-changelog lint     (changelogs/)
#   4. galaxy-importer              (on the built artifact, as Galaxy / Automation Hub import it: ansible-doc,
#                                    ansible-lint and flake8 on, ansible-test off; tools/galaxy-importer.cfg;
#                                    any WARNING or ERROR line fails the step)
#   5. antsibull-docs lint-collection-docs --plugin-docs   (every plugin's and the role's documentation)
#   6. ansible-test units --venv    (the pure unit tests, LINT_UNITS; the real-server suites run with pytest)
# All six always run; the exit status is non-zero if any of them failed.
#
# Usage: tools/lint.sh            (from anywhere; needs .venv, see requirements-dev.txt)
# Environment:
#   VENV=path               virtualenv with ansible-core, ansible-lint, antsibull-changelog (default: .venv)
#   RELEASE_VENV=path       virtualenv with galaxy-importer and antsibull-docs, requirements-release.txt
#                           (default: .venvs/release, `make release-venv`; kept apart: the importer pins attrs)
#   LINT_STEPS="..."        run only these steps: sanity lint changelog importer docs units (default: all)
#   LINT_UNITS="..."        the unit tests that need no PostgreSQL server, for ansible-test units
#   LINT_PYTHON=3.11        Python version ansible-test sanity runs on
#   LINT_KEEP_TMP=1         keep the temporary collection copy (its path is printed)
#
# ansible-test builds one virtualenv per sanity test under ~/.ansible/test/venv (first run: ~1 min,
# later runs reuse them). It bootstraps pip into each with ~/.ansible/test/cache/get_pip_<ver>.py,
# normally downloaded from ci-files.testing.ansible.com; we install tools/get_pip_standin.py there
# instead, which uses ensurepip + the machine's normal pip configuration (PyPI or its mirror).

set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-${ROOT}/.venv}"
LINT_PYTHON="${LINT_PYTHON:-3.11}"
NAMESPACE=chefcloud
NAME=pgindex

die() {
    echo "lint.sh: $*" >&2
    exit 2
}

[[ -x "${VENV}/bin/ansible-test" ]] || die "${VENV}/bin/ansible-test not found: create the venv first (make venv / pip install -r requirements-dev.txt)"
RELEASE_VENV="${RELEASE_VENV:-${ROOT}/.venvs/release}"
LINT_STEPS=" ${LINT_STEPS:-sanity lint changelog importer docs units} "
# Pure unit tests (no `db` / `pg_server` fixture): ansible-test units runs them in its own venv.
LINT_UNITS="${LINT_UNITS:-tests/unit/plugins/filter/ tests/unit/plugins/module_utils/test_schedule.py tests/unit/plugins/module_utils/test_eta.py tests/unit/plugins/module_utils/test_concurrency.py}"
want() { [[ "${LINT_STEPS}" == *" $1 "* ]]; }
if want lint; then [[ -x "${VENV}/bin/ansible-lint" ]] || die "${VENV}/bin/ansible-lint not found in ${VENV}"; fi
if want changelog; then
    [[ -x "${VENV}/bin/antsibull-changelog" ]] || die "${VENV}/bin/antsibull-changelog not found in ${VENV}"
fi
if want importer || want docs; then
    [[ -x "${RELEASE_VENV}/bin/antsibull-docs" && -x "${RELEASE_VENV}/bin/flake8" ]] ||
        die "galaxy-importer / antsibull-docs not found in ${RELEASE_VENV}: make release-venv (requirements-release.txt)"
fi
command -v git >/dev/null || die "git is required (to list the collection's files)"

export PATH="${VENV}/bin:${PATH}"
export ANSIBLE_NOCOLOR=1 NO_COLOR=1 PY_COLORS=0

declare -a STEP_NAMES=() STEP_RESULTS=() STEP_TIMES=()

record() {  # record <name> <rc> <seconds>
    STEP_NAMES+=("$1")
    STEP_TIMES+=("$3")
    if [[ "$2" -eq 0 ]]; then STEP_RESULTS+=("PASS"); else STEP_RESULTS+=("FAIL (exit $2)"); fi
}

banner() {
    printf '\n==== %s ====\n' "$*"
}

# pip prints one such line per package for the file:// indexes of this machine's pip config; pure noise.
drop_pip_noise() {
    sed -u -e "/^WARNING: Location 'file:.*' is ignored: it is neither a file nor a directory\.\$/d"
}

# --- copy of the collection at a path ansible-test accepts ---------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/${NAME}-lint.XXXXXX")" || die "mktemp failed"
cleanup() {
    if [[ "${LINT_KEEP_TMP:-0}" == 1 ]]; then
        echo "lint.sh: kept ${WORK}"
    else
        rm -rf -- "${WORK}"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

COLL="${WORK}/ansible_collections/${NAMESPACE}/${NAME}"
mkdir -p "${COLL}"
# Tracked and untracked-but-not-ignored files (skipping tracked files deleted in the work tree).
# A plain copy, not a git repo: ansible-test then lists every file in it, which is exactly this set.
(
    cd "${ROOT}" &&
        git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do
            if [[ -e "$f" || -L "$f" ]]; then printf '%s\0' "$f"; fi
        done |
        tar --null --no-recursion -T - -cf - |
        tar -xf - -C "${COLL}"
) || die "copying the collection to ${COLL} failed"

# --- pip bootstrap stand-in for ansible-test -------------------------------------------------------
ANSIBLE_TEST_DIR="$(python -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')" ||
    die "cannot import ansible_test from ${VENV}"
PIP_VERSION="$(sed -n "s/^ *pip='\([0-9][0-9.]*\)',\$/\1/p" "${ANSIBLE_TEST_DIR}/_internal/python_requirements.py" | head -n 1)"
[[ -n "${PIP_VERSION}" ]] || die "cannot find the pip version ansible-test bootstraps (in ${ANSIBLE_TEST_DIR}/_internal/python_requirements.py)"
GET_PIP="${HOME}/.ansible/test/cache/get_pip_${PIP_VERSION//./_}.py"
# Keep a real get-pip.py that ansible-test managed to download; otherwise (re)install the stand-in.
if [[ ! -f "${GET_PIP}" ]] || grep -q "Offline stand-in for ansible-test's pip bootstrap script" "${GET_PIP}"; then
    mkdir -p "$(dirname "${GET_PIP}")"
    cp "${ROOT}/tools/get_pip_standin.py" "${GET_PIP}"
fi

# --- 1. ansible-test sanity ------------------------------------------------------------------------
SANITY_FAILED=""
if want sanity; then
banner "1/6 ansible-test sanity --venv --python ${LINT_PYTHON}  (in ${COLL})"
start=${SECONDS}
(cd "${COLL}" && ansible-test sanity --venv --python "${LINT_PYTHON}" --color no 2>&1) | drop_pip_noise | tee "${WORK}/sanity.log"
record "ansible-test sanity" "${PIPESTATUS[0]}" $((SECONDS - start))
# The names of the failed sanity tests, for the summary (ansible-test lists them after this line).
SANITY_FAILED="$(awk '/^FATAL: The [0-9]+ sanity test\(s\) listed below/ {on = 1; next} /^FATAL:/ {on = 0} on {printf "%s ", $0}' "${WORK}/sanity.log")"
fi

# --- 2. ansible-lint -------------------------------------------------------------------------------
# awx/configure.yml uses awx.awx, which `make venv` unpacks into .collections (requirements-awx.txt):
# put it next to the copy (after sanity, which must see this collection alone).
if [[ -d "${ROOT}/.collections/ansible_collections/awx/awx" ]]; then
    ln -sfn "${ROOT}/.collections/ansible_collections/awx" "${WORK}/ansible_collections/awx"
else
    echo "lint.sh: awx.awx is not in ${ROOT}/.collections (make venv): awx/configure.yml will not resolve" >&2
fi
if want lint; then
banner "2/6 ansible-lint --offline (profile and exclusions: .ansible-lint)"
start=${SECONDS}
(cd "${ROOT}" && ANSIBLE_COLLECTIONS_PATH="${WORK}" ansible-lint --offline --nocolor -c "${ROOT}/.ansible-lint")
record "ansible-lint" "$?" $((SECONDS - start))
fi

# --- 3. antsibull-changelog ------------------------------------------------------------------------
if want changelog; then
banner "3/6 antsibull-changelog lint"
start=${SECONDS}
(
    cd "${ROOT}" &&
        antsibull-changelog lint &&
        antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
)
record "antsibull-changelog lint" "$?" $((SECONDS - start))
fi

# --- 4. galaxy-importer ----------------------------------------------------------------------------
# The artifact is built from the copy (galaxy.yml's manifest allow-list picks the files), then imported
# the way Galaxy and Automation Hub do. The importer's ansible-lint, ansible-doc and flake8 come from
# RELEASE_VENV (first in PATH); it never reaches the network (offline_ansible_lint).
if want importer; then
banner "4/6 galaxy-importer (tools/galaxy-importer.cfg) on the built artifact"
start=${SECONDS}
(
    set -o pipefail
    mkdir -p "${WORK}/dist" &&
        cd "${WORK}/dist" &&
        env -u ANSIBLE_CONFIG "${VENV}/bin/ansible-galaxy" collection build --output-path "${WORK}/dist" "${COLL}" &&
        artifact="$(ls "${WORK}"/dist/${NAMESPACE}-${NAME}-*.tar.gz)" &&
        printf 'artifact: %s (%s bytes, %s files)\n' "$(basename "${artifact}")" "$(stat -c %s "${artifact}")" \
            "$(tar -tzf "${artifact}" | grep -vc '/$')" &&
        env -u ANSIBLE_CONFIG PATH="${RELEASE_VENV}/bin:${PATH}" GALAXY_IMPORTER_CONFIG="${ROOT}/tools/galaxy-importer.cfg" \
            "${RELEASE_VENV}/bin/python" -m galaxy_importer.main "${artifact}" 2>&1 | tee "${WORK}/importer.log" &&
        grep -q '^Importer processing completed successfully' "${WORK}/importer.log" &&
        ! grep -E '^(WARNING|ERROR)' "${WORK}/importer.log" >/dev/null
)
rc=$?
if [[ ${rc} -ne 0 ]]; then
    echo "galaxy-importer: failed (warnings and errors count):" >&2
    grep -E '^(WARNING|ERROR)' "${WORK}/importer.log" >&2 || true
fi
record "galaxy-importer" "${rc}" $((SECONDS - start))
fi

# --- 5. antsibull-docs -----------------------------------------------------------------------------
if want docs; then
banner "5/6 antsibull-docs lint-collection-docs --plugin-docs"
start=${SECONDS}
(cd "${COLL}" && PATH="${RELEASE_VENV}/bin:${PATH}" env -u ANSIBLE_CONFIG antsibull-docs lint-collection-docs --plugin-docs .)
record "antsibull-docs lint" "$?" $((SECONDS - start))
fi

# --- 6. ansible-test units ------------------------------------------------------------------------
# The pure unit tests, the way ansible-test runs a collection's units (its pytest config, its venv with
# tests/unit/requirements.txt). The tests that need a real PostgreSQL server run with pytest (make pytest).
if want units; then
banner "6/6 ansible-test units --venv --python ${LINT_PYTHON} ${LINT_UNITS}"
start=${SECONDS}
# shellcheck disable=SC2086  # LINT_UNITS is a list of paths
(cd "${COLL}" && ansible-test units --venv --python "${LINT_PYTHON}" --color no ${LINT_UNITS} 2>&1) | drop_pip_noise
record "ansible-test units" "${PIPESTATUS[0]}" $((SECONDS - start))
fi

# --- summary ---------------------------------------------------------------------------------------
banner "summary"
failed=0
for i in "${!STEP_NAMES[@]}"; do
    printf '  %-26s %-14s %4ss\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_TIMES[$i]}"
    if [[ $i -eq 0 && -n "${SANITY_FAILED}" ]]; then
        printf '  %-26s failed tests: %s\n' "" "${SANITY_FAILED% }"
    fi
    [[ "${STEP_RESULTS[$i]}" == PASS ]] || failed=1
done
if [[ ${failed} -ne 0 ]]; then
    echo "lint: FAILED (details above; ansible-test paths are relative to the repository root)"
    exit 1
fi
echo "lint: all checks passed"

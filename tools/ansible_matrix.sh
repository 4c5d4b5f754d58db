#!/usr/bin/env bash
# The ansible-core version matrix: for each version given (default 2.16 2.17 2.18 2.19), in its own venv
# .venvs/ansible-<version> (ansible-core==<version>.* plus requirements.txt, the modules' runtime deps):
#   1. ansible-test sanity --venv   (tools/lint.sh LINT_STEPS=sanity with VENV=that venv: offline pip bootstrap)
#   2. the playbook smoke tests     (pytest -m smoke: deploy, re-run no-op, check mode with diff, rollback, the
#                                    playbook run from the installed artifact (distlib: ansible-galaxy build),
#                                    tests/integration/test_playbooks.py) with that venv's ansible-playbook
#                                    (PGINDEX_ANSIBLE_BIN), against a real embedded PostgreSQL (PGINDEX_PG_VERSION)
# pytest itself, psycopg2 for the fixtures and the embedded server come from .venv.
#
# Usage: tools/ansible_matrix.sh [2.16 2.19 ...]      (make test-ansible-matrix, make test-ansible-ci)
# Environment:
#   MATRIX_SKIP_SANITY="2.19"   versions whose sanity is already run elsewhere (tools/lint.sh on .venv)
#   PYTHON=python3              interpreter the venvs are created with
# Prints one result line per version and step; the exit status is non-zero if any failed.

set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
SKIP_SANITY=" ${MATRIX_SKIP_SANITY:-} "
VERSIONS=("$@")
[[ ${#VERSIONS[@]} -gt 0 ]] || VERSIONS=(2.16 2.17 2.18 2.19)
[[ -x "${ROOT}/.venv/bin/pytest" ]] || { echo "ansible_matrix.sh: ${ROOT}/.venv/bin/pytest not found (make venv)" >&2; exit 2; }

declare -a LINES=()
failed=0
note() {  # note <version> <step> <rc> <seconds> [detail]
    local result=PASS
    [[ "$3" -eq 0 ]] || { result="FAIL (exit $3)"; failed=1; }
    LINES+=("$(printf '  ansible-core %-8s %-14s %-14s %5ss  %s' "$1" "$2" "${result}" "$4" "${5:-}")")
}

for version in "${VERSIONS[@]}"; do
    venv="${ROOT}/.venvs/ansible-${version}"
    printf '\n==== ansible-core %s (%s) ====\n' "${version}" "${venv}"
    start=${SECONDS}
    # (re)install when requirements.txt changed since the venv was made
    if [[ ! -f "${venv}/.installed" || "${ROOT}/requirements.txt" -nt "${venv}/.installed" ]]; then
        { [[ -x "${venv}/bin/python" ]] || "${PYTHON}" -m venv "${venv}"; } &&
            "${venv}/bin/python" -m pip install --quiet "ansible-core==${version}.*" distlib==0.4.4 -r "${ROOT}/requirements.txt" 2>&1 |
            sed -e "/^WARNING: Location 'file:.*' is ignored/d" &&
            touch "${venv}/.installed"
        rc=$?
        if [[ ${rc} -ne 0 ]]; then note "${version}" venv "${rc}" $((SECONDS - start)); continue; fi
    fi
    exact="$("${venv}/bin/python" -c 'from ansible.release import __version__; print(__version__)')"

    if [[ "${SKIP_SANITY}" == *" ${version} "* ]]; then
        LINES+=("$(printf '  ansible-core %-8s %-14s %-14s' "${exact}" sanity "skipped (run by tools/lint.sh)")")
    else
        start=${SECONDS}
        VENV="${venv}" LINT_STEPS=sanity bash "${ROOT}/tools/lint.sh"
        note "${exact}" sanity $? $((SECONDS - start))
    fi

    start=${SECONDS}
    out="$(mktemp)"
    (cd "${ROOT}" && PGINDEX_ANSIBLE_BIN="${venv}/bin" "${ROOT}/.venv/bin/python" -m pytest tests/integration/test_playbooks.py \
        -m smoke -q -p no:cacheprovider 2>&1) | tee "${out}"
    rc=${PIPESTATUS[0]}
    note "${exact}" smoke "${rc}" $((SECONDS - start)) "$(grep -E '^[0-9]+ (passed|failed)|passed|failed' "${out}" | tail -n 1)"
    rm -f "${out}"
done

printf '\n==== ansible-core matrix ====\n'
printf '%s\n' "${LINES[@]}"
exit ${failed}

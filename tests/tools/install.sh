#!/usr/bin/env bash
# Installs the tools the test suite drives besides cargo, pinned, into target/ (idempotent:
# a second run with nothing changed does nothing). Part of the README's test command and of
# .ci/run; the tests never download anything themselves.
#
#   schemathesis   from PyPI, every package at the version in tests/tools/requirements.txt,
#                  into target/test-tools/venv (tests/openapi.rs runs it against a dev node)
#   jq             from Debian, if it is not on the PATH (the README's tour uses it;
#                  tests/readme_tour.rs runs the tour)
set -euo pipefail

if ! command -v jq >/dev/null; then
    echo "installing jq from Debian (the README's tour uses it)"
    sudo=
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get install -y -q jq >/dev/null 2>&1 ||
        { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q jq >/dev/null; }
    jq --version
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=$ROOT/target/test-tools/venv
REQS=$ROOT/tests/tools/requirements.txt
STAMP=$VENV/.requirements

if [[ -x $VENV/bin/st ]] && cmp -s "$REQS" "$STAMP"; then
    exit 0
fi
echo "installing schemathesis into $VENV (pinned in tests/tools/requirements.txt)"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$REQS"
"$VENV/bin/st" --version
cp "$REQS" "$STAMP"

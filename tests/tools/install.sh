#!/usr/bin/env bash
# Installs the tools the test suite drives besides cargo, pinned, into target/ (idempotent:
# a second run with nothing changed does nothing). Part of the README's test command and of
# .ci/run; the tests never download anything themselves.
#
#   schemathesis   from PyPI, every package at the version in tests/tools/requirements.txt,
#                  into target/test-tools/venv (tests/openapi.rs runs it against a dev node)
#   jq             from Debian, if it is not on the PATH (the README's tour uses it;
#                  tests/readme_tour.rs runs the tour)
#   chromium       from Debian, if it is not on the PATH (tests/console.rs drives the web
#                  console in it, headless)
set -euo pipefail

# Installs Debian package $1 unless command $2 is on the PATH.
debian() {
    command -v "$2" >/dev/null && return 0
    echo "installing $1 from Debian"
    local sudo=
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get install -y -q "$1" >/dev/null 2>&1 ||
        { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "$1" >/dev/null; }
    command -v "$2" >/dev/null
}
debian jq jq && jq --version
debian chromium chromium && chromium --version 2>/dev/null | head -1

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

#!/usr/bin/env bash
# Runs the API tour of the README exactly as written, and checks every HTTP status it promises.
#
#   bash tests/tour.sh [README.md]        (against $S, default http://127.0.0.1:7070)
#
# Start a fresh `scarab dev` node from the repository root first, and have `scarab` on the PATH
# if the tour uses the CLI. The tour is the README's code blocks fenced as ```sh tour, taken in
# order and run in ONE bash session (variables carry over) from the directory of the README,
# with `set -euo pipefail`. In those blocks:
#
# - A command may span lines ending in `\` (or in `|`, `&&`, `||`).
# - `# NNN` (three digits) on the line right after a command: the HTTP status of the last curl
#   that command ran must be NNN. Every command that runs curl must have one.
# - `# exit N` on the line right after a command: it must exit with status N (others must
#   exit 0).
# - Other comments and blank lines are ignored.
#
# `curl` is a shell function there: it runs the real curl with `-w '%{http_code}'`, prints the
# body unchanged on stdout and keeps the status in a file (so it is seen also from `$(...)` and
# pipes). The first failed check or failing command stops the run with the README line, the
# command and the body received, and a non-zero exit status.
set -euo pipefail

readme=${1:-README.md}
if [[ ! -f $readme ]]; then
    echo "tour.sh: no such file: $readme" >&2
    exit 2
fi
for tool in curl jq; do
    if ! command -v "$tool" >/dev/null; then
        echo "tour.sh: the tour needs $tool on the PATH" >&2
        exit 2
    fi
done
S=${S:-http://127.0.0.1:7070}
export S
readme_dir=$(cd "$(dirname "$readme")" && pwd)
readme_name=$(basename "$readme")

work=$(mktemp -d "${TMPDIR:-/tmp}/scarab-tour.XXXXXX")
trap 'rm -rf "$work"' EXIT
script=$work/tour.bash
mkdir "$work/cmd"

# ---------------------------------------------------------------------------------------------
# 1. Extract the tour and write the script.

parse_errors=0
parse_error() {
    echo "$readme_name:$1: $2" >&2
    parse_errors=$((parse_errors + 1))
}

# Whether a (logical) line goes on to the next one.
continues() {
    local l=${1%"${1##*[![:space:]]}"} # without trailing whitespace
    [[ $l == *\\ || $l == *'|' || $l == *'&&' ]]
}

runs_curl() {
    grep -Eq '(^|[^[:alnum:]_./-])curl([[:space:]]|$)' <<<"$1"
}

# emit LINE KIND VALUE: writes the pending command (in $pending) into the script.
# KIND is `status` (VALUE: the HTTP status), `exit` (VALUE: the exit status) or `none`.
emit() {
    local line=$1 kind=$2 value=$3
    printf '%s\n' "$pending" >"$work/cmd/$line"
    if [[ $kind != status ]] && runs_curl "$pending"; then
        parse_error "$line" "a curl without a status comment on the next line (# NNN): $(head -n1 <<<"$pending")"
    fi
    {
        printf '__at %d\n' "$line"
        if [[ $kind == exit ]]; then
            printf 'if %s\nthen __rc=0; else __rc=$?; fi\n' "$pending"
            printf '__expect_exit %d %d "$__rc"\n' "$line" "$value"
        else
            printf '%s\n' "$pending"
            if [[ $kind == status ]]; then
                printf '__expect_status %d %s\n' "$line" "$value"
            fi
        fi
        # Show what an assignment captured (REV=$(curl ...)), for the log.
        if [[ $pending =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]]; then
            printf '__show_var %s\n' "${BASH_REMATCH[1]}"
        fi
    } >>"$script"
    pending=
}

cat >"$script" <<'HEADER'
set -euo pipefail
__dir=$__TOUR_WORK
__steps=0
__started=$SECONDS
# Colours on a terminal only.
if [[ -t 1 ]]; then
    __bold=$'\033[1m' __red=$'\033[31m' __green=$'\033[32m' __off=$'\033[0m'
else
    __bold= __red= __green= __off=
fi

# The real curl, with the status kept aside (in a file: this also runs in $(...) and pipes).
curl() {
    local out rc=0 size
    out=$(mktemp "$__dir/curl.XXXXXX")
    command curl "$@" -w '%{http_code}' >"$out" || rc=$?
    size=$(wc -c <"$out")
    if ((size >= 3)); then
        head -c "$((size - 3))" "$out" >"$out.body"
        tail -c 3 "$out" >"$__dir/status"
    else
        : >"$out.body"
    fi
    cp "$out.body" "$__dir/body"
    cat "$out.body"
    rm -f "$out" "$out.body"
    if ((rc != 0)); then
        echo "curl: exit status $rc (see \`man curl\`, EXIT CODES)" >&2
    fi
    return "$rc"
}

__at() {
    __line=$1
    __steps=$((__steps + 1))
    : >"$__dir/status"
    : >"$__dir/body"
    printf '\n%s--- %s:%d%s\n' "$__bold" "$__README" "$1" "$__off"
    sed 's/^/$ /' "$__dir/cmd/$1"
}

__fail() {
    local line=$1
    shift
    {
        printf '\n%sFAIL%s %s:%d: %s\n' "$__red" "$__off" "$__README" "$line" "$*"
        echo "command:"
        sed 's/^/    /' "$__dir/cmd/$line"
        if [[ -s $__dir/body ]]; then
            echo "body received (last curl):"
            head -c 4000 "$__dir/body" | sed 's/^/    /'
            echo
        fi
    } >&2
    exit 1
}

__expect_status() {
    local got
    got=$(cat "$__dir/status")
    if [[ -z $got ]]; then
        __fail "$1" "expected HTTP $2, but the command made no request"
    elif [[ $got != "$2" ]]; then
        __fail "$1" "expected HTTP $2, got $got"
    fi
    printf '\n  %s✓ %s%s\n' "$__green" "$2" "$__off"
}

__expect_exit() {
    if (($3 != $2)); then
        __fail "$1" "expected exit status $2, got $3"
    fi
    printf '  %s✓ exit %s%s\n' "$__green" "$2" "$__off"
}

__show_var() {
    printf '  %s=%s\n' "$1" "${!1-}"
}

trap '__fail "${__line:-0}" "the command failed (exit status $?)"' ERR

HEADER

in_tour=0
blocks=0
lineno=0
pending=
pending_line=0
cur=
cur_line=0
fence_re='^```'
tour_re='^```sh[[:space:]]+tour([[:space:]]|$)'
status_re='^[[:space:]]*#[[:space:]]*([0-9]{3})([^0-9]|$)'
exit_re='^[[:space:]]*#[[:space:]]*exit[[:space:]]+([0-9]+)([[:space:]]|$)'
heredoc_re='<<-?[[:space:]]*["'"'"'A-Za-z_]'

while IFS= read -r line || [[ -n $line ]]; do
    lineno=$((lineno + 1))
    if ((!in_tour)); then
        if [[ $line =~ $tour_re ]]; then
            in_tour=1
            blocks=$((blocks + 1))
        fi
        continue
    fi
    if [[ $line =~ $fence_re ]]; then
        # End of the block.
        if [[ -n $cur ]]; then
            parse_error "$cur_line" "the command goes on past the end of its block"
            cur=
        fi
        if [[ -n $pending ]]; then
            emit "$pending_line" none ''
        fi
        in_tour=0
        continue
    fi
    if [[ -n $cur ]]; then
        cur+=$'\n'$line
        if ! continues "$line"; then
            pending=$cur pending_line=$cur_line cur=
        fi
        continue
    fi
    if [[ -n $pending ]]; then
        if [[ $line =~ $status_re ]]; then
            emit "$pending_line" status "${BASH_REMATCH[1]}"
            continue
        elif [[ $line =~ $exit_re ]]; then
            emit "$pending_line" exit "${BASH_REMATCH[1]}"
            continue
        fi
        emit "$pending_line" none ''
    fi
    if [[ $line =~ ^[[:space:]]*(#.*)?$ ]]; then
        continue
    fi
    if [[ $line =~ $heredoc_re ]]; then
        parse_error "$lineno" "here-documents are not supported in tour blocks (put the file under examples/)"
    fi
    if continues "$line"; then
        cur=$line cur_line=$lineno
    else
        pending=$line pending_line=$lineno
    fi
done <"$readme"

if ((in_tour)); then
    parse_error "$lineno" "a tour block is not closed"
fi
if ((blocks == 0)); then
    parse_error "$lineno" 'no ```sh tour blocks'
fi
if ((parse_errors > 0)); then
    echo "tour.sh: $parse_errors problem(s) in $readme_name; nothing was run" >&2
    exit 1
fi

cat >>"$script" <<'FOOTER'

trap - ERR
printf '\n%sThe tour passed: %d steps in %ds.%s\n' "$__green" "$__steps" "$((SECONDS - __started))" "$__off"
FOOTER

# ---------------------------------------------------------------------------------------------
# 2. Run it.

echo "Running the API tour of $readme ($blocks blocks) against S=$S"
cd "$readme_dir"
__TOUR_WORK=$work __README=$readme_name bash "$script"

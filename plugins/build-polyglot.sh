#!/usr/bin/env bash
# Builds the Python and JavaScript `feature-flag` plugins into WebAssembly components:
#
#   target/wasm32-wasip2/plugin/feature_flag_py_v1.wasm   plugins/python/feature-flag-v1 (componentize-py)
#   target/wasm32-wasip2/plugin/feature_flag_py_v2.wasm   plugins/python/feature-flag-v2
#   target/wasm32-wasip2/plugin/feature_flag_js_v1.wasm   plugins/js/feature-flag-v1 (componentize-js)
#   target/wasm32-wasip2/plugin/feature_flag_js_v2.wasm   plugins/js/feature-flag-v2
#
# Usage: plugins/build-polyglot.sh [all|python|js] [--force]
#
# Installs the pinned tools first when they are missing: componentize-py from PyPI into the
# venv target/polyglot-venv, and `npm ci` in plugins/js (versions in package-lock.json). Apart
# from those installs nothing is downloaded. A component is rebuilt only when one of its inputs
# (sources, the WIT, the pins, this script) is newer than it or its build command changed, so a
# second run with nothing changed takes about a second.
#
# Build variants (see plugins/python/README.md and plugins/js/README.md):
#   SCARAB_PY_WASI=stub (default)  componentize-py --stub-wasi: imports only scarab:plugin/types
#   SCARAB_PY_WASI=full            the default componentize-py build: imports WASI 0.2.9 clocks,
#                                  random, filesystem, sockets, cli and io
#   SCARAB_JS_WASI=none (default)  componentize-js --disable stdio random clocks http fetch-event:
#                                  imports only scarab:plugin/types
#   SCARAB_JS_WASI=full            componentize-js defaults: imports WASI 0.2.12 io, clocks, cli,
#                                  filesystem, random and wasi:http 0.2.10
#   SCARAB_JS_ENGINE=starlingmonkey (default)  componentize-js: SpiderMonkey, about 12 MB
#   SCARAB_JS_ENGINE=quickjs       `jco componentize --backend qjs` (componentize-qjs, pulled in
#                                  by the pinned jco): QuickJS, about 1.6 MB, compiles 6x faster
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1 # PyPI; componentize-js is pinned in plugins/js/package-lock.json

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/target/wasm32-wasip2/plugin
STAGE=$ROOT/target/polyglot-build
VENV=$ROOT/target/polyglot-venv
WIT=$ROOT/wit/0.2.0
JS=$ROOT/plugins/js
PY=$ROOT/plugins/python
SELF=$ROOT/plugins/build-polyglot.sh

which_langs=all
force=0
for arg in "$@"; do
    case $arg in
        all | python | js) which_langs=$arg ;;
        --force) force=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$SELF" | sed -e '$d' -e 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "usage: $0 [all|python|js] [--force]" >&2
            exit 2
            ;;
    esac
done

py_wasi=${SCARAB_PY_WASI:-stub}
js_wasi=${SCARAB_JS_WASI:-none}
js_engine=${SCARAB_JS_ENGINE:-starlingmonkey}
case $py_wasi in stub | full) ;; *) echo "SCARAB_PY_WASI must be stub or full" >&2; exit 2 ;; esac
case $js_wasi in none | full) ;; *) echo "SCARAB_JS_WASI must be none or full" >&2; exit 2 ;; esac
case $js_engine in starlingmonkey | quickjs) ;; *) echo "SCARAB_JS_ENGINE must be starlingmonkey or quickjs" >&2; exit 2 ;; esac

mkdir -p "$OUT" "$STAGE"

now_ms() { date +%s%3N; }

# The command that built each output, to rebuild when it changes (e.g. another variant).
stamp() { echo "$STAGE/stamps/$(basename "$1").cmd"; }

# needs_build OUT CMD INPUT...: true when OUT is missing, older than an input, or was built by
# another command.
needs_build() {
    local out=$1 cmd=$2
    shift 2
    local stamp
    stamp=$(stamp "$out")
    [[ $force == 1 || ! -f $out || ! -f $stamp ]] && return 0
    [[ $(cat "$stamp") == "$cmd" ]] || return 0
    local input
    for input in "$@"; do
        [[ $input -nt $out ]] && return 0
    done
    return 1
}

# done_build OUT CMD START_MS: records the command and reports size and time.
done_build() {
    local out=$1 cmd=$2 start=$3
    mkdir -p "$STAGE/stamps"
    printf '%s' "$cmd" >"$(stamp "$out")"
    local ms=$(($(now_ms) - start))
    printf '  built %s: %s bytes in %d.%03d s\n' "${out#"$ROOT"/}" "$(stat -c %s "$out")" \
        $((ms / 1000)) $((ms % 1000))
}

# --- tools ---------------------------------------------------------------------------------

ensure_componentize_py() {
    local have=""
    if [[ -x $VENV/bin/componentize-py ]]; then
        have=$("$VENV/bin/python" -m pip show componentize-py 2>/dev/null |
            sed -n 's/^Version: //p')
    fi
    if [[ $have != "$COMPONENTIZE_PY_VERSION" ]]; then
        echo "installing componentize-py==$COMPONENTIZE_PY_VERSION into ${VENV#"$ROOT"/}"
        [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            "componentize-py==$COMPONENTIZE_PY_VERSION"
    fi
}

ensure_componentize_js() {
    # npm ci writes node_modules/.package-lock.json; reinstall when the lock is newer.
    if [[ ! -x $JS/node_modules/.bin/componentize-js ||
        ! -f $JS/node_modules/.package-lock.json ||
        $JS/package-lock.json -nt $JS/node_modules/.package-lock.json ]]; then
        echo "installing plugins/js dependencies (npm ci)"
        (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

# --- Python --------------------------------------------------------------------------------

# build_py VERSION WORLD
build_py() {
    local v=$1 world=$2
    local out=$OUT/feature_flag_py_v$v.wasm
    local src=$PY/feature-flag-v$v
    local flags=()
    [[ $py_wasi == stub ]] && flags=(--stub-wasi)
    # componentize-py writes __pycache__ beside the modules it imports, and bundles what is on
    # its Python path: build from a copy so that the source tree stays clean.
    local stage=$STAGE/py-v$v
    local cmd="componentize-py==$COMPONENTIZE_PY_VERSION -d wit/0.2.0 -w $world componentize ${flags[*]} -p <stage> app"
    local inputs=("$src"/*.py "$PY/feature_flag_rules.py" "$WIT"/*.wit "$SELF")
    if ! needs_build "$out" "$cmd" "${inputs[@]}"; then
        echo "  up to date: ${out#"$ROOT"/}"
        return
    fi
    local start
    start=$(now_ms)
    rm -rf "$stage"
    mkdir -p "$stage"
    cp "$src"/*.py "$PY/feature_flag_rules.py" "$stage/"
    (cd "$stage" && "$VENV/bin/componentize-py" --quiet -d "$WIT" -w "$world" \
        componentize "${flags[@]}" -p "$stage" app -o "$out.tmp")
    mv "$out.tmp" "$out"
    done_build "$out" "$cmd" "$start"
}

# --- JavaScript ----------------------------------------------------------------------------

# build_js VERSION WORLD
build_js() {
    local v=$1 world=$2
    local out=$OUT/feature_flag_js_v$v.wasm
    local src=feature-flag-v$v/app.js
    local flags=() cmd
    if [[ $js_engine == starlingmonkey ]]; then
        [[ $js_wasi == none ]] && flags=(--disable stdio random clocks http fetch-event)
        cmd="componentize-js $src --wit wit/0.2.0 --world-name $world ${flags[*]}"
    else
        # --backend-qjs-disable-async: without it the component uses the component model's
        # async ABI (`task.cancel`), which Scarab's runtime does not enable. --bundle: QuickJS
        # only loads modules under the entry's directory, so ../feature-flag-rules.js is
        # bundled in first.
        flags=(--bundle --backend qjs --backend-qjs-disable-async)
        [[ $js_wasi == none ]] && flags+=(--backend-qjs-stub-wasi)
        cmd="jco componentize $src --wit wit/0.2.0 --world-name $world ${flags[*]}"
    fi
    local inputs=("$JS/feature-flag-v$v"/*.js "$JS/feature-flag-rules.js" "$WIT"/*.wit
        "$JS/package-lock.json" "$SELF")
    if ! needs_build "$out" "$cmd" "${inputs[@]}"; then
        echo "  up to date: ${out#"$ROOT"/}"
        return
    fi
    local start
    start=$(now_ms)
    if [[ $js_engine == starlingmonkey ]]; then
        # Run from plugins/js: componentize-js maps the working directory into the build, which
        # is how `import '../feature-flag-rules.js'` resolves. No --aot: it downloads weval.
        (cd "$JS" && node_modules/.bin/componentize-js "$src" --wit "$WIT" \
            --world-name "$world" "${flags[@]}" -o "$out.tmp")
    else
        # jco 1.35.0 resolves a relative entry path against its own directory twice: pass it
        # absolute. It prints "OK Successfully written ...".
        (cd "$JS" && node_modules/.bin/jco componentize "$JS/$src" --wit "$WIT" \
            --world-name "$world" "${flags[@]}" -o "$out.tmp" >/dev/null)
    fi
    mv "$out.tmp" "$out"
    done_build "$out" "$cmd" "$start"
}

if [[ $which_langs == all || $which_langs == python ]]; then
    ensure_componentize_py
    echo "Python (componentize-py $COMPONENTIZE_PY_VERSION, SCARAB_PY_WASI=$py_wasi)"
    build_py 1 validator-plugin
    build_py 2 migrator-plugin
fi
if [[ $which_langs == all || $which_langs == js ]]; then
    ensure_componentize_js
    if [[ $js_engine == starlingmonkey ]]; then
        tool="componentize-js $(node -p 'require(process.argv[1]).version' \
            "$JS/node_modules/@bytecodealliance/componentize-js/package.json")"
    else
        tool="jco $(node -p 'require(process.argv[1]).version' \
            "$JS/node_modules/@bytecodealliance/jco/package.json") + componentize-qjs $(node -p \
            'require(process.argv[1]).version' "$JS/node_modules/componentize-qjs/package.json")"
    fi
    echo "JavaScript ($tool, SCARAB_JS_ENGINE=$js_engine, SCARAB_JS_WASI=$js_wasi)"
    build_js 1 validator-plugin
    build_js 2 migrator-plugin
fi

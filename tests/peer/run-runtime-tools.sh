#!/bin/sh
# Run opencontainers/runtime-tools' validation suite against an OCI runtime and print how many
# of its test files pass. The suite is never committed: point SRC at a checkout of it (e.g.
# made from the `fetch` mirror) and have Go >= 1.21 on the PATH (Debian: golang-go from
# bookworm-backports). Root is needed (the tests run real containers).
#
#   tests/peer/run-runtime-tools.sh [RUNTIME]     RUNTIME defaults to pyminidocker-runc
#   SRC=/tmp/runtime-tools  ONLY="hostname kill"  OCI_VERSION=1.1.0 (rewrite the tests' spec
#   version, as crun 1.8 needs)  LOGDIR=dir (each test's TAP output)
set -eu
HERE=$(cd "$(dirname "$0")/../.." && pwd)
SRC=${SRC:-/tmp/runtime-tools}
RUNTIME=${1:-}
LOGDIR=${LOGDIR:-$(mktemp -d /tmp/runtime-tools-log.XXXXXX)}
mkdir -p "$LOGDIR"
if [ -z "$RUNTIME" ]; then
    # This checkout as `make install` lays it out, without installing it: the C front
    # (pmd-runc) as the command, and the Python runtime's launcher it execs beside it.
    RUNTIME=$LOGDIR/pyminidocker-runc
    printf '#!%s\nimport sys\nsys.path.insert(0, %s)\nfrom pyminidocker.oci.main import command\ncommand()\n' \
        "$HERE/.venv/bin/python" "'$HERE'" > "$RUNTIME.py"
    chmod +x "$RUNTIME.py"
    [ -x "$HERE/pyminidocker/pmd-runc" ] || { echo "pmd-runc is not built (make build)" >&2; exit 2; }
    cp "$HERE/pyminidocker/pmd-runc" "$RUNTIME"
fi
command -v go >/dev/null || { echo "go is not installed (apt-get install -t bookworm-backports golang-go)" >&2; exit 2; }
[ -d "$SRC/validation" ] || { echo "no runtime-tools checkout at $SRC (set SRC)" >&2; exit 2; }
cd "$SRC"
export GOFLAGS=-mod=vendor GOPROXY=off
[ -x runtimetest ] || make -s runtimetest >&2
if [ -n "${OCI_VERSION:-}" ]; then
    # crun 1.8 refuses the suite's 1.2.x specs; the rewrite is the only change to the suite.
    sed -i "s/Version = .*/Version = \"$OCI_VERSION\"/" vendor/github.com/opencontainers/runtime-spec/specs-go/version.go
fi
tests=$(find validation -name '*.go' ! -path '*/util/*' | sort)
pass=0; total=0
for go in $tests; do
    t=${go%.go}.t
    name=$(basename "$go" .go)
    if [ -n "${ONLY:-}" ] && ! echo " $ONLY " | grep -q " $name "; then continue; fi
    [ -x "$t" ] && [ "$t" -nt "$go" ] || go build -o "$t" "$go" >&2
    total=$((total + 1))
    # A file passes when it exits 0 with no "not ok", and, if it has no "ok" line at all (its
    # checks are diagnostics of a "1..0" plan), no "error" diagnostic either.
    log=$LOGDIR/$name.tap
    if RUNTIME=$RUNTIME timeout 120 "./$t" > "$log" 2>&1 && ! grep -q '^not ok' "$log" &&
            { grep -q '^ok' "$log" || ! grep -q '"error":' "$log"; }; then
        pass=$((pass + 1)); echo "PASS $name"
    else
        echo "FAIL $name"
    fi
done
echo "runtime-tools: $pass/$total test files pass with $RUNTIME (TAP output in $LOGDIR)"

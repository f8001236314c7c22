#!/usr/bin/env bash
# The science regression check of initlab's own CI (.ci/run, after `make test`): the reduced
# source-reproduction configs run (< 1 min) and are compared with the committed baselines here.
#   baselines/check.sh            run + `initlab check` (exit 1 on a regression)
#   baselines/check.sh --update   run + rewrite the baselines; review and commit the diff
# The numbers are bit-identical across thread counts on one machine (tiny layers: no BLAS
# reductions); rtol 1e-6 leaves room for another CPU's libm. docs/check.md explains the format.
set -euo pipefail
cd "$(dirname "$0")/.."
INITLAB=${INITLAB:-.venv/bin/initlab}
MODE=()
[ "${1:-}" = "--update" ] && MODE=(--update-baseline)
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
status=0
run_and_check() {  # name, then the --set overrides of the reduced run
    local name=$1; shift
    local sets=()
    for s in "$@"; do sets+=(--set "$s"); done
    # exit 1 here is a failed `expect:` of the config (the results are still written)
    "$INITLAB" run "configs/$name.yaml" "${sets[@]}" --quiet --out "$OUT/$name" || status=1
    "$INITLAB" check "$OUT/$name" --baseline "baselines/$name.yaml" --rtol 1e-6 --atol 1e-12 \
        "${MODE[@]}" || status=1
}
run_and_check playground seeds=2 train.epochs=300
run_and_check linear_chain train.epochs=20
exit $status

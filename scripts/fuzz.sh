#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ and runs each for FUZZ_SECONDS
# (default 60); exits non-zero if any target crashes (panic, failed
# assertion, overflow, timeout, OOM). Crash inputs land in
# fuzz/artifacts/<target>/; keep one as a regression in
# fuzz/regressions/<target>/ once fixed (they are replayed first, every run).
#
# Stable Rust only: cargo-fuzz needs nightly flags (-Zsanitizer, sancov),
# RUSTC_BOOTSTRAP=1 enables them on the stable toolchain.
#
#   FUZZ_SECONDS=60        time per target
#   FUZZ_TARGETS="a b"     only these targets (default: all, `cargo fuzz list`)
#   FUZZ_SANITIZER=none    or `address` (slower build and run; the code under
#                          test is safe Rust, so panics are what we look for)
#   FUZZ_PROFILE=--dev     or `--release` (slower build, faster runs)
#   FUZZ_JOBS=2            targets fuzzed at the same time (libFuzzer runs on
#                          one core; default: the number of cores)
#   FUZZ_BUILD_ONLY=1      install cargo-fuzz if needed and build, run nothing
#                          (CI builds early, in the background, and runs later)
#
# Every run of a target replays first its kept crash inputs
# (fuzz/regressions/<target>/, each once), then libFuzzer loads the whole
# corpus (fuzz/corpus/<target>/, what earlier runs found, plus the committed
# seeds/<target>/) before it fuzzes for FUZZ_SECONDS: a short run still
# re-checks everything found so far. CI keeps fuzz/corpus and fuzz/target
# between runs (outside the clone), so the corpus keeps growing.
#
# The dev build has line tables only (CARGO_PROFILE_DEV_DEBUG=line-tables-only
# unless set): crash backtraces keep file and line, the build and link of the
# instrumented tree take less time.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-none}
FUZZ_PROFILE=${FUZZ_PROFILE:---dev}
FUZZ_JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
export RUSTC_BOOTSTRAP=1
export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}
# The fuzz targets do not serve the web client: build.rs only stages what is
# there (no npm run here, so CI can build this while other steps use web/).
export TIDINGS_SKIP_WEB_BUILD=1
# The fuzz build has its own flags and lock file: keep it in fuzz/target.
unset CARGO_TARGET_DIR

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    # A plain optimised build of the tool installs faster than its release profile asks.
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo install cargo-fuzz --locked --version 0.13.2
fi

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
start=$(date +%s)
echo "== building fuzz targets ($FUZZ_PROFILE, sanitizer $FUZZ_SANITIZER)"
cargo fuzz build "$FUZZ_PROFILE" --sanitizer "$FUZZ_SANITIZER"
echo "== built in $(( $(date +%s) - start )) s"

if [[ "${FUZZ_BUILD_ONLY:-}" == "1" ]]; then
    echo "== FUZZ_BUILD_ONLY=1: built, not run"
    exit 0
fi

# One target: regressions, then corpus + fuzzing. Prints to its log; the exit
# code says what failed (0 ok, 1 regression, 2 fuzzing).
fuzz_one() {
    local target=$1
    local run=(cargo fuzz run "$FUZZ_PROFILE" --sanitizer "$FUZZ_SANITIZER" "$target")
    # 1. Replay the kept crash inputs (each once).
    if compgen -G "regressions/$target/*" >/dev/null; then
        echo "== $target: replaying regressions/$target"
        "${run[@]}" regressions/"$target"/* -- -runs=1 || return 1
    fi
    # 2. Fuzz, starting from the seeds and what earlier runs found.
    mkdir -p "corpus/$target"
    local dirs=("corpus/$target")
    [ -d "seeds/$target" ] && dirs+=("seeds/$target")
    echo "== $target: fuzzing for ${FUZZ_SECONDS}s"
    "${run[@]}" "${dirs[@]}" -- -max_total_time="$FUZZ_SECONDS" -max_len=20000 \
        -timeout=10 -print_final_stats=1 || return 2
}

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
running=0
for target in $targets; do
    if ((running >= FUZZ_JOBS)); then
        wait -n || true
        running=$((running - 1))
    fi
    echo "== $target: started"
    (
        rc=0
        fuzz_one "$target" >"$logs/$target.log" 2>&1 || rc=$?
        echo "$rc" >"$logs/$target.rc"
    ) &
    running=$((running + 1))
done
wait

failed=()
for target in $targets; do
    rc=$(cat "$logs/$target.rc" 2>/dev/null || echo 3)
    cat "$logs/$target.log"
    case $rc in
        0) ;;
        1) failed+=("$target (regression)") ;;
        *) failed+=("$target") ;;
    esac
done

echo "== fuzzing took $(( $(date +%s) - start )) s in total ($FUZZ_JOBS at a time)"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FUZZING FOUND CRASHES in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "== no crashes in: $targets"

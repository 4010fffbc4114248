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
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-none}
FUZZ_PROFILE=${FUZZ_PROFILE:---dev}
export RUSTC_BOOTSTRAP=1
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

failed=()
for target in $targets; do
    run=(cargo fuzz run "$FUZZ_PROFILE" --sanitizer "$FUZZ_SANITIZER" "$target")
    # 1. Replay the kept crash inputs (each once).
    if compgen -G "regressions/$target/*" >/dev/null; then
        echo "== $target: replaying regressions/$target"
        if ! "${run[@]}" regressions/"$target"/* -- -runs=1; then
            failed+=("$target (regression)")
            continue
        fi
    fi
    # 2. Fuzz, starting from the seeds and what earlier runs found.
    mkdir -p "corpus/$target"
    dirs=("corpus/$target")
    [ -d "seeds/$target" ] && dirs+=("seeds/$target")
    echo "== $target: fuzzing for ${FUZZ_SECONDS}s"
    if ! "${run[@]}" "${dirs[@]}" -- -max_total_time="$FUZZ_SECONDS" -max_len=20000 \
        -timeout=10 -print_final_stats=1; then
        failed+=("$target")
    fi
done

echo "== fuzzing took $(( $(date +%s) - start )) s in total"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FUZZING FOUND CRASHES in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "== no crashes in: $targets"

#!/usr/bin/env bash
# aarch64 checks on an x86-64 Debian/Ubuntu machine, under qemu user-mode emulation:
#
#  1. installs what is missing: the rustup target aarch64-unknown-linux-gnu, the cross linker
#     and libc (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross) and qemu-user-static;
#  2. cross-builds (release profile, linker from .cargo/config.toml) the kernel tests and the
#     `pith` binary for aarch64, and the native `pith` for the reference run;
#  3. runs the kernel tests on two emulated CPUs: `-cpu cortex-a53` (NEON, no dotprod: a
#     Raspberry Pi 3) and `-cpu max` (dotprod and i8mm), each at the automatically chosen
#     level and, on `max`, also pinned to plain NEON (PITH_FORCE_KERNELS=neon-nodot):
#       runtime/tests/kernels_neon.rs    both NEON flavours vs candle, f64 and scalar (and each
#                                        other, bit for bit), the level choice per CPU model
#       runtime/tests/kernels.rs         every available level vs candle/f64 (+ gguf-py, real model)
#       runtime/tests/kernel_levels.rs   every available level vs scalar on edge-case blocks
#  4. end to end: 16 greedy tokens from small random-weight models (tests/py/make_arch_models.py:
#     Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights) and, when present, the real Gemma 3 270M Q4_K_M
#     (Q4_K, Q6_K, Q5_0, Q8_0), on both CPUs: the generated text must be byte-identical to
#     the native x86-64 run's.
#
# Usage: bash ci/arm-tests.sh            (from anywhere; exits non-zero on the first failure)
# Env:   ARM_TESTS_SKIP_GEMMA=1          skip the real-model end-to-end runs
#        PITH_HOME                       where the real model is looked for ($HOME/.cache/pith)
# Needs: python3 with gguf==0.19.0 and numpy (the small models; .ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu
T0=$(date +%s)
log() { printf '[arm-tests %4ds] %s\n' "$(($(date +%s) - T0))" "$*"; }
die() {
    log "FAILED: $*"
    exit 1
}

# --- 1. toolchain ---------------------------------------------------------------------------
if ! rustup target list --installed | grep -qx "$TARGET"; then
    log "rustup target add $TARGET"
    rustup target add "$TARGET"
fi
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
if ((${#need[@]})); then
    log "apt-get install ${need[*]}"
    SUDO=
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# --- 2. builds ------------------------------------------------------------------------------
log "cross-building the kernel tests and pith for $TARGET (release)"
# One cargo invocation, so that the tests and the binary share one feature resolution (and
# one build of every dependency).
build_json=$(cargo build --release --target "$TARGET" -p pith-runtime -p pith \
    --test kernels_neon --test kernels --test kernel_levels --bin pith --message-format=json-render-diagnostics)
exe_of() { # the executable of target $1 from cargo's JSON messages
    python3 -c '
import json, sys
name = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == name and m.get("executable"):
        print(m["executable"])
' "$1" <<<"$build_json"
}
KN=$(exe_of kernels_neon)
KX=$(exe_of kernels)
KL=$(exe_of kernel_levels)
ARM_PITH=$(exe_of pith)
[ -x "$KN" ] && [ -x "$KX" ] && [ -x "$KL" ] && [ -x "$ARM_PITH" ] ||
    die "executables not found ($KN, $KX, $KL, $ARM_PITH)"
log "building the native pith (the reference run)"
cargo build --release --bin pith
X86_PITH=target/release/pith
if command -v file >/dev/null; then
    file "$ARM_PITH" | grep -q 'ARM aarch64' || die "$ARM_PITH is not an aarch64 executable"
fi
log "built: $ARM_PITH ($(du -h "$ARM_PITH" | cut -f1))"

emu() { # emu CPU CMD...: run an aarch64 executable on the emulated CPU model
    local cpu=$1
    shift
    qemu-aarch64-static -cpu "$cpu" -L "$SYSROOT" "$@"
}

# --- 3. kernel tests under both CPU models ----------------------------------------------------
for cpu in cortex-a53 max; do
    expect=0
    forces=("")
    if [ "$cpu" = max ]; then
        expect=1
        forces=("" neon-nodot)
    fi
    for force in "${forces[@]}"; do
        label="-cpu $cpu${force:+, PITH_FORCE_KERNELS=$force}"
        log "kernels_neon $label"
        PITH_EXPECT_DOTPROD=$expect PITH_FORCE_KERNELS=$force emu "$cpu" "$KN" -q ||
            die "kernels_neon $label"
        for t in kernels kernel_levels; do
            log "$t $label"
            exe=$KX
            [ "$t" = kernel_levels ] && exe=$KL
            PITH_FORCE_KERNELS=$force emu "$cpu" "$exe" -q || die "$t $label"
        done
    done
done

# --- 4. end to end: greedy tokens equal the x86-64 run's --------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log "writing the small test models"
python3 tests/py/make_arch_models.py "$tmp" --only llama2 llama3 qwen3 gemma3-tiny >"$tmp/make.log" 2>&1 ||
    {
        cat "$tmp/make.log"
        die "tests/py/make_arch_models.py"
    }
models=("$tmp/llama2.gguf" "$tmp/llama3.gguf" "$tmp/qwen3.gguf" "$tmp/gemma3-tiny.gguf")
gemma="${PITH_HOME:-$HOME/.cache/pith}/models/gemma-3-270m-q4_k_m.gguf"
if [ "${ARM_TESTS_SKIP_GEMMA:-0}" != 1 ]; then
    [ -f "$gemma" ] || die "the real model is missing at $gemma (cargo run --release -- fetch)"
    models+=("$gemma")
fi
prompt="The capital of France is"
for m in "${models[@]}"; do
    name=$(basename "$m" .gguf)
    args=(run -m "$m" -p "$prompt" -n 16 --temp 0 -t 2)
    "$X86_PITH" "${args[@]}" >"$tmp/$name.x86" 2>"$tmp/$name.x86.err" ||
        die "native pith on $name: $(cat "$tmp/$name.x86.err")"
    [ -s "$tmp/$name.x86" ] || die "native pith generated nothing on $name"
    for cpu in cortex-a53 max; do
        emu "$cpu" "$ARM_PITH" "${args[@]}" >"$tmp/$name.$cpu" 2>"$tmp/$name.$cpu.err" ||
            die "aarch64 pith -cpu $cpu on $name: $(cat "$tmp/$name.$cpu.err")"
        if ! cmp -s "$tmp/$name.x86" "$tmp/$name.$cpu"; then
            printf 'x86-64:  %q\naarch64: %q\n' "$(cat "$tmp/$name.x86")" "$(cat "$tmp/$name.$cpu")"
            die "$name: -cpu $cpu generated different text than x86-64"
        fi
        log "e2e $name -cpu $cpu: same 16 tokens as x86-64 ($(tail -n1 "$tmp/$name.$cpu.err"))"
    done
done

log "all aarch64 checks passed"

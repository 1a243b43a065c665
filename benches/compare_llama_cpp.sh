#!/usr/bin/env bash
# Side-by-side speed of pith and llama.cpp on the same GGUF with the same threads:
# runs `llama-bench` and `pith bench` alternately (ROUNDS times each, -r repetitions per
# run), then prints a markdown table of pp, tg and peak RSS with the ratio pith/llama.cpp.
#
#   benches/compare_llama_cpp.sh                       # default model, 2 threads, pp512/tg128
#   benches/compare_llama_cpp.sh -m model.gguf -t 4 -r 5 -p 512 -n 128 --rounds 3
#
# llama-bench comes from $LLAMA_BENCH, else $LLAMA_CPP_HOME/bin (default
# ~/.cache/llama-cpp-anchor/bin), else it is built with ../shared/tools/build-llama-cpp.sh
# (about 10 minutes on 2 cores). Peak RSS: llama-bench's from `/usr/bin/time -v` (GNU time,
# installed with apt-get when missing), pith's from its own report (VmHWM); both are the
# peak of one whole run (warm-up, pp and tg tests). t/s: mean ± sample sd over every
# repetition of every round. Needs python3 (for the JSON) and cargo.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=""
THREADS=2
REPS=3
N_PROMPT=512
N_GEN=128
ROUNDS=2
while [[ $# -gt 0 ]]; do
  case $1 in
    -m | --model) MODEL=$2; shift 2 ;;
    -t | --threads) THREADS=$2; shift 2 ;;
    -r | --repetitions) REPS=$2; shift 2 ;;
    -p | --n-prompt) N_PROMPT=$2; shift 2 ;;
    -n | --n-gen) N_GEN=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for v in THREADS REPS N_PROMPT N_GEN ROUNDS; do
  if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
    echo "error: $v must be a positive integer, got '${!v}'" >&2; exit 2
  fi
done

# --- tools -----------------------------------------------------------------------------
LLAMA_HOME=${LLAMA_CPP_HOME:-$HOME/.cache/llama-cpp-anchor}
LLAMA_BENCH=${LLAMA_BENCH:-$LLAMA_HOME/bin/llama-bench}
if [[ ! -x $LLAMA_BENCH ]]; then
  BUILD="$ROOT/../shared/tools/build-llama-cpp.sh"
  [[ -x $BUILD || -f $BUILD ]] || { echo "error: no llama-bench at $LLAMA_BENCH and no $BUILD to build it" >&2; exit 1; }
  echo "building llama.cpp's tools with $BUILD ..." >&2
  LLAMA_CPP_HOME=$LLAMA_HOME bash "$BUILD" >&2
fi
if [[ ! -x /usr/bin/time ]]; then
  echo "installing GNU time (for llama-bench's peak RSS) ..." >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get install -y -qq time >&2 || { $SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq time >&2; }
fi
command -v python3 >/dev/null || { echo "error: python3 is needed to read the JSON reports" >&2; exit 1; }

echo "building pith (release) ..." >&2
(cd "$ROOT" && cargo build --release --quiet -p pith)
PITH="$ROOT/target/release/pith"
if [[ -z $MODEL ]]; then
  MODEL=$("$PITH" fetch --quiet)
fi
[[ -f $MODEL ]] || { echo "error: model '$MODEL' is not a file" >&2; exit 1; }

# --- runs, alternating -----------------------------------------------------------------
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for ((i = 1; i <= ROUNDS; i++)); do
  echo "round $i/$ROUNDS: llama-bench ..." >&2
  /usr/bin/time -v -o "$WORK/llama-$i.time" \
    "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -p "$N_PROMPT" -n "$N_GEN" -r "$REPS" -o json \
    >"$WORK/llama-$i.json" 2>"$WORK/llama-$i.err" \
    || { cat "$WORK/llama-$i.err" >&2; echo "error: llama-bench failed" >&2; exit 1; }
  echo "round $i/$ROUNDS: pith bench ..." >&2
  "$PITH" bench -m "$MODEL" -t "$THREADS" -p "$N_PROMPT" -n "$N_GEN" -r "$REPS" --json \
    >"$WORK/pith-$i.json" || { echo "error: pith bench failed" >&2; exit 1; }
done

# --- table -----------------------------------------------------------------------------
python3 - "$WORK" "$ROUNDS" "$THREADS" "$MODEL" <<'EOF'
import json, re, statistics, sys, pathlib, platform, datetime
work, rounds, threads, model = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

def rss_llama(i):
    t = (work / f"llama-{i}.time").read_text()
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024

samples = {"llama": {}, "pith": {}}
rss = {"llama": [], "pith": []}
build = "?"
for i in range(1, rounds + 1):
    for tool in ("llama", "pith"):
        rows = json.loads((work / f"{tool}-{i}.json").read_text())
        for r in rows:
            test = f"pp{r['n_prompt']}" if r["n_gen"] == 0 else f"tg{r['n_gen']}"
            samples[tool].setdefault(test, []).extend(r["samples_ts"])
            if tool == "llama":
                build = r.get("build_commit", build)
        if tool == "pith":
            rss["pith"].append(max(r["peak_rss_mib"] for r in rows))
    rss["llama"].append(rss_llama(i))

def ms(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)

cpu = "?"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError:
    pass
print(f"{datetime.date.today()} · {cpu} · {threads} threads · {pathlib.Path(model).name} · "
      f"llama.cpp {build} · {rounds} alternating rounds")
print()
print("| test | llama.cpp | pith | pith/llama.cpp |")
print("| ---- | --------: | ---: | -------------: |")
for test in samples["llama"]:
    lm, ls = ms(samples["llama"][test])
    pm, ps = ms(samples["pith"].get(test, [float("nan")]))
    print(f"| {test} (t/s) | {lm:.2f} ± {ls:.2f} | {pm:.2f} ± {ps:.2f} | {pm / lm:.3f} |")
lr, pr = max(rss["llama"]), max(rss["pith"])
print(f"| peak RSS (MiB) | {lr:.1f} | {pr:.1f} | {pr / lr:.3f} |")
EOF

#!/usr/bin/env bash
# (A copy of shared/tools/build-llama-cpp.sh, so CI needs nothing outside the repository.)
# Builds llama.cpp's command-line tools (llama-bench, llama-server, llama-tokenize,
# llama-perplexity, llama-quantize, llama-cli) from the llama.cpp sources vendored in the
# llama-cpp-python source package, for use as the reference implementation (golden outputs)
# and as the performance baseline in side-by-side benchmarks.
#
#   shared/tools/build-llama-cpp.sh            # builds into $LLAMA_CPP_HOME (default ~/.cache/llama-cpp-anchor)
#   $LLAMA_CPP_HOME/bin/llama-bench -m model.gguf -t 2 -p 512 -n 128
#
# Takes about 10 minutes on 2 cores; a second run is a no-op. Needs pip, gcc/g++, and cmake
# (installed from the package registry with pip when missing).
set -euo pipefail
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
HOME_DIR=${LLAMA_CPP_HOME:-$HOME/.cache/llama-cpp-anchor}
BIN=$HOME_DIR/bin
TOOLS=(llama-bench llama-server llama-tokenize llama-perplexity llama-quantize llama-cli)
if [[ -x $BIN/llama-bench && -x $BIN/llama-server && -f $HOME_DIR/VERSION && $(cat "$HOME_DIR/VERSION") == "$VERSION" ]]; then
  echo "llama.cpp tools already built in $BIN"; exit 0
fi
mkdir -p "$HOME_DIR/src" "$BIN"
command -v cmake >/dev/null || python3 -m pip install -q cmake
cd "$HOME_DIR/src"
if [[ ! -f llama_cpp_python-$VERSION.tar.gz ]]; then
  python3 -m pip download -q --no-deps --no-binary llama-cpp-python -d . "llama-cpp-python==$VERSION"
fi
rm -rf "llama_cpp_python-$VERSION"
tar xzf "llama_cpp_python-$VERSION.tar.gz"
cd "llama_cpp_python-$VERSION/vendor/llama.cpp"
cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target "${TOOLS[@]}"
for t in "${TOOLS[@]}"; do cp "build/bin/$t" "$BIN/"; done
echo "$VERSION" > "$HOME_DIR/VERSION"
echo "built: $(ls "$BIN")"

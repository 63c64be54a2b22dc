#!/usr/bin/env bash
# Fuzzes one parser with AFL++ for a bounded time, then replays what it found.
#   fuzz/run.sh gguf|jinja|hf|safetensors|request [SECONDS]      (default 300; run from anywhere, ../shared/fixtures beside the repository)
# Needs afl-fuzz (Debian: apt-get install afl++) and the sharpfuzz tool
# (dotnet tool install -g SharpFuzz.CommandLine --version 2.3.0). Exits 1 if AFL found a crash or a hang.
set -euo pipefail
target=${1:?usage: fuzz/run.sh gguf|jinja|hf|safetensors|request [SECONDS]}
seconds=${2:-300}
cd "$(dirname "$0")/.."
out=fuzz/out
rm -rf "$out/plain" "$out/bin" "$out/findings-$target"
dotnet publish fuzz/NextToken.Fuzz -c Release -o "$out/plain" --nologo -v quiet
dotnet "$out/plain/NextToken.Fuzz.dll" seeds ../shared/fixtures "$out/seeds"
# AFL sees coverage only in instrumented code: a copy of the engine library, instrumented in place
# (instrumented code only runs under afl-fuzz, so seeds and replays use the plain copy).
cp -r "$out/plain" "$out/bin"
sharpfuzz "$out/bin/NextToken.dll"
if [ "$target" = request ]; then sharpfuzz "$out/bin/NextToken.Server.dll"; fi

# The target is `dotnet`, not an AFL-compiled binary; no UI in CI; containers rarely allow core
# dumps or CPU pinning. -t: a template or file taking 5 s is a hang (the sandbox bounds are ~1 s).
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1
afl-fuzz -V "$seconds" -t 5000 -m none -i "$out/seeds/$target" -o "$out/findings-$target" -- dotnet "$out/bin/NextToken.Fuzz.dll" fuzz "$target"

findings="$out/findings-$target/default"
grep -E '^(execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|stability)' "$findings/fuzzer_stats" || true
crashes=$(find "$findings/crashes" "$findings/hangs" -name 'id:*' 2>/dev/null | wc -l)
if [ "$crashes" -gt 0 ]; then
    echo "AFL found $crashes crashing or hanging inputs in $findings/{crashes,hangs}; replaying:" >&2
    dotnet "$out/plain/NextToken.Fuzz.dll" replay "$target" "$findings/crashes" "$findings/hangs" || true
    exit 1
fi

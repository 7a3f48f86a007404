#!/usr/bin/env bash
# Builds the module and the benchmark, runs it, prints the results and writes bench/results.md.
# usage: sudo bench/run.sh [ITERATIONS] [more PSContainers.Bench options, e.g. --containers 10 --no-graceful]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
if [[ $EUID -ne 0 ]]; then echo "run.sh: run as root (containers need CAP_SYS_ADMIN)" >&2; exit 2; fi
for tool in dotnet lxc-create lxc-start lxc-attach lxc-stop lxc-destroy unshare nsenter busybox; do
  command -v "$tool" >/dev/null || { echo "run.sh: '$tool' not found (apt-get install lxc busybox-static util-linux; .NET SDK 10)" >&2; exit 2; }
done
echo "== building the module (dotnet build -c Release at $repo)" >&2
(cd "$repo" && dotnet build -c Release -nologo -v quiet)
echo "== building the benchmark" >&2
dotnet build -c Release -nologo -v quiet "$here/PSContainers.Bench/PSContainers.Bench.csproj"
echo "== running" >&2
"$here/PSContainers.Bench/bin/Release/net10.0/PSContainers.Bench" --repo "$repo" --output "$here/results.md" "$@"
# Checkpoint/restore versus bare criu, appended to the same report (needs criu 4.2+: .ci/install-criu).
if command -v criu >/dev/null; then
  echo "== checkpoint/restore versus bare criu" >&2
  dotnet build -c Release -nologo -v quiet "$here/CheckpointBench/CheckpointBench.csproj"
  "$here/CheckpointBench/bin/Release/net10.0/CheckpointBench" 10 --repo "$repo" --output "$here/results.md"
else
  echo "== criu not found: checkpoint benchmark skipped (.ci/install-criu installs it)" >&2
fi

#!/usr/bin/env bash
# Start, exec and stop of PSContainers against the bare floor (unshare/nsenter/kill), measured
# inside the pure cgroup-v2 guest (tools/v2guest, user-mode Linux; systemd's nsdelegate mount), as
# ratios: the guest is several times slower in absolute terms, so only the ratios compare with
# bench/results.md. Builds the module and the benchmark on this host, runs them in the guest and
# writes bench/results-v2-guest.md.
# usage: sudo bench/run-v2-guest.sh [ITERATIONS]   (default 10; about 1 min per iteration in the guest)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
iterations=${1:-10}
[[ $EUID -eq 0 ]] || { echo "run-v2-guest.sh: run as root" >&2; exit 2; }
export V2LAB=${V2LAB:-/tmp/v2lab}
[ -f "$V2LAB/v2guest.img" ] || { echo "run-v2-guest.sh: no guest image: run tools/test-v2-guest.sh (or tools/v2guest/make-v2-guest.sh) first" >&2; exit 2; }
echo "== building the module and the benchmark" >&2
(cd "$repo" && dotnet build -c Release -nologo -v quiet)
dotnet build -c Release -nologo -v quiet "$here/PSContainers.Bench/PSContainers.Bench.csproj"
echo "== running in the v2 guest ($iterations iterations)" >&2
cd "$repo"
"$repo/tools/v2guest/run-in-v2-guest.sh" --timeout 3600 -- \
    env PSC_BENCH_COMMIT="$(git -C "$repo" rev-parse --short HEAD)" "$here/PSContainers.Bench/bin/Release/net10.0/PSContainers.Bench" "$iterations" --warmup 2 --no-lxc --repo "$repo" --output "$here/results-v2-guest.md"

#!/usr/bin/env bash
# Runs every test of PSContainers: builds (Release), runs the xunit suite (tests/PSContainers.Tests)
# and the Pester suite (in real pwsh with Pester 5.9.1, every file in tests/Pester), checks that
# nothing was left behind, then runs the layout-dependent tests again inside a pure cgroup-v2 guest
# (tools/test-v2-guest.sh: user-mode Linux, systemd's mount options), and ends with one line
# "N passed, N failed" counting all of them. Exits 1 when anything failed. Needs root
# (sudo ./test.sh) and what ./setup.sh installs; a missing pwsh or Pester is a failure, not a skip.
#
#   sudo ./test.sh                 everything
#   sudo ./test.sh --no-build      the last build as it is
#   sudo ./test.sh --no-v2-guest   without the pure cgroup-v2 guest (this host's layout only)
set -uo pipefail
cd "$(dirname "$0")"

build=1
v2guest=1
for arg in "$@"; do
    case "$arg" in
        --no-build) build= ;;
        --no-v2-guest) v2guest= ;;
        *) echo "usage: $0 [--no-build] [--no-v2-guest]" >&2; exit 2 ;;
    esac
done

log() { printf '\n=== %s\n' "$*"; }
passed=0
failed=0
notes=()

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: run as root (sudo ./test.sh): the tests create namespaces, cgroups, users and mounts" >&2
    exit 2
fi

# What the tests may leave behind: container cgroups, test mounts, supervisors, ssh helpers and
# test users. Compared before and after, so the host's own containers (the first container of
# setup.sh) do not count.
resources() {
    { find /sys/fs/cgroup -maxdepth 3 -type d -name 'pscontainers-*' 2>/dev/null
      grep -E 'psc-test-' /proc/self/mountinfo 2>/dev/null | awk '{print "mount " $5}'
      pgrep -f 'psc-helper' 2>/dev/null | sed 's/^/pid /'
      pgrep -f 'psc-ssh-|psc-test-ssh-' 2>/dev/null | sed 's/^/pid /'
      grep -sE '^psc-test-' /etc/passwd /etc/subuid /etc/subgid | cut -d: -f1-2
    } | sort -u
}
before_resources=$(resources)

if [ -n "$build" ]; then
    log "Building (dotnet build -c Release)"
    if ! dotnet build -c Release -nologo -clp:ErrorsOnly; then
        echo
        echo "0 passed, 1 failed"
        exit 1
    fi
fi

# ---- xunit ----
log "xunit (dotnet test tests/PSContainers.Tests -c Release --no-build)"
out=$(mktemp)
pester_json=$(mktemp)
trap 'rm -f "$out" "$pester_json"' EXIT
dotnet test tests/PSContainers.Tests -c Release --no-build --nologo 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
x_passed=$(sed -nE 's/.*Passed:[[:space:]]*([0-9]+),.*/\1/p' "$out" | tail -n1)
x_failed=$(sed -nE 's/.*Failed:[[:space:]]*([0-9]+),.*/\1/p' "$out" | tail -n1)
# Skipped tests (a kernel without a module the test needs) are not counted; they are named at the end.
skipped=$(sed -nE 's/^[[:space:]]*Skipped (.+) \[[^]]*\][[:space:]]*$/\1/p' "$out" | sort -u)
passed=$((passed + ${x_passed:-0}))
failed=$((failed + ${x_failed:-0}))
# The failed tests by name, repeated at the end where a CI log's tail shows them.
while IFS= read -r name; do notes+=("xunit: $name"); done \
    < <(sed -nE 's/^[[:space:]]*Failed (.+) \[[^]]*\][[:space:]]*$/\1/p' "$out" | sort -u)
if [ "$status" -ne 0 ] && [ "${x_failed:-0}" -eq 0 ]; then
    notes+=("dotnet test exited with $status without reporting a failed test (build or host error)")
    failed=$((failed + 1))
fi

# ---- Pester, in real pwsh ----
log "Pester (tests/Pester, pwsh + Pester 5.9.1)"
if ! command -v pwsh >/dev/null 2>&1; then
    notes+=("pwsh is not installed (sudo ./setup.sh, or tools/install-pwsh.sh): the Pester suite did not run")
    failed=$((failed + 1))
else
    pwsh -NoProfile -NonInteractive -File tools/Invoke-PesterSuite.ps1 -ResultFile "$pester_json" 2>&1 | tee "$out"
    p_status=${PIPESTATUS[0]}
    while IFS= read -r problem; do notes+=("Pester: $problem"); done \
        < <(sed -E 's/\x1b\[[0-9;]*m//g' "$out" | sed -nE 's/^FAILED: (.*)/\1/p')
    p_counts=$(sed -nE 's/.*"Passed":([0-9]+),"Failed":([0-9]+).*/\1 \2/p' "$pester_json")
    if [ -z "$p_counts" ]; then
        notes+=("the Pester suite did not complete (pwsh exited with $p_status; is Pester 5.9.1 installed? tools/install-pwsh.sh)")
        failed=$((failed + 1))
    else
        passed=$((passed + ${p_counts%% *}))
        failed=$((failed + ${p_counts##* }))
    fi
fi

# ---- nothing left behind ----
log "Checking that the tests left nothing behind"
new_resources() { comm -13 <(printf '%s\n' "$before_resources") <(resources) | sed '/^$/d'; }
leftover=$(new_resources)
if [ -n "$leftover" ]; then
    # What another run on the same machine has in flight goes away; a leftover stays. Look again.
    sleep 15
    leftover=$(comm -12 <(printf '%s\n' "$leftover") <(new_resources) | sed '/^$/d')
fi
if [ -n "$leftover" ]; then
    notes+=("resources left behind by the tests:" "$leftover")
    failed=$((failed + 1))
fi

# ---- the pure cgroup-v2 guest (after the leftover check: it changes nothing on this host but /tmp/v2lab) ----
if [ -n "$v2guest" ]; then
    log "Pure cgroup-v2 guest (tools/test-v2-guest.sh)"
    guest_out=$(mktemp)
    tools/test-v2-guest.sh 2>&1 | tee "$guest_out"
    g_counts=$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$guest_out" | tail -n1)
    rm -f "$guest_out"
    if [ -z "$g_counts" ]; then
        notes+=("the pure cgroup-v2 guest run did not report its counts (tools/test-v2-guest.sh)")
        failed=$((failed + 1))
    else
        passed=$((passed + ${g_counts%% *}))
        failed=$((failed + ${g_counts##* }))
        [ "${g_counts##* }" -eq 0 ] || notes+=("${g_counts##* } failed in the pure cgroup-v2 guest (see its output above)")
    fi
fi

if [ -n "$skipped" ]; then
    echo
    while IFS= read -r name; do echo "skipped (not counted; see the reason in the xunit output): $name"; done <<< "$skipped"
fi
if [ ${#notes[@]} -gt 0 ]; then
    echo
    printf 'FAILED: %s\n' "${notes[@]}"
fi
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

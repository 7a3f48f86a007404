#!/usr/bin/env bash
# The tests that depend on the cgroup layout, run inside a pure cgroup-v2 guest mounted as systemd
# does (nsdelegate,memory_recursiveprot): user-mode Linux built by tools/v2guest (no KVM needed).
# Runs the last build as it is (out/PSContainers and the test binaries; build first) and ends with
# one line "N passed, N failed" that test.sh adds to its total. Exits 1 when anything failed.
#
#   sudo tools/test-v2-guest.sh             build the guest image if needed, run the tests in it
#
# The image ($V2LAB/v2guest.img, default /tmp/v2lab) is reused while the key of what made it
# (the guest scripts, the host's .NET, the pwsh version) is unchanged; otherwise rebuilt (~4-6 min).
# In the guest (1 CPU, .NET 6-9x slower than here) about 15-25 min: the xunit classes below, the
# real-pwsh story tests/Pester/Story.Tests.ps1, and tests/v2guest/Attach-Nsdelegate.ps1; then a check
# that nothing was left behind in the guest's cgroup tree and mounts.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
guest=$repo/tools/v2guest
export V2LAB=${V2LAB:-/tmp/v2lab}
PWSH_VERSION=${PWSH_VERSION:-7.6.10}
start=$(date +%s)

# What runs in the guest: what depends on the cgroup layout, the kernel's cgroup2 mount options or
# the delegation of a subtree: the cgroup classes, the lifecycle, limits, unprivileged and attach
# classes, the security tests that touch cgroups and devices, and the non-root tests of the
# lifecycle and of a delegated cgroup; and the vlan/ipvlan NICs (VlanNicTests), which this host's
# kernel cannot make and the guest's can. Left to the host (they do not depend on the layout, and each
# takes minutes in the guest): the seccomp program checks, the escape suites, the ptrace races
# (timing-bound: the tracer's window is sized for the host), pasta and the non-root defaults/export.
CLASSES=(CgroupUnifiedTests CgroupV2DriverTests CgroupFakeTreeTests CgroupLayoutTests CgroupV1DriverTests
         ContainerLifecycleTests ContainerLimitTests ContainerStatsTests ContainerSecurityTests AttachSecurityTests SecurityPolicyTests
         UnprivilegedContainerTests NonRootContainerTests ContainerEventTests VlanNicTests)
EXCLUDE=(AttachSecurityTests.PtraceRace_ ContainerSecurityTests.LongRules_ ContainerSecurityTests.EscapeSuite_
         ContainerSecurityTests.DefaultProfile_ ContainerSecurityTests.ProfileFromYaml_
         NonRootContainerTests.NonRootUser_Pasta_ NonRootContainerTests.ExportOfAShiftedContainer_ NonRootContainerTests.NonRootUser_Defaults_)
filter="($(printf 'FullyQualifiedName~PSContainers.Tests.%s.|' "${CLASSES[@]}" | sed 's/|$//'))"
filter="$filter$(printf '&FullyQualifiedName!~PSContainers.Tests.%s' "${EXCLUDE[@]}")"

fail() { echo "test-v2-guest: $*" >&2; echo; echo "0 passed, 1 failed"; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (the guest image is built with debootstrap)"
[ -f out/PSContainers/PSContainers.psd1 ] && [ -f tests/PSContainers.Tests/bin/Release/net10.0/PSContainers.Tests.dll ] \
    || fail "no build: run 'dotnet build -c Release' first"

# ---- the image, reused while what made it is the same ----
key=$( { cat "$guest/make-v2-guest.sh" "$guest/files/v2init"; echo "pwsh $PWSH_VERSION"
         dotnet --list-sdks; dotnet --list-runtimes; } | sha256sum | cut -d' ' -f1)
if [ ! -f "$V2LAB/v2guest.img" ] || [ "$(cat "$V2LAB/v2guest.img.key" 2>/dev/null)" != "$key" ]; then
    echo "=== building the v2 guest image in $V2LAB (key $key)"
    rm -f "$V2LAB/v2guest.img.key"
    PWSH_VERSION=$PWSH_VERSION "$guest/make-v2-guest.sh" || fail "the guest image could not be built (see above)"
    echo "$key" >"$V2LAB/v2guest.img.key"
else
    echo "=== reusing the v2 guest image $V2LAB/v2guest.img (key $key)"
fi

# Pester 5.9.1 from the host, read-only, where the guest's pwsh looks for all-users modules.
pester=$(pwsh -NoProfile -NonInteractive -Command '(Get-Module -ListAvailable Pester | Where-Object Version -eq 5.9.1 | Select-Object -First 1).ModuleBase' 2>/dev/null)
[ -n "$pester" ] || fail "Pester 5.9.1 is not installed (tools/install-pwsh.sh)"
modules=$(dirname "$(dirname "$pester")")

# ---- in the guest ----
job=$(mktemp -d /tmp/psc-v2guest-XXXXXX)
trap 'rm -rf "$job"' EXIT
cat >"$job/in-guest.sh" <<EOF
#!/bin/bash
# Runs in the guest as root, in $repo (shared read-write).
set -uo pipefail
export PSModulePath=/usr/local/share/powershell/Modules
# .NET runs several times slower here: the tests' waits for a whole pwsh process stretch by this.
export PSC_TEST_SLOW_FACTOR=3
passed=0 failed=0
echo "=== guest: \$(uname -r), cgroup2: \$(grep ' - cgroup2 ' /proc/self/mountinfo | cut -d' ' -f5,11-)"
echo "=== guest: xunit (${CLASSES[*]})"
dotnet test tests/PSContainers.Tests/bin/Release/net10.0/PSContainers.Tests.dll --filter '$filter' \
    --logger 'console;verbosity=normal' 2>&1 | tee $job/xunit.out
# The test assembly run directly ends with "Total tests: N" and one line each "Passed: N", "Failed: N".
x_passed=\$(sed -nE 's/^[[:space:]]*Passed:[[:space:]]*([0-9]+)[[:space:]]*$/\1/p' $job/xunit.out | tail -n1)
x_failed=\$(sed -nE 's/^[[:space:]]*Failed:[[:space:]]*([0-9]+)[[:space:]]*$/\1/p' $job/xunit.out | tail -n1)
grep -qE '^[[:space:]]*Total tests:' $job/xunit.out || x_passed=
[ -n "\$x_passed" ] || { echo "FAILED: the xunit run did not report its counts"; x_failed=\$((\${x_failed:-0} + 1)); }
passed=\$((passed + \${x_passed:-0})); failed=\$((failed + \${x_failed:-0}))

echo "=== guest: Pester story (tests/Pester/Story.Tests.ps1, real pwsh)"
pwsh -NoProfile -NonInteractive -File tools/Invoke-PesterSuite.ps1 -Path tests/Pester/Story.Tests.ps1 -ResultFile $job/pester.json
p=\$(sed -nE 's/.*"Passed":([0-9]+),"Failed":([0-9]+).*/\1 \2/p' $job/pester.json 2>/dev/null)
if [ -n "\$p" ]; then passed=\$((passed + \${p%% *})); failed=\$((failed + \${p##* })); else echo "FAILED: the Pester story did not complete"; failed=\$((failed + 1)); fi

echo "=== guest: attach with nsdelegate (tests/v2guest/Attach-Nsdelegate.ps1)"
if pwsh -NoProfile -NonInteractive -File tests/v2guest/Attach-Nsdelegate.ps1 out/PSContainers; then passed=\$((passed + 1)); else failed=\$((failed + 1)); fi

echo "=== guest: nothing left behind"
left=\$( { find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d \( -name 'pscontainers*' -o -name 'psc-test-*' -o -name 'unified' \)
          grep 'psc-test-' /proc/self/mountinfo | awk '{print "mount " \$5}'
          pgrep -f psc-helper | sed 's/^/pid /'
          grep -sE '^psc-test-' /etc/passwd | cut -d: -f1; } )
if [ -n "\$left" ]; then echo "FAILED: left behind in the guest:"; echo "\$left"; failed=\$((failed + 1)); else passed=\$((passed + 1)); fi
echo "V2GUEST-COUNTS \$passed \$failed"
EOF
chmod 755 "$job/in-guest.sh"

echo "=== running in the v2 guest (user-mode Linux; 15-25 min)"
t0=$(date +%s)
"$guest/run-in-v2-guest.sh" --timeout 2700 --share "$repo" --share "$modules:/usr/local/share/powershell/Modules:ro" --share "$job" \
    -- bash "$job/in-guest.sh" 2>&1 | tee "$job/guest.out"
status=${PIPESTATUS[0]}
t1=$(date +%s)
counts=$(sed -nE 's/^V2GUEST-COUNTS ([0-9]+) ([0-9]+)$/\1 \2/p' "$job/guest.out" | tail -n1)
echo
echo "test-v2-guest: guest run $((t1 - t0)) s, total $((t1 - start)) s"
if [ -z "$counts" ]; then
    echo "FAILED: the guest run ended without its counts (run-in-v2-guest exit $status)"
    echo
    echo "0 passed, 1 failed"
    exit 1
fi
passed=${counts%% *} failed=${counts##* }
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# One command from a fresh Debian 12 (or a clone on any machine of that kind) to a running container:
#
#   sudo ./setup.sh
#
# 1. installs what is missing: the Debian packages the module runs with, the .NET SDK 10 (to build;
#    tools/install-dotnet.sh, which says what to do where Microsoft's downloads are not reached),
#    PowerShell 7.6.10 and Pester 5.9.1 (tools/install-pwsh.sh), CRIU 4.2 (.ci/install-criu);
# 2. builds the module (dotnet build -c Release -> out/PSContainers);
# 3. installs it for all users, in /usr/local/share/powershell/Modules/PSContainers/<version>,
#    where `Import-Module PSContainers` finds it by name;
# 4. creates and starts a first container, "hello" (busybox), and runs a command in it.
#
# Every step is idempotent: run it again after a `git pull` to rebuild and reinstall.
#   --no-container     skip step 4
# Environment: PSCONTAINERS_PATH (the store of the first container, default /var/lib/pscontainers),
# PSC_MODULES_DIR (where the module is installed, default /usr/local/share/powershell/Modules).
set -euo pipefail
cd "$(dirname "$0")"

first_container=1
for arg in "$@"; do
    case "$arg" in
        --no-container) first_container= ;;
        *) echo "usage: $0 [--no-container]" >&2; exit 2 ;;
    esac
done

log() { printf '\n=== %s\n' "$*"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (sudo ./setup.sh): it installs packages and the module for all users"

# ---- 1. prerequisites ----
# busybox-static: the default template; debootstrap: the Debian template; gcc + libc6-dev: the
# static native helper; uidmap (newuidmap/newgidmap): user-namespaced and non-root containers;
# iproute2 + nftables: networks and the default bridge's NAT; passt (pasta): user-mode networking;
# ca-certificates + curl: downloads (the .NET SDK, debootstrap's mirror, NuGet); procps: ps.
packages=(busybox-static debootstrap gcc libc6-dev uidmap iproute2 nftables passt ca-certificates curl procps)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "Installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "Debian packages: all present"
fi

# The .NET SDK 10 (the module targets .NET 8; the help builder, the tests and pwsh 7.6 need 10).
log ".NET SDK 10 (tools/install-dotnet.sh)"
bash tools/install-dotnet.sh
hash -r
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
log "dotnet $(dotnet --version)"

log "PowerShell and Pester (tools/install-pwsh.sh)"
bash tools/install-pwsh.sh

log "CRIU 4.2 for checkpoint/restore (.ci/install-criu)"
bash .ci/install-criu

# ---- 2. build ----
log "Building (dotnet build -c Release)"
dotnet build -c Release -nologo -clp:ErrorsOnly

# ---- 3. install for all users ----
modules=${PSC_MODULES_DIR:-/usr/local/share/powershell/Modules}
version=$(sed -nE "s/^[[:space:]]*ModuleVersion[[:space:]]*=[[:space:]]*'([^']+)'.*/\1/p" PSContainers.psd1)
[ -n "$version" ] || die "no ModuleVersion in PSContainers.psd1"
target="$modules/PSContainers/$version"
log "Installing the module into $target"
mkdir -p "$modules/PSContainers"
rm -rf "$target.new"
cp -a out/PSContainers "$target.new"
chown -R root:root "$target.new"
chmod -R a+rX,go-w "$target.new"
rm -rf "$target.old"
if [ -e "$target" ]; then mv "$target" "$target.old"; fi
mv "$target.new" "$target"
rm -rf "$target.old"
# Found by name, as every user's pwsh will (the AllUsers folder is on the default $env:PSModulePath).
pwsh -NoProfile -NonInteractive -Command "
    \$ErrorActionPreference = 'Stop'
    if ('$modules' -ne '/usr/local/share/powershell/Modules') { \$env:PSModulePath = '$modules' + [IO.Path]::PathSeparator + \$env:PSModulePath }
    \$m = Import-Module PSContainers -PassThru
    'Import-Module PSContainers: {0} {1} from {2}' -f \$m.Name, \$m.Version, \$m.ModuleBase
"

# ---- 4. a first container ----
if [ -n "$first_container" ]; then
    log "A first container: hello"
    pwsh -NoProfile -NonInteractive -Command "
        \$ErrorActionPreference = 'Stop'
        if ('$modules' -ne '/usr/local/share/powershell/Modules') { \$env:PSModulePath = '$modules' + [IO.Path]::PathSeparator + \$env:PSModulePath }
        Import-Module PSContainers
        \$c = Get-Container -Name hello -ErrorAction Ignore
        if (-not \$c) { \$c = New-Container -Name hello }
        if (\$c.State -ne 'Running') { \$c = \$c | Start-Container -PassThru }
        \$c | Out-String | Write-Host
        'Invoke-ContainerCommand hello -Command uname,-a: ' + (Invoke-ContainerCommand -Name hello -Command uname, -a).Output
    "
fi

log "Done. Try: sudo pwsh, then Get-Container; the tests: sudo ./test.sh"

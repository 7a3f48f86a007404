#!/usr/bin/env bash
# Installs PowerShell 7.6.10 (the NuGet "PowerShell" .NET tool) where every user can run it, and
# Pester 5.9.1 where every user's pwsh finds it. Idempotent: what is already installed is kept.
# Needs root and the .NET SDK (dotnet) on PATH. Used by setup.sh and .ci/run.
#
#   /opt/pwsh/pwsh                                      the tool (dotnet tool install --tool-path)
#   /usr/local/bin/pwsh -> /opt/pwsh/pwsh               on every user's PATH
#   /usr/local/share/powershell/Modules/Pester/5.9.1    the package's tools/ folder (on $env:PSModulePath
#                                                       of every pwsh: the AllUsers module folder)
#
# Without an explicit version `dotnet tool install PowerShell` takes 7.7.0, which does not run here.
set -euo pipefail

PWSH_VERSION=${PWSH_VERSION:-7.6.10}
PESTER_VERSION=${PESTER_VERSION:-5.9.1}
PWSH_DIR=${PWSH_DIR:-/opt/pwsh}
MODULES_DIR=${MODULES_DIR:-/usr/local/share/powershell/Modules}
PWSH_LINK=${PWSH_LINK:-/usr/local/bin/pwsh}

say() { printf '%s\n' "$*"; }
die() { printf 'install-pwsh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs into $PWSH_DIR and /usr/local)"
command -v dotnet >/dev/null 2>&1 || die "dotnet (the .NET SDK) is not on PATH"

# ---- PowerShell ----
installed=
if [ -x "$PWSH_DIR/pwsh" ]; then
    installed=$("$PWSH_DIR/pwsh" -NoProfile -NonInteractive -Command '$PSVersionTable.PSVersion.ToString()' 2>/dev/null || true)
fi
if [ "$installed" = "$PWSH_VERSION" ]; then
    say "pwsh $PWSH_VERSION: already in $PWSH_DIR"
else
    say "pwsh $PWSH_VERSION: installing into $PWSH_DIR (was: ${installed:-none})"
    if [ -n "$installed" ]; then dotnet tool uninstall --tool-path "$PWSH_DIR" PowerShell >/dev/null 2>&1 || true; fi
    dotnet tool install --tool-path "$PWSH_DIR" PowerShell --version "$PWSH_VERSION" >/dev/null
    installed=$("$PWSH_DIR/pwsh" -NoProfile -NonInteractive -Command '$PSVersionTable.PSVersion.ToString()')
    [ "$installed" = "$PWSH_VERSION" ] || die "installed pwsh reports version '$installed', not $PWSH_VERSION"
fi
# Every user runs it: the tool folder is world-readable, the link is on the default PATH.
chmod -R a+rX "$PWSH_DIR"
ln -sfn "$PWSH_DIR/pwsh" "$PWSH_LINK"

# ---- Pester ----
pester_dir="$MODULES_DIR/Pester/$PESTER_VERSION"
if [ -f "$pester_dir/Pester.psd1" ]; then
    say "Pester $PESTER_VERSION: already in $pester_dir"
else
    say "Pester $PESTER_VERSION: installing into $pester_dir"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # A PackageDownload restore fetches the package into a private folder through NuGet's own client.
    cat >"$work/fetch.csproj" <<EOF
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net8.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="Pester" Version="[$PESTER_VERSION]" /></ItemGroup>
</Project>
EOF
    dotnet restore "$work/fetch.csproj" --packages "$work/packages" -nologo -v quiet >/dev/null
    src="$work/packages/pester/$PESTER_VERSION/tools"
    [ -f "$src/Pester.psd1" ] || die "the Pester $PESTER_VERSION package has no tools/Pester.psd1"
    mkdir -p "$MODULES_DIR/Pester"
    rm -rf "$pester_dir.tmp"
    cp -a "$src" "$pester_dir.tmp"
    chmod -R a+rX,go-w "$pester_dir.tmp"
    mv "$pester_dir.tmp" "$pester_dir"
fi

# Proof that both work together, as the tests will use them.
"$PWSH_LINK" -NoProfile -NonInteractive -Command "
    \$ErrorActionPreference = 'Stop'
    Import-Module Pester -RequiredVersion $PESTER_VERSION
    'pwsh {0}, Pester {1}' -f \$PSVersionTable.PSVersion, (Get-Module Pester).Version
"

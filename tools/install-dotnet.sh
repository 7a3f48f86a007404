#!/usr/bin/env bash
# Installs the .NET SDK 10 (to build the module, the help builder and the tests; pwsh 7.6 runs on
# it too) when no dotnet on PATH has it. Idempotent. Needs root and curl. Used by setup.sh.
#
#   /usr/share/dotnet                      the SDK (Microsoft's dotnet-install.sh --channel 10.0)
#   /usr/local/bin/dotnet -> .../dotnet    on every user's PATH, ahead of /usr/bin
#
# Environment: DOTNET_DIR, DOTNET_LINK (the two paths above); DOTNET_INSTALL_SCRIPT_URL (where
# dotnet-install.sh is fetched from: a mirror where Microsoft's download servers are not reached).
set -euo pipefail

CHANNEL=10.0
DOTNET_DIR=${DOTNET_DIR:-/usr/share/dotnet}
DOTNET_LINK=${DOTNET_LINK:-/usr/local/bin/dotnet}
SCRIPT_URL=${DOTNET_INSTALL_SCRIPT_URL:-https://dot.net/v1/dotnet-install.sh}

say() { printf '%s\n' "$*"; }
die() { printf 'install-dotnet: %s\n' "$*" >&2; exit 1; }
has_sdk() { "$1" --list-sdks 2>/dev/null | grep -q "^${CHANNEL%%.*}\."; }

if command -v dotnet >/dev/null 2>&1 && has_sdk dotnet; then
    say "dotnet: SDK $CHANNEL already on PATH ($(command -v dotnet))"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || die "run as root (it installs into $DOTNET_DIR and links $DOTNET_LINK)"

if [ -x "$DOTNET_DIR/dotnet" ] && has_sdk "$DOTNET_DIR/dotnet"; then
    say "dotnet: SDK $CHANNEL already in $DOTNET_DIR, linking $DOTNET_LINK"
else
    # What to do when the download fails: this script cannot go on, a person must bring the SDK.
    unreachable() {
        die "the .NET SDK $CHANNEL is not installed, and $1.
Install it by hand, then run setup.sh again; either:
  - Microsoft's Debian 12 package: add Microsoft's package repository (https://learn.microsoft.com/dotnet/core/install/linux-debian), then: apt-get install dotnet-sdk-$CHANNEL
  - the binary archive dotnet-sdk-$CHANNEL.*-linux-x64.tar.gz (https://dotnet.microsoft.com/download/dotnet/$CHANNEL): mkdir -p $DOTNET_DIR && tar -xzf <archive> -C $DOTNET_DIR && ln -sfn $DOTNET_DIR/dotnet $DOTNET_LINK
  - or set DOTNET_INSTALL_SCRIPT_URL to a copy of dotnet-install.sh this machine can download (its SDK downloads must be reachable too)."
    }
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    say "dotnet: installing SDK $CHANNEL into $DOTNET_DIR (dotnet-install.sh from $SCRIPT_URL)"
    curl -fsSL --retry 2 --connect-timeout 20 --max-time 300 -o "$tmp/dotnet-install.sh" "$SCRIPT_URL" 2>"$tmp/curl.err" ||
        unreachable "its install script cannot be downloaded from $SCRIPT_URL ($(tail -n 1 "$tmp/curl.err"))"
    bash "$tmp/dotnet-install.sh" --channel "$CHANNEL" --install-dir "$DOTNET_DIR" --no-path >"$tmp/install.log" 2>&1 ||
        unreachable "dotnet-install.sh could not install it (its last lines: $(tail -n 3 "$tmp/install.log" | tr '\n' ' '))"
    has_sdk "$DOTNET_DIR/dotnet" || die "dotnet-install.sh finished, but $DOTNET_DIR/dotnet lists no SDK $CHANNEL (see: $DOTNET_DIR/dotnet --list-sdks)"
fi
mkdir -p "$(dirname "$DOTNET_LINK")"
ln -sfn "$DOTNET_DIR/dotnet" "$DOTNET_LINK"
say "dotnet: $("$DOTNET_LINK" --version) ($DOTNET_LINK -> $DOTNET_DIR/dotnet)"

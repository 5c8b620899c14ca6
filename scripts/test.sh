#!/usr/bin/env bash
# Installs what the tests need (Debian packages) and runs every check and test.
# Usage: scripts/test.sh        (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(bind9 bind9-utils bind9-dnsutils knot-dnsutils nsd knot)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# An independent DNS-over-QUIC client (dnspython with aioquic) checks XFR-over-QUIC.
if ! python3 -c "import dns.quic, aioquic" 2>/dev/null; then
  echo "==> installing dnspython and aioquic (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check "dnspython>=2.6" aioquic
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked

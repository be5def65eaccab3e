#!/usr/bin/env bash
# Installs what ironcast's tests need on a fresh Debian 12 machine.
# Run as root (make test does); as another user it only reports what is missing.
# Servers installed here are blocked from starting (policy-rc.d): ironcast's
# tests run their own peers inside network namespaces, never on the host.
set -euo pipefail

PKGS=(
  iproute2 iptables busybox udhcpc isc-dhcp-client isc-dhcp-relay dhcping curl
  tftp-hpa atftp dnsmasq-base kea-admin kea-dhcp4-server nginx wrk
  qemu-system-x86 qemu-system-arm qemu-utils ipxe-qemu ipxe ovmf qemu-efi-aarch64
  xorriso cpio zstd chromium bc
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: not root; missing packages: ${missing[*]}" >&2
  echo "install-test-deps: tests that need them will be skipped" >&2
  exit 0
fi

# Never let package installs start services on the host.
restore_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  restore_policy=1
fi
trap '[ $restore_policy = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-test-deps: installed ${missing[*]}"
# Services that packages may have enabled anyway are stopped.
for svc in nginx kea-dhcp4-server; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
done

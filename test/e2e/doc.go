// Package e2e boots real machines from a real ironcast server: QEMU with
// SeaBIOS and the NIC's iPXE ROM, OVMF with UEFI PXE, OVMF with UEFI HTTP
// boot and AAVMF on arm64, in a private network namespace. Each machine is
// discovered, provisioned with a LinuxKit-style test image and released
// (wiped) again, and the whole chain is asserted from the server's records
// and the machines' consoles. The tests need root, QEMU and the firmware
// packages (scripts/install-test-deps.sh); they skip without them unless
// IRONCAST_TEST_STRICT=1.
//
// Environment:
//
//	IRONCAST_E2E_ARTIFACTS  where serial logs, the server log and the
//	                        event stream go (default test/e2e/artifacts)
//	IRONCAST_E2E_CACHE      package cache for image builds (default
//	                        the user cache dir, ironcast/e2e)
//	IRONCAST_E2E_ACCEL      kvm or tcg (default: KVM when it works)
//	IRONCAST_E2E_BINARY     a prebuilt ironcast binary to test instead of
//	                        building ./cmd/ironcast
//
// The machinery is in package harness, shared with `ironcast selftest`.
package e2e

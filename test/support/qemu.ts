/**
 * Whether the QEMU end-to-end test can run on this machine. Its guest is built from Debian's
 * amd64 cloud kernel and busybox-static, fetched with `apt-get download` (src/lab/guest.ts).
 */
import { GUEST_ARCHITECTURE, GuestPackagesError } from '../../src/lab/guest.js';
import { BY_DESIGN } from './env.js';

/**
 * The `skip` option of the QEMU test, decided in this order: on a machine that is not amd64
 * (Debian architecture `arch`) a skip by design; then what `machine()` says is missing
 * (root, tools); then `prepareImage()` builds the guest image (or finds it cached): when
 * Debian's packages cannot be had (no package source answers) that is the reason, which
 * fails the run in CI like a missing tool. Any other failure of the build is the image
 * recipe's: the test runs, and fails with it.
 */
export function qemuSkipReason(arch: string, machine: () => string | false, prepareImage: () => unknown): string | false {
  if (arch !== GUEST_ARCHITECTURE) return `${BY_DESIGN.qemuGuestNeedsAmd64}: this machine is ${arch}`;
  const missing = machine();
  if (missing) return missing;
  try {
    prepareImage();
    return false;
  } catch (err) {
    if (err instanceof GuestPackagesError) return `the guest image needs Debian's packages: ${err.message}`;
    return false;
  }
}

/**
 * Real virtual machines for the lab: a small QEMU guest built from Debian's packages, booted
 * with its NIC on a Weft port, and a console to run commands in it.
 *
 * The image is Debian's cloud kernel (linux-image-cloud-amd64, whose virtio drivers are
 * modules) and an initramfs written here: busybox (busybox-static), the virtio-net modules
 * with what they depend on, and an /init that brings eth0 up, takes its address, router, MTU
 * and DNS by DHCP (udhcpc), prints a ready line with its address, and then reads commands
 * from the serial console. Both packages are fetched with `apt-get download` (no network
 * but Debian's mirrors), built once and cached under a directory named for their versions.
 *
 * The guest's NIC is `-netdev stream` to the port's unix socket (the agent listens: see
 * src/io/qemu-stream.ts); its serial console is a unix socket too, with everything the
 * guest prints also appended to a log file. `guestExec` connects to the console and runs
 * one command between markers, with its exit status: one command at a time per guest.
 * KVM is used when /dev/kvm works, software emulation otherwise.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';

/** Where built images are kept between runs. */
export const GUEST_CACHE = '/var/cache/weft/guest';
const KERNEL_META = 'linux-image-cloud-amd64';
const BUSYBOX = 'busybox-static';
/** The guest's drivers: a virtio NIC on PCI. Their dependencies are read from the modules. */
const MODULES = ['virtio_pci', 'virtio_net'];

/** The Debian architecture whose packages the guest is built from: the kernel package is
 * linux-image-cloud-amd64, and QEMU runs it as qemu-system-x86_64. */
export const GUEST_ARCHITECTURE = 'amd64';

export class GuestError extends Error {}
/** Debian's packages for the guest could not be had: no package source answers, or none
 * has them. Not a fault of the image recipe. */
export class GuestPackagesError extends GuestError {}

/** This machine's Debian architecture (`dpkg --print-architecture`): the architecture of
 * the packages `apt-get download` fetches. */
export function debianArchitecture(): string {
  const r = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' });
  if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  return ({ x64: 'amd64', ia32: 'i386', arm64: 'arm64', arm: 'armhf' } as Record<string, string>)[process.arch] ?? process.arch;
}

export interface GuestImage {
  kernel: string;
  initrd: string;
}

function run(cmd: string, args: string[], cwd?: string, Failure: typeof GuestError = GuestError): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 300_000 });
  if (r.error) throw new Failure(`${cmd} ${args.join(' ')} failed: ${r.error.message}`);
  if (r.status !== 0) throw new Failure(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`);
  return r.stdout;
}

/** The candidate version of a Debian package, from the local package lists. */
function candidate(pkg: string): string | null {
  const out = spawnSync('apt-cache', ['policy', pkg], { encoding: 'utf8' }).stdout ?? '';
  const v = /Candidate:\s*(\S+)/.exec(out)?.[1];
  return v && v !== '(none)' ? v : null;
}

/** The kernel package the cloud kernel's meta package stands for now. */
function kernelPackage(): string | null {
  const out = spawnSync('apt-cache', ['depends', KERNEL_META], { encoding: 'utf8' }).stdout ?? '';
  return /Depends:\s*(linux-image-\S+)/.exec(out)?.[1] ?? null;
}

/**
 * Builds (or finds in `cacheDir`) the guest's kernel and initramfs. The package lists are
 * refreshed once (apt-get update) when they do not know the packages yet. Throws a
 * GuestError on a machine of another architecture than amd64 (`arch`), a
 * GuestPackagesError when the packages cannot be had.
 */
export function ensureGuestImage(cacheDir = GUEST_CACHE, log: (line: string) => void = () => {}, arch = debianArchitecture()): GuestImage {
  if (arch !== GUEST_ARCHITECTURE) throw new GuestError(`the QEMU guest image needs an amd64 Debian kernel package (${KERNEL_META}): this machine is ${arch}`);
  let kernelPkg = kernelPackage();
  if (kernelPkg === null || candidate(BUSYBOX) === null) {
    log('refreshing the package lists for the guest image (apt-get update)');
    run('apt-get', ['update', '-q'], undefined, GuestPackagesError);
    kernelPkg = kernelPackage();
  }
  const kv = kernelPkg && candidate(kernelPkg);
  const bv = candidate(BUSYBOX);
  if (!kernelPkg || !kv || !bv) throw new GuestPackagesError(`Debian's ${KERNEL_META} or ${BUSYBOX} is not available from this machine's package sources`);
  // Named for the packages and for what this file puts in the image, so either changing
  // builds a new one.
  const recipe = createHash('sha256').update(INIT).update(udhcpcScript('/etc/resolv.conf')).update(MODULES.join(',')).digest('hex').slice(0, 12);
  const dir = join(cacheDir, `${kernelPkg}_${kv}+busybox_${bv}+${recipe}`.replace(/[^A-Za-z0-9._+-]/g, '_'));
  const image = { kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.gz') };
  if (existsSync(image.kernel) && existsSync(image.initrd)) return image;

  log(`building the guest image from ${kernelPkg} ${kv} and ${BUSYBOX} ${bv} (once; cached in ${dir})`);
  const work = guestBuildDir();
  try {
    // As root, apt downloads as its sandbox user (_apt), who cannot write to a 0700
    // directory: it would say so and download as root anyway. Say that first.
    run('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', kernelPkg, BUSYBOX], work, GuestPackagesError);
    const debs = readdirSync(work).filter((f) => f.endsWith('.deb'));
    for (const deb of debs) run('dpkg-deb', ['-x', join(work, deb), join(work, 'root')]);
    const root = join(work, 'root');
    const vmlinuz = readdirSync(join(root, 'boot')).find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new GuestError(`${kernelPkg} has no /boot/vmlinuz-*`);
    const release = vmlinuz.slice('vmlinuz-'.length);
    const modules = moduleClosure(join(root, 'lib', 'modules', release, 'kernel'), MODULES);
    const initrd = buildInitramfs(readFileSync(join(root, 'bin', 'busybox')), modules);
    const staging = `${dir}.tmp-${process.pid}`;
    mkdirSync(staging, { recursive: true });
    copyFileSync(join(root, 'boot', vmlinuz), join(staging, 'vmlinuz'));
    writeFileSync(join(staging, 'initrd.gz'), initrd);
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
    return image;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * A new directory to download and unpack the image's packages in, that only this process's
 * user may write (mkdtemp makes it 0700): apt checks each .deb against the signed package
 * lists, and no one else can swap it before dpkg-deb unpacks it, or put files among those
 * unpacked. Throws if the directory is not so.
 */
export function guestBuildDir(parent = tmpdir()): string {
  const dir = mkdtempSync(join(parent, 'weft-guest-'));
  const st = lstatSync(dir);
  if (!st.isDirectory() || (st.mode & 0o022) !== 0 || st.uid !== (process.geteuid?.() ?? st.uid)) {
    rmSync(dir, { recursive: true, force: true });
    throw new GuestError(`${dir}: the guest image's build directory is not this user's alone (mode ${(st.mode & 0o777).toString(8)}, owner ${st.uid})`);
  }
  return dir;
}

/** The modules `wanted` need, dependencies first, read from each module's `depends=`. */
function moduleClosure(tree: string, wanted: string[]): Array<{ name: string; data: Buffer }> {
  const files = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.ko')) files.set(e.name.slice(0, -3).replace(/-/g, '_'), join(d, e.name));
    }
  };
  walk(tree);
  const out: Array<{ name: string; data: Buffer }> = [];
  const seen = new Set<string>();
  const visit = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    const file = files.get(name);
    if (!file) throw new GuestError(`the guest kernel has no module ${name}`);
    const data = readFileSync(file);
    const at = data.indexOf('\0depends=');
    const deps = at < 0 ? '' : data.subarray(at + 9, data.indexOf(0, at + 9)).toString();
    for (const d of deps.split(',').filter(Boolean)) visit(d.replace(/-/g, '_'));
    out.push({ name, data });
  };
  for (const w of wanted) visit(w);
  return out;
}

/** What the guest runs as PID 1. */
const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
echo 1 > /proc/sys/kernel/printk
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko; done
for w in $(cat /proc/cmdline); do case "$w" in weft.name=*) hostname "\${w#weft.name=}" ;; esac; done
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -s /etc/udhcpc.script -O mtu -O search -t 20 -T 1 -A 1 -n -q >/dev/null 2>&1
# Renew the lease in the background, as a guest's DHCP client does.
udhcpc -i eth0 -s /etc/udhcpc.script -O mtu -O search -b >/dev/null 2>&1
echo "WEFT-READY $(ip -4 -o addr show dev eth0 | awk '{print $4}')"
stty -F /dev/ttyS0 -echo
export PS1=''
while true; do sh </dev/ttyS0 >/dev/ttyS0 2>&1; done
`;

/**
 * What busybox udhcpc runs with each lease, in a guest and in a namespace VM alike: it
 * configures the interface as the lease says (address, router, MTU) and writes the DNS
 * servers and search list to `resolvConf` (a path, or a shell expression for one).
 */
export function udhcpcScript(resolvConf: string): string {
  return `#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    ip addr replace "$ip/$subnet" dev "$interface"
    [ -n "$router" ] && ip route replace default via "\${router%% *}" dev "$interface"
    : > ${resolvConf}
    for s in $dns; do echo "nameserver $s" >> ${resolvConf}; done
    [ -n "$search" ] && echo "search $search" >> ${resolvConf}
    ;;
esac
exit 0
`;
}

/** A gzipped newc cpio archive: the guest's whole root file system. */
function buildInitramfs(busybox: Buffer, modules: Array<{ name: string; data: Buffer }>): Buffer {
  const entries: CpioEntry[] = [];
  for (const d of ['bin', 'dev', 'etc', 'lib', 'lib/modules', 'proc', 'sys', 'tmp', 'root']) entries.push({ name: d, mode: 0o040755 });
  // The kernel opens /dev/console for init before anything is mounted.
  entries.push({ name: 'dev/console', mode: 0o020600, rdev: [5, 1] });
  entries.push({ name: 'bin/busybox', mode: 0o100755, data: busybox });
  entries.push({ name: 'init', mode: 0o100755, data: Buffer.from(INIT) });
  entries.push({ name: 'etc/udhcpc.script', mode: 0o100755, data: Buffer.from(udhcpcScript('/etc/resolv.conf')) });
  for (const m of modules) entries.push({ name: `lib/modules/${m.name}.ko`, mode: 0o100644, data: m.data });
  entries.push({ name: 'lib/modules/order', mode: 0o100644, data: Buffer.from(modules.map((m) => m.name).join('\n') + '\n') });
  return gzipSync(cpioNewc(entries), { level: 6 });
}

interface CpioEntry {
  name: string;
  mode: number;
  data?: Buffer;
  rdev?: [number, number];
}

/** The "newc" cpio format (what the kernel unpacks as an initramfs). */
export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const hex = (v: number) => v.toString(16).padStart(8, '0');
  const add = (e: CpioEntry, ino: number) => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${e.name}\0`);
    const header = Buffer.from('070701' + [ino, e.mode, 0, 0, (e.mode & 0o170000) === 0o040000 ? 2 : 1, 0, data.length, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0].map(hex).join(''));
    parts.push(header, name, pad(header.length + name.length), data, pad(data.length));
  };
  entries.forEach((e, i) => add(e, i + 1));
  add({ name: 'TRAILER!!!', mode: 0 }, 0);
  return Buffer.concat(parts);
}

let kvm: boolean | undefined;
/**
 * Whether QEMU can run `image` under KVM here: /dev/kvm opens, and a guest started with it
 * prints its kernel's banner within a few seconds (nested KVM may open and yet never run a
 * guest, as on this project's development machine). Probed once per process.
 */
export function kvmWorks(image: GuestImage): boolean {
  if (kvm !== undefined) return kvm;
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
  } catch {
    return (kvm = false);
  }
  const r = spawnSync('qemu-system-x86_64', ['-enable-kvm', '-cpu', 'qemu64', '-m', '128', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', image.kernel, '-append', 'console=ttyS0 panic=-1', '-serial', 'stdio'], { encoding: 'utf8', timeout: 8000, killSignal: 'SIGKILL' });
  return (kvm = /Linux version/.test(r.stdout ?? ''));
}

export interface GuestSpec {
  name: string;
  mac: string;
  /** The Weft port's socket, which QEMU connects to. */
  portSocket: string;
  /** The serial console's socket (QEMU listens) and the log of everything it printed. */
  consoleSocket: string;
  consoleLog: string;
  memoryMb?: number;
}

/** The QEMU command line that boots `image` as `spec`. */
export function qemuArgv(image: GuestImage, spec: GuestSpec, useKvm = kvmWorks(image)): string[] {
  return [
    'qemu-system-x86_64',
    ...(useKvm ? ['-enable-kvm', '-cpu', 'qemu64'] : ['-accel', 'tcg', '-cpu', 'max']),
    '-m', String(spec.memoryMb ?? 256), '-smp', '1',
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', image.kernel, '-initrd', image.initrd,
    '-append', `console=ttyS0 quiet loglevel=1 panic=-1 weft.name=${spec.name}`,
    '-chardev', `socket,id=console,path=${spec.consoleSocket},server=on,wait=off,logfile=${spec.consoleLog}`,
    '-serial', 'chardev:console',
    '-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${spec.portSocket}`,
    '-device', `virtio-net-pci,netdev=n0,mac=${spec.mac}`,
  ];
}

/** Waits until the guest printed its ready line; returns the address it got (or ''). */
export async function waitGuestReady(spec: GuestSpec, alive: () => boolean, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = existsSync(spec.consoleLog) ? readFileSync(spec.consoleLog, 'utf8') : '';
    const m = /WEFT-READY ?(\S*)/.exec(text);
    if (m) return m[1];
    if (!alive()) throw new GuestError(`QEMU of ${spec.name} exited before the guest was ready:\n${tailOf(text)}`);
    if (Date.now() > deadline) throw new GuestError(`guest ${spec.name} was not ready in ${timeoutMs / 1000}s:\n${tailOf(text)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function tailOf(text: string): string {
  return text.split('\n').slice(-15).join('\n');
}

/**
 * Runs `command` (a shell command line) in a guest through its serial console; resolves to
 * its exit status and output (stdout and stderr together, as on a terminal).
 */
export function guestExec(consoleSocket: string, command: string, timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  if (command.includes('\n')) return Promise.reject(new GuestError('a guest command is one line'));
  const id = randomBytes(6).toString('hex');
  const begin = `__weft_begin_${id}__`;
  const end = `__weft_end_${id}__`;
  return new Promise((resolve, reject) => {
    const sock = connect(consoleSocket);
    let text = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new GuestError(`the guest did not finish "${command}" in ${timeoutMs / 1000}s; it printed:\n${tailOf(text.replace(/\r/g, ''))}`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(`echo ${begin}; { ${command}\n} 2>&1; echo ${end} $?\n`));
    sock.on('data', (d) => {
      text += d.toString('utf8');
      const clean = text.replace(/\r/g, '');
      const b = clean.indexOf(`${begin}\n`);
      const m = new RegExp(`${end} (\\d+)\\n`).exec(clean);
      if (b < 0 || !m) return;
      clearTimeout(timer);
      sock.destroy();
      resolve({ code: Number(m[1]), stdout: clean.slice(b + begin.length + 1, m.index), stderr: '' });
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(new GuestError(`cannot reach the guest's console at ${consoleSocket}: ${err.message}`));
    });
  });
}

/** Whether a file is a built image's part (for tests that want to say what they used). */
export function describeImage(image: GuestImage): string {
  return `${basename(join(image.kernel, '..'))} (kernel ${(statSync(image.kernel).size / 1e6).toFixed(1)} MB, initramfs ${(statSync(image.initrd).size / 1e6).toFixed(1)} MB)`;
}

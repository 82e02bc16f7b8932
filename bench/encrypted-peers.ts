/**
 * The encrypted overlays Weft's tunnels are measured against, each set up between the two
 * host namespaces of a lab (h1 at 10.99.0.1, h2 at 10.99.0.2, a veth underlay with its
 * offloads on) and measured host to host over its own tunnel interface, as their users run
 * them: wireguard-go (WireGuard in userspace, Debian's package) and nebula (Debian's).
 * Their processes are ours: started in the foreground and stopped when the measurement ends,
 * their keys and configs in a temporary directory removed with them. A peer this machine
 * does not have is not measured: `missing` says what to install.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const HOSTS = [{ name: 'h1', underlay: '10.99.0.1' }, { name: 'h2', underlay: '10.99.0.2' }] as const;

export interface EncryptedPeer {
  name: 'wireguard-go' | 'nebula';
  /** What this machine lacks to run it, with the command that installs it; null: nothing. */
  missing: string | null;
  /** Its version, and what that version is, for the tables: "wireguard-go 0.0.20220316 (…)". */
  label: string;
  run: <T>(lab: string, body: (address: string) => Promise<T>) => Promise<T>;
}

const has = (command: string) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;

function missingOf(commands: string[], packages: string): string | null {
  const lacking = commands.filter((c) => !has(c));
  return lacking.length === 0 ? null : `needs ${lacking.join(' and ')} (Debian: apt-get install ${packages})`;
}

/** The first line of `command args` that matches `pattern`, its first group; '' if none. */
function versionOf(command: string, args: string[], pattern: RegExp): string {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  return pattern.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1] ?? '';
}

/** wireguard-go, as Debian packages it. Debian 12's is 0.0.20220316, which predates the
 * UDP GSO/GRO and TUN offloads wireguard-go gained in 2023: it is measured as it is, not as
 * a current wireguard-go would do. */
export function wireguardGo(): EncryptedPeer {
  const missing = missingOf(['wireguard-go', 'wg'], 'wireguard-go wireguard-tools');
  const version = missing ? '' : versionOf('wireguard-go', ['--version'], /v?(\d+\.\d+\.\d+)/);
  const old = /^0\.0\.(20[01]\d|202[012])/.test(version);
  return {
    name: 'wireguard-go', missing, run: withWireguardGo,
    label: `wireguard-go ${version || '(version unknown)'}${old ? ' (before its 2023 segmentation offloads; Debian 12\'s)' : ''}, host to host`,
  };
}

/** nebula, as Debian packages it (Debian 12: 1.6.1). */
export function nebula(): EncryptedPeer {
  const missing = missingOf(['nebula', 'nebula-cert'], 'nebula');
  const version = missing ? '' : versionOf('nebula', ['-version'], /Version: (\S+)/);
  return { name: 'nebula', missing, run: withNebula, label: `nebula ${version || '(version unknown)'}, host to host` };
}

function nsArgs(lab: string, host: string, cmd: string[]): string[] {
  return ['netns', 'exec', `weft-${lab}-${host}`, ...cmd];
}

function sh(lab: string, host: string, cmd: string[], input?: string): string {
  const r = spawnSync('ip', nsArgs(lab, host, cmd), { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`${host}: ${cmd.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

async function waitFor(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stop(children: ChildProcess[]): Promise<void> {
  return Promise.all(children.map((c) => new Promise<void>((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    c.once('exit', () => resolve());
    c.kill('SIGTERM');
  }))).then(() => undefined);
}

/** Runs `body` with wireguard-go between h1 (10.77.0.1) and h2 (10.77.0.2), MTU 1420, with
 * the system's default socket buffers, which it has no setting for. */
async function withWireguardGo<T>(lab: string, body: (address: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-wg-'));
  const children: ChildProcess[] = [];
  try {
    const keys = HOSTS.map((h) => {
      const wg = (args: string[], input?: string) => {
        const r = spawnSync('wg', args, { encoding: 'utf8', input });
        if (r.status !== 0) throw new Error(`wg ${args.join(' ')}: ${r.error?.message ?? r.stderr}`);
        return r.stdout.trim();
      };
      const priv = wg(['genkey']);
      const pub = wg(['pubkey'], priv);
      writeFileSync(join(dir, `${h.name}.key`), `${priv}\n`, { mode: 0o600 });
      return pub;
    });
    for (const [i, h] of HOSTS.entries()) {
      // Its control socket is /var/run/wireguard/IFACE.sock whatever the namespace: a name each.
      const dev = `wg-${h.name}`;
      // wireguard-go refuses to run where the kernel has WireGuard unless told this: the
      // userspace implementation is the one measured here (the kernel's is another reference).
      const env = { ...process.env, WG_PROCESS_FOREGROUND: '1', WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' };
      const child = spawn('ip', nsArgs(lab, h.name, ['wireguard-go', '-f', dev]), { stdio: 'ignore', env });
      children.push(child);
      await waitFor(`wireguard-go's ${dev} in ${h.name}`, () => spawnSync('ip', nsArgs(lab, h.name, ['ip', 'link', 'show', dev])).status === 0);
      const other = HOSTS[1 - i];
      sh(lab, h.name, ['wg', 'set', dev, 'private-key', join(dir, `${h.name}.key`), 'listen-port', '51820',
        'peer', keys[1 - i], 'allowed-ips', `10.77.0.${2 - i}/32`, 'endpoint', `${other.underlay}:51820`]);
      sh(lab, h.name, ['ip', 'addr', 'add', `10.77.0.${i + 1}/24`, 'dev', dev]);
      sh(lab, h.name, ['ip', 'link', 'set', dev, 'mtu', '1420', 'up']);
    }
    sh(lab, 'h1', ['ping', '-c', '2', '-i', '0.2', '-W', '2', '10.77.0.2']);
    return await body('10.77.0.2');
  } finally {
    await stop(children);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs `body` with nebula between h1 (10.88.0.1) and h2 (10.88.0.2): certificates from a
 * CA made for the run, each host the other's static peer (no lighthouse), any traffic
 * allowed, tun MTU 1400 (its default is 1300; 1400 leaves room for its 60 bytes), 8 MiB
 * socket buffers. */
async function withNebula<T>(lab: string, body: (address: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-nebula-'));
  const children: ChildProcess[] = [];
  const cert = (args: string[]) => {
    const r = spawnSync('nebula-cert', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`nebula-cert ${args.join(' ')}: ${r.stderr}`);
  };
  try {
    cert(['ca', '-name', 'weft bench', '-out-crt', 'ca.crt', '-out-key', 'ca.key']);
    for (const [i, h] of HOSTS.entries()) {
      cert(['sign', '-name', h.name, '-ip', `10.88.0.${i + 1}/24`, '-ca-crt', 'ca.crt', '-ca-key', 'ca.key', '-out-crt', `${h.name}.crt`, '-out-key', `${h.name}.key`]);
      const other = HOSTS[1 - i];
      writeFileSync(join(dir, `${h.name}.yml`), [
        'pki:', `  ca: ${join(dir, 'ca.crt')}`, `  cert: ${join(dir, `${h.name}.crt`)}`, `  key: ${join(dir, `${h.name}.key`)}`,
        'static_host_map:', `  "10.88.0.${2 - i}": ["${other.underlay}:4242"]`,
        'lighthouse:', '  am_lighthouse: false', '  hosts: []',
        // The socket buffers Weft's tunnels have (8 MiB): with the default, the receiver's
        // overflows and TCP over it backs off (tens of thousands of retransmits in 6 s here).
        'listen:', '  host: 0.0.0.0', '  port: 4242', '  read_buffer: 8388608', '  write_buffer: 8388608',
        'punchy:', '  punch: false',
        'tun:', '  dev: nebula1', '  mtu: 1400',
        'logging:', '  level: warning',
        'firewall:', '  outbound:', '    - port: any', '      proto: any', '      host: any', '  inbound:', '    - port: any', '      proto: any', '      host: any',
        '',
      ].join('\n'));
    }
    for (const h of HOSTS) {
      children.push(spawn('ip', nsArgs(lab, h.name, ['nebula', '-config', join(dir, `${h.name}.yml`)]), { stdio: 'ignore' }));
      await waitFor(`nebula's tun in ${h.name}`, () => spawnSync('ip', nsArgs(lab, h.name, ['ip', 'link', 'show', 'nebula1'])).status === 0);
    }
    // The first packets start nebula's handshake: retry until it is through.
    await waitFor('a ping over nebula', () => spawnSync('ip', nsArgs(lab, 'h1', ['ping', '-c', '1', '-W', '1', '10.88.0.2'])).status === 0, 20_000);
    return await body('10.88.0.2');
  } finally {
    await stop(children);
    rmSync(dir, { recursive: true, force: true });
  }
}

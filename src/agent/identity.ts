/**
 * A host's tunnel key: an X25519 key pair made on the host the first time its agent starts
 * and kept in a file only root reads. The private half never leaves the host; the public
 * half goes to the controller when the agent joins, and from there to the host's peers.
 */
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { generateKeyPair, publicKeyOf, type KeyPair } from '../tunnel/noise.js';

export function defaultKeyFile(host: string): string {
  return `/var/lib/weft/agent-${host}/tunnel.key`;
}

/** Reads the key in `file` (base64 of the 32-byte private key), or makes one there. */
export function loadOrCreateKey(file: string): { keys: KeyPair; created: boolean } {
  let text: string | null = null;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${file}: cannot read the tunnel key: ${(err as Error).message}`);
  }
  if (text !== null) {
    const raw = Buffer.from(text, 'base64');
    if (!/^[A-Za-z0-9+/]{43}=$/.test(text) || raw.length !== 32) throw new Error(`${file}: not a tunnel key (one line: 32 bytes in base64); move it away to make a new one`);
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return { keys: { privateKey: raw, publicKey: publicKeyOf(raw) }, created: false };
  }
  const keys = generateKeyPair();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${Buffer.from(keys.privateKey).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  return { keys, created: true };
}

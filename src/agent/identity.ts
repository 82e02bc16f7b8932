/**
 * A host's keys, made on the host the first time its agent starts and kept in files only
 * root reads: its identity (Ed25519, for the controller) and its tunnel key (X25519).
 *
 * Private halves never leave the host. The identity's public half is pinned by the
 * controller when the host enrolls; the tunnel key's goes to the controller at every join,
 * and from there to the host's peers.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { generateKeyPair, publicKeyOf, type KeyPair } from '../tunnel/noise.js';
import { generateIdentity, identityFromPem } from '../view/agent-auth.js';
import { readPrivateFile, writePrivateFile } from '../io/private-file.js';

export function defaultKeyFile(host: string): string {
  return `/var/lib/weft/agent-${host}/tunnel.key`;
}

/** Reads the key in `file` (base64 of the 32-byte private key; made 0600 if it was not),
 * or makes one there. Throws a sentence naming the file (a PrivateFileError for a file that
 * is a symbolic link or not a regular file). */
export function loadOrCreateKey(file: string): { keys: KeyPair; created: boolean } {
  const text = readPrivateFile(file, 'the tunnel key')?.toString('utf8').trim() ?? null;
  if (text !== null) {
    const raw = Buffer.from(text, 'base64');
    if (!/^[A-Za-z0-9+/]{43}=$/.test(text) || raw.length !== 32) throw new Error(`${file}: not a tunnel key (one line: 32 bytes in base64); move it away to make a new one`);
    return { keys: { privateKey: raw, publicKey: publicKeyOf(raw) }, created: false };
  }
  const keys = generateKeyPair();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writePrivateFile(file, `${Buffer.from(keys.privateKey).toString('base64')}\n`, { exclusive: true, what: 'the tunnel key' });
  return { keys, created: true };
}

/** The host's identity key (Ed25519, PKCS#8 PEM) in `file`, made there if missing: what the
 * agent signs its requests to the controller with once its host is enrolled. */
export function loadOrCreateIdentity(file: string): { key: KeyObject; publicKey: string; created: boolean } {
  let pem = readPrivateFile(file, 'the identity key')?.toString('utf8') ?? null;
  const created = pem === null;
  if (pem === null) {
    const made = generateIdentity();
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writePrivateFile(file, made.pem, { exclusive: true, what: 'the identity key' });
    pem = made.pem;
  }
  try {
    return { ...identityFromPem(pem), created };
  } catch (err) {
    throw new Error(`${file}: not an identity key (${(err as Error).message}); move it away to make a new one, then enroll the host again (weft host create)`);
  }
}

/**
 * The agents' signatures the controller has taken, so that each is taken once
 * (src/view/agent-auth.ts). A signature is remembered, by its host and nonce, for as long as
 * its time is inside the skew window; after that the time check refuses it anyway.
 *
 * Only signatures that verified are remembered, so only a host's own agent (the holder of
 * its identity key) adds to its host's set. Each host's set is bounded: when it is full of
 * nonces still in the window, that host's new signatures are refused ('full') until the
 * oldest age out. An agent signs twice per connection (join, watch) and reconnects at most
 * every 200 ms, so a working agent stays far below the bound; one that fills it is refused
 * for at most the window (never a replay let through), and memory stays at most
 * hosts x MAX_SEEN_PER_HOST entries.
 */
import { AGENT_AUTH_SKEW_MS, type SignedRequest } from '../view/agent-auth.js';

/** Nonces remembered per host (ours): about 17 signatures a second over the four minutes a
 * signature can stay valid (two either side of the controller's clock). */
export const MAX_SEEN_PER_HOST = 4096;

/** 'fresh': first seen, now remembered; 'replayed': seen before; 'full': the host signed
 * more than MAX_SEEN_PER_HOST requests still in the window. */
export type SignatureVerdict = 'fresh' | 'replayed' | 'full';

export class SeenSignatures {
  /** By host: nonce -> the time (ms) after which the signature is out of the window. */
  private readonly hosts = new Map<string, Map<string, number>>();
  private lastSweep = 0;

  constructor(private readonly perHost = MAX_SEEN_PER_HOST) {}

  /** Takes a verified signature once: remembers it if fresh. `now`: the controller's clock. */
  admit(signed: SignedRequest, now: number): SignatureVerdict {
    this.sweep(now);
    let seen = this.hosts.get(signed.host);
    if (!seen) this.hosts.set(signed.host, (seen = new Map()));
    if (seen.has(signed.nonce)) return 'replayed';
    if (seen.size >= this.perHost) {
      forget(seen, now);
      if (seen.size >= this.perHost) return 'full';
    }
    seen.set(signed.nonce, signed.ms + AGENT_AUTH_SKEW_MS);
    return 'fresh';
  }

  /** How many signatures are remembered (tests, metrics). */
  get size(): number {
    let n = 0;
    for (const seen of this.hosts.values()) n += seen.size;
    return n;
  }

  /** Forgets every host's aged-out nonces, once per window: a host that stopped signing
   * does not keep its set. */
  private sweep(now: number): void {
    if (now - this.lastSweep < AGENT_AUTH_SKEW_MS) return;
    this.lastSweep = now;
    for (const [host, seen] of this.hosts) {
      forget(seen, now);
      if (seen.size === 0) this.hosts.delete(host);
    }
  }
}

function forget(seen: Map<string, number>, now: number): void {
  for (const [nonce, until] of seen) if (until < now) seen.delete(nonce);
}

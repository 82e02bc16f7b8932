/**
 * Counters of the data path: frames and bytes each way, and drops by reason. Every drop
 * in the data path names one of these reasons; nothing is lost without a count.
 */

export const DROP_REASONS = [
  /** A frame shorter than an Ethernet header. */
  'runt',
  /** A frame that filled the whole receive slot: it may have been cut, so it is not trusted. */
  'oversize',
  /** A group (multicast/broadcast) source MAC: never valid, and never learned. */
  'invalid-src-mac',
  /** Tagged on an access port, untagged on a trunk with no native network, or a VLAN the
   * trunk does not carry. */
  'vlan-not-allowed',
  /** Bigger than the network's overlay MTU: cannot be carried to a remote host. */
  'mtu-exceeded',
  /** A unicast frame whose destination is the port it came from. */
  'hairpin',
  /** The output (a TAP queue or the underlay socket) was full. */
  'tx-busy',
  /** The output refused the frame for another reason (see the agent's log). */
  'tx-error',
  /** A datagram too short for the encapsulation header and an inner Ethernet header. */
  'truncated',
  /** A datagram longer than the receive buffer (the kernel cut it). */
  'datagram-oversize',
  /** VXLAN without the I flag (RFC 7348 §5). */
  'vxlan-bad-flags',
  /** A Geneve version other than 0 (RFC 8926 §3.4: MUST drop). */
  'geneve-bad-version',
  /** A Geneve protocol type other than Ethernet. */
  'geneve-bad-protocol',
  /** Geneve with critical options, none of which Weft understands (RFC 8926 §3.5.1). */
  'geneve-critical-option',
  /** The VNI names no network on this host, or one with another encapsulation. */
  'unknown-vni',
  /** The sender is not a remote host of the network. */
  'unknown-vtep',
  /** The backend failed a read (the agent logs the error). */
  'rx-error',
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

/** Index of each reason in a counter array. */
export const Drop = Object.fromEntries(DROP_REASONS.map((r, i) => [r, i])) as { readonly [R in DropReason]: number };

const RX_FRAMES = 0;
const RX_BYTES = 1;
const TX_FRAMES = 2;
const TX_BYTES = 3;
const DROPS = 4;

/** One set of counters: a port's, a tunnel's or the underlay's. Increments allocate nothing. */
export class Counters {
  readonly values = new Float64Array(DROPS + DROP_REASONS.length);

  rx(bytes: number): void {
    this.values[RX_FRAMES]++;
    this.values[RX_BYTES] += bytes;
  }

  tx(bytes: number): void {
    this.values[TX_FRAMES]++;
    this.values[TX_BYTES] += bytes;
  }

  /** `reason` is an index from `Drop`. */
  drop(reason: number): void {
    this.values[DROPS + reason]++;
  }

  drops(reason: DropReason): number {
    return this.values[DROPS + Drop[reason]];
  }

  snapshot(): CounterSnapshot {
    const drops: Partial<Record<DropReason, number>> = {};
    DROP_REASONS.forEach((r, i) => {
      if (this.values[DROPS + i] > 0) drops[r] = this.values[DROPS + i];
    });
    return {
      rx: { frames: this.values[RX_FRAMES], bytes: this.values[RX_BYTES] },
      tx: { frames: this.values[TX_FRAMES], bytes: this.values[TX_BYTES] },
      drops,
    };
  }
}

export interface CounterSnapshot {
  rx: { frames: number; bytes: number };
  tx: { frames: number; bytes: number };
  /** Only the reasons that happened. */
  drops: Partial<Record<DropReason, number>>;
}

/**
 * Where this host is on the underlay, followed as it moves: a laptop or a host whose uplink
 * takes its address by DHCP may find it changed. The encrypted tunnels carry on by
 * themselves (peers follow authenticated traffic from the new address, and the tunnel
 * socket is bound to every address); the agent tells the controller, so that hosts which
 * have not heard from this one lately learn it too.
 */
import { networkInterfaces } from 'node:os';

/** The IPv4 addresses of this host, by interface (loopback left out). */
function addresses(): Array<{ iface: string; address: string }> {
  return Object.entries(networkInterfaces()).flatMap(([iface, list]) =>
    (list ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => ({ iface, address: a.address })));
}

export class UnderlayAddress {
  /** The interface that had the address at the start (null: none here had it). */
  private readonly iface: string | null;

  constructor(private current: string) {
    this.iface = addresses().find((a) => a.address === current)?.iface ?? null;
  }

  get address(): string {
    return this.current;
  }

  /**
   * The new address, when the one this host had is gone from its interface and another
   * took its place there; null while nothing changed (or the interface has no address yet).
   */
  check(): string | null {
    const now = addresses();
    if (this.iface === null || now.some((a) => a.address === this.current)) return null;
    const next = now.find((a) => a.iface === this.iface);
    if (next === undefined) return null;
    this.current = next.address;
    return next.address;
  }
}

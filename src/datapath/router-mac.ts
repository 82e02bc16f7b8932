/**
 * The MAC address the agent's own services answer from on every network and every host:
 * DHCP replies, and ARP for subnet gateways. The distributed router will route frames sent
 * to it; until then, a frame a VM sends to it that no service takes is dropped ('no-route').
 * Locally administered, and outside what `weft lab` and the controller hand out to ports.
 */
import { readU16, readU32 } from '../wire/bytes.js';

export const ROUTER_MAC = 0x0257_46ff_fffe;
const HI = Math.floor(ROUTER_MAC / 2 ** 32);
const LO = ROUTER_MAC >>> 0;

/** Whether the frame at `off` is addressed to ROUTER_MAC. */
export function isRouterMac(mem: Uint8Array, off: number): boolean {
  return readU16(mem, off) === HI && readU32(mem, off + 2) === LO;
}

/**
 * Frames a Linux VM sends as it boots, as Weft's own port capture recorded them (quickstart
 * lab, blue1, MAC 02:57:46:00:00:01): test vectors for port security and security groups,
 * which must let each of them be what it is, not a spoof or a refused connection.
 */
const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));

export const BOOT_MAC = 0x02_57_46_00_00_01;

/** An MLDv2 report from :: during duplicate address detection (behind a hop-by-hop header
 * with Router Alert, RFC 3810 §5). */
export const MLD_REPORT_UNSPECIFIED = hex('33330000001602574600000186dd600000000024000100000000000000000000000000000000ff0200000000000000000000000000163a000502000001008f006f890000000104000000ff0200000000000000000001ff000001');

/** The same report once the link-local address is the VM's. */
export const MLD_REPORT_LINK_LOCAL = hex('33330000001602574600000186dd6000000000240001fe80000000000000005746fffe000001ff0200000000000000000000000000163a000502000001008f002bb00000000104000000ff0200000000000000000001ff000001');

/** A neighbour solicitation from :: for the VM's link-local address (DAD, RFC 4862 §5.4.2). */
export const DAD_SOLICITATION = hex('3333ff00000102574600000186dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff0000018700d49f00000000fe80000000000000005746fffe0000010e01c9b87e760bf6');

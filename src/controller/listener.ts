/**
 * What one client can make the controller's listeners hold (ours, not a protocol's). A
 * connection costs a file descriptor and a slot under MAX_CONNECTIONS until it closes, so:
 *
 * - one client (an IPv4 address, or an IPv6 /64, which one machine usually has whole) holds
 *   at most MAX_CONNECTIONS_PER_CLIENT at once; a connection beyond that is closed as it is
 *   accepted, unanswered, and counted. Filling MAX_CONNECTIONS then takes many addresses.
 * - a connection must finish its TLS handshake within TLS_HANDSHAKE_TIMEOUT_MS, and send a
 *   whole request head within HEAD_TIMEOUT_MS after that (or after its last response, kept
 *   alive), or it is closed (with a 408 where it can be read): a client that connects and
 *   sends nothing holds its slot for seconds, not until a sweep.
 *
 * The unix socket (local administration, no address) is not capped per client.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** An agent holds one connection (its watch) and makes one more now and then (its join); an
 * administrator's CLI or console a handful. 256 leaves room for many hosts behind one NAT
 * and still takes 16 addresses to fill MAX_CONNECTIONS. */
export const MAX_CONNECTIONS_PER_CLIENT = 256;
/** Agents hold one connection each; administrators and the CLI a few. */
export const MAX_CONNECTIONS = 4096;
/** A request head is one packet or a few: a client on any link sends it in well under this. */
export const HEAD_TIMEOUT_MS = 5_000;
/** A TLS handshake is two round trips. (Node's default is two minutes.) */
export const TLS_HANDSHAKE_TIMEOUT_MS = 5_000;
/** A whole request, head and body (at most 1 MiB: api.ts). */
export const REQUEST_TIMEOUT_MS = 30_000;
export const KEEP_ALIVE_MS = 5_000;
/** How often Node looks for connections past HEAD_TIMEOUT_MS or REQUEST_TIMEOUT_MS (its
 * default, 30 s, would let an idle connection stay six times the head timeout). */
export const TIMEOUT_CHECK_MS = 1_000;
export const MAX_HEADERS = 64;

/** Options for http.createServer / https.createServer: the ones Node reads only there
 * (`limit` sets the rest). */
export const serverOptions = {
  connectionsCheckingInterval: TIMEOUT_CHECK_MS,
  headersTimeout: HEAD_TIMEOUT_MS,
  requestTimeout: REQUEST_TIMEOUT_MS,
  handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
} as const;

/** The client a peer address is counted as: the IPv4 address (IPv4-mapped too), or the /64
 * of an IPv6 one; null for a unix socket's peer. */
export function clientOf(address: string | undefined): string | null {
  if (!address) return null;
  const v4 = /^(?:::ffff:)?(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (v4) return v4[1];
  const bare = address.split('%')[0].toLowerCase();
  const [head, tail] = bare.split('::');
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':')}::/64`;
}

/** Connections held now, by client, and those closed for being over the cap. */
export class ClientConnections {
  private readonly held = new Map<string, number>();
  /** Connections closed as accepted, their client at MAX_CONNECTIONS_PER_CLIENT. */
  refused = 0;

  constructor(private readonly perClient = MAX_CONNECTIONS_PER_CLIENT) {}

  /** Puts the limits on `server` (created with `serverOptions`). */
  limit(server: Server): void {
    server.headersTimeout = HEAD_TIMEOUT_MS;
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.keepAliveTimeout = KEEP_ALIVE_MS;
    server.maxHeadersCount = MAX_HEADERS;
    server.maxConnections = MAX_CONNECTIONS;
    // Before the server's own listener (HTTP parser, TLS): an over-cap socket goes no further.
    server.prependListener('connection', (socket: Socket) => this.accept(socket));
  }

  /** Counts `socket` against its client until it closes, or closes it at once when its
   * client holds the most it may. */
  accept(socket: Socket): void {
    const client = clientOf(socket.remoteAddress);
    if (client === null) return;
    const n = this.held.get(client) ?? 0;
    if (n >= this.perClient) {
      this.refused++;
      socket.destroy();
      return;
    }
    this.held.set(client, n + 1);
    socket.once('close', () => {
      const left = (this.held.get(client) ?? 1) - 1;
      if (left > 0) this.held.set(client, left);
      else this.held.delete(client);
    });
  }

  /** Connections `client` (as clientOf names it) holds now. */
  holding(client: string): number {
    return this.held.get(client) ?? 0;
  }
}

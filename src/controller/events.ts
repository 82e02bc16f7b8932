/**
 * What happened, lately: a bounded log of the changes the store committed (a port created,
 * a host enrolled or revoked) and of what agents did (connected, went away, a port attached
 * or failed), kept in memory (the last EVENTS_KEPT) for `weft events` and the API. Not a
 * store: a controller restart starts it afresh, and says so as its first event.
 */
import { printable } from '../config/fields.js';

export interface WeftEvent {
  /** Increasing from 1 in each controller run. */
  id: number;
  at: string;
  /** What kind of thing happened: `port.created`, `agent.connected`, `gateway.moved`, ... */
  kind: string;
  /** The host it happened on or to, if any. */
  host?: string;
  message: string;
}

export const EVENTS_KEPT = 1000;

export class EventLog {
  private readonly ring: WeftEvent[] = [];
  private next = 1;

  /** Records an event; its kind, host and message are kept with every control and bidi
   * character escaped (an agent's report is its own words), so no event drives a terminal. */
  add(kind: string, message: string, host?: string): void {
    this.ring.push({ id: this.next++, at: new Date().toISOString(), kind: printable(kind), ...(host !== undefined ? { host: printable(host) } : {}), message: printable(message) });
    if (this.ring.length > EVENTS_KEPT) this.ring.shift();
  }

  /** Records events in order, as `add` does each. Of more than the log keeps, only the last
   * EVENTS_KEPT are made (the others numbered as if they had been, and pushed out at once):
   * a commit of thousands of ports costs what the log can hold. */
  addAll(events: Array<[kind: string, message: string, host?: string]>): void {
    const drop = Math.max(0, events.length - EVENTS_KEPT);
    this.next += drop;
    for (let i = drop; i < events.length; i++) this.add(...events[i]);
  }

  /** The events after `id` (all that are kept, for 0), oldest first, at most `limit`. An
   * id this run has not reached yet is from before a restart: all that are kept, then. */
  since(id: number, limit = EVENTS_KEPT): WeftEvent[] {
    const from = id >= this.next ? 0 : this.ring.findIndex((e) => e.id > id);
    return from < 0 ? [] : this.ring.slice(from, from + limit);
  }
}

/**
 * Tracing one packet through the data path (`weft trace`): a probe, marked by a payload
 * that begins with MARKER and the trace's id, is recognised where a frame enters a host's
 * data path (from a port, or out of a tunnel), and while that one frame is handled every
 * stage says what it did with it (`step`), and a drop says why (counters.ts calls back).
 *
 * What it costs: nothing unless a trace is armed (one null check where a frame enters);
 * while one is armed, a look at each entering frame's IPv4 header. What it may record is
 * bounded (MAX_STEPS), and one trace is armed at a time, for at most MAX_ARMED_MS.
 */
import { readU16, readU32 } from '../wire/bytes.js';
import { EtherType } from '../wire/ethernet.js';
import { DROP_REASONS, setDropWatch } from './counters.js';

/** What a probe's payload begins with, then the trace's id (8 ASCII hex digits). */
export const MARKER = 'weft-trace:';
const MARKER_BYTES = new TextEncoder().encode(MARKER);
export const MAX_STEPS = 64;
export const MAX_ARMED_MS = 5000;

export interface TraceStep {
  /** Milliseconds since the epoch, with sub-millisecond precision where the clock has it. */
  at: number;
  stage: string;
  /** What happened: `pass` (on to the next stage), `drop` (the reason in detail),
   * `deliver` (written to a port), `send` (gone into a tunnel). */
  verdict: 'pass' | 'drop' | 'deliver' | 'send';
  detail: string;
  /** For `deliver`: the port it was written to. */
  port?: string;
}

/** Which packets an armed trace follows: IPv4 from `src` to `dst` carrying the marker. */
export interface TraceMatch {
  id: string;
  src: number;
  dst: number;
  protocol: number;
}

/** Which stage a drop reason belongs to, for a person reading the path. */
function stageOf(reason: string): string {
  if (reason.startsWith('spoofed') || reason === 'dhcp-server' || reason === 'router-advertisement' || reason === 'ethertype-not-allowed') return 'port security';
  if (reason === 'malformed') return 'parse';
  if (reason.startsWith('sg-') || reason === 'conntrack-full') return 'security groups';
  if (reason.startsWith('nat-')) return 'nat';
  if (reason.startsWith('tunnel-') || reason === 'not-encrypted') return 'tunnel';
  if (reason === 'no-route' || reason === 'ttl-exceeded' || reason === 'no-neighbor' || reason === 'bad-ip-header') return 'route';
  if (reason === 'mtu-exceeded') return 'mtu';
  if (reason === 'tx-busy' || reason === 'tx-error') return 'output';
  return 'switch';
}

export class Tracer {
  private match: TraceMatch | null = null;
  private until = 0;
  private readonly steps: TraceStep[] = [];
  /** A probe is being handled now: stages record what they do. */
  active = false;
  /** What the last refusal said beyond its reason (a rule, an MTU), for the drop's step. */
  private why = '';

  constructor(private readonly clock: () => number = () => performance.timeOrigin + performance.now()) {}

  get armed(): boolean {
    return this.match !== null;
  }

  /** Follows probes of `match` for `ms` (at most MAX_ARMED_MS); forgets an earlier trace. */
  arm(match: TraceMatch, ms: number): void {
    this.match = match;
    this.until = this.clock() + Math.min(ms, MAX_ARMED_MS);
    this.steps.length = 0;
  }

  /** Stops following, and returns what was recorded for `id` (nothing for another id). */
  disarm(id: string): TraceStep[] {
    const steps = this.match?.id === id ? this.steps.splice(0) : [];
    this.match = null;
    return steps;
  }

  /**
   * Called where a frame enters the data path: whether it is the armed trace's probe. If
   * it is, stages record until `leave`, and drops are recorded with their reason.
   */
  enter(mem: Uint8Array, off: number, len: number, where: string): boolean {
    const m = this.match;
    if (m === null || !isProbe(mem, off, len, m)) return false;
    // The clock only for the probe (the owner disarms on time; this is the backstop).
    if (this.clock() > this.until) {
      this.match = null;
      return false;
    }
    this.active = true;
    setDropWatch(this.onDrop);
    this.step(where, 'pass', 'received');
    return true;
  }

  leave(): void {
    this.active = false;
    this.why = '';
    setDropWatch(null);
  }

  /** Stops recording while the stage handling the probe sends a frame of its own (an ICMP
   * error: not the probe, and its drops are not the probe's); `resume` goes on. */
  pause(): void {
    this.active = false;
    setDropWatch(null);
  }

  resume(): void {
    this.active = true;
    setDropWatch(this.onDrop);
  }

  step(stage: string, verdict: TraceStep['verdict'], detail: string, port?: string): void {
    if (this.steps.length < MAX_STEPS) this.steps.push({ at: this.clock(), stage, verdict, detail, ...(port !== undefined ? { port } : {}) });
  }

  /** Says more about the refusal counted next (the rule, the MTU in force): call it just
   * before that drop. */
  because(why: string): void {
    this.why = why;
  }

  private readonly onDrop = (reason: number): void => {
    const name = DROP_REASONS[reason];
    this.step(stageOf(name), 'drop', this.why === '' ? name : `${name}: ${this.why}`);
    this.why = '';
  };
}

/** Whether the frame is IPv4 from m.src to m.dst of m.protocol with the marker and id in
 * the first bytes of its transport payload (ICMP echo data, UDP payload, TCP payload). */
function isProbe(mem: Uint8Array, off: number, len: number, m: TraceMatch): boolean {
  if (len < 14 + 20 || readU16(mem, off + 12) !== EtherType.Ipv4) return false;
  const ip = off + 14;
  if (mem[ip + 9] !== m.protocol || readU32(mem, ip + 12) !== m.src || readU32(mem, ip + 16) !== m.dst) return false;
  const l4 = ip + (mem[ip] & 0x0f) * 4;
  const data = m.protocol === 6 ? l4 + (mem[l4 + 12] >>> 4) * 4 : l4 + 8;
  const end = data + MARKER_BYTES.length + m.id.length;
  if (end > off + len) return false;
  for (let i = 0; i < MARKER_BYTES.length; i++) if (mem[data + i] !== MARKER_BYTES[i]) return false;
  for (let i = 0; i < m.id.length; i++) if (mem[data + MARKER_BYTES.length + i] !== m.id.charCodeAt(i)) return false;
  return true;
}

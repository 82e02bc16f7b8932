/**
 * The API as an attacker and a careless user meet it: generated requests (fast-check) at
 * every route of the controller's own OpenAPI document, sent over TCP to a real `weft
 * controller` process on a SQLite file. Bodies are built from each route's JSON schema,
 * with values drawn from spellings that have caught controllers out (leading zeros,
 * IPv4-mapped IPv6, path tricks, overlong names, wrong types) and from arbitrary JSON.
 *
 * What must hold for every request: an answer (no hang), never a 5xx, and every refusal an
 * RFC 9457 problem body; a 400 or 422 names each field it refuses. And at the end, nothing
 * stored is spelled in a non-canonical way, and no two stored objects differ only in
 * spelling. A failure prints fast-check's seed and the smallest request that fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { startController } from './support/controller.js';

/** How many generated requests `npm test` sends (a few seconds' worth). */
const RUNS = Number(process.env.WEFT_API_FUZZ_RUNS ?? 600);
const ANSWER_MS = 5000;

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  oneOf?: Schema[];
  anyOf?: Schema[];
  const?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  maxItems?: number;
  default?: unknown;
};

/** Spellings that have been accepted where they should not, or are easy to get wrong. */
const ADDRESSES = [
  '10.50.0.7', '10.50.0.07', '010.050.000.007', '::ffff:10.50.0.7', '10.50.0.01', '10.50.0.1', '10.50.0.255', '10.50.0.0',
  '0.0.0.0', '255.255.255.255', '224.0.0.1', '127.0.0.1', '169.254.0.1', '10.50.0.256', '1.2.3', '1.2.3.4.5', ' 10.50.0.7',
  '10.50.0.7\n', '0x0a.0.0.1', '192.0.2.10', '192.0.2.11', 'fd00::7', 'FD00::7', 'fd00:0:0:0:0:0:0:7', 'fd00::0007', '::', '::1',
  'ff02::1', 'fe80::1%eth0', 'fd00::7/64', 'fd00:::7', '',
];
const CIDRS = ['10.50.0.0/24', '010.50.0.0/24', '10.50.0.0/33', '10.50.0.1/24', '10.50.0.0/0', '10.50.0.0/31', '10.62.0.0/24', '10.50.0.0/024', '10.50.0.0', 'fd00::/64'];
const MACS = ['02:00:00:00:00:07', '02:00:00:00:00:7', '00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff', '02-00-00-00-00-07', '02:00:00:00:00:0A', '01:00:5e:00:00:01', '02:00:00:00:00:08'];
const NAMES = ['blue', 'red', 'h1', 'h2', 'vm1', 'vm2', 's1', 'BLUE', '..', '.', 'a'.repeat(63), 'a'.repeat(64), '-x', 'x y', 'é', '', 'a/b'];
const NETNS = ['../../../etc/passwd', '.', '..', 'ns1', 'a/b', 'x\u0000y', 'a'.repeat(300)];
const DEVICES = ['.', '..', 'tap0', 'a'.repeat(16), 'eth0:1', 'tap 0', ''];
const NUMBERS = [0, -1, 1, 100, 576, 1280, 1500, 4789, 9000, 65535, 65536, 1e9, 1.5, 16777215, 16777216];

/** Per field: values that lead deeper (they name what exists, or are well-formed), and the rest. */
const pool: Record<string, { deeper: unknown[]; all: unknown[] }> = {
  ips: { deeper: ['10.50.0.7', '10.50.0.07', '010.050.000.007', '::ffff:10.50.0.7', 'fd00::7', 'FD00::7', 'fd00:0:0:0:0:0:0:7'], all: ADDRESSES },
  address: { deeper: ['192.0.2.10', '192.0.2.11', '0.0.0.0', '127.0.0.1', '224.0.0.1', '192.0.2.010'], all: ADDRESSES },
  gateway: { deeper: ['10.62.0.1', '10.62.0.01', '010.62.0.1'], all: ADDRESSES },
  start: { deeper: ['10.62.0.1', '10.62.0.10', '10.62.0.010'], all: ADDRESSES },
  end: { deeper: ['10.62.0.20', '10.62.0.200', '10.62.0.0200'], all: ADDRESSES },
  dns: { deeper: ['10.62.0.53', '0.0.0.0', '255.255.255.255', '010.0.0.53'], all: ADDRESSES },
  cidr: { deeper: ['10.62.0.0/24', '010.62.0.0/24', '10.63.0.0/24'], all: CIDRS },
  mac: { deeper: MACS, all: MACS },
  name: { deeper: ['vm1', 'vm2', 'vm3', 'red', 's2', 'h3'], all: NAMES },
  network: { deeper: ['blue'], all: NAMES },
  host: { deeper: ['h1', 'h2'], all: NAMES },
  netns: { deeper: NETNS, all: NETNS },
  device: { deeper: DEVICES, all: DEVICES },
};

/** A value for a schema: mostly of its shape, with hostile values mixed in at every level. */
function fromSchema(schema: Schema | undefined, key: string, depth = 0): fc.Arbitrary<unknown> {
  const hostile = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(null, true, '', 'x'.repeat(70), -1, 1e308, [], {}));
  if (!schema || depth > 4) return hostile;
  const own: fc.Arbitrary<unknown>[] = [];
  const words = pool[key];
  if (schema.const !== undefined) own.push(fc.constant(schema.const));
  if (schema.enum) own.push(fc.constantFrom(...schema.enum));
  const alternatives = schema.oneOf ?? schema.anyOf;
  if (alternatives) own.push(fc.oneof(...alternatives.map((s) => fromSchema(s, key, depth + 1))));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === 'object' && schema.properties) {
    const props = schema.properties;
    const required = new Set(schema.required ?? []);
    const fields = Object.fromEntries(Object.entries(props).map(([k, s]) => [k, fromSchema(s, k, depth + 1)]));
    const whole = fc.record(fields, { requiredKeys: Object.keys(props).filter((k) => required.has(k)) });
    own.push(fc.oneof(
      { weight: 8, arbitrary: whole },
      { weight: 1, arbitrary: fc.record(fields, { requiredKeys: [] }) },
      { weight: 1, arbitrary: whole.map((o) => ({ ...o, unexpected: 1 })) },
    ));
  } else if (type === 'array') {
    const item = fromSchema(schema.items, key, depth + 1);
    own.push(fc.array(item, { maxLength: Math.min(schema.maxItems ?? 4, 4) }));
    own.push(fc.array(item, { minLength: (schema.maxItems ?? 16) + 1, maxLength: (schema.maxItems ?? 16) + 2 }));
  } else if (type === 'string') {
    own.push(words ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...words.deeper) }, { weight: 1, arbitrary: fc.constantFrom(...words.all) }) : fc.string({ maxLength: 20 }));
  } else if (type === 'integer' || type === 'number') {
    own.push(fc.constantFrom(...NUMBERS, schema.minimum ?? 0, schema.maximum ?? 0, (schema.maximum ?? 0) + 1));
  } else if (type === 'boolean') {
    own.push(fc.boolean());
  }
  if (own.length === 0 && words) own.push(fc.constantFrom(...words.all));
  if (own.length === 0) return hostile;
  return fc.oneof({ weight: 9, arbitrary: fc.oneof(...own) }, { weight: 1, arbitrary: hostile });
}

interface Operation {
  method: string;
  path: string;
  schema?: Schema;
}

interface Sent {
  method: string;
  path: string;
  token: string;
  contentType: string | null;
  body: string | null;
}

const IPV4_CANONICAL = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** An independent oracle of the RFC 5952 form: the WHATWG URL parser's IPv6 serializer. */
function ipv6Canonical(text: string): string | null {
  try {
    return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
}

test('generated hostile requests at every route: no 5xx, no hang, every refusal a problem naming its field, nothing stored twice in two spellings', { timeout: 300_000 }, async () => {
  const ctl = await startController('weft-api-fuzz-');
  const base = ctl.url;
  try {
    const admin = ctl.token;
    // A host's join token (an agent's credential): it may join as that host, and nothing else.
    const registered = await fetch(`${base}/v1/hosts`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'fuzzhost', address: '192.0.2.99' }) });
    const { joinToken } = await registered.json() as { joinToken: string };
    // Each request on a connection of its own, as the CLI sends them: what one request does
    // to its connection (a body refused half-way) must not decide the next one's fate.
    const send = (s: Sent) => new Promise<{ status: number; type: string | null; text: string }>((resolve, reject) => {
      let answered = false;
      const req = httpRequest(base + s.path, {
        method: s.method,
        agent: false,
        headers: { ...(s.token ? { authorization: `Bearer ${s.token}` } : {}), ...(s.contentType ? { 'content-type': s.contentType } : {}) },
        timeout: ANSWER_MS,
      }, (res) => {
        answered = true;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? null, text }));
      });
      req.on('timeout', () => req.destroy(new Error(`no answer in ${ANSWER_MS} ms: ${s.method} ${s.path}`)));
      // Writing the rest of a body the server already refused may fail; the answer counts.
      req.on('error', (err) => (answered ? undefined : reject(err)));
      req.end(s.body ?? undefined);
    });
    // Something to refer to, so that generated requests reach the deeper rules.
    const json = (method: string, path: string, body: unknown) => send({ method, path, token: admin, contentType: 'application/json', body: JSON.stringify(body) });
    for (const [name, address] of [['h1', '192.0.2.1'], ['h2', '192.0.2.2']]) assert.ok((await json('POST', '/v1/hosts', { name, address })).status < 300);
    assert.equal((await json('POST', '/v1/networks', { name: 'blue', vni: 100 })).status, 201);
    assert.equal((await json('POST', '/v1/subnets', { name: 's1', network: 'blue', cidr: '10.50.0.0/24' })).status, 201);

    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Schema }> } }>> };
    const operations: Operation[] = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ method: method.toUpperCase(), path, schema: op.requestBody?.content['application/json']?.schema })));
    assert.ok(operations.length >= 15, `the OpenAPI document lists ${operations.length} operations`);

    const pathName = fc.oneof(fc.constantFrom(...NAMES.filter((n) => n !== '')), fc.constantFrom('%2e%2e', '%2F', 'a%00b', '%C3%A9', 'x'.repeat(300)));
    const request = fc.constantFrom(...operations).chain((op) => fc.record({
      op: fc.constant(op),
      name: pathName,
      token: fc.constantFrom(admin, admin, admin, admin, joinToken, '', 'wrong'),
      contentType: fc.constantFrom('application/json', 'application/json', 'application/json', 'text/plain', 'application/json; charset=utf-8', null),
      body: op.schema
        ? fc.oneof(
          { weight: 8, arbitrary: fromSchema(op.schema, '').map((v) => JSON.stringify(v) ?? 'null') },
          { weight: 1, arbitrary: fc.constantFrom('{"name":', '', 'null', '[]', '{"name":"a","name":"b"}', '\u0000') },
          { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
        )
        : fc.constant(null),
    })).map(({ op, name, token, contentType, body }): Sent => ({
      method: op.method,
      path: op.path.replace('{name}', name.includes('%') ? name : encodeURIComponent(name)),
      token,
      contentType: op.schema ? contentType : null,
      body: op.schema ? body : null,
    }));

    const outcomes = new Map<number, number>();
    await fc.assert(fc.asyncProperty(request, async (s) => {
      const r = await send(s);
      outcomes.set(r.status, (outcomes.get(r.status) ?? 0) + 1);
      const where = `${s.method} ${s.path} ${s.body ?? ''} -> ${r.status} ${r.text}`;
      assert.ok(r.status < 500, `a server error: ${where}`);
      if (r.status < 400) return;
      assert.match(r.type ?? '', /^application\/problem\+json/, `not a problem body: ${where}`);
      const p = JSON.parse(r.text) as { status: number; title: string; detail: string; errors?: Array<{ field: string; message: string }> };
      assert.equal(p.status, r.status, where);
      assert.ok(typeof p.title === 'string' && p.title.length > 0, where);
      assert.ok(typeof p.detail === 'string' && p.detail.length > 0, where);
      if (r.status === 400 || r.status === 422) {
        assert.ok(Array.isArray(p.errors) && p.errors.length > 0, `a ${r.status} that names no field: ${where}`);
        for (const e of p.errors) assert.ok(typeof e.field === 'string' && e.field.length > 0 && typeof e.message === 'string' && e.message.length > 0, where);
      }
    }), { numRuns: RUNS, interruptAfterTimeLimit: 240_000, ...(process.env.WEFT_API_FUZZ_SEED ? { seed: Number(process.env.WEFT_API_FUZZ_SEED) } : {}) })
      .catch((err: Error & { cause?: unknown }) => {
        // fast-check keeps the failing assertion as the cause: say it.
        throw new Error(`${err.message}\n${err.cause instanceof Error ? err.cause.message : String(err.cause ?? '')}`);
      });
    // The generator must reach past validation, or this test proves little.
    const accepted = [...outcomes].filter(([status]) => status < 300).reduce((n, [, k]) => n + k, 0);
    assert.ok(accepted >= RUNS / 20, `only ${accepted} of ${RUNS} generated requests were accepted: ${JSON.stringify([...outcomes])}`);

    // Whatever got in is spelled one way only.
    const list = async <T>(kind: string) => JSON.parse((await send({ method: 'GET', path: `/v1/${kind}`, token: admin, contentType: null, body: null })).text) as T[];
    const ports = await list<{ name: string; network: string; mac: string; ips: string[] }>('ports');
    const subnets = await list<{ name: string; cidr: string; gateway: string; allocation: { start: string; end: string }; dns: string[] }>('subnets');
    const hosts = await list<{ name: string; address: string }>('hosts');
    const canonical = (ip: string) => (ip.includes(':') ? ipv6Canonical(ip) : IPV4_CANONICAL.test(ip) ? ip : null);
    const seen = new Map<string, string>();
    for (const p of ports) {
      assert.match(p.mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, `port ${p.name} MAC ${p.mac}`);
      assert.notEqual(p.mac, '00:00:00:00:00:00', `port ${p.name} has the all-zero MAC`);
      for (const ip of p.ips) {
        assert.equal(canonical(ip), ip, `port ${p.name} stores ${JSON.stringify(ip)}, not its canonical form`);
        assert.ok(!ip.toLowerCase().startsWith('::ffff:'), `port ${p.name} stores an IPv4-mapped address ${ip}`);
        const key = `${p.network} ${ip}`;
        assert.equal(seen.get(key), undefined, `${ip} on ${p.network} belongs to ${seen.get(key)} and ${p.name}`);
        seen.set(key, p.name);
      }
      const mac = `${p.network} ${p.mac}`;
      assert.equal(seen.get(mac), undefined, `MAC ${p.mac} on ${p.network} belongs to ${seen.get(mac)} and ${p.name}`);
      seen.set(mac, p.name);
    }
    for (const s of subnets) {
      const [net, len] = s.cidr.split('/');
      assert.ok(IPV4_CANONICAL.test(net) && String(Number(len)) === len, `subnet ${s.name} stores ${s.cidr}`);
      for (const ip of [s.gateway, s.allocation.start, s.allocation.end, ...s.dns]) assert.ok(IPV4_CANONICAL.test(ip), `subnet ${s.name} stores ${ip}`);
    }
    for (const h of hosts) assert.ok(IPV4_CANONICAL.test(h.address), `host ${h.name} stores ${h.address}`);
    assert.ok(ctl.running(), 'the controller is still running');
  } finally {
    await ctl.stop();
  }
});

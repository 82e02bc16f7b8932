/**
 * The web console in a real browser: Debian's Chromium, driven by playwright-core, opens
 * the page a lab's controller serves (over its TLS, at /ui/), and is checked as a person
 * would use it: it asks for the admin token and refuses a wrong one; it shows every host
 * and network of the lab, the router and the tunnels; a port's counter goes up while
 * traffic runs; the events of the lab's start are listed; a trace run from the form ends
 * in the right verdict and is drawn on the graph (and a dropped one marks the host that
 * dropped it). Screenshots are saved in test-results/console/ for a person to look at.
 * And that it stays usable as the network grows: hosts, networks and ports in natural
 * order (h2 before h10) in its lists and on the graph, the search box selecting what was
 * typed, focus on a network or host hiding the rest, and no box with its label covering
 * another (read from the graph itself, cytoscape's boxes with labels), with 3 hosts and 100.
 *
 * Chromium runs inside the controller's namespace (the lab's underlay is not reachable
 * from the machine's own), through a wrapper that enters it. The controller's certificate
 * is the lab's own CA, which the browser is told to accept.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { CONTROLLER_PORT, labConsole, labDir, readLabState } from '../src/lab/lab.js';
import { test, e2eSkipReason } from './support/env.js';
import { withLab } from './support/lab.js';
import { pino } from 'pino';
import { Controller } from '../src/controller/controller.js';
import { ApiClient } from '../src/cli/api-client.js';

const CHROMIUM = '/usr/bin/chromium';
const noChromium = existsSync(CHROMIUM) ? false : `needs Debian's chromium at ${CHROMIUM} (see .ci/run)`;
const skip = e2eSkipReason('ping') || noChromium;
const BROWSER_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SHOTS = join(process.cwd(), 'test-results', 'console');

/** Pairs of boxes on the graph, labels included, that overlap: the hosts, networks and
 * routers shown, and the ports shown inside each host (cytoscape's own bounding boxes). */
function overlapping(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    interface Box { x1: number; y1: number; x2: number; y2: number }
    interface Node { id(): string; parent(): { empty(): boolean }; children(s: string): { toArray(): Node[] }; boundingBox(o: object): Box }
    const cy = (globalThis as unknown as { weft: { cy: { nodes(s: string): { toArray(): Node[] } } } }).weft.cy;
    const out: string[] = [];
    const check = (nodes: Node[]) => {
      const boxes = nodes.map((n) => [n.id(), n.boundingBox({ includeLabels: true })] as const);
      for (let i = 0; i < boxes.length; i++) {
        for (let k = i + 1; k < boxes.length; k++) {
          const [a, p] = boxes[i];
          const [b, q] = boxes[k];
          if (p.x1 < q.x2 && q.x1 < p.x2 && p.y1 < q.y2 && q.y1 < p.y2) out.push(`${a} / ${b}`);
        }
      }
    };
    check(cy.nodes(':visible').toArray().filter((n) => n.parent().empty()));
    for (const host of cy.nodes('.host:visible').toArray()) check(host.children(':visible').toArray());
    return out;
  });
}

/** The hosts on the graph in reading order (top to bottom, then left to right, by the top
 * left corner of each with its label). */
function hostsReadingOrder(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    interface Node { id(): string; boundingBox(o: object): { x1: number; y1: number } }
    const cy = (globalThis as unknown as { weft: { cy: { nodes(s: string): { toArray(): Node[] } } } }).weft.cy;
    return cy.nodes('.host:visible').toArray().map((n) => ({ id: n.id(), b: n.boundingBox({ includeLabels: true }) }))
      .sort((a, b) => Math.round(a.b.y1) - Math.round(b.b.y1) || a.b.x1 - b.b.x1).map((n) => n.id);
  });
}

/** What the graph shows (its data-shown), as a list. */
async function shownIds(page: Page): Promise<string[]> {
  return ((await page.getAttribute('#graph', 'data-shown')) ?? '').split(' ').filter(Boolean);
}

const rowsOf = async (page: Page, table: string, key: string) => page.locator(`#${table} tbody tr`).evaluateAll((rows, k) => rows.map((r) => (r as unknown as { dataset: Record<string, string> }).dataset[k]), key);

async function until<T>(what: string, page: Page, read: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) {
      await page.screenshot({ path: join(SHOTS, 'failed.png') });
      throw new Error(`timed out waiting for ${what}: last saw ${JSON.stringify(v)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

test('the web console shows the lab, its live counters and events, and draws a trace', { skip, timeout: 240_000 }, async () => {
  mkdirSync(SHOTS, { recursive: true });
  await withLab({
    name: 'e2econsole',
    controller: true,
    hosts: [{ name: 'h1' }, { name: 'h2' }, { name: 'h3' }],
    networks: [{ name: 'blue', vni: 100, encapsulation: 'vxlan' }, { name: 'red', vni: 200, encapsulation: 'vxlan' }],
    routers: [{ name: 'r1', networks: ['blue', 'red'] }],
    vms: [
      { name: 'vm1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' },
      { name: 'vm2', host: 'h2', network: 'blue', ip: '10.10.0.2/24' },
      { name: 'vm3', host: 'h3', network: 'red', ip: '10.20.0.3/24' },
    ],
  }, async (lab) => {
    const token = readFileSync(join(labDir(lab.name), 'controller', 'admin.token'), 'utf8').trim();
    const ctl = readLabState(lab.name)!.plan.controller!;
    const dir = mkdtempSync(join(tmpdir(), 'weft-console-'));
    const wrapper = join(dir, 'chromium');
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ctl.netns} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const browser = await chromium.launch({
      executablePath: wrapper,
      args: BROWSER_ARGS,
    });
    try {
      const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1600, height: 1000 } });
      const page = await context.newPage();
      const base = `https://${ctl.address}:${CONTROLLER_PORT}/ui/`;

      // Without a token it asks for one, and a wrong one is refused.
      await page.goto(base);
      await page.waitForSelector('#login:not([hidden])');
      await page.fill('#token', 'not-the-token');
      await page.click('#login button');
      await until('the wrong token refused', page, () => page.isVisible('#login'), (v) => v === true, 5000);
      assert.equal(await page.isVisible('#app'), false);

      // With the token (in the fragment, never sent to the server): every host and network.
      await page.goto(`${base}#token=${token}`);
      await until('the lab on the page', page, () => page.textContent('[data-testid=summary]'), (t) => t === '3 hosts, 2 networks, 1 routers, 3 ports');
      const nodes = (await page.getAttribute('#graph', 'data-nodes'))!.split(' ');
      for (const id of ['host:h1', 'host:h2', 'host:h3', 'net:blue', 'net:red', 'router:r1', 'port:vm1', 'port:vm2', 'port:vm3']) assert.ok(nodes.includes(id), `${id} in the graph (${nodes.join(' ')})`);
      const edges = await until('the tunnels in the graph', page, async () => (await page.getAttribute('#graph', 'data-edges'))!.split(' '), (e) => e.includes('tun:h1:h2') && e.includes('tun:h1:h3'));
      assert.ok(edges.includes('att:vm1:blue') && edges.includes('rt:r1:red'));
      assert.match((await page.textContent('[data-testid=events]'))!, /agent\.connected \(h1\)/);
      await page.screenshot({ path: join(SHOTS, 'topology.png') });

      // No host's label covers another box (it did: h1's label lay over h2's box).
      assert.deepEqual(await overlapping(page), [], 'boxes with their labels overlap');
      assert.deepEqual(await rowsOf(page, 'hosts', 'host'), ['h1', 'h2', 'h3']);

      // The search box: a name selects it and centres on it, an address finds its port,
      // Escape clears.
      await page.fill('[data-testid=search]', 'vm3');
      await until('vm3 found and selected', page, () => page.getAttribute('#graph', 'data-selected'), (v) => v === 'port:vm3');
      assert.equal(await page.getAttribute('#graph', 'data-matches'), 'port:vm3');
      assert.equal(await page.textContent('#detail-title'), 'port vm3');
      assert.deepEqual(await page.evaluate(() => (globalThis as unknown as { weft: { cy: { $(s: string): { map(f: (e: { id(): string }) => string): string[] } } } }).weft.cy.$(':selected').map((e) => e.id())), ['port:vm3']);
      await page.fill('[data-testid=search]', '10.10.0.2');
      await until('vm2 found by its address', page, () => page.getAttribute('#graph', 'data-selected'), (v) => v === 'port:vm2');
      await page.fill('[data-testid=search]', 'h');
      await until('h finds the hosts', page, () => page.getAttribute('#graph', 'data-matches'), (v) => v === 'host:h1 host:h2 host:h3');
      assert.equal(await page.getAttribute('#graph', 'data-selected'), 'host:h1');
      await page.screenshot({ path: join(SHOTS, 'search.png') });
      await page.press('[data-testid=search]', 'Escape');
      await until('the search cleared', page, () => page.getAttribute('#graph', 'data-matches'), (v) => v === '');

      // Focus on a network (its name in the list): its hosts, ports and router only, and
      // the tunnel between its hosts.
      await page.click('#networks button[data-focus="net:blue"]');
      await until('blue and its neighbours only', page, () => shownIds(page), (v) => v.join(' ') === 'att:vm1:blue att:vm2:blue host:h1 host:h2 net:blue port:vm1 port:vm2 router:r1 rt:r1:blue tun:h1:h2');
      assert.match((await page.textContent('[data-testid=focus-info]'))!, /network blue and its neighbours/);
      assert.deepEqual(await rowsOf(page, 'ports', 'port'), ['vm1', 'vm2'], 'the ports table follows the focus');
      assert.deepEqual(await overlapping(page), []);
      await page.screenshot({ path: join(SHOTS, 'focus-network.png') });
      await page.click('[data-testid=unfocus]');
      await until('everything again', page, () => shownIds(page), (v) => v.includes('host:h3') && v.includes('net:red'));

      // Focus by a click on the graph: on h3's box (below its port, inside its border).
      const at = await page.evaluate(() => {
        const cy = (globalThis as unknown as { weft: { cy: { getElementById(id: string): { renderedBoundingBox(o: object): { x1: number; x2: number; y2: number } } } } }).weft.cy;
        const b = cy.getElementById('host:h3').renderedBoundingBox({ includeLabels: false });
        return { x: (b.x1 + b.x2) / 2, y: b.y2 - 6 };
      });
      const graphBox = (await page.locator('#graph').boundingBox())!;
      await page.mouse.click(graphBox.x + at.x, graphBox.y + at.y);
      // h3, its port and network, the hosts it has tunnels to (h1, and h2 if a tunnel to it
      // has been reported by then), those tunnels; not blue, nor the tunnel between h1 and h2.
      const h3Only = (v: string[]) => ['att:vm3:red', 'host:h1', 'host:h3', 'net:red', 'port:vm3', 'tun:h1:h3'].every((id) => v.includes(id))
        && v.every((id) => ['att:vm3:red', 'host:h1', 'host:h2', 'host:h3', 'net:red', 'port:vm3', 'tun:h1:h3', 'tun:h2:h3'].includes(id));
      await until('h3 and its neighbours only', page, () => shownIds(page), h3Only);
      assert.equal(await page.getAttribute('#graph', 'data-focus'), 'host:h3');
      assert.deepEqual(await overlapping(page), []);
      await page.screenshot({ path: join(SHOTS, 'focus-host.png') });
      await page.keyboard.press('Escape');
      await until('everything after Escape', page, () => page.getAttribute('#graph', 'data-focus'), (v) => v === '');
      assert.equal((await shownIds(page)).filter((id) => id.startsWith('host:')).length, 3);

      // A counter goes up while traffic runs (agents report every few seconds).
      const rx = async () => Number(((await page.textContent('tr[data-port=vm2] .tx-frames')) ?? '0').replace(/,/g, '') || 0);
      const before = await until('vm2\'s counters', page, rx, (n) => Number.isFinite(n));
      const traffic = lab.run('vm1', 'ping', '-c', '60', '-i', '0.2', '10.10.0.2');
      await until('vm2\'s frames counted while traffic runs', page, rx, (n) => n >= before + 10);
      await traffic;
      await page.click('text=Tunnels');
      await page.screenshot({ path: join(SHOTS, 'counters.png'), fullPage: true });

      // A trace from the form: delivered through the router to another host, drawn.
      await page.selectOption('[data-testid=trace-from]', 'vm1');
      await page.fill('[data-testid=trace-to]', '10.20.0.3');
      await page.click('[data-testid=trace-run]');
      await until('the trace\'s verdict', page, () => page.textContent('[data-testid=trace-verdict]'), (t) => t === 'delivered to vm3 on h3');
      const path = (await page.getAttribute('#graph', 'data-path'))!.split(' ');
      assert.deepEqual(path, ['host:h1', 'host:h3', 'port:vm1', 'port:vm3', 'tun:h1:h3']);
      assert.match((await page.textContent('[data-testid=trace-steps]'))!, /h1 \+0\.000 ms port vm1: received[\s\S]*h1 .* route: 10\.20\.0\.3 via network red/);
      await page.screenshot({ path: join(SHOTS, 'trace-delivered.png') });

      // One over the MTU: dropped on h1, and h1 marked.
      await page.fill('#trace-size', '1419');
      await page.fill('[data-testid=trace-to]', '10.10.0.2');
      await page.click('[data-testid=trace-run]');
      await until('the dropped trace\'s verdict', page, () => page.textContent('[data-testid=trace-verdict]'), (t) => t === 'dropped on h1: mtu, mtu-exceeded: 1419 bytes, network blue\'s MTU is 1418');
      assert.equal(await page.getAttribute('#graph', 'data-dropped'), 'host:h1');
      await page.screenshot({ path: join(SHOTS, 'trace-dropped.png') });

      // `weft lab console`: the same page on this machine's loopback, through the
      // controller's unix socket.
      // (The browser above lives in the controller's namespace; this checks from ours.)
      const local = await labConsole(lab.name, 0);
      try {
        const [address, fragment] = local.url.split('#');
        assert.match(await (await fetch(address)).text(), /<title>Weft console<\/title>/);
        const hosts = await (await fetch(new URL('/v1/hosts', address), { headers: { authorization: `Bearer ${fragment.slice('token='.length)}` } })).json() as unknown[];
        assert.equal(hosts.length, 3);
      } finally {
        local.server.close();
      }
    } finally {
      await browser.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('at 100 hosts and 1,000 ports the console still draws everything, ports counted on their hosts', { skip: noChromium, timeout: 180_000 }, async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'weft-console-scale-'));
  const controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, loopbackUnderlay: true, log: pino({ level: 'silent' }) });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS });
  try {
    await controller.start();
    const api = new ApiClient({ url: `http://127.0.0.1:${controller.port}`, token: controller.tokens.admin });
    for (let h = 0; h < 100; h++) await api.call('POST', '/v1/hosts', { name: `h${h}`, address: `10.0.${h >> 8}.${(h & 255) + 1}` });
    for (let n = 0; n < 20; n++) await api.call('POST', '/v1/networks', { name: `net${n}`, vni: n + 1 });
    await Promise.all(Array.from({ length: 8 }, async (_, w) => {
      for (let i = w; i < 1000; i += 8) {
        await api.call('POST', '/v1/ports', { name: `p${i}`, network: `net${i % 20}`, host: `h${i % 100}`, mac: `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` });
      }
    }));
    const page = await (await browser.newContext({ viewport: { width: 1600, height: 1000 } })).newPage();
    const t0 = Date.now();
    await page.goto(`http://127.0.0.1:${controller.port}/ui/#token=${controller.tokens.admin}`);
    await until('the whole topology', page, () => page.textContent('[data-testid=summary]'), (t) => t === '100 hosts, 20 networks, 0 routers, 1000 ports', 30_000);
    const nodes = (await page.getAttribute('#graph', 'data-nodes'))!.split(' ');
    const shown = Date.now() - t0;
    assert.equal(nodes.filter((n) => n.startsWith('host:')).length, 100);
    assert.equal(nodes.filter((n) => n.startsWith('net:')).length, 20);
    assert.equal(nodes.filter((n) => n.startsWith('port:')).length, 0, 'ports counted on their hosts, not drawn');
    assert.equal(await page.locator('#ports tbody tr').count(), 1000, 'every port listed');

    // Natural order: in the lists and on the graph, h2 before h10.
    const natural = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    assert.deepEqual(await rowsOf(page, 'hosts', 'host'), natural('h', 100));
    assert.deepEqual(await rowsOf(page, 'networks', 'network'), natural('net', 20));
    assert.deepEqual(await rowsOf(page, 'ports', 'port'), natural('p', 1000));
    assert.deepEqual(await hostsReadingOrder(page), natural('host:h', 100), 'hosts laid out in natural reading order');
    assert.deepEqual(await overlapping(page), [], 'boxes with their labels overlap');

    // Search for a port not drawn: it is selected, its host marked and centred.
    await page.fill('[data-testid=search]', 'p17');
    await until('p17 found', page, () => page.getAttribute('#graph', 'data-selected'), (v) => v === 'port:p17');
    assert.equal(await page.textContent('#detail-title'), 'port p17');
    assert.equal(await page.getAttribute('#graph', 'data-matches'), ['host:h17', ...natural('host:h7', 10)].join(' '), 'p17 and p170-p179 by their hosts');
    assert.equal(await page.locator('#search-results button').first().textContent(), 'port p17 (on h17)');
    await page.screenshot({ path: join(SHOTS, 'scale-search.png') });
    // Enter focuses on it: h17 and its network only.
    await page.press('[data-testid=search]', 'Enter');
    await until('h17 and its network only', page, () => shownIds(page), (v) => v.join(' ') === 'att:h17:net17 host:h17 net:net17');
    assert.equal(await page.locator('#ports tbody tr').count(), 10, 'h17\'s ports listed');

    // Focus on a network: the five hosts it spans, nothing else.
    await page.click('#networks button[data-focus="net:net3"]');
    await until('net3 and its hosts only', page, async () => (await shownIds(page)).filter((id) => !id.startsWith('att:')), (v) => v.join(' ') === 'host:h3 host:h23 host:h43 host:h63 host:h83 net:net3');
    assert.deepEqual(await overlapping(page), []);
    await page.screenshot({ path: join(SHOTS, 'scale-focus-network.png') });
    await page.click('[data-testid=unfocus]');
    await until('all 100 hosts again', page, async () => (await shownIds(page)).filter((id) => id.startsWith('host:')).length, (n) => n === 100);
    assert.deepEqual(await overlapping(page), []);
    // Still usable: the next refreshes come, and the page answers.
    const first = await page.textContent('[data-testid=status]');
    await until('a later refresh', page, () => page.textContent('[data-testid=status]'), (t) => t !== first, 10_000);
    await page.screenshot({ path: join(SHOTS, 'scale-100-hosts.png') });
    t.diagnostic(`100 hosts and 1,000 ports shown ${shown} ms after the page was asked for`);
  } finally {
    await browser.close();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

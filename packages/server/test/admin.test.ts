import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { type AdminServer, ServerError, ServerMetrics, StatusView, renderStatusPage, startAdminServer } from '../src/index.js';

const open: AdminServer[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

function get(server: AdminServer, path: string, headers: Record<string, string> = {}, post?: string): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const method = post === undefined ? 'GET' : 'POST';
    const req = request({ host: server.address.address, port: server.address.port, path, headers, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
    req.end(post);
  });
}

/** The value of one sample line `name{labels} value` in an exposition text. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('ServerMetrics', () => {
  it('counts events by their bounded labels, and reads gauges from the watched stats at scrape time', async () => {
    const m = new ServerMetrics({ processMetrics: false });
    let allocations = 2;
    m.watch({
      stun: () => ({ answered: 7, errors: 1, dropped: 0, rateLimited: 0, indications: 0, connections: 3, turn: { allocations } as never }),
    });
    m.sink({ type: 'allocation-created', allocation: 1, user: 'alice', source: '192.0.2.1', transport: 'udp', relay: 'udp', lifetimeS: 600, anonymous: false });
    m.sink({ type: 'auth-failure', service: 'turn', reason: 'bad-integrity', source: '192.0.2.9', user: 'mallory' });
    m.sink({ type: 'auth-failure', service: 'turn', reason: 'bad-integrity', source: '192.0.2.9', user: 'mallory' });
    m.sink({ type: 'refused', service: 'turn', cause: 'user-quota', source: '192.0.2.1', user: 'alice', pool: 'allocations' });
    m.sink({ type: 'auth-failure', service: 'turn', reason: 'missing', source: '192.0.2.1' });
    m.sink({ type: 'relayed', allocation: 1, user: 'alice', packetsToPeer: 3, bytesToPeer: 300, packetsToClient: 1, bytesToClient: 50 });
    let text = await m.text();
    expect(sample(text, 'nat_turn_allocations_created_total{transport="udp",relay="udp",tier="user"}')).toBe(1);
    expect(sample(text, 'nat_auth_failures_total{service="turn",reason="bad-integrity"}')).toBe(2);
    // a request without credentials is a challenge, not a failure
    expect(sample(text, 'nat_auth_failures_total{service="turn",reason="missing"}')).toBeUndefined();
    expect(sample(text, 'nat_auth_challenges_total{service="turn"}')).toBe(1);
    expect(sample(text, 'nat_refusals_total{service="turn",cause="user-quota",pool="allocations"}')).toBe(1);
    expect(sample(text, 'nat_turn_relayed_bytes_total{direction="to_peer"}')).toBe(300);
    expect(sample(text, 'nat_turn_relayed_packets_total{direction="to_client"}')).toBe(1);
    expect(sample(text, 'nat_turn_allocations_active')).toBe(2);
    expect(sample(text, 'nat_stream_connections_open')).toBe(3);
    expect(sample(text, 'nat_stun_requests_total{outcome="answered"}')).toBe(7);
    // no user, peer id or address ever becomes a label
    expect(text).not.toMatch(/alice|mallory|192\.0\.2/);
    allocations = 5;
    text = await m.text();
    expect(sample(text, 'nat_turn_allocations_active')).toBe(5);
    // a counter read from stats is not counted twice across scrapes
    expect(sample(text, 'nat_stun_requests_total{outcome="answered"}')).toBe(7);
  });

  it('exports process metrics under the prefix by default', async () => {
    const text = await new ServerMetrics({ prefix: 'x_' }).text();
    expect(text).toMatch(/^x_process_resident_memory_bytes \d+/m);
  });
});

describe('startAdminServer', () => {
  it('serves /metrics on loopback without a token, and small answers elsewhere', async () => {
    const metrics = new ServerMetrics({ processMetrics: false });
    const server = await startAdminServer({ metrics, port: 0 });
    open.push(server);
    expect(server.address.address).toBe('127.0.0.1');
    const r = await get(server, '/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toContain('text/plain');
    expect(r.body).toContain('# TYPE nat_turn_allocations_active gauge');
    expect((await get(server, '/healthz')).body).toBe('ok\n');
    const missing = await get(server, '/status.php');
    expect(missing.status).toBe(404);
    expect(missing.body.length).toBeLessThan(64);
  });

  it('needs the bearer token when one is set, compared in full', async () => {
    const metrics = new ServerMetrics({ processMetrics: false });
    const token = 'a-long-admin-token-0123456789';
    const server = await startAdminServer({ metrics, port: 0, token });
    open.push(server);
    expect((await get(server, '/metrics')).status).toBe(401);
    expect((await get(server, '/metrics', { authorization: `Bearer ${token.slice(0, -1)}` })).status).toBe(401);
    expect((await get(server, '/metrics', { authorization: `Bearer ${token}` })).status).toBe(200);
  });

  it('refuses a non-loopback address without a token, and a short token', async () => {
    const metrics = new ServerMetrics({ processMetrics: false });
    await expect(startAdminServer({ metrics, listen: '0.0.0.0', port: 0 })).rejects.toThrow(ServerError);
    await expect(startAdminServer({ metrics, listen: '0.0.0.0', port: 0 })).rejects.toThrow(/not a loopback address/);
    await expect(startAdminServer({ metrics, port: 0, token: 'short' })).rejects.toThrow(/at least 16 characters/);
  });
});

describe('StatusView and the status page', () => {
  const view = (): StatusView => {
    let t = 1_000_000;
    const v = new StatusView({ version: '9.9.9', now: () => (t += 1000) });
    v.sink({ type: 'allocation-created', allocation: 1, user: 'alice', source: '192.0.2.1', transport: 'udp', relay: 'udp', lifetimeS: 600, anonymous: false });
    v.sink({ type: 'allocation-created', allocation: 2, user: 'alice', source: '192.0.2.1', transport: 'tcp', relay: 'udp', lifetimeS: 600, anonymous: false });
    v.sink({
      type: 'allocation-created',
      allocation: 3,
      user: '<b>bob</b>',
      source: '192.0.2.2',
      transport: 'udp',
      relay: 'udp',
      lifetimeS: 600,
      anonymous: false,
    });
    v.sink({ type: 'allocation-ended', allocation: 2, user: 'alice', relay: 'udp', cause: 'deleted' });
    v.sink({ type: 'peer-online', peer: 'p'.repeat(32), source: '192.0.2.3', anonymous: true });
    const address = { family: 'IPv4' as const, address: '198.51.100.1', port: 15441 };
    v.sink({ type: 'expose-port-opened', user: 'alice', name: 'zeronet', address, protocol: 'tcp' });
    v.sink({ type: 'expose-connection', user: 'alice', name: 'zeronet', source: '192.0.2.9', state: 'opened' });
    v.sink({ type: 'expose-connection', user: 'alice', name: 'zeronet', source: '192.0.2.9', state: 'opened' });
    v.sink({ type: 'expose-connection', user: 'alice', name: 'zeronet', source: '192.0.2.9', state: 'closed' });
    v.sink({ type: 'auth-failure', service: 'turn', reason: 'bad-integrity', source: '192.0.2.66', user: 'mallory' });
    v.sink({ type: 'refused', service: 'expose', cause: 'user-quota', source: '192.0.2.1', user: 'alice', pool: 'ports' });
    return v;
  };

  it('keeps allocations by user, peers, exposed ports with their connections and recent refusals, newest first', () => {
    const s = view().snapshot();
    expect(s.allocationsByUser).toEqual([
      { user: '<b>bob</b>', allocations: 1, anonymous: false },
      { user: 'alice', allocations: 1, anonymous: false },
    ]);
    expect(s.peers.map((p) => [p.peer.length, p.source, p.anonymous])).toEqual([[32, '192.0.2.3', true]]);
    expect(s.exposedPorts.map((p) => [p.address.port, p.user, p.name, p.connections])).toEqual([[15441, 'alice', 'zeronet', 1]]);
    expect(s.recentRefusals.map((r) => r.what)).toEqual(['user-quota (ports)', 'auth: bad-integrity']);
  });

  it('renders every value escaped, with data attributes for the numbers', () => {
    const html = renderStatusPage(view().snapshot(), { reloadCsrf: 'c"s' });
    expect(html).toContain('&lt;b&gt;bob&lt;/b&gt;');
    expect(html).not.toContain('<b>bob</b>');
    expect(html).toContain('data-table="allocations" data-rows="2"');
    expect(html).toContain('data-table="ports" data-rows="1"');
    expect(html).toContain('value="c&quot;s"');
    expect(html).toContain('<span data-field="version">9.9.9</span>');
  });

  it('is served only with a token, to Basic (a browser) or Bearer; reload needs the form value', async () => {
    const metrics = new ServerMetrics({ processMetrics: false });
    const token = 'status-page-token-0123456789';
    let reloads = 0;
    const reload = async (): Promise<string> => {
      reloads++;
      if (reloads === 2) throw new Error('users file: line 3 is not name:password');
      return 'users file (2 users)';
    };
    const plain = await startAdminServer({ metrics, port: 0, status: view() });
    open.push(plain);
    expect((await get(plain, '/status')).status).toBe(404);
    const server = await startAdminServer({ metrics, port: 0, token, status: view(), reload });
    open.push(server);
    const unauth = await get(server, '/status');
    expect(unauth.status).toBe(401);
    const basic = { authorization: `Basic ${Buffer.from(`admin:${token}`).toString('base64')}` };
    const page = await get(server, '/status', basic);
    expect(page.status).toBe(200);
    expect(page.type).toContain('text/html');
    const json = await get(server, '/status.json', { authorization: `Bearer ${token}` });
    expect((JSON.parse(json.body) as { allocationsByUser: unknown[] }).allocationsByUser).toHaveLength(2);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)![1]!;
    expect((await get(server, '/reload', basic, 'csrf=forged')).status).toBe(403);
    expect(reloads).toBe(0);
    const ok = await get(server, '/reload', basic, `csrf=${csrf}`);
    expect(ok.body).toContain('reloaded: users file (2 users)');
    const refused = await get(server, '/reload', basic, `csrf=${csrf}`);
    expect(refused.body).toContain('reload refused, the old configuration is kept: users file: line 3 is not name:password');
    expect((await get(server, '/healthz')).status).toBe(200);
  });
});

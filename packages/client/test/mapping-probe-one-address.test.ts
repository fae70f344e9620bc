// The connect-time mapping probe against a server with one address (no OTHER-ADDRESS): it still
// learns an endpoint-dependent mapping from the server's second port and from the other servers
// of the ICE server list (the TURN server), which is what birthday punching needs. Real UDP on
// loopback against the simulated NAT server (a STUN server behind which a NAT is simulated).
import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { learnPunchOptions, probeNatMapping } from '../src/index.js';
import { classifyMappingSpread } from '../src/discovery/mapping-spread.js';
import { SimulatedNatServer } from './helpers/simulated-nat.js';

const CLIENT_IP = '127.0.0.3';
let server: SimulatedNatServer;
beforeAll(async () => {
  server = await SimulatedNatServer.start({ mapping: 'none', filtering: 'none', noAlternate: true });
});
afterAll(async () => {
  await server?.close();
});

/** The rendezvous' list of a one-address server: STUN on its first port, TURN (UDP) on its second. */
const iceServers = (): { urls: string[]; username?: string; credential?: string }[] => [
  { urls: [`stun:127.0.0.1:${server.ports[0]}`] },
  { urls: [`turn:127.0.0.1:${server.ports[1]}`], username: 'u', credential: 'p' },
];

describe('the mapping probe with a one-address server', () => {
  it('symmetric NAT: address-and-port-dependent from the TURN port, so punching starts', async () => {
    server.reset({ mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', noAlternate: true });
    const p = await learnPunchOptions(iceServers(), { localAddress: CLIENT_IP });
    expect(p.mapping).toBe('address-and-port-dependent');
    expect(p.ports).toBe('sequential');
    expect(p.probe?.mappedPorts).toHaveLength(2);
    expect(p.probe?.reason).toMatch(/depends on the destination port/);
    // the request to the second port really went out
    expect(server.received.some((r) => r.to.endsWith(`:${server.ports[1]}`))).toBe(true);
  });

  it('endpoint-independent NAT: the same mapping toward both ports', async () => {
    server.reset({ mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', noAlternate: true });
    const p = await learnPunchOptions(iceServers(), { localAddress: CLIENT_IP });
    expect(p.mapping).toBe('endpoint-independent');
    expect(p.probe?.reason).toMatch(/address-dependent mapping would look the same/);
  });

  it('a second server IP tells an address-dependent mapping from an address-and-port-dependent one', async () => {
    server.reset({ mapping: 'address-dependent', filtering: 'address-dependent', noAlternate: true });
    const p = await probeNatMapping({
      server: server.primary,
      others: [`127.0.0.2:${server.ports[0]}`, `127.0.0.1:${server.ports[1]}`],
      localAddress: CLIENT_IP,
    });
    expect(p.mapping).toBe('address-dependent');
    expect(p.mappedPorts).toHaveLength(3);
  });

  it('no second destination answers: unknown, long before the deadline', async () => {
    server.reset({ mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', noAlternate: true });
    // a socket that never answers: the spread tests give up after about 400 ms, not at the 8 s deadline
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
    const t = performance.now();
    const p = await probeNatMapping({
      server: server.primary,
      others: [`127.0.0.1:${silent.address().port}`],
      nextPort: false,
      localAddress: CLIENT_IP,
      timeoutMs: 8000,
    }).finally(() => silent.close());
    expect(performance.now() - t).toBeLessThan(5000);
    expect(p.mapping).toBeNull();
    expect(p.publicAddress).not.toBeNull();
    expect(p.reason).toMatch(/no OTHER-ADDRESS/);
  });
});

describe('classifyMappingSpread', () => {
  const at = (address: string, port: number) => ({ family: 'IPv4' as const, address, port });
  const first = { to: at('203.0.113.1', 3478), mapped: at('198.51.100.1', 40000) };
  it('ignores a destination equal to the first and says unknown without another', () => {
    expect(classifyMappingSpread(first, [first]).behavior).toBeNull();
  });
  it('another IP only, mapping changed: endpoint-dependent (port part not measurable)', () => {
    const v = classifyMappingSpread(first, [{ to: at('203.0.113.9', 3478), mapped: at('198.51.100.1', 40001) }]);
    expect(v.behavior).toBe('address-and-port-dependent');
    expect(v.reason).toMatch(/not measurable/);
  });
});

// probeNatMapping (the connect-time mapping probe behind birthday punching) and the port
// allocation in detectNat's report, against the simulated NAT server (real UDP on loopback;
// its NAT hands out public ports one after another, a sequential allocator).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectNat, learnPunchOptions, probeNatMapping } from '../src/index.js';
import { PUBLIC_IP, SimulatedNatServer } from './helpers/simulated-nat.js';

const CLIENT_IP = '127.0.0.3';
let server: SimulatedNatServer;
beforeAll(async () => {
  server = await SimulatedNatServer.start({ mapping: 'none', filtering: 'none' });
});
afterAll(async () => {
  await server?.close();
});

describe('probeNatMapping', () => {
  it('no NAT: endpoint-independent, port preserved, after one round trip', async () => {
    server.reset({ mapping: 'none', filtering: 'address-and-port-dependent' });
    const p = await probeNatMapping({ server: server.primary, localAddress: CLIENT_IP });
    expect(p).toMatchObject({ mapping: 'endpoint-independent', portAllocation: 'preserving' });
    expect(p.mappedPorts).toEqual([p.localAddress.port]);
    expect(p.publicAddress).toEqual(p.localAddress);
  });

  it("endpoint-independent NAT: Test II sees Test I's mapping", async () => {
    server.reset({ mapping: 'endpoint-independent', filtering: 'address-and-port-dependent' });
    const p = await probeNatMapping({ server: server.primary, localAddress: CLIENT_IP });
    expect(p.mapping).toBe('endpoint-independent');
    expect(p.publicAddress?.address).toBe(PUBLIC_IP);
    expect(p.mappedPorts).toHaveLength(2);
    expect(p.mappedPorts[0]).toBe(p.mappedPorts[1]);
    // one mapping tells preservation only; this NAT did not keep the port
    expect(p.portAllocation).toBe(p.mappedPorts[0] === p.localAddress.port ? 'preserving' : null);
  });

  it('symmetric NAT: address-and-port-dependent, with three sequential ports', async () => {
    server.reset({ mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent' });
    const p = await probeNatMapping({ server: server.primary, localAddress: CLIENT_IP });
    expect(p.mapping).toBe('address-and-port-dependent');
    expect(p.mappedPorts).toHaveLength(3);
    expect(new Set(p.mappedPorts).size).toBe(3);
    expect(p.portAllocation).toBe('sequential');
  });

  it('address-dependent mapping', async () => {
    server.reset({ mapping: 'address-dependent', filtering: 'address-dependent' });
    const p = await probeNatMapping({ server: server.primary, localAddress: CLIENT_IP });
    expect(p.mapping).toBe('address-dependent');
  });

  it('UDP blocked: unknown, within its deadline', async () => {
    server.reset({ mapping: 'none', filtering: 'none', blocked: true });
    const t = performance.now();
    const p = await probeNatMapping({ server: server.primary, localAddress: CLIENT_IP, timeoutMs: 300 });
    expect(performance.now() - t).toBeLessThan(600);
    expect(p).toMatchObject({ mapping: null, portAllocation: null, publicAddress: null, mappedPorts: [] });
  });

  it('rejects with ABORTED when the caller aborts', async () => {
    server.reset({ mapping: 'none', filtering: 'none', blocked: true });
    await expect(probeNatMapping({ server: server.primary, localAddress: CLIENT_IP, signal: AbortSignal.timeout(50) })).rejects.toMatchObject({
      code: 'ABORTED',
    });
  });

  it('learnPunchOptions turns the first STUN server of an iceServers list into punch options', async () => {
    server.reset({ mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent' });
    const p = await learnPunchOptions([{ urls: [`stun:${server.primary.address}:${server.primary.port}`] }], { localAddress: CLIENT_IP });
    expect(p).toMatchObject({ mapping: 'address-and-port-dependent', ports: 'sequential' });
    expect(await learnPunchOptions([])).toMatchObject({ mapping: null, probe: undefined });
  });
});

describe('detectNat reports the port allocation', () => {
  it('sequential for the symmetric NAT, preserving without NAT', async () => {
    server.reset({ mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent' });
    const sym = await detectNat({ server: server.primary, localAddress: CLIENT_IP, rto: 20, rc: 2, rm: 2, hairpinning: false });
    expect(sym.portAllocation).toBe('sequential');
    server.reset({ mapping: 'none', filtering: 'none' });
    const open = await detectNat({ server: server.primary, localAddress: CLIENT_IP, rto: 20, rc: 2, rm: 2, hairpinning: false });
    expect(open.portAllocation).toBe('preserving');
  });
});

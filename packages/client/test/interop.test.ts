import { Attr } from '@nat/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classicNatTest, detectNat, measureBindingLifetime, stunBinding } from '../src/index.js';
import { type ExternalServer, startCoturn, startStund } from './helpers/external-servers.js';

const CLIENT = '127.0.0.3';
const quick = { rto: 100, rc: 3, rm: 3 } as const;

for (const [name, start] of [
  ['coturn', startCoturn],
  ['stund', startStund],
] as const) {
  describe(`interop: our client against ${name}`, () => {
    let server: ExternalServer | undefined;
    let skip = '';
    beforeAll(async () => {
      const s = await start();
      if (typeof s === 'string') {
        skip = s;
        console.warn(`skipping the ${name} interop tests: ${s}`);
      } else {
        server = s;
      }
    }, 30_000);
    afterAll(async () => {
      await server?.stop();
    });

    it('detectNat: open internet, endpoint-independent mapping and filtering, well under a second', async (ctx) => {
      if (!server) return ctx.skip(skip);
      const report = await detectNat({ server: server.primary, localAddress: CLIENT });
      expect(report).toMatchObject({
        classic: 'open-internet',
        classicLetter: 'A',
        mapping: 'endpoint-independent',
        filtering: 'endpoint-independent',
        behindNat: false,
        hairpinning: true,
        portPreservation: true,
        alg: false,
        bindingLifetime: null,
        server: `127.0.0.1:${server.primary.port}`,
        otherAddress: `127.0.0.2:${server.altPort}`,
      });
      expect(report.publicAddress).toBe(report.localAddress);
      expect(report.localAddress.startsWith(`${CLIENT}:`)).toBe(true);
      expect(report.durationMs).toBeLessThan(1000);
    });

    it('detectNat from the wildcard address reports the routed local address', async (ctx) => {
      if (!server) return ctx.skip(skip);
      const report = await detectNat({ server: server.primary });
      expect(report.classic).toBe('open-internet');
      expect(report.localAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    });

    it('detectNat with classic RFC 3489 requests agrees', async (ctx) => {
      if (!server) return ctx.skip(skip);
      const report = await detectNat({ server: server.primary, localAddress: CLIENT, classic: true });
      expect(report).toMatchObject({ classic: 'open-internet', mapping: 'endpoint-independent', filtering: 'endpoint-independent', alg: null });
    });

    it('classicNatTest (the step-by-step reference) agrees', async (ctx) => {
      if (!server) return ctx.skip(skip);
      const r = await classicNatTest({ server: server.primary, localAddress: CLIENT });
      expect(r).toMatchObject({ nat: 'open-internet', letter: 'A', step: 'STEP2' });
    });

    it('answers each CHANGE-REQUEST from the right address and port', async (ctx) => {
      if (!server) return ctx.skip(skip);
      const { port } = server.primary;
      const cases = [
        [{}, '127.0.0.1', port],
        [{ changeIp: true }, '127.0.0.2', port],
        [{ changePort: true }, '127.0.0.1', port + 1],
        [{ changeIp: true, changePort: true }, '127.0.0.2', port + 1],
      ] as const;
      for (const [change, ip, p] of cases) {
        const r = await stunBinding(server.primary, { localAddress: CLIENT, ...change, ...quick });
        expect(r.sourceAddress).toEqual({ family: 'IPv4', address: ip, port: p });
        expect(r.responseOrigin).toEqual(r.sourceAddress);
        expect(r.mappedAddress).toEqual(r.localAddress);
        expect(r.otherAddress).toEqual({ family: 'IPv4', address: '127.0.0.2', port: port + 1 });
      }
    });

    it('answers a classic RFC 3489 request classically', async (ctx) => {
      if (!server) return ctx.skip(skip);
      const r = await stunBinding(server.primary, { localAddress: CLIENT, classic: true, ...quick });
      expect(r.response.classic).toBe(true);
      expect(r.mappedAddressPlain).toEqual(r.localAddress);
      expect(r.mappedAddress).toEqual(r.localAddress);
      expect(r.xorMappedAddress).toBeUndefined();
      expect(r.otherAddress).toEqual({ family: 'IPv4', address: '127.0.0.2', port: server.altPort });
      expect(r.response.has(Attr.ChangedAddress)).toBe(true);
      expect(r.response.has(Attr.SourceAddress)).toBe(true);
    });

    if (name === 'coturn') {
      it('binds over TCP', async (ctx) => {
        if (!server) return ctx.skip(skip);
        const r = await stunBinding(server.primary, { transport: 'tcp', localAddress: CLIENT, ti: 5000 });
        expect(r.mappedAddress).toEqual(r.localAddress);
        expect(r.software).toMatch(/Coturn/);
      });

      it('accepts PADDING', async (ctx) => {
        if (!server) return ctx.skip(skip);
        const r = await stunBinding(server.primary, { localAddress: CLIENT, padding: 64, ...quick });
        expect(r.mappedAddress).toEqual(r.localAddress);
      });

      it('honours RESPONSE-PORT: the binding lifetime search runs (short intervals)', async (ctx) => {
        if (!server) return ctx.skip(skip);
        const r = await measureBindingLifetime({ server: server.primary, localAddress: CLIENT, minIntervalMs: 50, maxIntervalMs: 200, ...quick });
        expect(r.lifetimeSeconds).toBe(0.2);
        expect(r.probes.every((p) => p.alive)).toBe(true);
        const report = await detectNat({ server: server.primary, localAddress: CLIENT, lifetime: { minIntervalMs: 50, maxIntervalMs: 100 } });
        expect(report.bindingLifetime).toBe(0.1);
        expect(report.durationMs).toBeLessThan(1000);
      });
    } else {
      it('silently drops requests with RESPONSE-PORT or PADDING (no 420), so the lifetime is not measurable', async (ctx) => {
        if (!server) return ctx.skip(skip);
        await expect(stunBinding(server.primary, { localAddress: CLIENT, padding: 8, rto: 50, rc: 2, rm: 2 })).rejects.toMatchObject({ code: 'TIMEOUT' });
        const r = await measureBindingLifetime({ server: server.primary, localAddress: CLIENT, minIntervalMs: 50, maxIntervalMs: 100, rto: 50, rc: 2, rm: 2 });
        expect(r.lifetimeSeconds).toBeNull();
        expect(r.reason).toMatch(/RESPONSE-PORT/);
      });

      it('sends an XOR-MAPPED-ADDRESS that does not follow RFC 8489 in classic responses: it is ignored', async (ctx) => {
        if (!server) return ctx.skip(skip);
        const r = await stunBinding(server.primary, { localAddress: CLIENT, classic: true, ...quick });
        const raw = r.response.get(Attr.XorMappedAddress);
        expect(raw).toBeDefined();
        const id = r.response.transactionId;
        // stund XORs the port with the first two id bytes, not with 0x2112
        if (id[0] !== 0x21 || id[1] !== 0x12) expect(raw!.port).not.toBe(r.localAddress.port);
        expect(r.mappedAddress).toEqual(r.localAddress);
      });
    }
  });
}

describe('a server that does not answer (UDP blocked)', () => {
  it('is classified G within the discovery retransmission budget (2.75 s)', async () => {
    // A port on loopback where nothing listens: every request is lost.
    const { createSocket } = await import('node:dgram');
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const port = s.address().port;
    await new Promise<void>((r) => s.close(() => r()));
    const report = await detectNat({ server: { family: 'IPv4', address: '127.0.0.1', port }, localAddress: CLIENT });
    expect(report).toMatchObject({ classic: 'udp-blocked', classicLetter: 'G', mapping: null, filtering: null, publicAddress: null });
    expect(report.durationMs).toBeGreaterThanOrEqual(2700);
    expect(report.durationMs).toBeLessThan(3500);
    expect(report.reachability).toMatch(/TCP or TLS/);
  });
});

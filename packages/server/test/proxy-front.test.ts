// The PROXY header front of the STUN server's stream listeners (startStunServer `proxyProtocol`):
// its guard rails (a header that never completes is cut at the deadline, one over the size cap
// at once), LOCAL (a balancer's health check keeps the balancer's address), and the connection
// events, which carry the client address the header gave.
import { randomInt } from 'node:crypto';
import { connect } from 'node:net';
import { Attr, StunClass, StunMethod, decodeStunMessage, encodeProxyV2Header, encodeStunMessage } from '@nat/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerEvent, type StunServer, startStunServer } from '../src/index.js';

const net = `127.${randomInt(100, 250)}.${randomInt(1, 250)}.`;
const SERVER = `${net}1`;
const BALANCER = `${net}2`;
const events: ServerEvent[] = [];
let server: StunServer;
let port = 0;

beforeAll(async () => {
  server = await startStunServer({
    listen: [SERVER],
    port: 0,
    altPort: null,
    proxyProtocol: { from: [`${BALANCER}/32`], timeoutMs: 3000, maxBytes: 256 },
    events: (e) => void events.push(e),
  });
  port = server.listeners.find((l) => l.transport === 'tcp')!.address.port;
});

afterAll(() => server?.close());

const binding = () => encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Request, attributes: [] });

/** From the balancer's address: writes `chunks`, then resolves with what came back and whether the server closed. */
function talk(chunks: Uint8Array[], waitMs = 15_000): Promise<{ got: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const c = connect({ host: SERVER, port, localAddress: BALANCER }, () => chunks.forEach((b) => c.write(b)));
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      c.destroy();
      resolve({ got: Buffer.concat(got), closed: false });
    }, waitMs);
    c.on('data', (d: Buffer) => got.push(d));
    c.on('error', () => undefined);
    c.on('close', () => {
      clearTimeout(timer);
      resolve({ got: Buffer.concat(got), closed: true });
    });
  });
}

describe('PROXY header front', () => {
  it('a header that never completes is closed at the deadline, unanswered', { timeout: 30_000 }, async () => {
    const header = encodeProxyV2Header('tcp', { family: 'IPv4', address: '192.0.2.1', port: 1 }, { family: 'IPv4', address: SERVER, port });
    const r = await talk([header.subarray(0, 10)]);
    expect(r).toEqual({ got: Buffer.alloc(0), closed: true });
  });

  it('a header over the size cap is closed at once, before its bytes arrive', { timeout: 30_000 }, async () => {
    const big = Buffer.from(encodeProxyV2Header('tcp'));
    big.writeUInt16BE(1000, 14); // 1016 bytes announced, 256 allowed
    const r = await talk([big], 2000); // well before the 3 s deadline would act
    expect(r.closed).toBe(true);
  });

  it('LOCAL (a health check) keeps the balancer address; PROXY gives the client one, in the answer and the events', { timeout: 30_000 }, async () => {
    const local = await talk([encodeProxyV2Header('tcp'), binding()], 2000);
    expect(decodeStunMessage(local.got).get(Attr.XorMappedAddress)?.address).toBe(BALANCER);
    const client = { family: 'IPv4' as const, address: '198.51.100.9', port: 40000 };
    const proxied = await talk([encodeProxyV2Header('tcp', client, { family: 'IPv4', address: SERVER, port }), binding()], 2000);
    expect(decodeStunMessage(proxied.got).get(Attr.XorMappedAddress)).toMatchObject({ address: '198.51.100.9', port: 40000 });
    const opened = events.filter((e) => e.type === 'connection-opened').map((e) => (e as { source: string }).source);
    expect(opened).toContain('198.51.100.9');
    expect(opened).toContain(BALANCER);
  });
});

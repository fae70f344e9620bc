// startStunServer with TCP and TLS listeners on system-chosen ports (port 0, tlsPort 0), with and
// without TURN and an alternate address: every listener is bound and answers a Binding request.
// Two such servers at once with the default alternate port used to fail with EADDRINUSE: with
// port 0 the alternate port still defaulted to a fixed 3479 (UDP and TCP), which only one of
// them (or any other local STUN server) can hold.
import { createSocket } from 'node:dgram';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { StunClass, StunMethod, StunStreamFramer, decodeStunMessage, encodeStunMessage } from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import { restApiSecrets, startStunServer, type StunServerInit } from '../src/index.js';

const binding = (): Uint8Array => encodeStunMessage({ class: StunClass.Request, method: StunMethod.Binding, attributes: [] });

async function udpAnswer(port: number, ip: string): Promise<number> {
  const s = createSocket('udp4');
  try {
    return await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no UDP answer')), 2000);
      s.on('message', (m) => {
        clearTimeout(t);
        resolve(decodeStunMessage(new Uint8Array(m)).class);
      });
      s.send(binding(), port, ip);
    });
  } finally {
    s.close();
  }
}

async function streamAnswer(port: number, ip: string, tls: boolean): Promise<number> {
  const sock = tls ? tlsConnect({ host: ip, port, rejectUnauthorized: false }) : tcpConnect({ host: ip, port });
  try {
    return await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no stream answer')), 3000);
      const framer = new StunStreamFramer();
      sock.on('error', reject);
      sock.on(tls ? 'secureConnect' : 'connect', () => sock.write(binding()));
      sock.on('data', (d: Buffer) => {
        framer.push(new Uint8Array(d));
        const f = framer.next();
        if (f) {
          clearTimeout(t);
          resolve(decodeStunMessage(f.bytes).class);
        }
      });
    });
  } finally {
    sock.destroy();
  }
}

const turn = { realm: 'listeners.test', auth: restApiSecrets(['s']), peers: { allow: ['127.0.0.0/8'] } };
const CASES: [string, StunServerInit][] = [
  ['TCP and TLS', { listen: ['127.0.0.1'], port: 0, altPort: null, tcp: true, tlsPort: 0 }],
  ['TCP and TLS with TURN', { listen: ['127.0.0.1'], port: 0, altPort: null, tcp: true, tlsPort: 0, turn }],
  ['TCP and TLS with TURN, two ports, two addresses', { listen: ['127.0.0.1'], alternate: ['127.0.0.2'], port: 0, altPort: 0, tcp: true, tlsPort: 0, turn }],
];

describe('startStunServer: TCP and TLS listeners on system-chosen ports', () => {
  for (const [name, init] of CASES) {
    it(`${name}: binds every listener, each answers`, async () => {
      for (let round = 0; round < 5; round++) {
        const server = await startStunServer(init);
        try {
          const kinds = new Set(server.listeners.map((l) => l.transport));
          expect([...kinds].sort()).toEqual(['tcp', 'tls', 'udp']);
          for (const l of server.listeners) {
            const cls =
              l.transport === 'udp'
                ? await udpAnswer(l.address.port, l.address.address)
                : await streamAnswer(l.address.port, l.address.address, l.transport === 'tls');
            expect(cls, `${l.transport} ${l.role}`).toBe(StunClass.SuccessResponse);
          }
        } finally {
          await server.close();
        }
      }
    });
  }

  it('two servers with port 0 and the default alternate port start side by side (no fixed 3479)', async () => {
    const init: StunServerInit = { listen: ['127.0.0.1'], port: 0, tcp: true, tlsPort: 0 };
    const servers = await Promise.all([startStunServer(init), startStunServer(init)]);
    try {
      const alt = servers.map((s) => s.listeners.find((l) => l.transport === 'tcp' && l.role === 'PA')!.address.port);
      expect(alt[0]).not.toBe(alt[1]);
      for (const s of servers) {
        for (const l of s.listeners.filter((x) => x.role === 'PA')) {
          const cls = l.transport === 'udp' ? await udpAnswer(l.address.port, l.address.address) : await streamAnswer(l.address.port, l.address.address, false);
          expect(cls, `${l.transport} PA`).toBe(StunClass.SuccessResponse);
        }
      }
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });
});

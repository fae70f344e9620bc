// Relayed candidates over TURN on a TCP or TLS connection (RFC 8656 section 3.1) in the ICE driver, on
// loopback: the rendezvous hands out `turn:...?transport=tcp`, peers without host candidates
// connect through it and exchange data; with a UDP TURN URI that never answers beside it, the
// TCP allocation still comes promptly (the UDP one gets a 250 ms head start, not its whole
// retransmission budget).
import { createSocket, type Socket } from 'node:dgram';
import { iceServerRefs, learnPunchOptions, parseIceServerUrl } from '@nat/client';
import { type RendezvousServer, type StunServer, anonymousRelayTier, startRendezvous, startStunServer } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPair, echo } from './peers.js';

const SECRET = 'turn-tcp-test-secret';
/** TURN's anonymous tier relays only toward what the rendezvous recorded of each peer's sessions. */
const tier = anonymousRelayTier({ secrets: [SECRET], ownRelayIps: ['127.0.0.1'] });
let stun: StunServer;
let tlsServer: StunServer;
let tcpOnly: RendezvousServer;
let mixed: RendezvousServer;
let tlsOnly: RendezvousServer;
let silent: Socket;

beforeAll(async () => {
  stun = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tcp: true,
    turn: { realm: 'tcp.test', ...tier.turn(), peers: { allow: ['127.0.0.0/8'] } },
  });
  const tcp = stun.listeners.find((l) => l.transport === 'tcp')!.address.port;
  tlsServer = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tcp: false,
    tlsPort: 0,
    turn: { realm: 'tcp.test', ...tier.turn(), peers: { allow: ['127.0.0.0/8'] } },
  });
  const tls = tlsServer.listeners.find((l) => l.transport === 'tls')!.address.port;
  tlsOnly = await startRendezvous({ host: '127.0.0.1', port: 0, ...tier.rendezvous([`turns:127.0.0.1:${tls}?transport=tcp`], 300) });
  silent = createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
  const silentPort = silent.address().port;
  tcpOnly = await startRendezvous({ host: '127.0.0.1', port: 0, ...tier.rendezvous([`turn:127.0.0.1:${tcp}?transport=tcp`], 300) });
  mixed = await startRendezvous({
    host: '127.0.0.1',
    port: 0,
    ...tier.rendezvous([`turn:127.0.0.1:${silentPort}`, `turn:127.0.0.1:${tcp}?transport=tcp`], 300),
  });
});

afterAll(async () => {
  await tcpOnly?.close();
  await mixed?.close();
  await tlsOnly?.close();
  await stun?.close();
  await tlsServer?.close();
  silent?.close();
});

describe('parseIceServerUrl and iceServerRefs', () => {
  it('reads transports and secure schemes', () => {
    expect(parseIceServerUrl('turn:h.example:3478')).toEqual({ scheme: 'turn', secure: false, transport: 'udp', server: 'h.example:3478' });
    expect(parseIceServerUrl('turn:h.example:3478?transport=tcp')).toMatchObject({ transport: 'tcp', secure: false });
    expect(parseIceServerUrl('TURNS:h.example?transport=tcp')).toMatchObject({ scheme: 'turn', transport: 'tls', secure: true, server: 'h.example' });
    expect(parseIceServerUrl('stuns:h.example:5349')).toMatchObject({ scheme: 'stun', transport: 'tls' });
    expect(parseIceServerUrl('turns:h.example?transport=udp')).toBeUndefined(); // DTLS: not supported
    expect(parseIceServerUrl('turn:h.example?transport=sctp')).toBeUndefined();
    expect(parseIceServerUrl('turn:/x')).toBeUndefined();
  });

  it('STUN servers come from UDP URIs only; TURN servers keep their transport', () => {
    const refs = iceServerRefs([{ urls: ['stun:a:3478', 'turn:a:3478', 'turn:a:3478?transport=tcp', 'turns:a:5349'], username: 'u', credential: 'p' }]);
    expect(refs.stun).toEqual([{ server: 'a:3478' }]);
    expect(refs.turn.map((t) => t.transport)).toEqual(['udp', 'tcp', 'tls']);
  });
});

describe('ICE over a TURN allocation on TCP (loopback)', () => {
  it('relay-only peers connect through TURN over TCP and exchange data both ways', async () => {
    const p = await connectPair(tcpOnly.url, { hostCandidates: false });
    try {
      expect(p.conn.path).toMatchObject({ path: 'relay', localCandidate: { type: 'relay' }, remoteCandidate: { type: 'relay' } });
      expect(await echo(p.conn, 'over tcp')).toBe('over tcp!');
      expect(await p.conn.ping()).toBeGreaterThan(0);
    } finally {
      await p.cleanup();
    }
  });

  it('relay-only peers connect through TURN over TLS (turns:), with the TLS options given', async () => {
    // the server's certificate is a generated self-signed one
    const p = await connectPair(tlsOnly.url, { hostCandidates: false, turnTls: { rejectUnauthorized: false } });
    try {
      expect(p.conn.path).toMatchObject({ path: 'relay', localCandidate: { type: 'relay' } });
      expect(await echo(p.conn, 'over tls')).toBe('over tls!');
    } finally {
      await p.cleanup();
    }
  });

  it('does not wait out a silent UDP TURN server before allocating over TCP', async () => {
    const p = await connectPair(mixed.url, { hostCandidates: false });
    try {
      expect(p.conn.path?.path).toBe('relay');
      // UDP's retransmissions alone would take 2.75 s; TCP starts 250 ms in.
      expect(p.connectMs).toBeLessThan(1500);
      expect(await echo(p.conn, 'eyeballs')).toBe('eyeballs!');
    } finally {
      await p.cleanup();
    }
  });

  it('starts TCP at once, without the UDP head start, when the NAT probe got no UDP answer', async () => {
    // The probe asks the silent UDP "server": no answer, so learnPunchOptions says UDP is blocked.
    const punch = await learnPunchOptions([{ urls: [`stun:127.0.0.1:${silent.address().port}`] }], { localAddress: '127.0.0.1', timeoutMs: 200 });
    expect(punch).toMatchObject({ mapping: null, udpBlocked: true });
    // A head start longer than UDP's whole retransmission budget (2.75 s): only udpBlocked makes this fast.
    const p = await connectPair(mixed.url, { hostCandidates: false, tcpRelayDelayMs: 5000, punch });
    try {
      expect(p.conn.path?.path).toBe('relay');
      expect(p.connectMs).toBeLessThan(1500);
      expect(await echo(p.conn, 'no head start')).toBe('no head start!');
    } finally {
      await p.cleanup();
    }
  });
});

/** The TURN core with a virtual clock: lifetimes of allocations, permissions and channels. */
import {
  Attr,
  StunClass,
  StunMethod,
  type AttributeEntry,
  type StunMessage,
  type TransportAddress,
  attr,
  decodeStunMessage,
  encodeChannelData,
  encodeStunMessage,
  longTermKey,
} from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import { type ClientEndpoint, TurnCore, type TurnOutput, staticUsers } from '../src/index.js';

const client: ClientEndpoint = {
  key: 'udp|c',
  client: { family: 'IPv4', address: '198.51.100.20', port: 5000 },
  server: { family: 'IPv4', address: '203.0.113.1', port: 3478 },
  transport: 'udp',
};
const peer: TransportAddress = { family: 'IPv4', address: '198.51.100.99', port: 7000 };

function harness(init: Partial<ConstructorParameters<typeof TurnCore>[0]> = {}) {
  const core = new TurnCore({ realm: 'r', auth: staticUsers({ u: 'p' }), ...init });
  const key = longTermKey({ username: 'u', realm: 'r', password: 'p' });
  let nonce = '';
  let now = 1_000_000;
  const outputs: TurnOutput[] = [];
  const pump = (): TurnOutput[] => {
    const out = core.drain();
    outputs.push(...out);
    for (const o of out)
      if (o.kind === 'open-relay') core.relayOpened(o.allocation, 'IPv4', { family: 'IPv4', address: '203.0.113.1', port: 50000 + o.allocation });
    return [...out, ...core.drain()];
  };
  const request = (method: number, attrs: AttributeEntry[]): StunMessage => {
    const send = (withAuth: boolean): StunMessage | undefined => {
      const bytes = encodeStunMessage(
        {
          method,
          class: StunClass.Request,
          attributes: withAuth ? [...attrs, attr(Attr.Username, 'u'), attr(Attr.Realm, 'r'), attr(Attr.Nonce, nonce)] : attrs,
        },
        withAuth ? { integrity: key } : {},
      );
      core.handleStun(decodeStunMessage(bytes), client, now);
      const reply = pump().find((o) => o.kind === 'to-client');
      return reply && reply.kind === 'to-client' ? decodeStunMessage(reply.bytes) : undefined;
    };
    if (nonce === '') nonce = send(false)!.get(Attr.Nonce)!;
    return send(true)!;
  };
  return {
    core,
    request,
    pump,
    outputs,
    advance: (ms: number) => {
      now += ms;
      core.sweep(now);
      pump();
    },
    get now() {
      return now;
    },
  };
}

describe('TurnCore lifetimes (virtual clock)', () => {
  it('expires an allocation after its LIFETIME and closes the relay', () => {
    const h = harness();
    const r = h.request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 17), attr(Attr.Lifetime, 700)]);
    expect(r.get(Attr.Lifetime)).toBe(700);
    expect(h.core.size).toBe(1);
    h.advance(699_000);
    expect(h.core.size).toBe(1);
    h.advance(1_000);
    expect(h.core.size).toBe(0);
    expect(h.outputs.some((o) => o.kind === 'close-relay')).toBe(true);
  });

  it('grants the default lifetime for shorter requests and caps at the maximum', () => {
    const h = harness({ maxLifetime: 1800 });
    expect(h.request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 17), attr(Attr.Lifetime, 30)]).get(Attr.Lifetime)).toBe(600);
    expect(h.request(StunMethod.Refresh, [attr(Attr.Lifetime, 99_999)]).get(Attr.Lifetime)).toBe(1800);
  });

  it('a Refresh keeps the allocation alive past its first lifetime', () => {
    const h = harness();
    h.request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 17)]);
    h.advance(590_000);
    h.request(StunMethod.Refresh, []);
    h.advance(590_000);
    expect(h.core.size).toBe(1);
  });

  it('permissions last 300 s: peer data is relayed before, dropped after', () => {
    const h = harness();
    h.request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 17), attr(Attr.Lifetime, 3600)]);
    h.request(StunMethod.CreatePermission, [attr(Attr.XorPeerAddress, peer)]);
    const id = h.core.allocationOf(client.key)!.id;
    h.core.handlePeerData(id, Buffer.from('a'), peer, h.now + 299_000);
    expect(h.pump().filter((o) => o.kind === 'to-client')).toHaveLength(1);
    h.advance(300_000);
    h.core.handlePeerData(id, Buffer.from('b'), peer, h.now);
    expect(h.pump().filter((o) => o.kind === 'to-client')).toHaveLength(0);
  });

  it('channels last 600 s and refresh their permission; expired channels stop relaying', () => {
    const h = harness();
    h.request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 17), attr(Attr.Lifetime, 3600)]);
    h.request(StunMethod.ChannelBind, [attr(Attr.ChannelNumber, 0x4000), attr(Attr.XorPeerAddress, peer)]);
    h.core.handleChannelData(encodeChannelData(0x4000, Buffer.from('x')), client, h.now + 1000);
    const sent = h.pump().filter((o) => o.kind === 'to-peer');
    expect(sent).toHaveLength(1);
    h.advance(599_000);
    h.request(StunMethod.ChannelBind, [attr(Attr.ChannelNumber, 0x4000), attr(Attr.XorPeerAddress, peer)]); // refresh
    h.advance(599_000);
    h.core.handleChannelData(encodeChannelData(0x4000, Buffer.from('y')), client, h.now);
    expect(h.pump().filter((o) => o.kind === 'to-peer')).toHaveLength(1);
    h.advance(2_000);
    h.core.handleChannelData(encodeChannelData(0x4000, Buffer.from('z')), client, h.now);
    expect(h.pump().filter((o) => o.kind === 'to-peer')).toHaveLength(0);
  });

  it('limits bandwidth per allocation', () => {
    const h = harness({ bandwidth: 1000 });
    h.request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 17)]);
    h.request(StunMethod.ChannelBind, [attr(Attr.ChannelNumber, 0x4000), attr(Attr.XorPeerAddress, peer)]);
    let relayed = 0;
    for (let i = 0; i < 20; i++) {
      h.core.handleChannelData(encodeChannelData(0x4000, new Uint8Array(100)), client, h.now);
      relayed += h.pump().filter((o) => o.kind === 'to-peer').length;
    }
    expect(relayed).toBe(10); // 1000 bytes of burst
  });
});

describe('TurnCore channel numbers', () => {
  // each channel to its own peer port
  const peerOf = (number: number): TransportAddress => ({ ...peer, port: 7000 + (number >> 12) * 1000 + (number % 1000) });
  const bind = (h: ReturnType<typeof harness>, number: number): StunMessage =>
    h.request(StunMethod.ChannelBind, [attr(Attr.ChannelNumber, number), attr(Attr.XorPeerAddress, peerOf(number))]);
  const errorCode = (m: StunMessage): number | undefined => (m.class === StunClass.ErrorResponse ? m.get(Attr.ErrorCode)?.code : undefined);

  it('accepts RFC 5766 channel numbers 0x4000-0x7FFF by default (coturn clients bind them) and relays both ways on them', () => {
    const h = harness({ maxChannels: 10 });
    h.request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 17)]);
    for (const n of [0x4000, 0x4fff, 0x5000, 0x6a5b, 0x7fff]) expect(bind(h, n).class, `channel 0x${n.toString(16)}`).toBe(StunClass.SuccessResponse);
    for (const n of [0x3fff, 0x8000, 0xffff]) expect(errorCode(bind(h, n)), `channel 0x${n.toString(16)}`).toBe(400);
    // client -> peer on 0x7FFF, and the peer's answer comes back as ChannelData on 0x7FFF
    h.core.handleChannelData(encodeChannelData(0x7fff, Buffer.from('out'), { legacyChannelNumbers: true }), client, h.now);
    const sent = h.pump().filter((o) => o.kind === 'to-peer');
    expect(sent.map((o) => o.kind === 'to-peer' && [o.peer.port, Buffer.from(o.bytes).toString()])).toEqual([[peerOf(0x7fff).port, 'out']]);
    h.core.handlePeerData(1, Buffer.from('back'), peerOf(0x7fff), h.now);
    const back = h.pump().find((o) => o.kind === 'to-client');
    expect(back && back.kind === 'to-client' ? Buffer.from(back.bytes).toString('hex') : undefined).toBe(`7fff0004${Buffer.from('back').toString('hex')}`);
  });

  it('with strictChannelNumbers accepts only RFC 8656 channel numbers 0x4000-0x4FFF', () => {
    const h = harness({ strictChannelNumbers: true });
    h.request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 17)]);
    expect(bind(h, 0x4fff).class).toBe(StunClass.SuccessResponse);
    for (const n of [0x5000, 0x7fff]) {
      const r = bind(h, n);
      expect(errorCode(r)).toBe(400);
      expect(r.get(Attr.ErrorCode)?.reason).toMatch(/outside 0x4000-0x4FFF/);
    }
  });
});

/**
 * Servers on the simulated internet: a STUN server that answers Binding requests with
 * XOR-MAPPED-ADDRESS, and the simplest TURN-like relay: an allocation gives a client a relayed
 * address; what the client sends with `{ kind: 'send', peer }` leaves from that address (and
 * permits the peer's IP, as a TURN permission would, RFC 8656 section 9); what arrives at the
 * relayed address from a permitted IP goes back to the client with `{ kind: 'data', peer }`.
 */
import { Attr, StunClass, StunMethod, type TransportAddress, attr, decodeStunMessage, encodeStunMessage, formatTransportAddress } from '@nat/protocol';
import { type SimHost, type SimNetwork, type SimSocket, addr } from './network.js';

/** A STUN server on `ip:port`. */
export class SimStunServer {
  readonly address: TransportAddress;
  requests = 0;

  constructor(network: SimNetwork, ip: string, port = 3478) {
    const socket = network.addHost(ip).bind(port);
    this.address = socket.address;
    socket.onPacket = (p) => {
      let m;
      try {
        m = decodeStunMessage(p.bytes);
      } catch {
        return;
      }
      if (m.method !== StunMethod.Binding || m.class !== StunClass.Request) return;
      this.requests++;
      socket.send(
        p.src,
        encodeStunMessage({
          method: StunMethod.Binding,
          class: StunClass.SuccessResponse,
          transactionId: m.transactionId,
          attributes: [attr(Attr.XorMappedAddress, p.src)],
        }),
      );
    };
  }
}

interface Allocation {
  readonly client: TransportAddress;
  readonly relayed: SimSocket;
  readonly permissions: Set<string>;
}

/** The relay: a control address, and one relayed address per client 5-tuple. */
export class SimRelay {
  readonly address: TransportAddress;
  private readonly host: SimHost;
  private readonly allocations = new Map<string, Allocation>();
  /** Packets relayed in either direction. */
  relayed = 0;

  constructor(network: SimNetwork, ip: string, port = 3478) {
    this.host = network.addHost(ip);
    const control = this.host.bind(port);
    this.address = control.address;
    control.onPacket = (p) => {
      const meta = p.meta;
      if (meta === undefined) return;
      const clientKey = formatTransportAddress(p.src);
      let allocation = this.allocations.get(clientKey);
      if (meta.kind === 'allocate') {
        if (allocation === undefined) {
          const relayed = this.host.bind();
          const a: Allocation = { client: p.src, relayed, permissions: new Set() };
          allocation = a;
          this.allocations.set(clientKey, a);
          relayed.onPacket = (q) => {
            if (!a.permissions.has(q.src.address)) return;
            this.relayed++;
            control.send(a.client, q.bytes, { kind: 'data', peer: q.src });
          };
        }
        control.send(p.src, new Uint8Array(0), { kind: 'allocated', relayed: allocation.relayed.address });
      } else if (meta.kind === 'send' && allocation !== undefined) {
        allocation.permissions.add(meta.peer.address);
        this.relayed++;
        allocation.relayed.send(meta.peer, p.bytes);
      }
    };
  }
}

export { addr };

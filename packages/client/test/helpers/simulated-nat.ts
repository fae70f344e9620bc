/**
 * A test double: a two-address STUN server on loopback with a simulated NAT in front of its
 * clients. Four UDP sockets (two IPs x two ports) answer Binding requests as an RFC 5780
 * server does (or as an RFC 3489 one does, to classic requests); before answering, the server
 * applies the NAT behaviour the test chose: it reports the mapped address the simulated NAT
 * would have allocated, and drops the responses the simulated NAT's filter would have dropped.
 * That lets the discovery code be run end to end, over real sockets, against every NAT type
 * without network namespaces. Only loopback addresses are used; the simulated public IP
 * (127.0.0.99) has nothing listening on it.
 */
import { type Socket, createSocket } from 'node:dgram';
import { Attr, type AttributeEntry, StunClass, StunMethod, type TransportAddress, attr, decodeStunMessage, encodeStunMessage } from '@nat/protocol';
import type { NatBehavior } from '../../src/index.js';

export interface SimulatedNatBehaviour {
  /** 'none': no NAT (the mapped address is the real one). */
  readonly mapping: 'none' | NatBehavior;
  /** 'none': no filtering at all. */
  readonly filtering: 'none' | NatBehavior;
  /** Drop every packet (UDP blocked). */
  readonly blocked?: boolean;
  /** An idle binding expires after this long (ms); a new one gets a new port. */
  readonly bindingLifetimeMs?: number;
  /** An ALG rewrites MAPPED-ADDRESS in responses back to the private address. */
  readonly alg?: boolean;
  /** The server sends no OTHER-ADDRESS / CHANGED-ADDRESS. */
  readonly noAlternate?: boolean;
  /** The server answers every request from the socket it came to, ignoring CHANGE-REQUEST. */
  readonly ignoreChangeRequest?: boolean;
}

export const PUBLIC_IP = '127.0.0.99';
const IP1 = '127.0.0.1';
const IP2 = '127.0.0.2';

interface Mapping {
  readonly client: TransportAddress;
  readonly publicPort: number;
  lastOutbound: number;
  /** Server endpoints `ip:port` this mapping has sent to. */
  readonly contacted: Set<string>;
}

function bindUdp(address: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', (e) => {
      s.close();
      reject(e);
    });
    s.bind(port, address, () => {
      s.removeAllListeners('error');
      resolve(s);
    });
  });
}

export class SimulatedNatServer {
  behaviour: SimulatedNatBehaviour;
  readonly sockets: Socket[];
  readonly ports: readonly [number, number];
  readonly #mappings = new Map<string, Mapping>();
  #nextPort = 20000 + Math.floor(Math.random() * 20000);
  /** Requests received, for assertions. */
  readonly received: { to: string; from: string; changeIp: boolean; changePort: boolean; responsePort: number | undefined }[] = [];

  private constructor(sockets: Socket[], ports: [number, number], behaviour: SimulatedNatBehaviour) {
    this.sockets = sockets;
    this.ports = ports;
    this.behaviour = behaviour;
    for (const s of sockets) s.on('message', (buf, rinfo) => this.#onMessage(s, buf, rinfo));
  }

  /** Binds 127.0.0.1 and 127.0.0.2, each on the same two free ports. */
  static async start(behaviour: SimulatedNatBehaviour): Promise<SimulatedNatServer> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const opened: Socket[] = [];
      try {
        const a = await bindUdp(IP1, 0);
        opened.push(a);
        const p1 = a.address().port;
        const b = await bindUdp(IP1, 0);
        opened.push(b);
        const p2 = b.address().port;
        opened.push(await bindUdp(IP2, p1), await bindUdp(IP2, p2));
        return new SimulatedNatServer(opened, [p1, p2], behaviour);
      } catch {
        for (const s of opened) s.close();
      }
    }
    throw new Error('no pair of free ports on 127.0.0.1 and 127.0.0.2');
  }

  /** The primary address: 127.0.0.1, first port. */
  get primary(): TransportAddress {
    return { family: 'IPv4', address: IP1, port: this.ports[0] };
  }

  /** Forgets every binding (a fresh NAT). */
  reset(behaviour?: SimulatedNatBehaviour): void {
    this.#mappings.clear();
    this.received.length = 0;
    if (behaviour) this.behaviour = behaviour;
  }

  async close(): Promise<void> {
    await Promise.all(this.sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }

  #socketFor(ip: string, port: number): Socket {
    return this.sockets.find((s) => s.address().address === ip && s.address().port === port)!;
  }

  /** The mapping a request from `client` to `server` goes out on, per the mapping behaviour. */
  #outbound(client: TransportAddress, server: TransportAddress, now: number): Mapping {
    const m = this.behaviour.mapping;
    const c = `${client.address}:${client.port}`;
    const key =
      m === 'none' || m === 'endpoint-independent' ? c : m === 'address-dependent' ? `${c}>${server.address}` : `${c}>${server.address}:${server.port}`;
    let mapping = this.#mappings.get(key);
    const lifetime = this.behaviour.bindingLifetimeMs ?? Infinity;
    if (mapping && now - mapping.lastOutbound > lifetime) {
      this.#mappings.delete(key);
      mapping = undefined;
    }
    if (!mapping) {
      mapping = { client, publicPort: m === 'none' ? client.port : this.#nextPort++, lastOutbound: now, contacted: new Set() };
      this.#mappings.set(key, mapping);
    }
    mapping.lastOutbound = now;
    mapping.contacted.add(`${server.address}:${server.port}`);
    return mapping;
  }

  /** Whether the mapping's filter lets a packet from `from` in. */
  #admits(mapping: Mapping, from: TransportAddress, now: number): boolean {
    if (now - mapping.lastOutbound > (this.behaviour.bindingLifetimeMs ?? Infinity)) return false;
    switch (this.behaviour.filtering) {
      case 'none':
      case 'endpoint-independent':
        return true;
      case 'address-dependent':
        return [...mapping.contacted].some((e) => e.slice(0, e.lastIndexOf(':')) === from.address);
      case 'address-and-port-dependent':
        return mapping.contacted.has(`${from.address}:${from.port}`);
    }
  }

  #publicOf(mapping: Mapping): TransportAddress {
    return this.behaviour.mapping === 'none' ? mapping.client : { family: 'IPv4', address: PUBLIC_IP, port: mapping.publicPort };
  }

  #onMessage(socket: Socket, buf: Buffer, rinfo: { address: string; port: number }): void {
    if (this.behaviour.blocked) return;
    let req;
    try {
      req = decodeStunMessage(buf);
    } catch {
      return;
    }
    if (req.class !== StunClass.Request || req.method !== StunMethod.Binding) return;
    const now = performance.now();
    const local = socket.address();
    const to: TransportAddress = { family: 'IPv4', address: local.address, port: local.port };
    const client: TransportAddress = { family: 'IPv4', address: rinfo.address, port: rinfo.port };
    const change = req.get(Attr.ChangeRequest) ?? { changeIp: false, changePort: false };
    const responsePort = req.get(Attr.ResponsePort);
    this.received.push({ to: `${to.address}:${to.port}`, from: `${client.address}:${client.port}`, ...change, responsePort });
    const mapping = this.#outbound(client, to, now);
    const publicAddr = this.#publicOf(mapping);

    let fromIp = to.address;
    let fromPort = to.port;
    if (!this.behaviour.ignoreChangeRequest) {
      if (change.changeIp) fromIp = fromIp === IP1 ? IP2 : IP1;
      if (change.changePort) fromPort = fromPort === this.ports[0] ? this.ports[1] : this.ports[0];
    }
    const from: TransportAddress = { family: 'IPv4', address: fromIp, port: fromPort };
    const otherAddress: TransportAddress = {
      family: 'IPv4',
      address: to.address === IP1 ? IP2 : IP1,
      port: to.port === this.ports[0] ? this.ports[1] : this.ports[0],
    };
    const plain = this.behaviour.alg ? client : publicAddr;
    const attributes: AttributeEntry[] = req.classic
      ? [attr(Attr.MappedAddress, plain), attr(Attr.SourceAddress, from)]
      : [attr(Attr.XorMappedAddress, publicAddr), attr(Attr.MappedAddress, plain), attr(Attr.ResponseOrigin, from)];
    if (!this.behaviour.noAlternate) attributes.push(attr(req.classic ? Attr.ChangedAddress : Attr.OtherAddress, otherAddress));
    const response = encodeStunMessage({
      method: StunMethod.Binding,
      class: StunClass.SuccessResponse,
      transactionId: req.transactionId,
      classic: req.classic,
      attributes,
    });

    // Through the simulated NAT, back to the client: to the mapping the request came on, or,
    // with RESPONSE-PORT, to whichever mapping owns that public port.
    let target: Mapping | undefined = mapping;
    if (responsePort !== undefined) {
      target = [...this.#mappings.values()].find((m) => this.#publicOf(m).port === responsePort && this.#publicOf(m).address === publicAddr.address);
      if (!target) return;
    }
    if (!this.#admits(target, from, now)) return;
    this.#socketFor(fromIp, fromPort).send(response, target.client.port, target.client.address);
  }
}

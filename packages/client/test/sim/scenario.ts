/**
 * Two ICE peers behind two simulated NATs, a STUN server and a relay on the internet: one
 * connection attempt, run to the end in virtual time.
 */
import type { IcePath } from '../../src/ice/index.js';
import { type LinkConfig, type NatConfig, SimNetwork, addr } from './network.js';
import { SimIcePeer, signal } from './peer.js';
import { SimRelay, SimStunServer } from './servers.js';

/** The classic NAT types of the project's design notes (A-G). */
export type NatType = 'open' | 'full-cone' | 'restricted' | 'port-restricted' | 'symmetric' | 'symmetric-firewall' | 'blocked';

/** Every {@link NatType}, in the design notes' order. */
export const NAT_TYPES: readonly NatType[] = ['open', 'full-cone', 'restricted', 'port-restricted', 'symmetric', 'symmetric-firewall', 'blocked'];

export const STUN_IP = '203.0.113.1';
export const RELAY_IP = '203.0.113.2';

/** The NAT box of each type (`undefined`: a host straight on the internet). */
export function natConfig(type: NatType): NatConfig | undefined {
  switch (type) {
    case 'open':
      return undefined;
    case 'full-cone':
      return { mapping: 'endpoint-independent', filtering: 'endpoint-independent' };
    case 'restricted':
      return { mapping: 'endpoint-independent', filtering: 'address-dependent' };
    case 'port-restricted':
      return { mapping: 'endpoint-independent', filtering: 'address-and-port-dependent' };
    case 'symmetric':
      return { mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', portAllocation: 'random' };
    case 'symmetric-firewall':
      return { mapping: 'none', filtering: 'address-and-port-dependent' };
    case 'blocked':
      // only the relay is reachable (as TURN over TCP/TLS would be)
      return { mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', allowOnly: [addr(RELAY_IP, 3478)] };
  }
}

/**
 * The path the NATs allow without birthday probing: none through a blocked side; none when one
 * side's mapping depends on the destination and the other filters by address and port (the
 * dependent side's new mapping is never let in, and its srflx mapping lets nothing else in).
 */
export function expectedPath(a: NatType, b: NatType): IcePath {
  if (a === 'blocked' || b === 'blocked') return 'relay';
  const portFiltering = (t: NatType): boolean => t === 'port-restricted' || t === 'symmetric' || t === 'symmetric-firewall';
  if ((a === 'symmetric' && portFiltering(b)) || (b === 'symmetric' && portFiltering(a))) return 'relay';
  return 'direct';
}

/** One side of a scenario: a classic type, or any NAT box. */
export type Side = NatType | { readonly label: string; readonly config: NatConfig };

/** What happened. */
export interface ScenarioResult {
  readonly connected: boolean;
  /** The path of the final selected pair. */
  readonly path: IcePath | undefined;
  readonly localType: string | undefined;
  readonly remoteType: string | undefined;
  /** Virtual ms from start to the first selected pair on both sides. */
  readonly connectMs: number | undefined;
  /** Virtual ms to the first direct selected pair on both sides. */
  readonly directMs: number | undefined;
  /** Both peers received each other's data. */
  readonly dataOk: boolean;
  readonly states: readonly string[];
  readonly packets: number;
}

export interface ScenarioOptions {
  readonly seed?: number;
  readonly link?: LinkConfig;
  /** Virtual time budget, ms. Default 15000. */
  readonly limit?: number;
  /** Keep running after data was exchanged until the direct upgrade (when expected), ms of budget. */
  readonly waitForDirect?: boolean;
}

/** Runs peers A (controlling) and B (controlled) behind `a` and `b` until both exchanged data. */
export function runScenario(a: Side, b: Side, options: ScenarioOptions = {}): ScenarioResult {
  const net = new SimNetwork({ seed: options.seed ?? 7, link: options.link ?? {} });
  const stun = new SimStunServer(net, STUN_IP);
  const relay = new SimRelay(net, RELAY_IP);
  const place = (side: Side, index: 1 | 2) => {
    const config = typeof side === 'string' ? natConfig(side) : side.config;
    if (config === undefined) return net.addHost(`203.0.113.${index * 10}`);
    if (config.mapping === 'none') return net.addNat(`198.51.100.${index}`, config).addHost(`203.0.113.${index * 10}`);
    return net.addNat(`198.51.100.${index}`, config).addHost(`198.18.${index}.10`);
  };
  const common = { stun: stun.address, relay: relay.address };
  const pa = new SimIcePeer({ name: 'A', host: place(a, 1), role: 'controlling', tieBreaker: 2n ** 63n + 5n, ufrag: 'aaaa', pwd: 'a'.repeat(22), ...common });
  const pb = new SimIcePeer({ name: 'B', host: place(b, 2), role: 'controlled', tieBreaker: 12345n, ufrag: 'bbbb', pwd: 'b'.repeat(22), ...common });
  signal(pa, pb, net.clock);
  pa.start();
  pb.start();

  const got = (p: SimIcePeer, text: string): boolean => p.received.some((d) => Buffer.from(d).toString() === text);
  // The application pings every 50 ms once it has a selected pair, until the peer has the data.
  const pump = (): void => {
    if (!got(pb, 'ping from A')) pa.sendData(Buffer.from('ping from A'));
    if (!got(pa, 'pong from B')) pb.sendData(Buffer.from('pong from B'));
    if (!(got(pa, 'pong from B') && got(pb, 'ping from A'))) net.clock.after(50, pump);
  };
  net.clock.after(50, pump);
  const limit = options.limit ?? 15_000;
  const dataOk = net.clock.runUntil(() => got(pa, 'pong from B') && got(pb, 'ping from A'), limit);
  if (options.waitForDirect !== false && typeof a === 'string' && typeof b === 'string' && expectedPath(a, b) === 'direct') {
    net.clock.runUntil(() => pa.directAt !== undefined && pb.directAt !== undefined, limit);
  }
  const sel = pa.agent.selectedPair();
  const both = (x: number | undefined, y: number | undefined): number | undefined =>
    x === undefined || y === undefined ? undefined : Math.max(x, y);
  return {
    connected: sel !== undefined && pb.agent.selectedPair() !== undefined,
    path: sel?.path,
    localType: sel?.mappedLocal.type,
    remoteType: sel?.remote.type,
    connectMs: both(pa.connectedAt, pb.connectedAt),
    directMs: both(pa.directAt, pb.directAt),
    dataOk,
    states: [pa.agent.state, pb.agent.state],
    packets: net.stats.sent,
  };
}

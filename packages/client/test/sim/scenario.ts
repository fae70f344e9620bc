/**
 * Two ICE peers behind two simulated NATs, a STUN server and a relay on the internet: one
 * connection attempt, run to the end in virtual time.
 */
import type { BirthdayOptions, IcePath, PunchNatInfo } from '../../src/ice/index.js';
import { SimBirthday, type SimPunchReport, discoveredInfo } from './birthday.js';
import { seededRandom } from './clock.js';
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

/**
 * The path the NATs allow with birthday punching: also direct when exactly one side's mapping
 * depends on the destination (symmetric) and the other's does not; relay through a blocked side
 * or between two symmetric NATs.
 */
export function expectedPathWithBirthday(a: NatType, b: NatType): IcePath {
  if (a === 'blocked' || b === 'blocked') return 'relay';
  if (a === 'symmetric' && b === 'symmetric') return 'relay';
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
  /** Birthday punching on sides A and B, when enabled. */
  readonly birthday?: readonly [SimPunchReport, SimPunchReport];
}

/** Birthday punching in a scenario. */
export interface ScenarioBirthday {
  readonly options?: BirthdayOptions;
  /** What each side announces; default what discovery would find ({@link discoveredInfo}). */
  readonly infoA?: PunchNatInfo;
  readonly infoB?: PunchNatInfo;
  /** Signalling delay of the offer/answer `app` payload, ms. Default 20. */
  readonly delay?: number;
}

export interface ScenarioOptions {
  readonly seed?: number;
  readonly link?: LinkConfig;
  /** Virtual time budget, ms. Default 15000. */
  readonly limit?: number;
  /** Keep running after data was exchanged until the direct upgrade (when expected), ms of budget. */
  readonly waitForDirect?: boolean;
  /** Keep running until both sides have a direct path (default: when the NAT types allow one). */
  readonly expectDirect?: boolean;
  /** Virtual ms to keep running after the end (to see timers such as a give-up fire). Default 0. */
  readonly runAfter?: number;
  /** Birthday punching and port prediction beside ICE. Default off. */
  readonly birthday?: ScenarioBirthday | true;
  /** Give the peers a relay. Default true. */
  readonly relay?: boolean;
}

/** Runs peers A (controlling) and B (controlled) behind `a` and `b` until both exchanged data. */
export function runScenario(a: Side, b: Side, options: ScenarioOptions = {}): ScenarioResult {
  const net = new SimNetwork({ seed: options.seed ?? 7, link: options.link ?? {} });
  const stun = new SimStunServer(net, STUN_IP);
  const relay = new SimRelay(net, RELAY_IP);
  const configOf = (side: Side): NatConfig | undefined => (typeof side === 'string' ? natConfig(side) : side.config);
  const place = (side: Side, index: 1 | 2) => {
    const config = configOf(side);
    if (config === undefined) return net.addHost(`203.0.113.${index * 10}`);
    if (config.mapping === 'none') return net.addNat(`198.51.100.${index}`, config).addHost(`203.0.113.${index * 10}`);
    return net.addNat(`198.51.100.${index}`, config).addHost(`198.18.${index}.10`);
  };
  const common = { stun: stun.address, ...(options.relay === false ? {} : { relay: relay.address }) };
  const pa = new SimIcePeer({ name: 'A', host: place(a, 1), role: 'controlling', tieBreaker: 2n ** 63n + 5n, ufrag: 'aaaa', pwd: 'a'.repeat(22), ...common });
  const pb = new SimIcePeer({ name: 'B', host: place(b, 2), role: 'controlled', tieBreaker: 12345n, ufrag: 'bbbb', pwd: 'b'.repeat(22), ...common });
  signal(pa, pb, net.clock);
  let punch: [SimBirthday, SimBirthday] | undefined;
  if (options.birthday !== undefined) {
    const bd: ScenarioBirthday = options.birthday === true ? {} : options.birthday;
    const seed = options.seed ?? 7;
    const infoA = bd.infoA ?? discoveredInfo(configOf(a));
    const infoB = bd.infoB ?? discoveredInfo(configOf(b));
    const ca = { ufrag: 'aaaa', pwd: 'a'.repeat(22) };
    const cb = { ufrag: 'bbbb', pwd: 'b'.repeat(22) };
    const sa = new SimBirthday(
      pa,
      infoA,
      { localUfrag: ca.ufrag, localPwd: ca.pwd, remoteUfrag: cb.ufrag, remotePwd: cb.pwd },
      {
        random: seededRandom(seed * 2 + 1),
        ...bd.options,
      },
    );
    const sb = new SimBirthday(
      pb,
      infoB,
      { localUfrag: cb.ufrag, localPwd: cb.pwd, remoteUfrag: ca.ufrag, remotePwd: ca.pwd },
      {
        random: seededRandom(seed * 2 + 2),
        ...bd.options,
      },
    );
    // the offer carries A's info to B, the answer B's to A
    net.clock.after(bd.delay ?? 20, () => sb.setRemoteInfo(infoA));
    net.clock.after(2 * (bd.delay ?? 20), () => sa.setRemoteInfo(infoB));
    punch = [sa, sb];
  }
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
  const expected = (x: NatType, y: NatType): IcePath => (punch === undefined ? expectedPath(x, y) : expectedPathWithBirthday(x, y));
  const wantDirect = options.expectDirect ?? (typeof a === 'string' && typeof b === 'string' && expected(a, b) === 'direct');
  if (options.waitForDirect !== false && wantDirect) {
    net.clock.runUntil(() => pa.directAt !== undefined && pb.directAt !== undefined, limit);
  }
  if (options.runAfter !== undefined) net.clock.runFor(options.runAfter);
  const sel = pa.agent.selectedPair();
  const both = (x: number | undefined, y: number | undefined): number | undefined => (x === undefined || y === undefined ? undefined : Math.max(x, y));
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
    ...(punch === undefined ? {} : { birthday: [punch[0].report(), punch[1].report()] as const }),
  };
}

/**
 * A node:dgram driver for our sans-I/O {@link IceAgent}, as the browser interop test uses it:
 * one UDP socket on 127.0.0.1 (the agent's only base), the wall clock, one timer at the time the
 * agent asks for. It also taps every datagram both ways, checking independently of the agent
 * which Binding requests and responses carried a valid MESSAGE-INTEGRITY, and with which key.
 *
 * Plus the SDP pieces: reading Chromium's offer and writing an answer it accepts.
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { IceAgent, type IceAgentEvent, type CandidatePairInfo } from '@nat/client';
import {
  Attr,
  type IceCandidate,
  StunClass,
  StunMethod,
  candidateFoundation,
  candidatePriority,
  candidateTransportAddress,
  decodeStunMessage,
  formatCandidate,
  looksLikeStun,
  parseCandidate,
  shortTermKey,
  verifyMessageIntegrity,
} from '@nat/protocol';
import type { AgentPair, AgentSideResult } from './ice-types.js';

const BASE = 'udp';

/** The parts of Chromium's offer the answer and the agent need. */
export interface ParsedOffer {
  readonly ufrag: string;
  readonly pwd: string;
  readonly mid: string;
  readonly sctpPort: string;
  readonly mLine: string;
  readonly bundle: boolean;
  readonly candidates: readonly string[];
}

/** Reads the first m=application section of an offer (Chromium puts ICE credentials there). */
export function parseOffer(sdp: string): ParsedOffer {
  const lines = sdp.split(/\r?\n/).filter((l) => l.length > 0);
  const attr = (name: string): string | undefined => {
    const l = lines.find((x) => x.startsWith(`a=${name}:`));
    return l?.slice(name.length + 3);
  };
  const mLine = lines.find((l) => l.startsWith('m=application '));
  const ufrag = attr('ice-ufrag');
  const pwd = attr('ice-pwd');
  const mid = attr('mid');
  if (mLine === undefined || ufrag === undefined || pwd === undefined || mid === undefined) {
    throw new Error(`offer lacks m=application, ice-ufrag, ice-pwd or mid:\n${sdp}`);
  }
  return {
    ufrag,
    pwd,
    mid,
    sctpPort: attr('sctp-port') ?? '5000',
    mLine,
    bundle: lines.some((l) => l.startsWith('a=group:BUNDLE')),
    candidates: lines.filter((l) => l.startsWith('a=candidate:')).map((l) => l.slice(2)),
  };
}

/** A sha-256 fingerprint of 32 random bytes: well-formed, and DTLS never gets far enough to check it. */
function randomFingerprint(): string {
  return [...randomBytes(32)].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
}

/** The answer: our credentials and candidate, setup:active, the offer's mid and m-line protocol. */
export function buildAnswer(offer: ParsedOffer, ufrag: string, pwd: string, candidate: IceCandidate): string {
  const proto = offer.mLine.split(' ').slice(2).join(' '); // "UDP/DTLS/SCTP webrtc-datachannel"
  const lines = [
    'v=0',
    `o=- ${BigInt(`0x${randomBytes(7).toString('hex')}`)} 2 IN IP4 127.0.0.1`,
    's=-',
    't=0 0',
    ...(offer.bundle ? [`a=group:BUNDLE ${offer.mid}`] : []),
    `m=application ${candidate.port} ${proto}`,
    `c=IN IP4 ${candidate.address}`,
    `a=candidate:${formatCandidate(candidate).slice('candidate:'.length)}`,
    'a=end-of-candidates',
    `a=ice-ufrag:${ufrag}`,
    `a=ice-pwd:${pwd}`,
    `a=fingerprint:sha-256 ${randomFingerprint()}`,
    'a=setup:active',
    `a=mid:${offer.mid}`,
    `a=sctp-port:${offer.sctpPort}`,
    'a=max-message-size:262144',
  ];
  return `${lines.join('\r\n')}\r\n`;
}

function pairSummary(p: CandidatePairInfo): AgentPair {
  return {
    localType: p.local.type,
    localAddress: `${p.local.address}:${p.local.port}`,
    remoteType: p.remote.type,
    remoteAddress: p.remoteAddress.address,
    remotePort: p.remoteAddress.port,
    state: p.state,
    nominated: p.nominated,
    path: p.path,
    rttMs: p.rttMs ?? null,
  };
}

/** Our agent on a real socket, controlled, with a tap on both directions. */
export class IceAgentDriver {
  readonly agent: IceAgent;
  readonly ufrag = `nat${randomBytes(3).toString('hex')}`;
  readonly pwd = randomBytes(18).toString('base64url'); // 24 ice-chars
  readonly events: IceAgentEvent[] = [];
  private readonly states: { state: string; at: number; reason?: string }[] = [];
  private socket: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private t0 = performance.now();
  private remoteKey: Uint8Array | undefined;
  private readonly localKey: Uint8Array;
  private readonly ourRequests = new Set<string>();
  private readonly browserCandidates: string[] = [];
  private givenToAgent = 0;
  private readonly requestsIn = { total: 0, validUnderOurPwd: 0, useCandidate: 0, controlling: 0 };
  private readonly responsesIn = { total: 0, success: 0, validUnderBrowserPwd: 0, matchingOurRequests: 0 };
  private readonly sent = { requests: 0, successResponses: 0, errorResponses: [] as number[], other: 0 };
  private nonStunIn = 0;
  private hostCandidate: IceCandidate | undefined;
  /** Progress log. */
  log: (msg: string) => void = () => undefined;

  constructor() {
    this.agent = new IceAgent({
      role: 'controlled',
      tieBreaker: randomBytes(8).readBigUInt64BE(),
      ufrag: this.ufrag,
      pwd: this.pwd,
      // Consent checks every 2.4-3.6 s (RFC 7675's 4-6 s default is not what is under test): the
      // 6 s hold then sees at least one whatever the timer draws and however loaded the machine.
      options: { consentInterval: 3000 },
    });
    this.localKey = shortTermKey(this.pwd);
  }

  private now(): number {
    return performance.now() - this.t0;
  }

  /** Binds 127.0.0.1:0 and gives the agent its host candidate. */
  async start(): Promise<IceCandidate> {
    const socket = createSocket('udp4');
    this.socket = socket;
    socket.on('message', (msg, rinfo) => this.onMessage(new Uint8Array(msg), rinfo.address, rinfo.port));
    socket.on('error', (e) => this.log(`socket error: ${e.message}`));
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const { address, port } = socket.address();
    const candidate: IceCandidate = {
      foundation: candidateFoundation({ type: 'host', baseAddress: address, transport: 'udp' }),
      component: 1,
      transport: 'udp',
      priority: candidatePriority('host', 65535, 1),
      address,
      port,
      type: 'host',
      extensions: [],
    };
    this.hostCandidate = candidate;
    this.agent.addLocalCandidate(candidate, BASE);
    this.agent.endOfLocalCandidates();
    this.flush();
    return candidate;
  }

  /** The browser's credentials, from its offer; the clock of the result starts here. */
  setRemoteCredentials(ufrag: string, pwd: string): void {
    this.t0 = performance.now();
    this.remoteKey = shortTermKey(pwd);
    this.agent.setRemoteCredentials(ufrag, pwd);
    this.flush();
  }

  /** A browser candidate line; mDNS-named and TCP ones the agent ignores (it is told anyway). */
  addRemoteCandidate(line: string): void {
    this.browserCandidates.push(line);
    const c = parseCandidate(line);
    if (candidateTransportAddress(c) !== undefined && c.transport === 'udp' && c.component === 1) this.givenToAgent++;
    this.agent.addRemoteCandidate(c);
    this.flush();
  }

  /** End of the browser's candidates. */
  endOfRemoteCandidates(): void {
    this.agent.endOfRemoteCandidates();
    this.flush();
  }

  private onMessage(bytes: Uint8Array, address: string, port: number): void {
    if (this.closed) return;
    this.tapIn(bytes);
    const consumed = this.agent.handlePacket(bytes, { base: BASE, from: { family: 'IPv4', address, port } }, this.now());
    if (!consumed) this.nonStunIn++;
    this.flush();
  }

  private tapIn(bytes: Uint8Array): void {
    if (!looksLikeStun(bytes)) return;
    let m;
    try {
      m = decodeStunMessage(bytes);
    } catch {
      return;
    }
    if (m.method !== StunMethod.Binding) return;
    if (m.class === StunClass.Request) {
      this.requestsIn.total++;
      const user = m.get(Attr.Username);
      if (user !== undefined && user.startsWith(`${this.ufrag}:`) && m.integrityOffset >= 0 && verifyMessageIntegrity(m, this.localKey)) {
        this.requestsIn.validUnderOurPwd++;
      }
      if (m.has(Attr.UseCandidate)) this.requestsIn.useCandidate++;
      if (m.has(Attr.IceControlling)) this.requestsIn.controlling++;
    } else if (m.class === StunClass.SuccessResponse || m.class === StunClass.ErrorResponse) {
      this.responsesIn.total++;
      if (m.class === StunClass.SuccessResponse) this.responsesIn.success++;
      if (this.remoteKey !== undefined && m.integrityOffset >= 0 && verifyMessageIntegrity(m, this.remoteKey)) this.responsesIn.validUnderBrowserPwd++;
      if (this.ourRequests.has(m.transactionKey)) this.responsesIn.matchingOurRequests++;
    }
  }

  private tapOut(bytes: Uint8Array): void {
    try {
      const m = decodeStunMessage(bytes);
      if (m.class === StunClass.Request) {
        this.sent.requests++;
        this.ourRequests.add(m.transactionKey);
      } else if (m.class === StunClass.SuccessResponse) this.sent.successResponses++;
      else if (m.class === StunClass.ErrorResponse) this.sent.errorResponses.push(m.get(Attr.ErrorCode)?.code ?? -1);
      else this.sent.other++;
    } catch {
      this.sent.other++;
    }
  }

  private flush(): void {
    if (this.closed || this.socket === undefined) return;
    const socket = this.socket;
    for (let t = this.agent.pollTransmit(); t !== undefined; t = this.agent.pollTransmit()) {
      this.tapOut(t.bytes);
      socket.send(t.bytes, t.to.port, t.to.address);
    }
    for (let e = this.agent.pollEvent(); e !== undefined; e = this.agent.pollEvent()) {
      this.events.push(e);
      if (e.type === 'state') {
        this.states.push({ state: e.state, at: Math.round(this.now()), ...(e.reason === undefined ? {} : { reason: e.reason }) });
        this.log(`agent state ${e.state}${e.reason ? ` (${e.reason})` : ''}`);
      } else if (e.type === 'selected-pair') {
        this.log(
          `agent selected ${e.pair.local.type} ${e.pair.local.address}:${e.pair.local.port} -> ${e.pair.remote.type} ${e.pair.remoteAddress.address}:${e.pair.remoteAddress.port}`,
        );
      } else if (e.type === 'remote-candidate') {
        this.log(`agent learned remote ${e.candidate.type} ${e.candidate.address}:${e.candidate.port}`);
      } else if (e.type === 'role') {
        this.log(`agent switched role to ${e.role}`);
      }
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    const at = this.agent.pollTimeout();
    if (at === undefined) return;
    const delay = Math.max(0, at - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.agent.handleTimeout(this.now());
      this.flush();
    }, Math.ceil(delay));
  }

  /** Whether every request the agent sent has had its response (none is in flight). */
  answered(): boolean {
    return this.responsesIn.total >= this.sent.requests;
  }

  /** What the driver saw. */
  result(): AgentSideResult {
    const selected = this.agent.selectedPair();
    return {
      local: { address: this.hostCandidate?.address ?? '', port: this.hostCandidate?.port ?? 0 },
      states: this.states.slice(),
      finalState: this.agent.state,
      selected: selected === undefined ? null : pairSummary(selected),
      pairs: this.agent.pairs().map(pairSummary),
      remoteCandidates: this.agent.remoteCandidates().map((c) => ({ type: c.type, address: c.address, port: c.port })),
      browserCandidates: this.browserCandidates.slice(),
      candidatesGivenToAgent: this.givenToAgent,
      requestsIn: { ...this.requestsIn },
      responsesIn: { ...this.responsesIn },
      sent: { ...this.sent, errorResponses: this.sent.errorResponses.slice() },
      nonStunIn: this.nonStunIn,
    };
  }

  /** Closes the agent, the timer and the socket. */
  close(): void {
    if (this.closed) return;
    this.agent.close();
    this.closed = true;
    clearTimeout(this.timer);
    this.socket?.close();
    this.socket = undefined;
  }
}

import { randomBytes } from 'node:crypto';
import type { Socket as UdpSocket } from 'node:dgram';
import type { Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type Cidr, type ExposeTransport, MuxSession, type MuxStream, cidrContains, frameWriter, ipToBytes } from '@nat/protocol';
import type { ResolvedExposeLimits } from './options.js';
import { ControlFrameGate } from './preauth.js';
import type { ShareCounter } from './shares.js';
import type { UdpFlowShares } from './udp-flows.js';

/** A public port. */
export interface Exposure {
  readonly key: string;
  readonly transport: ExposeTransport;
  readonly port: number;
  readonly user: string;
  session: Session | undefined;
  allow: Cidr[];
  deny: Cidr[];
  readonly tcp?: NetServer;
  readonly udp?: UdpSocket;
  udpStream?: MuxStream;
  readonly conns: Set<Socket>;
  /** Inbound connections open now per source prefix (see `sourceKey`). */
  readonly sources: ShareCounter;
  /** UDP flows and their shares per source prefix (UDP ports only). */
  readonly flows?: UdpFlowShares;
  graceTimer?: NodeJS.Timeout;
  /** The peer id its owner advertised (the owner lookup tells it), if any. */
  advertised?: string | undefined;
  /** Its reservation in the cluster's per-user count (`ExposeCluster`), when there is a cluster. */
  readonly reservation?: number;
}

/** One control connection. */
export interface Session {
  readonly socket: Duplex;
  readonly ip: string;
  /** The source prefix its share is counted under (see `sourceKey`). */
  readonly source: string;
  readonly mux: MuxSession;
  readonly gate: ControlFrameGate;
  readonly remote: string;
  control: MuxStream | undefined;
  nonce: string;
  user: string | undefined;
  alive: boolean;
  closed: boolean;
  authTimer: NodeJS.Timeout;
  /** Unsent output at the last heartbeat (less now: the peer reads, so it is alive while reading is paused). */
  unsent: number;
  readonly exposures: Set<Exposure>;
}

/** What the service does for a session's events. */
export interface SessionHooks {
  onStream(s: Session, stream: MuxStream): void;
  /** The session must end (`cut`: it broke a bound and is refused, with `reason` to log). */
  onEnd(s: Session, reason: string, cut: boolean): void;
  onAuthTimeout(s: Session): void;
}

/**
 * Starts the yamux session of an upgraded control connection with its governance: only the
 * frames that authenticating needs until it authenticated (see {@link ControlFrameGate}), an
 * authentication deadline counted from `acceptedAt` (performance.now() when the TCP connection
 * was accepted), and backpressure at all times: while more than `outputBuffer` bytes wait to be
 * sent, nothing is read from the peer (and its pings go unanswered); over `outputHardCap` the
 * connection is cut.
 */
export function startSession(
  socket: Duplex,
  ip: string,
  source: string,
  remote: string,
  acceptedAt: number,
  limits: ResolvedExposeLimits,
  hooks: SessionHooks,
): Session {
  const raw = socket as Socket;
  raw.setNoDelay?.(true);
  const gate = new ControlFrameGate({ frames: limits.preAuthFrames, bytes: limits.preAuthBytes });
  const write = frameWriter(socket, limits.outputBuffer);
  // A peer that lets more than the hard cap pile up is cut at once (nothing more is flushed to it).
  let cut: string | undefined;
  const checkCap = (): void => {
    if (cut !== undefined || socket.writableLength <= limits.outputHardCap) return;
    cut = `over ${limits.outputHardCap} bytes of unsent output (the peer does not read)`;
    socket.destroy();
  };
  const s: Session = {
    socket,
    ip,
    source,
    remote,
    gate,
    control: undefined,
    nonce: randomBytes(32).toString('base64url'),
    user: undefined,
    alive: true,
    closed: false,
    unsent: 0,
    exposures: new Set(),
    authTimer: setTimeout(() => hooks.onAuthTimeout(s), Math.max(0, acceptedAt + limits.authTimeoutMs - performance.now())),
    mux: new MuxSession({
      client: false,
      window: limits.window,
      // The control stream, one stream per inbound connection of each of its user's ports, and its outbound connections.
      maxStreams: 2 + limits.portsPerUser * (limits.connectionsPerPort + 1) + limits.outboundPerSession,
      admit: (h) => gate.admit(h),
      write: (header, payload) => {
        const ok = write(header, payload);
        checkCap();
        return ok;
      },
      onStream: (stream) => hooks.onStream(s, stream),
      onPong: () => (s.alive = true),
      onClose: (e) => hooks.onEnd(s, gate.reason !== '' ? `refused: ${gate.reason}` : `mux closed${e ? `: ${e.message}` : ''}`, gate.reason !== ''),
    }),
  };
  s.authTimer.unref();
  let paused = false;
  socket.on('data', (c: Buffer) => {
    s.alive = true;
    s.mux.receive(c);
    checkCap();
    if (!paused && socket.writableLength >= limits.outputBuffer) {
      paused = true;
      socket.pause();
    }
  });
  socket.on('drain', () => {
    if (paused && !s.closed) {
      paused = false;
      socket.resume();
    }
    s.mux.drain();
  });
  socket.on('error', () => {});
  // A client that ended its side sends nothing more (no pong, no data): the session is over, its ports held.
  socket.on('end', () => hooks.onEnd(s, 'the client ended the connection', false));
  socket.on('close', () => hooks.onEnd(s, cut ?? 'connection closed', cut !== undefined));
  return s;
}

/**
 * One heartbeat round of a session: false when it showed no sign of life for a whole round (no
 * byte read, no pong, and no unsent output taken by the peer while reading was paused).
 */
export function heartbeat(s: Session, pingValue: number): boolean {
  const unsent = s.socket.writableLength;
  if (!s.alive && !(unsent < s.unsent)) return false;
  s.alive = false;
  s.unsent = unsent;
  s.mux.ping(pingValue);
  return true;
}

/** Ends a session's connection: no more reading, what is queued is sent, and it is destroyed a second later at most. */
export function closeSession(s: Session): void {
  clearTimeout(s.authTimer);
  s.mux.close();
  s.socket.pause();
  s.socket.end();
  setTimeout(() => s.socket.destroy(), 1000).unref();
}

/** True when `ip` may reach exposure `e`: not in the server's `deny` list nor the port's, and in the port's allow list when it has one. */
export function sourceAllowed(deny: Cidr[], e: Exposure, ip: string): boolean {
  if (deny.length === 0 && e.deny.length === 0 && e.allow.length === 0) return true;
  let bytes: Uint8Array;
  try {
    bytes = ipToBytes(ip);
  } catch {
    return false;
  }
  if (deny.some((c) => cidrContains(c, bytes)) || e.deny.some((c) => cidrContains(c, bytes))) return false;
  return e.allow.length === 0 || e.allow.some((c) => cidrContains(c, bytes));
}

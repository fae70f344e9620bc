/**
 * The peer link: a Noise XX handshake over the path's datagrams, then udx-native streams whose
 * bytes are sealed records (`records.ts`, keys from the handshake). The path is any datagram
 * carrier with `send(bytes)` and `data` events, such as an {@link IceConnection}; its selected
 * pair may be direct or through a TURN relay, and may change (relay first, then a direct upgrade,
 * or a NAT rebinding).
 *
 * Where the udx packets go:
 * - On a direct pair whose local socket is a udx-native socket (an IceConnection's host sockets
 *   are), the streams run on that very socket, to the peer's address of the pair: no JavaScript
 *   touches their packets, which is what makes the direct path fast.
 * - Otherwise (a relayed pair, a punched socket, a path without udx sockets) the streams send to
 *   a local shim socket on loopback, which seals their packets (`seal.ts`; one, or several
 *   gathered in one event-loop turn, to a datagram) and hands them to the path, and hands the
 *   path's opened packets back to the streams' socket.
 *
 * When the selected pair changes, every stream is moved (`changeRemote`) to the new place; the
 * streams stay on one "home" socket, which takes their packets from any source (the shim or the
 * peer directly), so a move on one side before the other loses nothing. A side sends directly
 * only while its own pair is direct on the home socket and the peer said the same of its own
 * (`INNER_ROUTE`), so neither sends udx packets where the other's streams are not (a direct pair
 * on another socket, see `#wanted`, takes the shim route on both sides).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  LINK_HS1,
  LINK_HS2,
  LINK_HS3,
  LINK_SEALED,
  LinkControl,
  LinkControlReader,
  LinkInner,
  decodeLinkResume,
  decodeLinkRoute,
  decodeUdxBatch,
  decodeUdxFragment,
  LinkResumeKind,
  encodeLinkControl,
  encodeLinkResume,
  encodeLinkRoute,
  encodeUdxBatch,
  encodeUdxFragment,
  peerIdFromPublicKey,
} from '@nat/protocol';
import type { RendezvousIdentity } from '../rendezvous/identity.js';
import { type ChannelHost, ResumableChannel } from './channel.js';
import { PeerLinkError } from './errors.js';
import { Noise, type NoiseState, type SodiumKeyPair, type UdxSocket, type UdxStream, bindUdxSocket, curveEd, shimUdx, udx } from './native.js';
import { RecordOpener, RecordSealer, streamKey } from './records.js';
import { type DropReason, PacketOpener, PacketSealer } from './seal.js';
import { LinkStream } from './stream.js';
import type { LinkPath, LinkStats, PeerLinkEvents, PeerLinkOptions, UdxRoute } from './types.js';

export type { LinkDropCounts, LinkPath, LinkStats, PeerLinkEvents, PeerLinkOptions, UdxRoute } from './types.js';

// The datagram types, inner types and control messages are @nat/protocol's (link/frames.ts).
const HS1 = LINK_HS1;
const HS2 = LINK_HS2;
const HS3 = LINK_HS3;
const SEALED = LINK_SEALED;
const INNER_UDX = LinkInner.Udx;
const INNER_KEEPALIVE = LinkInner.Keepalive;
const INNER_CLOSE = LinkInner.Close;
const INNER_UDX_BATCH = LinkInner.UdxBatch;
const INNER_RESUME = LinkInner.Resume;
/**
 * Whether the sender's selected pair is direct on the socket its streams are on, so that udx
 * packets sent straight to the pair's remote address reach its streams. A side sends its streams
 * directly only while both its own pair and the peer's say so.
 */
const INNER_ROUTE = LinkInner.Route;
/**
 * udx probes the path MTU toward the shim (loopback: 1500, udx's maximum), so its packets are
 * larger than a sealed datagram may be on a real path (and an ICE host socket is a udx socket,
 * which sets Don't Fragment): those travel in pieces.
 */
const INNER_UDX_FRAGMENT = LinkInner.UdxFragment;
/**
 * udx packets larger than this travel in pieces unless the path takes loopback-sized datagrams:
 * a sealed piece (this + 4 + 26 bytes of framing and tag, + 1 of the ICE frame) fits in a 1280-byte
 * IPv6 packet, the smallest MTU any IPv6 path has (RFC 8200 section 5), and so any IPv4 path udx
 * works on.
 */
export const FRAGMENT_BYTES = 1180;
/** Packets being reassembled at most (the oldest is dropped: udx resends the whole packet). */
const MAX_REASSEMBLY = 64;
const PROLOGUE = Buffer.from('nat-peer-link/2');
const LOOPBACK = '127.0.0.1';
const LOOPBACK6 = '::1';
const MAX_EARLY = 256;
/**
 * udx acknowledges every data packet, so half of what crosses the shim are acks of a few dozen
 * bytes: by default udx packets that arrive in one event-loop turn travel together in one sealed
 * datagram of at most this many bytes of plaintext (well below udx's own full packets, so within
 * any path MTU udx works with; sealed and framed, still below the 576-byte IPv4 datagram every
 * host must accept, RFC 791).
 */
export const BATCH_BYTES = 512;
/** The batch on a loopback path: a dozen of udx's full packets in one datagram. */
export const LOOPBACK_BATCH_BYTES = 16 * 1024;
const defaultBatch = (): number => BATCH_BYTES;

const liveStreamIds = new Set<number>();
/**
 * A udx stream id, unique within the process's udx instance while its stream lives, and random,
 * so that a host off the path cannot guess it to inject packets into a direct stream (which the
 * records would refuse, but at the cost of the stream).
 */
function allocStreamId(): number {
  for (;;) {
    const id = randomBytes(4).readUInt32BE() >>> 1;
    if (id !== 0 && !liveStreamIds.has(id)) {
      liveStreamIds.add(id);
      return id;
    }
  }
}
function createRawStream(): UdxStream {
  const id = allocStreamId();
  const raw = udx().createStream(id);
  raw.once('close', () => liveStreamIds.delete(id));
  return raw;
}

const sameRoute = (a: UdxRoute, b: UdxRoute): boolean => a.socket === b.socket && a.port === b.port && a.host === b.host;

/** The libsodium-layout key pair of a node:crypto Ed25519 identity. */
export function sodiumKeyPair(identity: RendezvousIdentity): SodiumKeyPair {
  const jwk = identity.privateKey.export({ format: 'jwk' });
  if (typeof jwk.d !== 'string') throw new TypeError('not an Ed25519 private key');
  return curveEd.generateKeyPair(Buffer.from(jwk.d, 'base64url'));
}

/**
 * An open peer link: encrypted, mutually authenticated, multiplexed byte streams. Get one with
 * {@link openLink}.
 */
export class PeerLink extends EventEmitter<PeerLinkEvents> {
  /** The peer's authenticated id. */
  readonly remotePeerId: string;
  /** The peer's raw Ed25519 public key. */
  readonly remotePublicKey: Buffer;
  readonly stats: LinkStats;
  readonly #path: LinkPath;
  readonly #options: PeerLinkOptions;
  readonly #sealer: PacketSealer;
  readonly #opener: PacketOpener;
  /** The Noise transport keys: stream keys derive from them (records.ts). */
  readonly #tx: Buffer;
  readonly #rx: Buffer;
  /** The link's own loopback socket, when the path has no udx home socket. */
  readonly #privateSocket: UdxSocket | undefined;
  /** The socket the streams are on; it changes only when the path's home does (an ICE restart on a new address). */
  #home: UdxSocket;
  #homeHost: string;
  #homePort: number;
  readonly #shim: UdxSocket;
  /** Streams send here when no direct route exists: the shim, from the home socket. */
  #shimRoute: UdxRoute;
  /** Where the streams send now. */
  #route: UdxRoute;
  /** The local address of the route's socket: where the shim hands the path's packets. */
  #routeLocal: { host: string; port: number };
  /** The link's channels (its streams' and the control stream's), by their local id. */
  readonly #channels = new Map<number, ResumableChannel>();
  readonly #control: ResumableChannel;
  #channelHost: ChannelHost | undefined;
  readonly #controlSealer: RecordSealer;
  readonly #controlOpener: RecordOpener;
  readonly #pending = new Map<number, { stream: UdxStream; resolve: (s: LinkStream) => void; reject: (e: Error) => void }>();
  readonly #streams = new Set<LinkStream>();
  readonly #retransmitHs: Buffer | undefined;
  readonly #initiator: boolean;
  readonly #ctrl = new LinkControlReader();
  #lastSent = performance.now();
  #lastReceived = performance.now();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #batch: Buffer[] = [];
  #batchBytes = 0;
  #batchTimer: NodeJS.Immediate | undefined;
  #nextPacketNumber = 0;
  readonly #reassembly = new Map<number, { pieces: (Buffer | undefined)[]; got: number }>();
  readonly #batchLimit: () => number;
  readonly #flushSoon = (): void => {
    this.#batchTimer = undefined;
    this.#flushBatch();
  };
  readonly #onData = (d: Uint8Array): void => this.#receive(d);
  readonly #onPath = (): void => this.#reroute();
  /** What we last told the peer: whether our streams' socket takes its udx packets directly. */
  #toldDirect: boolean | undefined;
  /** What the peer last told us (INNER_ROUTE). */
  #peerDirect = false;
  #routeResend: NodeJS.Timeout | undefined;
  #routeSeq = 0;
  #peerRouteSeq: number | undefined;
  readonly #onPathClose = (reason: string): void => this.#end(new PeerLinkError('CLOSED', `the path closed (${reason})`));
  readonly #onAbort = (): void => this.close();

  /** @internal use {@link openLink} */
  constructor(init: {
    path: LinkPath;
    options: PeerLinkOptions;
    remotePublicKey: Buffer;
    tx: Buffer;
    rx: Buffer;
    /** Opens the peer's sealed datagrams (the initiator's has opened the confirmation already). */
    opener: PacketOpener;
    /** The initiator: the first sealed plaintext from the responder, which confirmed the handshake. */
    confirmation: Buffer | undefined;
    privateSocket: UdxSocket | undefined;
    home: UdxSocket;
    shim: UdxSocket;
    control: UdxStream;
    remoteControlId: number;
    stats: LinkStats;
    retransmitHs: Buffer | undefined;
    earlySealed: Uint8Array[];
  }) {
    super();
    this.#path = init.path;
    this.#options = init.options;
    this.remotePublicKey = init.remotePublicKey;
    this.remotePeerId = peerIdFromPublicKey(init.remotePublicKey);
    this.#sealer = new PacketSealer(init.tx);
    this.#opener = init.opener;
    this.#tx = init.tx;
    this.#rx = init.rx;
    this.#initiator = init.options.initiator;
    this.#privateSocket = init.privateSocket;
    this.#home = init.home;
    const home = init.home.address();
    this.#homeHost = home.host;
    this.#homePort = home.port;
    this.#shim = init.shim;
    const shim = init.shim.address();
    this.#shimRoute = { socket: this.#home, host: shim.host, port: shim.port };
    this.#route = this.#wanted();
    this.#routeLocal = this.#route.socket.address();
    this.stats = init.stats;
    this.stats.route = this.#route === this.#shimRoute ? 'shim' : 'direct';
    this.#retransmitHs = init.retransmitHs;
    this.#batchLimit = init.options.batchBytes ?? defaultBatch;
    this.#controlSealer = new RecordSealer(streamKey(this.#tx, init.control.id, init.remoteControlId));
    this.#controlOpener = new RecordOpener(streamKey(this.#rx, init.remoteControlId, init.control.id));
    this.#control = this.#connect(init.control, init.remoteControlId);
    this.#control.on('data', (chunk) => this.#onControl(chunk));
    this.#control.on('error', () => {});
    this.#control.on('close', () => this.#end(new PeerLinkError('CLOSED', 'the peer link control stream closed')));
    // the control stream is never ended, only destroyed with the link: an END is forged or a bug
    this.#control.on('end', () => this.#end(new PeerLinkError('TAMPERED', 'the peer link control stream ended')));
    // only udx's packets: the shim listens on loopback, and takes what comes from the home socket
    this.#shim.on('message', (msg, from) => {
      if (from.port === this.#homePort && from.host === this.#homeHost) this.#fromUdx(msg);
    });
    this.#path.on('data', this.#onData);
    this.#path.on('close', this.#onPathClose);
    this.#path.on('path', this.#onPath);
    const signal = init.options.signal;
    signal?.addEventListener('abort', this.#onAbort, { once: true });
    const keepalive = init.options.keepaliveMs ?? 15_000;
    const idle = init.options.idleTimeoutMs ?? (keepalive > 0 ? 3 * keepalive : 45_000);
    const tick = Math.max(50, Math.min(keepalive > 0 ? keepalive / 3 : Infinity, idle > 0 ? idle / 3 : Infinity, 5_000));
    this.#timer = setInterval(() => {
      const now = performance.now();
      if (idle > 0 && now - this.#lastReceived > idle) {
        this.#end(new PeerLinkError('IDLE_TIMEOUT', `nothing from peer ${this.remotePeerId} for ${Math.round(now - this.#lastReceived)} ms`));
        return;
      }
      if (keepalive > 0 && now - this.#lastSent >= keepalive) {
        // the keepalive carries our route, so a peer that missed every resend still learns it
        this.stats.keepalivesSent++;
        this.#sendRoute();
      }
    }, tick);
    this.#timer.unref();
    // the responder confirms the handshake: the initiator waits for this before it opens
    if (!this.#initiator) this.#sendSealed(INNER_KEEPALIVE, Buffer.alloc(0));
    if (init.confirmation !== undefined) this.#deliver(init.confirmation, 0);
    this.#tellRoute();
    for (const d of init.earlySealed) this.#receive(d);
    if (signal?.aborted) this.close();
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Open streams. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /**
   * Opens a stream to the peer: resolves once the peer accepted it (one round trip). Rejects
   * with {@link PeerLinkError} when the link closes first.
   */
  openStream(): Promise<LinkStream> {
    if (this.#closed) return Promise.reject(new PeerLinkError('CLOSED', 'the peer link is closed'));
    const stream = createRawStream();
    return new Promise((resolve, reject) => {
      this.#pending.set(stream.id, { stream, resolve, reject });
      this.#sendControl(encodeLinkControl(LinkControl.Open, stream.id, 0));
    });
  }

  /** Closes every stream and the link, tells the peer, and leaves the path open. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#sendSealed(INNER_CLOSE, Buffer.alloc(0));
    this.#end(undefined);
  }

  /** Connects a raw stream to the peer's stream `remoteId` on the current route. */
  #connect(raw: UdxStream, remoteId: number): ResumableChannel {
    raw.connect(this.#route.socket, remoteId, this.#route.port, this.#route.host);
    const channel = new ResumableChannel((this.#channelHost ??= this.#host()), raw, remoteId);
    this.#channels.set(channel.id, channel);
    channel.once('close', () => this.#channels.delete(channel.id));
    return channel;
  }

  /** What the link's channels need from it (channel.ts). */
  #host(): ChannelHost {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the getter below reads the link's state
    const link = this;
    return {
      initiator: this.#initiator,
      get closed(): boolean {
        return link.#closed;
      },
      newRaw: createRawStream,
      route: () => this.#route,
      sendResume: (m) => this.#sendSealed(INNER_RESUME, encodeLinkResume(m).subarray(1)),
      resumed: () => void this.stats.streamsResumed++,
    };
  }

  /**
   * The path's direct route when it is on the home socket, else the shim. The streams never move
   * to another socket: measured with udx-native 1.21.3, a stream moved to another socket while
   * the peer's stream changes its remote at about the same time (within a millisecond) stalls
   * for good, retransmitting one packet; moves that keep the socket and change only the remote
   * address recover in every order. So a direct pair on another socket (birthday punching's, or
   * a second interface's) is carried through the shim.
   */
  #wanted(): UdxRoute {
    const direct = this.#localDirect();
    return direct !== undefined && this.#peerDirect ? direct : this.#shimRoute;
  }

  #localDirect(): UdxRoute | undefined {
    if (this.#options.directRoute === false) return undefined;
    const direct = this.#path.udxRoute;
    return direct !== undefined && direct.socket === this.#home ? direct : undefined;
  }

  /** INNER_ROUTE: our current route bit under the next sequence number (the peer keeps the newest). */
  #sendRoute(): void {
    this.#sendSealed(INNER_ROUTE, encodeLinkRoute(this.#toldDirect === true, this.#routeSeq++));
  }

  /**
   * Tells the peer whether our streams take its udx packets directly now, when that changed;
   * resent a few times (the path is lossy), 0.25, 1 and 3 s later, and with every keepalive.
   */
  #tellRoute(): void {
    const direct = this.#localDirect() !== undefined;
    if (direct === this.#toldDirect) return;
    this.#toldDirect = direct;
    clearTimeout(this.#routeResend);
    const send = (): void => this.#sendRoute();
    send();
    const later = [250, 750, 2000];
    const next = (): void => {
      const wait = later.shift();
      if (wait === undefined || this.#closed) return;
      this.#routeResend = setTimeout(() => {
        send();
        next();
      }, wait);
      this.#routeResend.unref();
    };
    next();
  }

  /** The selected pair changed, or the peer's route did: move every stream where both allow. */
  #reroute(): void {
    if (this.#closed) return;
    // the path's home socket went away (its address did): the streams move to the new one
    const home = this.#path.udxHome;
    if (home !== undefined && home !== this.#home && this.#privateSocket === undefined) {
      const a = home.address();
      this.#home = home;
      this.#homeHost = a.host;
      this.#homePort = a.port;
      this.#shimRoute = { ...this.#shimRoute, socket: home };
    }
    this.#tellRoute();
    const next = this.#wanted();
    if (sameRoute(next, this.#route)) return;
    this.#route = next;
    this.#routeLocal = next.socket.address();
    this.stats.routeChanges++;
    this.stats.route = next === this.#shimRoute ? 'shim' : 'direct';
    for (const channel of this.#channels.values()) channel.move();
    this.emit('route', this.stats.route);
  }

  #protection(raw: ResumableChannel, remoteId: number): { sealer: RecordSealer; opener: RecordOpener; onTampered: (e: PeerLinkError) => void } {
    return {
      sealer: new RecordSealer(streamKey(this.#tx, raw.id, remoteId)),
      opener: new RecordOpener(streamKey(this.#rx, remoteId, raw.id)),
      onTampered: () => void this.stats.streamsTampered++,
    };
  }

  #track(raw: ResumableChannel, remoteId: number): LinkStream {
    const s = new LinkStream(raw, this.#protection(raw, remoteId));
    this.#streams.add(s);
    s.on('close', () => {
      this.#streams.delete(s);
      if (!this.#closed && !(s.readableEnded && s.writableFinished)) this.#sendControl(encodeLinkControl(LinkControl.Reset, remoteId, raw.id));
    });
    return s;
  }

  #sendControl(message: Buffer): void {
    this.#control.write(this.#controlSealer.seal(message));
  }

  #onControl(sealed: Buffer): void {
    let plains: Buffer[];
    try {
      plains = this.#controlOpener.push(sealed);
    } catch (error) {
      this.stats.streamsTampered++;
      this.#end(error as PeerLinkError);
      return;
    }
    for (const p of plains) {
      this.#onControlBytes(p);
      if (this.#closed) return;
    }
  }

  #onControlBytes(chunk: Buffer): void {
    for (const { type, a, b } of this.#ctrl.push(chunk)) {
      if (type === LinkControl.Open) {
        const raw = createRawStream();
        const channel = this.#connect(raw, a);
        this.#sendControl(encodeLinkControl(LinkControl.Accept, a, raw.id));
        this.emit('stream', this.#track(channel, a));
      } else if (type === LinkControl.Accept) {
        const p = this.#pending.get(a);
        if (p === undefined) continue;
        this.#pending.delete(a);
        p.resolve(this.#track(this.#connect(p.stream, b), b));
      } else if (type === LinkControl.Reset) {
        for (const s of this.#streams) if (s.id === a) s.destroy(new PeerLinkError('CLOSED', "the peer's end of the stream failed"));
      } else {
        this.#end(new PeerLinkError('CLOSED', `the peer sent an unknown control message ${type}`));
        return;
      }
    }
  }

  #fromUdx(packet: Buffer): void {
    const limit = this.#batchLimit();
    if (2 + packet.length > limit) {
      this.#flushBatch(); // keep udx's order
      if (packet.length > FRAGMENT_BYTES && limit < LOOPBACK_BATCH_BYTES) this.#sendPieces(packet);
      else this.#sendSealed(INNER_UDX, packet);
      return;
    }
    if (this.#batchBytes + 2 + packet.length > limit) this.#flushBatch();
    this.#batch.push(packet);
    this.#batchBytes += 2 + packet.length;
    this.#batchTimer ??= setImmediate(this.#flushSoon);
  }

  #sendPieces(packet: Buffer): void {
    const id = this.#nextPacketNumber;
    this.#nextPacketNumber = (id + 1) & 0xffff;
    const count = Math.ceil(packet.length / FRAGMENT_BYTES);
    for (let i = 0; i < count; i++) {
      this.#sendSealed(INNER_UDX_FRAGMENT, encodeUdxFragment(id, i, count, packet.subarray(i * FRAGMENT_BYTES, (i + 1) * FRAGMENT_BYTES)));
    }
  }

  /** An authentic piece of a udx packet: the packet goes to the streams once every piece is here. */
  #onPiece(plain: Buffer, to: { host: string; port: number }): void {
    if (plain.length < 6) return;
    const piece = decodeUdxFragment(plain);
    if (piece === undefined) {
      this.stats.dropped.malformed++;
      return;
    }
    const { id, index, count } = piece;
    let entry = this.#reassembly.get(id);
    if (entry === undefined || entry.pieces.length !== count) {
      // packet numbers wrap at 2^16: forget every packet more than MAX_REASSEMBLY numbers
      // behind this one, so a number's next use never meets a leftover piece of its last
      for (const old of this.#reassembly.keys()) if (((id - old) & 0xffff) > MAX_REASSEMBLY) this.#reassembly.delete(old);
      entry = { pieces: new Array<Buffer | undefined>(count).fill(undefined), got: 0 };
      this.#reassembly.delete(id);
      this.#reassembly.set(id, entry);
      if (this.#reassembly.size > MAX_REASSEMBLY) this.#reassembly.delete(this.#reassembly.keys().next().value!);
    }
    if (entry.pieces[index] !== undefined) return;
    entry.pieces[index] = piece.bytes;
    if (++entry.got < count) return;
    this.#reassembly.delete(id);
    this.#shim.trySend(Buffer.concat(entry.pieces as Buffer[]), to.port, to.host);
  }

  #flushBatch(): void {
    if (this.#batchTimer !== undefined) {
      clearImmediate(this.#batchTimer);
      this.#batchTimer = undefined;
    }
    const batch = this.#batch;
    if (batch.length === 0) return;
    this.#batch = [];
    const bytes = this.#batchBytes;
    this.#batchBytes = 0;
    if (batch.length === 1) {
      this.#sendSealed(INNER_UDX, batch[0]!);
      return;
    }
    this.#sendSealed(INNER_UDX_BATCH, encodeUdxBatch(batch, bytes));
  }

  #sendSealed(inner: number, payload: Uint8Array): void {
    if (this.#closed && inner !== INNER_CLOSE) return;
    // plaintext = inner type + payload; sealed datagram = SEALED + counter + ciphertext
    const plain = Buffer.allocUnsafe(payload.length + 1);
    plain[0] = inner;
    plain.set(payload, 1);
    this.#lastSent = performance.now();
    this.stats.packetsSent++;
    if (this.#path.sendFrame !== undefined) {
      // one byte of room for the path's frame type, so the datagram is not copied again
      const out = this.#sealer.seal(plain, 2);
      out[1] = SEALED;
      this.stats.bytesSent += out.length - 1;
      this.#path.sendFrame(out);
      return;
    }
    const out = this.#sealer.seal(plain, 1);
    out[0] = SEALED;
    this.stats.bytesSent += out.length;
    this.#path.send(out);
  }

  #receive(d: Uint8Array): void {
    if (this.#closed || d.length === 0) return;
    const type = d[0];
    if (type !== SEALED) {
      // a late handshake message: the peer missed our last one
      if (type === HS2 && this.#retransmitHs !== undefined) this.#path.send(this.#retransmitHs);
      else if (type === HS3 && !this.#initiator)
        this.#sendSealed(INNER_KEEPALIVE, Buffer.alloc(0)); // the confirmation was lost
      else if (type !== HS1 && type !== HS2 && type !== HS3) this.stats.dropped.malformed++;
      return;
    }
    const plain = this.#opener.open(d.subarray(1));
    if (typeof plain === 'string') {
      this.stats.dropped[plain satisfies DropReason]++;
      return;
    }
    this.#deliver(plain, d.length);
  }

  #deliver(plain: Buffer, bytes: number): void {
    this.#lastReceived = performance.now();
    this.stats.packetsReceived++;
    this.stats.bytesReceived += bytes;
    const inner = plain[0];
    // to the socket the streams are on now (it takes their packets from any source)
    const to = this.#routeLocal;
    if (inner === INNER_UDX) this.#shim.trySend(plain.subarray(1), to.port, to.host);
    else if (inner === INNER_UDX_BATCH) {
      const { packets, truncated } = decodeUdxBatch(plain);
      for (const p of packets) this.#shim.trySend(p, to.port, to.host);
      if (truncated) this.stats.dropped.malformed++; // authentic but cut short: a bug at the peer
    } else if (inner === INNER_UDX_FRAGMENT) this.#onPiece(plain, to);
    else if (inner === INNER_ROUTE) {
      const route = decodeLinkRoute(plain);
      if (route === undefined) {
        this.stats.dropped.malformed++;
        return;
      }
      // datagrams may arrive reordered: an older route message must not undo a newer one
      const seq = route.seq;
      if (this.#peerRouteSeq !== undefined && ((seq - this.#peerRouteSeq) | 0) <= 0) return;
      this.#peerRouteSeq = seq;
      this.#peerDirect = route.direct;
      this.#reroute();
    } else if (inner === INNER_RESUME) this.#onResume(plain);
    else if (inner === INNER_CLOSE) this.#end(new PeerLinkError('CLOSED', `peer ${this.remotePeerId} closed the link`));
  }

  #onResume(plain: Buffer): void {
    const m = decodeLinkResume(plain);
    if (m === undefined) {
      this.stats.dropped.malformed++;
      return;
    }
    const channel = this.#channels.get(m.target);
    if (channel !== undefined) channel.onResume(m);
    else if (m.kind === LinkResumeKind.Request)
      // a stream this side closed: the requester's ends with an error
      this.#sendSealed(INNER_RESUME, encodeLinkResume({ kind: LinkResumeKind.Refuse, target: m.echo, raw: 0, echo: m.raw, received: 0 }).subarray(1));
  }

  #end(error: PeerLinkError | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#batchTimer !== undefined) clearImmediate(this.#batchTimer);
    this.#batch = [];
    this.#path.off('data', this.#onData);
    this.#path.off('close', this.#onPathClose);
    this.#path.off('path', this.#onPath);
    clearTimeout(this.#routeResend);
    this.#options.signal?.removeEventListener('abort', this.#onAbort);
    const why = error ?? new PeerLinkError('ABORTED', 'the peer link was closed');
    for (const p of this.#pending.values()) {
      p.reject(why);
      p.stream.destroy();
    }
    this.#pending.clear();
    for (const s of this.#streams) s.destroy(error);
    // a stream closing gracefully waits for the peer's acknowledgements, which a closed link
    // will not carry: end them all now, so that the socket they are on can close
    for (const channel of [...this.#channels.values()]) channel.destroy();
    void this.#shim.close().catch(() => {});
    // the home socket belongs to the path, unless it is the link's own
    void this.#privateSocket?.close().catch(() => {});
    this.emit('close', error);
  }
}

/**
 * Runs the Noise XX handshake (`Noise_XX_Ed25519_ChaChaPoly_BLAKE2b`, the static keys being the
 * peers' Ed25519 identity keys) over `path` and resolves with the open link. The remote static
 * key must hash to `remotePeerId` and pass `allow`, else the link is refused. Handshake messages
 * are resent until answered: the path is lossy.
 *
 *     -> e
 *     <- e, ee, s, es          (payload: the responder's control stream id)
 *     -> s, se                 (payload: the initiator's control stream id)
 *     <- a sealed keepalive    (confirmation: the responder accepted the initiator's key)
 *
 * The initiator resends its last message until the confirmation comes, so it never reports a
 * link the responder refused; a refused initiator fails with `HANDSHAKE_TIMEOUT`, or `CLOSED`
 * when the responder closes the path (as `nat expose` does).
 * Rejects with {@link PeerLinkError}: `REFUSED`, `HANDSHAKE_TIMEOUT`, `CLOSED`, `ABORTED`.
 */
export async function openLink(path: LinkPath, options: PeerLinkOptions): Promise<PeerLink> {
  const { signal } = options;
  if (signal?.aborted) throw new PeerLinkError('ABORTED', 'peer link aborted');
  const noise: NoiseState = new Noise('XX', options.initiator, sodiumKeyPair(options.identity), { curve: curveEd });
  noise.initialise(PROLOGUE);
  const stats: LinkStats = {
    packetsSent: 0,
    packetsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    keepalivesSent: 0,
    dropped: { malformed: 0, tampered: 0, replayed: 0 },
    streamsTampered: 0,
    routeChanges: 0,
    streamsResumed: 0,
    route: 'shim',
  };
  const control = createRawStream();
  const idPayload = Buffer.alloc(4);
  idPayload.writeUInt32BE(control.id);
  const early: Uint8Array[] = [];

  const frame = (type: number, body: Uint8Array): Buffer => Buffer.concat([Buffer.from([type]), body]);
  const checkKey = (rs: Buffer | null): Buffer => {
    if (rs === null) throw new PeerLinkError('REFUSED', 'the peer sent no static key');
    const id = peerIdFromPublicKey(rs);
    if (id !== options.remotePeerId) throw new PeerLinkError('REFUSED', `the peer's key is for ${id}, not the expected peer ${options.remotePeerId}`);
    if (options.allow !== undefined && !options.allow(id)) throw new PeerLinkError('REFUSED', `peer ${id} is not allowed`);
    return Buffer.from(rs);
  };

  let privateSocket: UdxSocket | undefined;
  let shim: UdxSocket | undefined;

  let resend: Buffer | undefined;
  let pending: { remoteStatic: Buffer; remoteControlId: number } | undefined;
  let opener: PacketOpener | undefined;
  let confirmation: Buffer | undefined;
  let finalMessage: Buffer | undefined;
  let retransmit: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  let onData: ((d: Uint8Array) => void) | undefined;
  let onClose: (() => void) | undefined;
  let onAbort: (() => void) | undefined;

  try {
    const result = await new Promise<{ remoteStatic: Buffer; remoteControlId: number }>((resolve, reject) => {
      const every = options.handshakeRetransmitMs ?? 250;
      retransmit = setInterval(() => {
        if (resend !== undefined) path.send(resend);
      }, every);
      deadline = setTimeout(
        () =>
          reject(
            new PeerLinkError('HANDSHAKE_TIMEOUT', `no peer link handshake with ${options.remotePeerId} within ${options.handshakeTimeoutMs ?? 10_000} ms`),
          ),
        options.handshakeTimeoutMs ?? 10_000,
      );
      onClose = () => reject(new PeerLinkError('CLOSED', 'the path closed during the peer link handshake'));
      onAbort = () => reject(new PeerLinkError('ABORTED', 'peer link aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      const fail = (e: unknown): void =>
        reject(e instanceof PeerLinkError ? e : new PeerLinkError('REFUSED', `peer link handshake failed: ${(e as Error).message}`, { cause: e }));
      onData = (d: Uint8Array): void => {
        if (d.length === 0) return;
        const type = d[0];
        const body = d.subarray(1);
        try {
          if (options.initiator) {
            if (type === HS2 && !noise.complete) {
              const payload = noise.recv(body);
              const remoteStatic = checkKey(noise.rs);
              if (payload.length !== 4) throw new PeerLinkError('REFUSED', 'bad handshake payload');
              finalMessage = frame(HS3, noise.send(idPayload));
              path.send(finalMessage);
              // resent until the responder confirms: it may still refuse our key
              resend = finalMessage;
              pending = { remoteStatic, remoteControlId: payload.readUInt32BE(0) };
              opener = new PacketOpener(noise.rx!);
            } else if (type === SEALED && pending !== undefined && opener !== undefined) {
              const plain = opener.open(body);
              if (typeof plain !== 'string') {
                confirmation = plain;
                resolve(pending);
              }
            }
          } else if (type === HS1 && resend === undefined) {
            noise.recv(body);
            resend = frame(HS2, noise.send(idPayload));
            path.send(resend);
          } else if (type === HS1 && !noise.complete && resend !== undefined) {
            path.send(resend);
          } else if (type === HS3 && resend !== undefined && !noise.complete) {
            const payload = noise.recv(body);
            const remoteStatic = checkKey(noise.rs);
            if (payload.length !== 4) throw new PeerLinkError('REFUSED', 'bad handshake payload');
            resolve({ remoteStatic, remoteControlId: payload.readUInt32BE(0) });
          } else if (type === SEALED && !options.initiator) {
            if (early.length < MAX_EARLY) early.push(d); // data that overtook HS3
          }
        } catch (e) {
          fail(e);
        }
      };
      path.on('data', onData);
      path.on('close', onClose);
      if (options.initiator) {
        resend = frame(HS1, noise.send());
        path.send(resend);
      }
    });
    if (noise.tx === null || noise.rx === null) throw new PeerLinkError('REFUSED', 'the handshake produced no keys');
    // the home socket is chosen now, not before the handshake: the path has selected a pair by
    // now (the handshake crossed it), and its socket is where a direct route will run
    let home = path.udxHome;
    if (home === undefined) {
      privateSocket = bindUdxSocket(udx(), LOOPBACK);
      home = privateSocket;
    }
    // a socket bound to any local address reaches loopback (and is reached from it) on this host
    shim = bindUdxSocket(shimUdx(), home.address().family === 6 ? LOOPBACK6 : LOOPBACK);
    return new PeerLink({
      path,
      options,
      remotePublicKey: result.remoteStatic,
      tx: noise.tx,
      rx: noise.rx,
      opener: opener ?? new PacketOpener(noise.rx),
      confirmation,
      privateSocket,
      home,
      shim,
      control,
      remoteControlId: result.remoteControlId,
      stats,
      retransmitHs: finalMessage,
      earlySealed: early,
    });
  } catch (error) {
    control.destroy();
    void shim?.close().catch(() => {});
    void privateSocket?.close().catch(() => {});
    throw error;
  } finally {
    clearInterval(retransmit);
    clearTimeout(deadline);
    if (onData !== undefined) path.off('data', onData);
    if (onClose !== undefined) path.off('close', onClose);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
}

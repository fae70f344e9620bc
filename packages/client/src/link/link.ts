/**
 * The peer link (see index.ts for the whole story): after `openLink`'s handshake (open.ts),
 * udx-native streams whose bytes are sealed records (`records.ts`). The streams run on one
 * "home" socket and send either straight to the peer on a direct pair of that socket, or to a
 * loopback shim that seals their packets onto the path (packing.ts, seal.ts). When the selected
 * pair changes every stream moves (`changeRemote`); a side sends directly only while its own pair
 * is direct on the home socket and the peer said the same of its own (`INNER_ROUTE`).
 */
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
  LinkResumeKind,
  encodeLinkControl,
  encodeLinkResume,
  encodeLinkRoute,
  peerIdFromPublicKey,
} from '@nat/protocol';
import { type ChannelHost, ResumableChannel } from './channel.js';
import { PeerLinkError } from './errors.js';
import type { UdxSocket, UdxStream } from './native.js';
import { BATCH_BYTES, UdxPacker, UdxReassembly } from './packing.js';
import { RecordOpener, RecordSealer, streamKey } from './records.js';
import { keepaliveTimer } from './keepalive.js';
import { type DropReason, type PacketOpener, PacketSealer } from './seal.js';
import { LinkStream } from './stream.js';
import { createRawStream } from './stream-ids.js';
import type { LinkPath, LinkStats, PeerLinkEvents, PeerLinkOptions, UdxRoute } from './types.js';

export type { LinkDropCounts, LinkPath, LinkStats, PeerLinkEvents, PeerLinkOptions, UdxRoute } from './types.js';
export { BATCH_BYTES, FRAGMENT_BYTES, LOOPBACK_BATCH_BYTES } from './packing.js';

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
/** A piece of a udx packet too large for one sealed datagram (packing.ts). */
const INNER_UDX_FRAGMENT = LinkInner.UdxFragment;
const defaultBatch = (): number => BATCH_BYTES;

const sameRoute = (a: UdxRoute, b: UdxRoute): boolean => a.socket === b.socket && a.port === b.port && a.host === b.host;

/**
 * An open peer link: encrypted, mutually authenticated, multiplexed byte streams. Get one with
 * `openLink` (open.ts).
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
  readonly #packer: UdxPacker;
  readonly #reassembly = new UdxReassembly();
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
    this.#packer = new UdxPacker(init.options.batchBytes ?? defaultBatch, (inner, payload) => this.#sendSealed(inner, payload));
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
      if (from.port === this.#homePort && from.host === this.#homeHost) this.#packer.push(msg);
    });
    this.#path.on('data', this.#onData);
    this.#path.on('close', this.#onPathClose);
    this.#path.on('path', this.#onPath);
    const signal = init.options.signal;
    signal?.addEventListener('abort', this.#onAbort, { once: true });
    this.#timer = keepaliveTimer(init.options, {
      lastSent: () => this.#lastSent,
      lastReceived: () => this.#lastReceived,
      idle: (ms) => this.#end(new PeerLinkError('IDLE_TIMEOUT', `nothing from peer ${this.remotePeerId} for ${Math.round(ms)} ms`)),
      // the keepalive carries our route, so a peer that missed every resend still learns it
      keepalive: () => {
        this.stats.keepalivesSent++;
        this.#sendRoute();
      },
    });
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
    } else if (inner === INNER_UDX_FRAGMENT) {
      const packet = this.#reassembly.push(plain);
      if (packet === 'malformed') this.stats.dropped.malformed++;
      else if (packet !== undefined) this.#shim.trySend(packet, to.port, to.host);
    } else if (inner === INNER_ROUTE) {
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
    this.#packer.clear();
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

/**
 * A resumable channel: one link stream's bytes over a udx stream that can be replaced by a new
 * udx stream pair without losing or repeating a byte.
 *
 * Why: libudx sends a packet, and every resend of it, to the address the stream had when the
 * packet was made. When the peer's address changes (a new network, a NAT rebinding) the packets
 * in flight at that moment are resent to the old address until the stream times out, and
 * `changeRemote` never completes (it waits for them to be acknowledged). So a channel whose move
 * does not complete soon, or whose udx stream fails while the link lives, resumes: both sides
 * detach the old udx stream, make a new pair on the link's current route, and each writes again
 * from the other's count of bytes received ({@link LinkResumeKind}, sealed datagrams of the path,
 * resent until answered). To be able to, each side keeps the (sealed) bytes it wrote until the
 * peer confirms them (a confirmation every {@link CONFIRM_BYTES} received).
 */
import { EventEmitter } from 'node:events';
import { LinkResumeKind, type LinkResumeMessage } from '@nat/protocol';
import type { UdxRoute } from './link.js';
import type { UdxStream } from './native.js';

/** The receiver confirms what it received every this many bytes. */
export const CONFIRM_BYTES = 1 << 20;
/** A move (changeRemote) not complete after this long resumes the channel, ms. */
export const MOVE_STALL_MS = 1000;
/** Resume requests are resent this often until answered, ms. */
const REQUEST_EVERY_MS = 250;
/** A resumption not answered within this long fails the channel, ms. */
export const RESUME_DEADLINE_MS = 30_000;

/** What a channel needs from its link. */
export interface ChannelHost {
  /** True once the link closed: a failing channel then fails for good. */
  readonly closed: boolean;
  /** The link's initiator wins when both sides ask to resume the same channel at once. */
  readonly initiator: boolean;
  /** A new, unconnected udx stream with a fresh id. */
  newRaw(): UdxStream;
  /** Where udx streams go now. */
  route(): UdxRoute;
  /** Sends a resume message to the peer (a sealed datagram). */
  sendResume(m: LinkResumeMessage): void;
  /** Counts a resumption (stats). */
  resumed(): void;
}

interface Pending {
  readonly raw: UdxStream;
  readonly timer: NodeJS.Timeout;
  readonly deadline: number;
  readonly error: Error | undefined;
}

/** Events of a {@link ResumableChannel}, as a udx stream's. */
export interface ChannelEvents {
  data: [chunk: Buffer];
  end: [];
  drain: [];
  finish: [];
  close: [];
  error: [error: Error];
}

/**
 * The udx stream surface a {@link LinkStream} uses, over whichever udx stream carries the
 * channel now. `id` and `remoteId` are the ids of the first pair, for the link's whole life.
 */
export class ResumableChannel extends EventEmitter<ChannelEvents> {
  readonly id: number;
  readonly remoteId: number;
  readonly #host: ChannelHost;
  #raw: UdxStream;
  #gen = 0;
  /** Bytes received (handed to 'data') and written. */
  #rx = 0;
  #tx = 0;
  #confirmed = 0;
  /** Written bytes the peer has not confirmed, from offset #keptFrom. */
  #kept: Buffer[] = [];
  #keptFrom = 0;
  #ending = false;
  #finished = false;
  #remoteEnded = false;
  #paused = false;
  #closed = false;
  #wantDrain = false;
  #pending: Pending | undefined;
  /** The last request answered: a resent request gets the same answer. */
  #answered: { peerRaw: number; raw: number; received: number } | undefined;
  #moveTimer: NodeJS.Timeout | undefined;
  #moveQueued = false;

  constructor(host: ChannelHost, raw: UdxStream, remoteId: number) {
    super();
    this.#host = host;
    this.id = raw.id;
    this.remoteId = remoteId;
    this.#raw = raw;
    this.#attach(raw);
  }

  get destroyed(): boolean {
    return this.#closed;
  }
  get rtt(): number {
    return this.#raw.rtt;
  }
  get cwnd(): number {
    return this.#raw.cwnd;
  }
  get inflight(): number {
    return this.#raw.inflight;
  }
  get retransmits(): number {
    return this.#raw.retransmits;
  }
  /** The udx stream carrying the channel now. */
  get raw(): UdxStream {
    return this.#raw;
  }

  write(chunk: Uint8Array): boolean {
    const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    this.#kept.push(b);
    this.#tx += b.length;
    if (this.#pending !== undefined || this.#closed) {
      this.#wantDrain = true;
      return false;
    }
    const ok = this.#raw.write(b);
    if (!ok) this.#wantDrain = true;
    return ok;
  }

  end(): void {
    this.#ending = true;
    if (this.#pending === undefined && !this.#closed) this.#raw.end();
  }

  pause(): void {
    this.#paused = true;
    this.#raw.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#raw.resume();
  }

  destroy(): void {
    if (this.#closed) return;
    this.#finish();
    this.#raw.destroy();
    this.emit('close');
  }

  /** Moves the udx stream to the link's current route; resumes when the move does not complete soon. */
  move(): void {
    if (this.#closed || this.#pending !== undefined) return;
    const raw = this.#raw;
    const to = this.#host.route();
    if (raw.destroyed || raw.socket === null || (raw.socket === to.socket && raw.remotePort === to.port && raw.remoteHost === to.host)) return;
    const gen = this.#gen;
    clearTimeout(this.#moveTimer);
    this.#moveTimer = setTimeout(() => {
      if (gen === this.#gen) this.#request(undefined);
    }, MOVE_STALL_MS);
    this.#moveTimer.unref();
    try {
      raw.once('remote-changed', () => clearTimeout(this.#moveTimer));
      raw.changeRemote(to.socket, raw.remoteId, to.port, to.host)?.catch(() => {});
    } catch {
      // the previous move is not complete (libudx completes a move once every packet sent
      // before it is acknowledged): move once it is, unless the stall timer resumes first
      if (this.#moveQueued) return;
      this.#moveQueued = true;
      raw.once('remote-changed', () => {
        this.#moveQueued = false;
        if (gen === this.#gen) this.move();
      });
    }
  }

  /** A resume message for this channel (its target is this channel's id). */
  onResume(m: LinkResumeMessage): void {
    if (this.#closed) return;
    if (m.kind === LinkResumeKind.Confirm) this.#forget(m.received);
    else if (m.kind === LinkResumeKind.Request) this.#accept(m);
    else if (m.kind === LinkResumeKind.Accept) this.#accepted(m);
    else if (m.kind === LinkResumeKind.Refuse && this.#pending?.raw.id === m.echo)
      this.#fail(new Error("the peer's end of the stream is gone (resumption refused)"));
  }

  #attach(raw: UdxStream): void {
    const gen = ++this.#gen;
    const live = (): boolean => gen === this.#gen && !this.#closed;
    let error: Error | undefined;
    raw.on('data', (chunk) => {
      if (!live()) return;
      this.#rx += chunk.length;
      if (this.#rx - this.#confirmed >= CONFIRM_BYTES) this.#confirm();
      this.emit('data', chunk);
    });
    raw.on('end', () => {
      if (!live() || this.#remoteEnded) return;
      this.#remoteEnded = true;
      this.#confirm();
      this.emit('end');
    });
    raw.on('drain', () => {
      if (live() && this.#wantDrain) {
        this.#wantDrain = false;
        this.emit('drain');
      }
    });
    raw.on('finish', () => {
      if (live() && !this.#finished) {
        this.#finished = true;
        this.emit('finish');
      }
    });
    raw.on('error', (e) => {
      error = e;
    });
    raw.on('close', () => {
      if (!live()) return;
      if (error === undefined && this.#remoteEnded && this.#ending) {
        // both directions ended and every byte was acknowledged
        this.#finish();
        this.emit('close');
        return;
      }
      this.#request(error ?? new Error('the udx stream closed'));
    });
    if (this.#paused) raw.pause();
  }

  #confirm(): void {
    this.#confirmed = this.#rx;
    this.#host.sendResume({ kind: LinkResumeKind.Confirm, target: this.remoteId, raw: 0, echo: 0, received: this.#rx });
  }

  /** The peer received `received` bytes: forget them. */
  #forget(received: number): void {
    while (this.#kept.length > 0 && this.#keptFrom + this.#kept[0]!.length <= received) this.#keptFrom += this.#kept.shift()!.length;
    if (this.#kept.length > 0 && received > this.#keptFrom) {
      this.#kept[0] = this.#kept[0]!.subarray(received - this.#keptFrom);
      this.#keptFrom = received;
    }
  }

  /** Stops taking bytes from the current udx stream (they are counted: the peer resends the rest). */
  #detach(): UdxStream {
    const old = this.#raw;
    this.#gen++;
    clearTimeout(this.#moveTimer);
    return old;
  }

  /** Asks the peer to resume on a new pair (`error`: why the old udx stream failed, if it did). */
  #request(error: Error | undefined): void {
    if (this.#closed || this.#pending !== undefined) return;
    if (this.#host.closed) return this.#fail(error ?? new Error('the peer link closed'));
    const old = this.#detach();
    const raw = this.#host.newRaw();
    const send = (): void => this.#host.sendResume({ kind: LinkResumeKind.Request, target: this.remoteId, raw: raw.id, echo: this.id, received: this.#rx });
    const timer = setInterval(() => {
      if (this.#host.closed) return this.#fail(error ?? new Error('the peer link closed'));
      if (performance.now() > (this.#pending?.deadline ?? 0))
        return this.#fail(error ?? new Error(`no answer to a stream resumption within ${RESUME_DEADLINE_MS} ms`));
      send();
    }, REQUEST_EVERY_MS);
    timer.unref();
    this.#pending = { raw, timer, deadline: performance.now() + RESUME_DEADLINE_MS, error };
    send();
    // the old udx stream stays until the peer answers: destroying it now would tell the peer's
    // old stream to close before the request arrives
    this.#oldRaws.add(old);
  }

  readonly #oldRaws = new Set<UdxStream>();

  #accepted(m: LinkResumeMessage): void {
    const p = this.#pending;
    if (p === undefined || m.echo !== p.raw.id) return;
    clearInterval(p.timer);
    this.#pending = undefined;
    this.#switchTo(p.raw, m.raw, m.received);
  }

  #accept(m: LinkResumeMessage): void {
    const a = this.#answered;
    if (a !== undefined && a.peerRaw === m.raw) {
      this.#host.sendResume({ kind: LinkResumeKind.Accept, target: this.remoteId, raw: a.raw, echo: a.peerRaw, received: a.received });
      return;
    }
    const p = this.#pending;
    if (p !== undefined) {
      // both asked at once: the link's initiator's request stands
      if (this.#host.initiator) return;
      clearInterval(p.timer);
      this.#pending = undefined;
      p.raw.destroy();
    } else this.#oldRaws.add(this.#detach());
    const raw = this.#host.newRaw();
    this.#answered = { peerRaw: m.raw, raw: raw.id, received: this.#rx };
    this.#host.sendResume({ kind: LinkResumeKind.Accept, target: this.remoteId, raw: raw.id, echo: m.raw, received: this.#rx });
    this.#switchTo(raw, m.raw, m.received);
  }

  /** Connects `raw` to the peer's `peerRaw` and writes again what the peer did not receive. */
  #switchTo(raw: UdxStream, peerRaw: number, peerReceived: number): void {
    for (const old of this.#oldRaws) old.destroy();
    this.#oldRaws.clear();
    if (peerReceived < this.#keptFrom || peerReceived > this.#tx) return this.#fail(new Error('the peer received bytes this side no longer has'));
    this.#forget(peerReceived);
    const to = this.#host.route();
    raw.connect(to.socket, peerRaw, to.port, to.host);
    this.#raw = raw;
    this.#attach(raw);
    this.#host.resumed();
    let ok = true;
    for (const b of this.#kept) ok = raw.write(b);
    if (this.#ending) raw.end();
    if (this.#wantDrain && ok) {
      this.#wantDrain = false;
      this.emit('drain');
    }
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#finish();
    this.#raw.destroy();
    this.emit('error', error);
    this.emit('close');
  }

  #finish(): void {
    this.#closed = true;
    this.#gen++;
    clearTimeout(this.#moveTimer);
    if (this.#pending !== undefined) {
      clearInterval(this.#pending.timer);
      this.#pending.raw.destroy();
      this.#pending = undefined;
    }
    for (const old of this.#oldRaws) old.destroy();
    this.#oldRaws.clear();
    this.#kept = [];
  }
}

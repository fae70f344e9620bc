/**
 * PROXY protocol (v2, and v1 text) in front of a stream listener: connections from the
 * configured load balancers must start with a PROXY header, read before anything else (before
 * the TLS handshake when the balancer passes TLS through), within a deadline and a size cap; the
 * client address it carries becomes the connection's ({@link adoptClientAddress}) before the
 * governor counts it. Connections from other sources pass untouched: a PROXY header from them is
 * not understood by the service behind (a TLS handshake or STUN framing error) and closes them.
 */
import type { Socket } from 'node:net';
import { type Cidr, DecodeError, PROXY_HEADER_DEFAULT_MAX, cidrContains, decodeProxyHeader, ipToBytes, parseCidr } from '@nat/protocol';
import { ServerError } from '../errors.js';
import type { Logger } from '../logger.js';
import { adoptClientAddress } from './client-address.js';

/** Where PROXY headers are expected. */
export interface ProxyProtocolOptions {
  /** Sources (CIDRs or addresses) whose connections must start with a PROXY header. */
  readonly from: readonly string[];
  /** The whole header must arrive within this many milliseconds of accept. Default 5,000. */
  readonly timeoutMs?: number;
  /** Largest header accepted, in bytes. Default 1,024. */
  readonly maxBytes?: number;
  /** Most connections waiting for their header at once (every balancer together). Default 1,024. */
  readonly maxPending?: number;
}

/** Counters of a {@link ProxyFront}. */
export interface ProxyFrontStats {
  /** Headers read, whose client address the connection took. */
  accepted: number;
  /** Connections from a balancer closed: no header, a bad one, too slow, or too many waiting. */
  refused: number;
}

/** Reads the PROXY header of connections from trusted sources, then hands every connection on. */
export class ProxyFront {
  readonly stats: ProxyFrontStats = { accepted: 0, refused: 0 };
  readonly #from: readonly Cidr[];
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #maxPending: number;
  readonly #pending = new Set<Socket>();
  readonly #log: Logger;

  /** Throws ServerError BAD_CONFIG naming a source that is not a CIDR or an address. */
  constructor(options: ProxyProtocolOptions, log: Logger) {
    this.#from = options.from.map((text) => {
      try {
        return parseCidr(text);
      } catch (e) {
        throw new ServerError('BAD_CONFIG', `proxyProtocolFrom: ${(e as Error).message}`, { cause: e });
      }
    });
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#maxBytes = options.maxBytes ?? PROXY_HEADER_DEFAULT_MAX;
    this.#maxPending = options.maxPending ?? 1024;
    this.#log = log;
  }

  /** Whether connections from `address` must carry a PROXY header. */
  trusts(address: string): boolean {
    let bytes: Uint8Array;
    try {
      bytes = ipToBytes(address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address);
    } catch {
      return false;
    }
    return this.#from.some((c) => cidrContains(c, bytes));
  }

  /**
   * Hands `raw` to `next` at once, or once its PROXY header was read (closing it when that
   * fails). `next` then gets it paused, with the bytes after the header unshifted: a TLS server
   * wrapping it reads them; a plain service resumes it (`resume` true does that after `next`).
   */
  accept(raw: Socket, next: (raw: Socket) => void, resume: boolean): void {
    const balancer = raw.remoteAddress ?? '';
    if (!this.trusts(balancer)) return next(raw);
    if (this.#pending.size >= this.#maxPending) return this.#refuse(raw, balancer, `${this.#maxPending} connections already wait for their PROXY header`);
    this.#pending.add(raw);
    let held: Buffer = Buffer.alloc(0);
    const finish = (): void => {
      clearTimeout(timer);
      raw.off('data', onData);
      raw.off('close', onClose);
      this.#pending.delete(raw);
    };
    const timer = setTimeout(() => {
      finish();
      this.#refuse(raw, balancer, `no complete PROXY header within ${this.#timeoutMs} ms`);
    }, this.#timeoutMs);
    const onClose = (): void => finish();
    const onData = (chunk: Buffer): void => {
      held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
      let result;
      try {
        result = decodeProxyHeader(held, this.#maxBytes);
      } catch (e) {
        finish();
        return this.#refuse(raw, balancer, e instanceof DecodeError ? e.message : String(e));
      }
      if (result.kind === 'need-more') return;
      finish();
      raw.pause();
      if (result.rest.length > 0) raw.unshift(Buffer.from(result.rest));
      const { header } = result;
      // LOCAL (a health check) and address-less families keep the connection's own address.
      if (header.command === 'proxy' && header.source !== undefined) adoptClientAddress(raw, header.source);
      this.stats.accepted++;
      next(raw);
      if (resume && !raw.destroyed) raw.resume();
    };
    raw.on('data', onData);
    raw.on('close', onClose);
    raw.on('error', () => raw.destroy());
  }

  #refuse(raw: Socket, balancer: string, why: string): void {
    this.stats.refused++;
    this.#log.info({ source: balancer }, `connection closed: ${why} (--proxy-protocol-from lists this source)`);
    raw.destroy();
  }

  /** Closes every connection still waiting for its header (the server is closing). */
  closePending(): void {
    for (const raw of this.#pending) raw.destroy();
    this.#pending.clear();
  }
}

/**
 * `nat expose`'s rendezvous connection, renewable on demand: an ICE restart after the host's
 * address changed must signal through a fresh connection (the old one's TCP connection may have
 * died with the address), while keepRendezvous (session.ts) owns reconnecting.
 */
import type { RendezvousClient } from '@nat/client';

/** How long a renewal waits for keepRendezvous to register again, ms. */
const RENEW_TIMEOUT_MS = 15_000;

/** Hands the connections keepRendezvous registers to the ICE restarts that asked for a new one. */
export class RendezvousRenewal {
  #current: RendezvousClient | undefined;
  #waiters: ((rv: RendezvousClient) => void)[] = [];
  #pending: Promise<RendezvousClient> | undefined;
  #wanted: (() => void)[] = [];

  /** For keepRendezvous's `renewal`: resolves at the next {@link renew}. */
  readonly wanted = (): Promise<void> => new Promise<void>((resolve) => this.#wanted.push(resolve));

  /** keepRendezvous registered `rv` (names claimed): it is the one restarts signal through. */
  registered(rv: RendezvousClient): void {
    this.#current = rv;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w(rv);
  }

  /**
   * For {@link IceConnectionOptions.renewRendezvous}: has keepRendezvous drop the current
   * connection and register again at once, and resolves with the next one; restarts at the same time
   * share one renewal. Rejects when none comes within 15 s (the restart then signals through the
   * old one).
   */
  readonly renew = (): Promise<RendezvousClient> => {
    this.#pending ??= new Promise<RendezvousClient>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no new rendezvous connection within ${RENEW_TIMEOUT_MS} ms`)), RENEW_TIMEOUT_MS);
      timer.unref();
      this.#waiters.push((rv) => {
        clearTimeout(timer);
        resolve(rv);
      });
      const wanted = this.#wanted;
      this.#wanted = [];
      if (wanted.length > 0) for (const w of wanted) w();
      else void this.#current?.close();
    }).finally(() => (this.#pending = undefined));
    return this.#pending;
  };
}

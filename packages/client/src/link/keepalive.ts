import type { PeerLinkOptions } from './types.js';

/**
 * The link's clock: a keepalive after `keepaliveMs` (15 s) without sending, and the link idle
 * after `idleTimeoutMs` (three keepalive intervals, 45 s) without an authentic datagram. Checked
 * at a third of the shorter interval (50 ms to 5 s).
 */
export function keepaliveTimer(
  options: Pick<PeerLinkOptions, 'keepaliveMs' | 'idleTimeoutMs'>,
  link: { lastSent(): number; lastReceived(): number; idle(silentMs: number): void; keepalive(): void },
): NodeJS.Timeout {
  const keepalive = options.keepaliveMs ?? 15_000;
  const idle = options.idleTimeoutMs ?? (keepalive > 0 ? 3 * keepalive : 45_000);
  const tick = Math.max(50, Math.min(keepalive > 0 ? keepalive / 3 : Infinity, idle > 0 ? idle / 3 : Infinity, 5_000));
  const timer = setInterval(() => {
    const now = performance.now();
    if (idle > 0 && now - link.lastReceived() > idle) {
      link.idle(now - link.lastReceived());
      return;
    }
    if (keepalive > 0 && now - link.lastSent() >= keepalive) link.keepalive();
  }, tick);
  timer.unref();
  return timer;
}

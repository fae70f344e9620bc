import type { StunServer } from '@nat/server';

/** A started `nat-server` (one process, a worker, or the primary of `--workers N`). */
export interface RunningServer {
  /** The STUN/TURN server (the primary of several workers: a view of their shared listeners and summed counters). */
  stun: StunServer;
  /** Re-reads the configuration (SIGHUP): resolves to what changed, rejects with why nothing did. */
  reload(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * What an ICE restart (RFC 8445 section 9) of an {@link IceConnection} needs besides the agent:
 * noticing that the host's addresses changed (a new Wi-Fi, a DHCP renewal, a moved laptop), so
 * that the connection gathers new candidates and restarts its checks on the same session
 * instead of letting its path die.
 *
 * Signalling: a restart is a description (`answer`: ufrag, pwd, candidates) with a new ufrag
 * within the session, from either side; the peer restarts its own agent too and answers with its
 * own new description, then both trickle and end their candidates as at the start.
 */

/** Options of {@link watchHostAddresses}. */
export interface HostWatchOptions {
  /** The host's usable addresses now (node:os interfaces). */
  readonly current: () => readonly string[];
  /** Called when the addresses differ from those of the last call (or of the start), and have been stable for one interval. */
  readonly onChange: () => void;
  /** How often the addresses are read, ms. Default 500. */
  readonly intervalMs?: number;
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));

/**
 * Polls the host's addresses (node has no event for this) and calls `onChange` once they differ
 * from those it last acted on (at first, those at the start) and were the same at two reads in a
 * row (an address removed and a new one added a moment later is one change, not two); never
 * while no address is left. An address that cannot be bound does not call it again and again:
 * the comparison is with what the host had, not with what the connection bound. Returns a stop
 * function. The timer does not keep the process alive.
 */
export function watchHostAddresses(options: HostWatchOptions): () => void {
  let acted = options.current();
  let last = acted;
  const timer = setInterval(() => {
    const now = options.current();
    const stable = sameSet(now, last);
    last = now;
    if (!stable || now.length === 0 || sameSet(now, acted)) return;
    acted = now;
    options.onChange();
  }, options.intervalMs ?? 500);
  timer.unref();
  return () => clearInterval(timer);
}

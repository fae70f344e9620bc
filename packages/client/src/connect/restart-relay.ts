/**
 * An ICE restart's TURN relay: a restart after the path died may be because the relay died (the
 * TURN server restarted and forgot the allocation, or is gone). The relayed candidates of a dead
 * allocation can carry nothing, so the restart asks the allocation whether it still exists and,
 * when it does not, allocates anew and signals the new relayed candidates.
 */
import type { StunClientError } from '../errors.js';
import type { TurnClient } from '../turn/client.js';

/** How long the allocation has to answer the probe, ms. */
export const RELAY_PROBE_MS = 2000;

/** What {@link renewRelay} needs of its connection. */
export interface RelayRenewal {
  /** The allocation in use, if any. */
  current(): TurnClient | undefined;
  /** A new allocation from the configured TURN servers, or undefined when none was granted. */
  allocate(): Promise<TurnClient | undefined>;
  /** Uses `turn` instead of the current allocation: its relayed candidates are added and trickled. */
  use(turn: TurnClient): void;
}

/**
 * Whether `turn` still has its allocation: a CreatePermission toward the server's own address
 * (any peer does) gets an answer other than 437 (Allocation Mismatch) within {@link RELAY_PROBE_MS}.
 * A refusal such as 403 (a peer the server does not relay to) still proves the allocation.
 */
export async function relayAlive(turn: TurnClient): Promise<boolean> {
  if (turn.state === 'closed' || turn.state === 'failed') return false;
  try {
    await turn.createPermission(turn.serverAddress.address, { signal: AbortSignal.timeout(RELAY_PROBE_MS) });
    return true;
  } catch (e) {
    const code = (e as StunClientError).stunErrorCode;
    return code !== undefined && code !== 437;
  }
}

/**
 * When the connection had an allocation and it is gone, closes it and uses a new one (whose
 * relayed candidates the caller trickles before its end-of-candidates). Nothing when there was
 * no allocation (relaying off, or none granted) or it still exists.
 */
export async function renewRelay(r: RelayRenewal): Promise<void> {
  const turn = r.current();
  if (turn === undefined || (await relayAlive(turn))) return;
  void turn.close().catch(() => {});
  const next = await r.allocate();
  if (next !== undefined) r.use(next);
}

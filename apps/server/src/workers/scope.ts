/**
 * The anonymous tier's relay scope across processes: the rendezvous (in the primary) writes it,
 * every worker's TURN reads it. Each process keeps a {@link MemoryRelayScope}; a write is applied
 * where it happens and sent on (worker -> primary -> the other workers), so a lookup stays a
 * local read with no IPC on the request's path.
 */
import { MemoryRelayScope, type RelayScope, type ScopeKind } from '@nat/server';
import type { ScopeEntry } from './ipc.js';

export class SyncedRelayScope implements RelayScope {
  readonly #local = new MemoryRelayScope();
  readonly #onAdd: (entry: ScopeEntry) => void;

  constructor(onAdd: (entry: ScopeEntry) => void) {
    this.#onAdd = onAdd;
  }

  add(peer: string, ip: string, kind: ScopeKind, now: number): void {
    this.#local.add(peer, ip, kind, now);
    this.#onAdd({ peer, ip, kind, now });
  }

  lookup(peer: string, ip: string, now: number): ScopeKind | undefined {
    return this.#local.lookup(peer, ip, now);
  }

  /** A write made in another process. */
  apply(entry: ScopeEntry): void {
    this.#local.add(entry.peer, entry.ip, entry.kind, entry.now);
  }
}

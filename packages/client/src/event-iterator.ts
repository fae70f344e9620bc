/** Options of {@link eventIterator}. */
export interface EventIteratorInit<T> {
  /**
   * Starts listening: call `push` for each item and `end` when the source ends; return a function
   * that stops listening.
   */
  readonly subscribe: (push: (item: T) => void, end: () => void) => () => void;
  /** The source has already ended: the iterator finishes at once. */
  readonly ended?: boolean;
  /** Ends the iteration. */
  readonly signal?: AbortSignal;
  /** Items held for a slow reader; beyond this the newest are dropped. Default 1024. */
  readonly bufferSize?: number;
}

/**
 * An async iterator over an event source, shared by the clients' `messages()`: bounded buffer,
 * ends with the source or the signal, and `return()` (a `break` in for-await) unsubscribes.
 */
export function eventIterator<T>(init: EventIteratorInit<T>): AsyncIterableIterator<T> {
  const max = init.bufferSize ?? 1024;
  const buffer: T[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  let unsubscribe: (() => void) | undefined;
  const finish = (): void => {
    if (done) return;
    done = true;
    unsubscribe?.();
    init.signal?.removeEventListener('abort', finish);
    wake?.();
  };
  unsubscribe = init.subscribe((item) => {
    if (done) return;
    if (buffer.length < max) buffer.push(item);
    wake?.();
  }, finish);
  init.signal?.addEventListener('abort', finish, { once: true });
  if (init.signal?.aborted || init.ended) finish();
  const iterator: AsyncIterableIterator<T> = {
    next: async (): Promise<IteratorResult<T>> => {
      for (;;) {
        const item = buffer.shift();
        if (item !== undefined) return { value: item, done: false };
        if (done) return { value: undefined, done: true };
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    },
    return: async (): Promise<IteratorResult<T>> => {
      finish();
      buffer.length = 0;
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}

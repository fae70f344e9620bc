/**
 * The heartbeat of a rendezvous connection: a ping (a WebSocket ping frame) every interval, and
 * the connection declared dead when nothing at all (the `pong`, or any other message) came back
 * within the deadline; a ping answered before the next interval is followed by the next one on
 * time. A node that was SIGKILLed closes its TCP connections at once, but one
 * whose machine vanished, or that is stopped, sends nothing: only a deadline notices it.
 */
export class PingDeadline {
  readonly #interval: NodeJS.Timeout;
  #deadline: NodeJS.Timeout | undefined;
  #heardAt = performance.now();
  #sentAt = 0;
  #stopped = false;

  /**
   * Pings every `intervalMs` (one at a time); `send` sends one ping (it may throw
   * when the socket is closing: that round is skipped), `dead` is called once, when no message
   * arrived within `timeoutMs` of a ping.
   */
  constructor(intervalMs: number, timeoutMs: number, send: () => void, dead: (silentMs: number) => void) {
    const round = (): void => {
      if (this.#deadline !== undefined) {
        if (this.#heardAt < this.#sentAt) return; // the previous ping still has time
        clearTimeout(this.#deadline); // answered: its verdict is moot
        this.#deadline = undefined;
      }
      const sentAt = performance.now();
      this.#sentAt = sentAt;
      try {
        send();
      } catch {
        return;
      }
      // The verdict waits for setImmediate: after a stall of this process (a busy machine, a
      // laptop waking up) timers run before the socket is read, and a pong already received
      // must count.
      this.#deadline = setTimeout(
        () =>
          setImmediate(() => {
            this.#deadline = undefined;
            if (this.#stopped || this.#heardAt >= sentAt) return;
            this.stop();
            dead(Math.round(performance.now() - this.#heardAt));
          }),
        timeoutMs,
      );
      this.#deadline.unref();
    };
    this.#interval = setInterval(round, intervalMs);
    this.#interval.unref();
  }

  /** Something came from the server: it is alive. */
  heard(): void {
    this.#heardAt = performance.now();
  }

  /** Stops the timers (the connection closed). Idempotent. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#interval);
    clearTimeout(this.#deadline);
    this.#deadline = undefined;
  }
}

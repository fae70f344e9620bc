/**
 * The one timer a driver keeps for its sans-I/O core: armed for the time the core's
 * `pollTimeout()` names, re-armed only when that time changes, disarmed with `undefined`.
 * Used by the STUN transaction runner, the TURN client, the ICE connection and the puncher.
 */
export class WakeTimer {
  readonly #onWake: () => void;
  readonly #clock: () => number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #at: number | undefined;

  /** `onWake` runs when the armed time comes; `clock` is the core's clock in milliseconds. */
  constructor(onWake: () => void, clock: () => number) {
    this.#onWake = onWake;
    this.#clock = clock;
  }

  /** Arms the timer for `at` (on the clock), or disarms it when `at` is undefined. */
  set(at: number | undefined): void {
    if (at === undefined) return this.cancel();
    if (this.#timer !== undefined && at === this.#at) return;
    clearTimeout(this.#timer);
    this.#at = at;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#at = undefined;
        this.#onWake();
      },
      Math.max(0, Math.ceil(at - this.#clock())),
    );
  }

  /** Disarms the timer. */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = undefined;
  }
}

import { MuxFlag, type MuxHeader, MuxType } from '@nat/protocol';

/** What a control connection may send before it authenticated. */
export interface PreAuthBounds {
  /** Frames in all. */
  readonly frames: number;
  /** Payload bytes of Data frames in all. */
  readonly bytes: number;
}

/**
 * The frame filter of one expose control connection (a {@link MuxSession} `admit` hook),
 * sans-I/O. Before authentication only what authenticating needs passes: one stream opened by the
 * client (the control stream), Data and Window Update frames on it, pings and Go Away, within
 * `bounds` (frames and Data bytes). After authentication everything passes except a second
 * stream opened by the client: a client opens only the control stream (the server opens the
 * others, one per inbound public connection).
 */
export class ControlFrameGate {
  readonly #bounds: PreAuthBounds;
  #control: number | undefined;
  #frames = 0;
  #bytes = 0;
  authenticated = false;
  /** Why the last refused frame was refused. */
  reason = '';

  constructor(bounds: PreAuthBounds) {
    this.#bounds = bounds;
  }

  admit(h: MuxHeader): boolean {
    const syn = (h.type === MuxType.Data || h.type === MuxType.WindowUpdate) && (h.flags & MuxFlag.SYN) !== 0;
    if (syn) {
      if (this.#control !== undefined) return this.#refuse('a client opens only the control stream');
      this.#control = h.streamId;
    }
    if (this.authenticated) return true;
    if (++this.#frames > this.#bounds.frames) return this.#refuse(`more than ${this.#bounds.frames} frames before authenticating`);
    if (h.type === MuxType.Data || h.type === MuxType.WindowUpdate) {
      if (h.streamId !== this.#control) return this.#refuse('a frame for a stream other than the control stream before authenticating');
      if (h.type === MuxType.Data && (this.#bytes += h.length) > this.#bounds.bytes)
        return this.#refuse(`more than ${this.#bounds.bytes} bytes before authenticating`);
    }
    return true;
  }

  #refuse(reason: string): false {
    this.reason = reason;
    return false;
  }
}

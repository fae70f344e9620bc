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
 * `bounds` (frames and Data bytes). After authentication everything passes: further streams the
 * client opens are outbound requests, which the service answers (and refuses unless its user may
 * open outbound connections); the server opens one stream per inbound public connection.
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
      if (this.#control === undefined) this.#control = h.streamId;
      else if (!this.authenticated) return this.#refuse('a client opens only the control stream before authenticating');
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

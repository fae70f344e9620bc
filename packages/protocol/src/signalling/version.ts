/**
 * The version of the rendezvous signalling protocol this package speaks. Every message carries
 * it as `v`. A future version 2 is added as a second union of message schemas next to the
 * version 1 union, and `parseSignallingMessage` picks the union by `v` before it looks at
 * `type`; until then any other `v` is answered with the error code `version-unsupported`.
 */
export const SIGNALLING_VERSION = 1;

/** The type of {@link SIGNALLING_VERSION}: the literal 1. */
export type SignallingVersion = typeof SIGNALLING_VERSION;

/** Every signalling version this package can parse, oldest first. */
export const SUPPORTED_SIGNALLING_VERSIONS: readonly number[] = [SIGNALLING_VERSION];

/**
 * The largest signalling message, in UTF-8 bytes of its JSON text, that
 * `decodeSignallingMessage` accepts by default and that `encodeSignallingMessage` produces:
 * 64 KiB. The schemas' own bounds keep every valid message well below it.
 */
export const MAX_SIGNALLING_MESSAGE_BYTES = 64 * 1024;

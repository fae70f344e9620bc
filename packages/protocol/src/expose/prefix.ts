/** What {@link readStreamPrefix} needs of a readable stream (a node:stream Readable or Duplex has it). */
export interface PrefixReadable {
  read(): unknown;
  unshift(chunk: Uint8Array): void;
  on(event: 'readable' | 'end' | 'error' | 'close', listener: () => void): unknown;
  off(event: 'readable' | 'end' | 'error' | 'close', listener: () => void): unknown;
}

/** Why {@link readStreamPrefix} gave up. */
export class StreamPrefixError extends Error {
  override readonly name = 'StreamPrefixError';
  constructor(
    readonly code: 'ENDED' | 'TOO_LONG' | 'BAD_PREFIX',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Reads a decodable prefix (a request, a reply, a preamble) from the start of a stream without
 * switching it to flowing mode: `decode` gets the bytes so far and returns the value and how many
 * bytes it took, or undefined while more are needed; bytes after the prefix are put back
 * (`unshift`) for whoever reads the stream next. Rejects with StreamPrefixError: the stream ended
 * or failed first (ENDED), more than `max` bytes without a complete prefix (TOO_LONG), or `decode`
 * threw (BAD_PREFIX, the error as `cause`).
 */
export function readStreamPrefix<T>(stream: PrefixReadable, decode: (bytes: Uint8Array) => { value: T; length: number } | undefined, max: number): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const fail = (e: StreamPrefixError): void => {
      cleanup();
      reject(e);
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = stream.read() as Buffer | null) !== null) {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        let got: { value: T; length: number } | undefined;
        try {
          got = decode(buf);
        } catch (e) {
          return fail(new StreamPrefixError('BAD_PREFIX', (e as Error).message, { cause: e }));
        }
        if (got !== undefined) {
          cleanup();
          if (got.length < buf.length) stream.unshift(buf.subarray(got.length));
          resolve(got.value);
          return;
        }
        if (buf.length > max) return fail(new StreamPrefixError('TOO_LONG', `no complete prefix in ${buf.length} bytes (at most ${max})`));
      }
    };
    const onEnd = (): void => fail(new StreamPrefixError('ENDED', 'the stream ended before its first message was complete'));
    const cleanup = (): void => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onEnd);
      stream.off('close', onEnd);
    };
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('error', onEnd);
    stream.on('close', onEnd);
  });
}

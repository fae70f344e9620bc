/** The base class of every error @nat/redis throws. */
export class RedisStateError extends Error {
  override name = 'RedisStateError';
  /** A stable machine-readable code. */
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** Redis did not answer (not reachable, or a command timed out). */
export class RedisUnavailableError extends RedisStateError {
  override name = 'RedisUnavailableError';
  constructor(message: string, options?: ErrorOptions) {
    super('REDIS_UNAVAILABLE', message, options);
  }
}

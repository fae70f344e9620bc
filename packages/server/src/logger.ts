/**
 * The logging interface the server roles accept: pino's method shape (`logger.info(obj, msg)`),
 * so a pino logger can be passed as is. The default logs nothing. No role logs a secret, and
 * nothing is logged per packet above debug level.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = (): void => {};
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/** Exit codes of `nat`: scripts can rely on them. */
export const ExitCode = {
  /** The command did what was asked (for `detect`: a report was made). */
  Ok: 0,
  /** Something failed that is not the network's answer (a bug, a socket that cannot be bound). */
  Failure: 1,
  /** Bad flags or arguments: see `nat --help`. */
  Usage: 2,
  /** No server answered (for `detect`: no UDP test got an answer; the verdict is udp-blocked when STUN over TCP to the same port answers, none when nothing answers at all). */
  NoAnswer: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A problem with what the user typed; exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

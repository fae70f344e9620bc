import { UsageError } from './exit-codes.js';

/**
 * Splits `NAME:PASSWORD` as `--user`, `NAT_EXPOSE_USER` and the `user` key of a config file
 * take it. A TURN REST API username is `EXPIRY:USER` (what `nat turn credentials` prints), so
 * when the part before the first colon is all digits and another colon follows, the split is at
 * the last colon (a REST password is base64, which has no colon); otherwise at the first colon
 * (a static password may hold colons). `what` names the source in the error (e.g. `--user`).
 */
export function parseUser(text: string, what: string): { username: string; password: string } {
  const first = text.indexOf(':');
  const last = text.lastIndexOf(':');
  const rest = first > 0 && last > first && /^\d+$/.test(text.slice(0, first));
  const i = rest ? last : first;
  if (i <= 0 || i === text.length - 1) {
    throw new UsageError(
      `${what}: expected NAME:PASSWORD (or EXPIRY:USER:PASSWORD, the username and password \`nat turn credentials\` prints, joined by a colon)`,
    );
  }
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

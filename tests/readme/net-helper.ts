/**
 * Runs inside the README test's private network namespace (`ip netns exec NS node --import tsx
 * net-helper.ts`) and does the test's own networking there: the echo services the READMEs
 * expose and the checks that reach them. Requests and answers are JSON lines on stdin/stdout:
 * `{id, op, args}` -> `{id, value}` or `{id, error}`; payloads are base64.
 */
import { createInterface } from 'node:readline';
import { echoServices, tcpOpen, tcpRoundTrip, udpRoundTrip } from './processes.js';

const services = echoServices();
type Args = [string, number, string?, string?];
const ops: Record<string, (a: Args) => Promise<unknown>> = {
  tcpEcho: ([host, port]) => services.tcp(host, port),
  udpEcho: ([host, port]) => services.udp(host, port),
  tcpOpen: ([host, port]) => tcpOpen(host, port),
  tcpRoundTrip: async ([host, port, data]) => (await tcpRoundTrip(host, port, Buffer.from(data!, 'base64')))?.toString('base64') ?? null,
  udpRoundTrip: async ([host, port, data, from]) => (await udpRoundTrip(from!, host, port, Buffer.from(data!, 'base64')))?.toString('base64') ?? null,
  closeAll: () => services.closeAll(),
};

createInterface({ input: process.stdin }).on('line', (line) => {
  const { id, op, args } = JSON.parse(line) as { id: number; op: string; args: Args };
  const f = ops[op];
  const answer = (o: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify({ id, ...o })}\n`);
  if (f === undefined) return answer({ error: `unknown op ${op}` });
  f(args).then(
    (value) => answer({ value: value ?? null }),
    (e: unknown) => answer({ error: (e as Error).message }),
  );
});
process.stdin.on('end', () => void services.closeAll().then(() => process.exit(0)));
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

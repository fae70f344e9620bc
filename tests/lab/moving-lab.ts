/**
 * Helpers of the moving-peer lab (moving.test.ts): a paced TCP tool that reports exactly how a
 * transfer ended (clean end of stream, or an error such as ECONNRESET) with the SHA-256 of what
 * was sent and received, and a host move (a new LAN address and default route, as after a
 * Wi-Fi or DHCP change).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PairLab } from './pair.js';

/**
 * A plain Node TCP tool (no build step), written into the lab's temporary directory:
 *
 *     node moving-tool.mjs source PORT BYTES RATE   a service: each connection gets BYTES random bytes
 *                                                   at about RATE bytes/s, then an end; prints
 *                                                   {"event":"sent","bytes","sha256","end"} per connection
 *     node moving-tool.mjs sink PORT                a service: reads each connection to its end;
 *                                                   prints {"event":"received","received","sha256","end","code"}
 *     node moving-tool.mjs read PORT                one connection to 127.0.0.1:PORT read to its end (same line)
 *     node moving-tool.mjs write PORT BYTES RATE    one connection sending BYTES at RATE, then an end (a "sent" line)
 *
 * `end` is "eof" for a clean end of stream, "error" otherwise (`code`: the error's code, e.g. ECONNRESET).
 */
const TOOL = String.raw`
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
const [mode, portText, bytesText, rateText] = process.argv.slice(2);
const port = Number(portText);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const paced = (s, bytes, rate, done) => {
  const h = createHash('sha256');
  let sent = 0;
  const tick = 20;
  const per = Math.max(1, Math.round((rate * tick) / 1000));
  const timer = setInterval(() => {
    if (s.destroyed) return;
    if (s.writableLength > 1 << 20) return;
    const n = Math.min(per, bytes - sent);
    if (n > 0) {
      const c = randomBytes(n);
      h.update(c);
      sent += n;
      s.write(c);
    }
    if (sent >= bytes) {
      clearInterval(timer);
      s.end();
    }
  }, tick);
  let reported = false;
  const report = (end, code) => {
    if (reported) return;
    reported = true;
    clearInterval(timer);
    out({ event: 'sent', bytes: sent, sha256: h.digest('hex'), end, ...(code ? { code } : {}) });
    done();
  };
  s.on('error', (e) => report('error', e.code ?? e.message));
  s.on('close', () => report(sent >= bytes ? 'eof' : 'error', sent >= bytes ? undefined : 'closed'));
};
const reader = (s, done) => {
  const h = createHash('sha256');
  let received = 0;
  let reported = false;
  const report = (end, code) => {
    if (reported) return;
    reported = true;
    out({ event: 'received', received, sha256: h.digest('hex'), end, ...(code ? { code } : {}) });
    done();
  };
  s.on('data', (d) => {
    received += d.length;
    h.update(d);
  });
  s.on('end', () => {
    report('eof');
    s.end();
  });
  s.on('error', (e) => report('error', e.code ?? e.message));
  s.on('close', () => report('error', 'closed'));
};
if (mode === 'source' || mode === 'sink') {
  createServer({ allowHalfOpen: true }, (s) => (mode === 'source' ? paced(s, Number(bytesText), Number(rateText), () => {}) : reader(s, () => {}))).listen(
    port,
    '127.0.0.1',
    () => process.stdout.write('serving ' + port + '\n'),
  );
} else if (mode === 'read') {
  const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  reader(s, () => process.exit(0));
} else if (mode === 'write') {
  const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  s.on('connect', () => paced(s, Number(bytesText), Number(rateText), () => process.exit(0)));
  s.on('data', () => {});
} else {
  process.stderr.write('usage: moving-tool.mjs source PORT BYTES RATE | sink PORT | read PORT | write PORT BYTES RATE\n');
  process.exit(2);
}
`;

/** Writes the tool into the lab's temporary directory; returns its path. */
export function writeMovingTool(lab: PairLab): string {
  const file = join(lab.tmpDir, 'moving-tool.mjs');
  writeFileSync(file, TOOL);
  return file;
}

/** One line of the tool: how a transfer ended. */
export interface TransferReport {
  readonly event: 'sent' | 'received';
  readonly bytes?: number;
  readonly received?: number;
  readonly sha256: string;
  readonly end: 'eof' | 'error';
  readonly code?: string;
}

/** The tool's JSON lines in `text`. */
export function transferReports(text: string): TransferReport[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{"event":'))
    .map((l) => JSON.parse(l) as TransferReport);
}

/**
 * Moves the client of side `which` of a pair lab to a new address on its LAN: the old address is
 * removed, the new one added and the default route set again (as after a DHCP or Wi-Fi change).
 * The router's recipe must not depend on the host's address (port-restricted cone and symmetric
 * do not).
 */
export async function moveClient(lab: PairLab, which: 'a' | 'b', newAddress: string, prefix = 24): Promise<void> {
  const side = lab[which];
  await lab.exec(which === 'a' ? 'clientA' : 'clientB', ['ip', '-batch', '-'], {
    input: `addr del ${side.client.lanAddress}/${prefix} dev eth0\naddr add ${newAddress}/${prefix} dev eth0\nroute replace default via ${side.router.lan}\n`,
    check: true,
  });
}

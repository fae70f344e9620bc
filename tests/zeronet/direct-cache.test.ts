/**
 * The fetching side's bookkeeping of the plugin (integrations/zeronet/NatTraversal/Direct.py),
 * run by Debian's python3 with gevent but without ZeroNet: the owner cache is bounded and its
 * entries expire (negative answers too); `nat owner --json` output is read as the CLI prints it;
 * one lookup answers every connection to a port until it expires, and a failed lookup is kept
 * for a short while instead of being retried on every connection. The `nat` command is the real
 * CLI for the output format; the spawn counting uses a stand-in script that records each call.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { NAT_CLI, PYTHON } from './zeronet.js';

const PLUGIN_DIR = fileURLToPath(new URL('../../integrations/zeronet/NatTraversal', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'nat-zn-direct-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function py(code: string, ...args: string[]): unknown {
  const out = execFileSync(PYTHON, ['-c', `import json, sys\nsys.path.insert(0, sys.argv[1])\nimport Direct\n${code}`, PLUGIN_DIR, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' }, // no __pycache__ in the plugin's folder
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}

describe("the plugin's owner cache and lookups (fetching side)", () => {
  test('the cache is bounded (the oldest entry goes) and entries expire, negative ones included', () => {
    const got = py(`
now = [1000.0]
c = Direct.TtlCache(3, clock=lambda: now[0])
for port in (1, 2, 3, 4):
    c.put(port, None if port == 3 else "peer%d" % port, 60)
full = [c.get(p) for p in (1, 2, 3, 4)]
c.put(5, None, 10)
now[0] += 11
later = [c.get(p) for p in (2, 3, 4, 5)]
print(json.dumps({"full": full, "later": later, "size": len(c.entries)}))
`);
    expect(got).toEqual({
      full: [
        [false, null],
        [true, 'peer2'],
        [true, null],
        [true, 'peer4'],
      ],
      later: [
        [false, null], // pushed out by 5 (the cache holds 3)
        [true, null],
        [true, 'peer4'],
        [false, null], // expired after its 10 s
      ],
      size: 2,
    });
  });

  test("reads nat owner's JSON: the owner, not advertised, failed", () => {
    // What the real CLI prints when it cannot reach the server (no server on that port).
    const failed = (() => {
      try {
        return execFileSync(process.execPath, [NAT_CLI, 'owner', '15441', '--rendezvous', 'ws://127.0.0.1:9/', '--json'], {
          encoding: 'utf8',
          timeout: 30_000,
        });
      } catch (e) {
        return (e as { stdout: string }).stdout;
      }
    })();
    expect(JSON.parse(failed)).toMatchObject({ event: 'failed' });
    const owner = JSON.stringify({ event: 'owner', transport: 'tcp', port: 15441, address: '203.0.113.1:15441', peer: 'bev2jvhxckwcov4gl4oyhv3y35hq3tlu' });
    const none = JSON.stringify({ event: 'not-advertised', transport: 'tcp', port: 15441 });
    const got = py(
      `
out = []
for text in sys.argv[2:]:
    try:
        out.append(Direct.parseOwner(text))
    except ValueError as err:
        out.append("error: %s" % err)
print(json.dumps(out))
`,
      owner,
      none,
      failed,
      'not json',
    );
    expect(got).toEqual(['bev2jvhxckwcov4gl4oyhv3y35hq3tlu', null, expect.stringMatching(/^error: /), 'error: no answer']);
  });

  test('one lookup per port while the answer lives; other addresses are never looked up', () => {
    const calls = join(dir, 'calls');
    const stub = join(dir, 'nat-stub.sh');
    // Records its arguments; port 15442 has an owner, the others none.
    writeFileSync(
      stub,
      `#!/bin/sh\necho "$*" >> ${calls}\nif [ "$2" = 15442 ]; then echo '{"event":"owner","port":15442,"peer":"bev2jvhxckwcov4gl4oyhv3y35hq3tlu"}'; else echo '{"event":"not-advertised"}'; exit 1; fi\n`,
    );
    chmodSync(stub, 0o755);
    const got = py(
      `
r = Direct.DirectRouter([sys.argv[2]], "ws://203.0.113.1:8443/", sys.argv[3], ["203.0.113.1"])
owners = [r.ownerOf(p) for p in (15442, 15443, 15442, 15443)]
other = r.route("198.51.100.7", 15442)
print(json.dumps({"owners": owners, "other": other}))
`,
      stub,
      dir,
    );
    expect(got).toEqual({ owners: ['bev2jvhxckwcov4gl4oyhv3y35hq3tlu', null, 'bev2jvhxckwcov4gl4oyhv3y35hq3tlu', null], other: null });
    expect(readFileSync(calls, 'utf8').trim().split('\n')).toEqual([
      'owner 15442 --rendezvous ws://203.0.113.1:8443/ --json',
      'owner 15443 --rendezvous ws://203.0.113.1:8443/ --json',
    ]);
  });
});

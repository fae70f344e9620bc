/**
 * The lab's own life cycle: topology, exec/spawn, timeouts, destroy (twice), and cleanup when
 * the owner forgets to destroy (exit handler) or dies (sweepStaleLabs).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createLab, labAvailable, listLabNamespaces, processRunning as pidAlive, sweepStaleLabs, type Lab } from './index.js';

const avail = labAvailable();
if (!avail.ok) console.warn(`[lab] namespace tests skipped: ${avail.reason}`);

const here = dirname(fileURLToPath(import.meta.url));

/** Runs a small ESM script (through tsx, so it can import the lab's .ts) and returns its output. */
function runChild(
  body: string,
  onLine: (line: string, kill: () => void) => void = () => {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'natlab-child-'));
  const file = join(dir, 'child.mts');
  const netns = pathToFileURL(join(here, 'netns.ts')).href;
  writeFileSync(file, `import { createLab } from ${JSON.stringify(netns)};\n${body}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: here, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      for (const line of d.split('\n').filter(Boolean)) onLine(line, () => child.kill('SIGKILL'));
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, signal, out });
    });
  });
}

describe.skipIf(!avail.ok)('network namespace lab', () => {
  const labs: Lab[] = [];
  afterAll(async () => {
    await Promise.all(labs.map((l) => l.destroy()));
  });

  it('builds server, router and client hosts with the documented addresses', async () => {
    const lab = await createLab({ behaviour: 'port-restricted-cone', name: 'topo' });
    labs.push(lab);
    expect(listLabNamespaces()).toEqual(expect.arrayContaining([...lab.namespaces]));
    expect(lab.namespaces.every((n) => n.startsWith(`natlab-${process.pid}-`))).toBe(true);

    const addrs = async (ns: string): Promise<string[]> => {
      const r = await lab.exec(ns, ['ip', '-4', '-o', 'addr', 'show'], { check: true });
      return [...r.stdout.matchAll(/inet (\S+)/g)].map((m) => m[1] as string).filter((a) => !a.startsWith('127.'));
    };
    expect((await addrs('server')).sort()).toEqual(['203.0.113.1/24', '203.0.113.2/24']);
    expect((await addrs('router')).sort()).toEqual(['198.18.0.1/24', '203.0.113.254/24']);
    expect(await addrs(lab.client.ns)).toEqual(['198.18.0.2/24']);

    const route = await lab.exec('client', ['ip', 'route', 'show', 'default'], { check: true });
    expect(route.stdout).toMatch(/^default via 198\.18\.0\.1 dev eth0/);
    // The router has no default route: nothing can leave the lab's networks.
    expect((await lab.exec('router', ['ip', 'route', 'show', 'default'], { check: true })).stdout).toBe('');
    const fwd = await lab.exec('router', ['sysctl', '-n', 'net.ipv4.ip_forward'], { check: true });
    expect(fwd.stdout.trim()).toBe('1');
    const rules = await lab.exec('router', ['nft', 'list', 'table', 'inet', 'natlab'], { check: true });
    expect(rules.stdout).toContain('snat ip to 203.0.113.254');
    // Every interface name fits IFNAMSIZ.
    for (const ns of lab.namespaces) {
      const links = await lab.exec(ns, ['ip', '-o', 'link', 'show'], { check: true });
      for (const m of links.stdout.matchAll(/^\d+: ([^:@]+)/gm)) expect((m[1] as string).length).toBeLessThanOrEqual(15);
    }
  });

  it('gives the client a routed public address in the open behaviours', async () => {
    const lab = await createLab({ behaviour: 'symmetric-udp-firewall' });
    labs.push(lab);
    expect(lab.client.address).toBe('198.51.100.2');
    expect(lab.publicAddress).toBe('198.51.100.2');
    const route = await lab.exec('client', ['ip', 'route', 'show', 'default'], { check: true });
    expect(route.stdout).toMatch(/^default via 198\.51\.100\.1 dev eth0 src 198\.51\.100\.2/);
    const back = await lab.exec('server', ['ip', 'route', 'show', '198.51.100.0/24'], { check: true });
    expect(back.stdout).toMatch(/via 203\.0\.113\.254/);
    const rules = await lab.exec('router', ['nft', 'list', 'table', 'inet', 'natlab'], { check: true });
    expect(rules.stdout).not.toContain('snat');
    expect(rules.stdout).toContain('policy drop');
  });

  it('exec: role or name, timeouts, exit codes, refuses foreign namespaces', async () => {
    const lab = await createLab({ behaviour: 'open' });
    labs.push(lab);
    const ok = await lab.exec('client', ['sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(ok).toMatchObject({ stdout: 'out\n', stderr: 'err\n', code: 3, timedOut: false });
    const t0 = Date.now();
    const slow = await lab.exec(lab.router.ns, ['sleep', '10'], { timeoutMs: 300 });
    expect(slow.timedOut).toBe(true);
    expect(Date.now() - t0).toBeLessThan(3000);
    await expect(lab.exec('client', ['false'], { check: true })).rejects.toThrow(/exit 1/);
    const input = await lab.exec('server', ['cat'], { input: 'hello' });
    expect(input.stdout).toBe('hello');
    await expect(lab.exec('some-other-namespace', ['true'])).rejects.toThrow(/not a namespace of lab/);
  });

  it('destroy kills spawned daemons, removes every namespace, and is safe twice', async () => {
    const lab = await createLab({ behaviour: 'full-cone' });
    const daemon = lab.spawn('server', ['sleep', '300']);
    await new Promise((r) => setTimeout(r, 100));
    expect(pidAlive(daemon.pid)).toBe(true);
    const pids = await lab.exec('server', ['ip', 'netns', 'identify', String(daemon.pid)]);
    expect(pids.stdout.trim()).toBe(lab.server.ns);
    await Promise.all([lab.destroy(), lab.destroy()]);
    await lab.destroy();
    expect(lab.destroyed).toBe(true);
    expect(daemon.hasExited()).toBe(true);
    expect(pidAlive(daemon.pid)).toBe(false);
    const left = new Set(listLabNamespaces());
    for (const ns of lab.namespaces) expect(left.has(ns)).toBe(false);
    await expect(lab.exec('client', ['true'])).rejects.toThrow(/destroyed/);
  });

  it('labs built concurrently get distinct namespaces', async () => {
    const two = await Promise.all([createLab({ behaviour: 'symmetric' }), createLab({ behaviour: 'symmetric' })]);
    labs.push(...two);
    const [a, b] = two as [Lab, Lab];
    expect(a.id).not.toBe(b.id);
    expect(new Set([...a.namespaces, ...b.namespaces]).size).toBe(6);
  });

  it('flushMappings empties conntrack and the cone sets', async () => {
    const lab = await createLab({ behaviour: 'restricted-cone' });
    labs.push(lab);
    // One UDP datagram from the client to the server creates a mapping and a filter entry.
    await lab.exec('client', ['bash', '-c', 'echo x > /dev/udp/203.0.113.1/9'], { check: true });
    const before = await lab.exec('router', ['nft', 'list', 'set', 'inet', 'natlab', 'adf_allow'], { check: true });
    expect(before.stdout).toContain('203.0.113.1 . ');
    await lab.flushMappings();
    const after = await lab.exec('router', ['nft', 'list', 'set', 'inet', 'natlab', 'adf_allow'], { check: true });
    expect(after.stdout).not.toContain('203.0.113.1 . ');
    const ct = await lab.exec('router', ['conntrack', '-L', '-p', 'udp']);
    expect(ct.stdout).not.toContain('dst=203.0.113.1');
  });

  it('the exit handler removes a lab its owner never destroyed', async () => {
    let names: string[] = [];
    let sleeper = 0;
    const r = await runChild(
      `const lab = await createLab({ behaviour: 'symmetric' });
       const d = lab.spawn('client', ['sleep', '300']);
       await new Promise((res) => setTimeout(res, 100));
       console.log('NAMES ' + lab.namespaces.join(' ') + ' PID ' + d.pid);
       process.exit(0);`,
      (line) => {
        const m = /^NAMES (.*) PID (\d+)$/.exec(line);
        if (m) {
          names = (m[1] as string).split(' ');
          sleeper = Number(m[2]);
        }
      },
    );
    expect(r.code, r.out).toBe(0);
    expect(names).toHaveLength(3);
    const left = new Set(listLabNamespaces());
    for (const ns of names) expect(left.has(ns)).toBe(false);
    expect(pidAlive(sleeper)).toBe(false);
  }, 30_000);

  it('sweepStaleLabs removes the lab of an owner killed with SIGKILL (and its daemons die with it)', async () => {
    let names: string[] = [];
    let sleeper = 0;
    const r = await runChild(
      `const lab = await createLab({ behaviour: 'full-cone' });
       const d = lab.spawn('server', ['sleep', '300']);
       await new Promise((res) => setTimeout(res, 100));
       console.log('NAMES ' + lab.namespaces.join(' ') + ' PID ' + d.pid);
       await new Promise((res) => setTimeout(res, 60_000));`,
      (line, kill) => {
        const m = /^NAMES (.*) PID (\d+)$/.exec(line);
        if (m) {
          names = (m[1] as string).split(' ');
          sleeper = Number(m[2]);
          kill();
        }
      },
    );
    expect(r.signal, r.out).toBe('SIGKILL');
    expect(names).toHaveLength(3);
    for (const ns of names) expect(listLabNamespaces()).toContain(ns);
    // The daemon had a parent-death signal: it is gone (give the kernel a moment).
    for (let i = 0; i < 20 && pidAlive(sleeper); i++) await new Promise((res) => setTimeout(res, 50));
    expect(pidAlive(sleeper)).toBe(false);
    const removed = sweepStaleLabs();
    expect(removed).toEqual(expect.arrayContaining(names));
    for (const ns of names) expect(listLabNamespaces()).not.toContain(ns);
    const owner = /^natlab-(\d+)-/.exec(names[0] as string)?.[1];
    expect(readdirSync(tmpdir()).filter((d) => d.startsWith(`natlab-${owner}-`))).toEqual([]);
  }, 30_000);
});

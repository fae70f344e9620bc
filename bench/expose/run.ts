/**
 * Public exposure benchmark: a plain TCP client through a public port of nat-server to a service
 * behind `nat expose --public`, against the same client talking to the service directly on
 * loopback. nat-server and `nat expose` run as their real binaries in their own processes; the
 * client and the services run in this one. Traffic stays on 127.0.0.1; every process started
 * here is killed on the way out.
 *
 * Phases:
 *   throughput   one connection, MB bytes one way (client -> service sink), and back (service source -> client)
 *   connections  CONNS new connections (CONC at a time), each: connect, 1 byte echoed, close
 *   latency      one connection, 1-byte ping-pong, ROUNDS round trips: median and p99
 *
 *   pnpm bench:expose [-- --mb 500 --conns 5000 --conc 64 --rounds 5000 --json]
 *
 * frp is not compared: neither the npm registry nor Debian 12 carries it (the registry's `frp*`
 * names are unrelated libraries; `bore-cli` downloads its binary at install time).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { type AddressInfo, type Server, connect, createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBenchArgs, usageError } from '../harness.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const NAT_SERVER = join(ROOT, 'apps/server/dist/main.js');
const NAT_CLI = join(ROOT, 'apps/cli/dist/main.js');

const USAGE = `pnpm bench:expose [-- options]     (or: tsx bench/expose/run.ts [options])

A plain TCP client through a public port of nat-server to a service behind nat expose --public,
against the same client talking to the service directly on loopback.

Options:
  --mb N        megabytes each way in the throughput phase (default 500)
  --conns N     new connections in the connections phase (default 5000)
  --conc N      of those, how many at a time (default 64)
  --rounds N    1-byte round trips in the latency phase (default 5000)
  --json        one JSON object instead of the table
  -h, --help`;

const args = parseBenchArgs('expose', USAGE, {
  mb: { type: 'string', default: '500' },
  conns: { type: 'string', default: '5000' },
  conc: { type: 'string', default: '64' },
  rounds: { type: 'string', default: '5000' },
  json: { type: 'boolean', default: false },
});
const positive = (name: 'mb' | 'conns' | 'conc' | 'rounds', integer: boolean): number => {
  const n = Number(args[name]);
  if (!(n > 0) || (integer && !Number.isInteger(n)))
    usageError('expose', USAGE, `--${name}: expected a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(args[name])}`);
  return n;
};
const MB = positive('mb', false);
const CONNS = positive('conns', true);
const CONC = positive('conc', true);
const ROUNDS = positive('rounds', true);

const children: ChildProcess[] = [];
const cleanup = (): void => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function start(argv: string[], ready: RegExp): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  return new Promise((res, rej) => {
    const t = setInterval(() => {
      if (ready.test(out)) {
        clearInterval(t);
        res({ child, output: () => out });
      } else if (child.exitCode !== null) {
        clearInterval(t);
        rej(new Error(`${argv[1]} exited: ${out}`));
      }
    }, 20);
  });
}

const listen = (s: Server): Promise<number> => new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));

/** Sink: counts bytes; source: sends MB bytes on connect; echo: echoes. */
async function services(): Promise<{ sink: number; source: number; echo: number }> {
  const sink = createServer((s) => {
    s.on('error', () => {});
    s.resume();
    s.on('end', () => s.end('done'));
  });
  const source = createServer((s) => {
    s.on('error', () => {});
    const chunk = Buffer.alloc(256 * 1024, 7);
    let left = MB * 1024 * 1024;
    const pump = (): void => {
      while (left > 0) {
        left -= chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
  });
  const echo = createServer({ noDelay: true }, (s) => {
    s.on('error', () => {});
    s.setNoDelay(true);
    s.pipe(s);
  });
  return { sink: await listen(sink), source: await listen(source), echo: await listen(echo) };
}

async function upload(port: number): Promise<number> {
  const bytes = MB * 1024 * 1024;
  const chunk = Buffer.alloc(256 * 1024, 1);
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.on('error', reject);
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        left -= chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      s.end();
    };
    s.on('connect', pump);
    s.on('data', () => {});
    s.on('end', () => resolve()); // the sink answers after it read everything
  });
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

async function download(port: number): Promise<number> {
  const t0 = performance.now();
  let n = 0;
  await new Promise<void>((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.on('error', reject);
    s.on('data', (d: Buffer) => (n += d.length));
    s.on('end', () => resolve());
  });
  return n / 1e6 / ((performance.now() - t0) / 1000);
}

async function connectionsPerSecond(port: number): Promise<{ perSecond: number; failed: number }> {
  let started = 0;
  let failed = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const s = connect({ port, host: '127.0.0.1', noDelay: true });
      s.on('error', () => {
        failed++;
        resolve();
      });
      s.on('connect', () => s.write('x'));
      s.once('data', () => {
        s.end();
        s.destroy();
        resolve();
      });
    });
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONC }, async () => {
      while (started < CONNS) {
        started++;
        await one();
      }
    }),
  );
  return { perSecond: CONNS / ((performance.now() - t0) / 1000), failed };
}

async function latency(port: number): Promise<{ medianUs: number; p99Us: number }> {
  const s = connect({ port, host: '127.0.0.1', noDelay: true });
  await new Promise((r) => s.on('connect', r));
  const samples: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    await new Promise<void>((r) => {
      s.once('data', () => r());
      s.write('p');
    });
    samples.push((performance.now() - t0) * 1000);
  }
  s.destroy();
  samples.sort((a, b) => a - b);
  return { medianUs: Math.round(samples[Math.floor(samples.length / 2)]!), p99Us: Math.round(samples[Math.floor(samples.length * 0.99)]!) };
}

async function main(): Promise<void> {
  const svc = await services();
  const base = 20_000 + Math.floor(Math.random() * 10_000); // below the ephemeral port range
  // The one client here stands for many sources: its share of a port's connections is the whole
  // port (by default one source gets a quarter, 64, and --conc 64 would see resets).
  const share = ['--expose-connections-per-source', '256'];
  const server = await start(
    [
      NAT_SERVER,
      '--listen',
      '127.0.0.1',
      '--port',
      '0',
      '--no-alt-port',
      '--no-tcp',
      '--rendezvous-port',
      '0',
      '--expose-ports',
      `${base}-${base + 9}`,
      ...share,
      '--user',
      'bench:bench',
      '--log-level',
      'warn',
    ],
    /expose ws:/,
  );
  const url = /rendezvous (ws:\S+)/.exec(server.output())![1]!;
  const expose = async (port: number): Promise<number> => {
    // Human output: the public address on stdout, nothing per connection (as a user would run it).
    const p = await start([NAT_CLI, 'expose', String(port), '--public', '--rendezvous', url, '--user', 'bench:bench'], /127\.0\.0\.1:\d+\n/);
    return Number(/127\.0\.0\.1:(\d+)\n/.exec(p.output())![1]);
  };
  const pub = { sink: await expose(svc.sink), source: await expose(svc.source), echo: await expose(svc.echo) };
  const results: Record<string, Record<string, number>> = {};
  for (const [name, ports] of [
    ['direct loopback', svc],
    ['through the public port', pub],
  ] as const) {
    const up = await upload(ports.sink);
    const down = await download(ports.source);
    const conns = await connectionsPerSecond(ports.echo);
    const lat = await latency(ports.echo);
    results[name] = {
      uploadMBps: Math.round(up),
      downloadMBps: Math.round(down),
      connectionsPerSecond: Math.round(conns.perSecond),
      connectionsFailed: conns.failed,
      latencyMedianUs: lat.medianUs,
      latencyP99Us: lat.p99Us,
    };
  }
  const d = results['direct loopback']!;
  const p = results['through the public port']!;
  const summary = { ...results, addedLatencyMedianUs: p.latencyMedianUs! - d.latencyMedianUs!, params: { mb: MB, conns: CONNS, conc: CONC, rounds: ROUNDS } };
  const load = (await import('node:os')).loadavg()[0]!.toFixed(1);
  if (args.json) console.log(JSON.stringify({ ...summary, loadAverage: Number(load) }, null, 2));
  else {
    console.log(`expose benchmark: ${MB} MB each way, ${CONNS} connections (${CONC} at a time), ${ROUNDS} 1-byte round trips`);
    console.log('                          upload MB/s  download MB/s  new conn/s  failed  RTT median us  RTT p99 us');
    for (const [name, r] of Object.entries(results)) {
      console.log(
        `${name.padEnd(26)}${String(r.uploadMBps).padStart(11)}${String(r.downloadMBps).padStart(15)}${String(r.connectionsPerSecond).padStart(12)}${String(r.connectionsFailed).padStart(8)}${String(r.latencyMedianUs).padStart(15)}${String(r.latencyP99Us).padStart(12)}`,
      );
    }
    console.log(
      `added latency (median): ${summary.addedLatencyMedianUs} us; load average at the end ${load} (${(await import('node:os')).cpus().length} cores)`,
    );
  }
  cleanup();
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  cleanup();
  process.exit(1);
});

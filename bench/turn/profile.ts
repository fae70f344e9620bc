/**
 * Summarises V8 CPU profiles (node --cpu-prof): the functions with the most self time, and the
 * share of the profile spent under each of a few entry points (inclusive time), so the cost of a
 * relayed packet can be split into our JavaScript, node:dgram/libuv and the kernel ("(program)"
 * and native send/receive show up as such).
 *
 * Usage: tsx bench/turn/profile.ts PATH [--top N] [--under NAME,NAME...]
 *   PATH: a .cpuprofile file or a directory of them (the largest one, the main thread, is read)
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { benchArgv } from '../harness.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}

const target = benchArgv()[0];
if (!target || target.startsWith('--')) {
  process.stderr.write('usage: tsx bench/turn/profile.ts PATH [--top N] [--under NAME,NAME...]\n');
  process.exit(2);
}
let file = target;
if (statSync(target).isDirectory()) {
  const files = readdirSync(target)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(target, f));
  if (files.length === 0) {
    process.stderr.write(`no .cpuprofile in ${target}\n`);
    process.exit(1);
  }
  file = files.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
}
const top = Number(arg('--top') ?? 30);
const under = (
  arg('--under') ??
  'flushTurn,flush,handleChannelData,handlePeerData,udpEndpoint,tryDecodeStun,handleStun,send,onMessage,doSend,processTicksAndRejections,lookup'
).split(',');

const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Self time per node from the samples and time deltas (microseconds).
const selfUs = new Map<number, number>();
const samples = profile.samples ?? [];
const deltas = profile.timeDeltas ?? [];
for (let i = 0; i < samples.length; i++) selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + Math.max(0, deltas[i + 1] ?? deltas[i] ?? 0));
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

const label = (f: CallFrame): string => {
  const where = f.url ? `${basename(f.url)}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
};

const self = new Map<string, number>();
for (const [id, us] of selfUs) {
  const key = label(byId.get(id)!.callFrame);
  self.set(key, (self.get(key) ?? 0) + us);
}

const inclusive = new Map<string, number>();
for (const [id, us] of selfUs) {
  const seen = new Set<string>();
  for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
    const name = byId.get(n)!.callFrame.functionName;
    if (under.includes(name) && !seen.has(name)) {
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + us);
    }
  }
}

const pct = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
process.stdout.write(`${file}: ${(total / 1e6).toFixed(2)} s sampled\n\nself time, top ${top}:\n`);
for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${pct(us)}  ${k}\n`);
process.stdout.write('\ninclusive time under:\n');
for (const name of under) if (inclusive.has(name)) process.stdout.write(`  ${pct(inclusive.get(name)!)}  ${name}\n`);

/**
 * Real ZeroNet (HelloZeroNet/ZeroNet, py3 branch, from the source tarball the team keeps next to
 * the repository) for the lab tests: finding and extracting the tarball, checking Debian's
 * Python modules, command lines for its fileserver, tracker (the Bootstrapper plugin) and CLI
 * actions, and reading what it recorded.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));

/** Debian's interpreter: the one python3-gevent and friends are installed for. */
export const PYTHON = '/usr/bin/python3';
/** Modules ZeroNet needs (Debian packages python3-gevent, -msgpack, -rsa, -socks, -base58). */
const MODULES = ['gevent', 'msgpack', 'rsa', 'socks', 'base58'];
/** The plugin this suite tests, and its installer. */
export const PLUGIN_INSTALL = join(repo, 'integrations/zeronet/install.sh');

/**
 * The ZeroNet tarball: NAT_ZERONET_TARBALL, else `ZeroNet-py3-*.tar.gz` in `../shared/zeronet/`
 * next to the repository (or next to the main checkout when this is a git worktree).
 * Throws with what was looked at: CI has the folder, so a missing tarball is a failure, not a skip.
 */
export function findZeroNetTarball(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['NAT_ZERONET_TARBALL'];
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`NAT_ZERONET_TARBALL=${fromEnv}: no such file`);
    return fromEnv;
  }
  const dirs = [join(repo, '..', 'shared', 'zeronet'), join(repo, '..', '..', 'shared', 'zeronet'), '/work/shared/zeronet'];
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    const hit = readdirSync(dir).find((f) => /^ZeroNet-py3-.*\.tar\.gz$/.test(f));
    if (hit) return join(dir, hit);
  }
  throw new Error(
    `no ZeroNet source tarball: looked for ZeroNet-py3-*.tar.gz in ${dirs.join(', ')}; set NAT_ZERONET_TARBALL=FILE (HelloZeroNet/ZeroNet py3 branch)`,
  );
}

/** Throws unless Debian's python3 imports every module ZeroNet needs (checked with python itself, not with ZeroNet). */
export function checkZeroNetPython(): void {
  try {
    execFileSync(PYTHON, ['-c', `import ${MODULES.join(', ')}`], { stdio: 'pipe', timeout: 20_000 });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(
      `${PYTHON} cannot import ${MODULES.join(', ')} (${(err.stderr?.toString() || err.message).trim().split('\n').pop()}): run scripts/install-test-deps.sh`,
    );
  }
}

/** Extracts the tarball into `dir`; returns ZeroNet's source root (where zeronet.py is). */
export function extractZeroNet(tarball: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['xzf', tarball, '-C', dir], { stdio: 'pipe', timeout: 60_000 });
  const root = readdirSync(dir)
    .map((d) => join(dir, d))
    .find((d) => existsSync(join(d, 'zeronet.py')));
  if (!root) throw new Error(`${tarball}: no zeronet.py at the top of the archive`);
  return root;
}

/** One ZeroNet instance's folders. */
export interface ZeroNetHome {
  readonly data: string;
  readonly log: string;
}

export function makeHome(base: string, name: string): ZeroNetHome {
  const home = { data: join(base, name, 'data'), log: join(base, name, 'log') };
  mkdirSync(home.data, { recursive: true });
  mkdirSync(home.log, { recursive: true });
  return home;
}

/** Enables a plugin that ships with ZeroNet (e.g. Bootstrapper, the tracker) in the home's plugins.json. */
export function enableBuiltin(home: ZeroNetHome, plugin: string): void {
  writeFileSync(join(home.data, 'plugins.json'), JSON.stringify({ builtin: { [plugin]: { enabled: true } } }));
}

/** Installs the NatTraversal plugin with its own installer (copy plus plugins.json). */
export function installPlugin(home: ZeroNetHome): string {
  return execFileSync('sh', [PLUGIN_INSTALL, home.data], { encoding: 'utf8', timeout: 20_000 });
}

/**
 * argv of `zeronet.py` (run from its source root, as it expects): local folders, Tor off, only
 * the given trackers, IPv4; `args` are further options and then the action with its arguments.
 */
export function zeronetArgv(root: string, home: ZeroNetHome, trackers: readonly string[], args: readonly string[]): string[] {
  return [
    'env',
    '-C',
    root,
    PYTHON,
    'zeronet.py',
    // --trackers takes any number of values: options must follow it, before the action
    '--trackers',
    ...trackers,
    '--data_dir',
    home.data,
    '--log_dir',
    home.log,
    '--tor',
    'disable',
    '--fileserver_ip_type',
    'ipv4',
    '--ui_ip',
    '127.0.0.1',
    ...args,
  ];
}

/** `ADDRESS` from siteCreate's output. */
export function siteAddressOf(output: string): string {
  const m = /Site address:\s+(1[1-9A-HJ-NP-Za-km-z]{25,34})/.exec(output);
  if (!m) throw new Error(`siteCreate printed no site address:\n${output}`);
  return m[1]!;
}

/** Python that prints the tracker's peer records as JSON [{address, port, hashes}]. */
export const TRACKER_PEERS_PY = `
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT peer.address, peer.port, COUNT(peer_to_hash.hash_id) FROM peer LEFT JOIN peer_to_hash USING (peer_id) GROUP BY peer.peer_id").fetchall()
print(json.dumps([{"address": a, "port": p, "hashes": n} for a, p, n in rows]))
`;

/**
 * Python that reads `zeronet.py peerCmd IP PORT pex ...` output on stdin (ZeroNet prints a reply
 * holding bytes as a Python literal) and prints the peers of the answer as JSON ["ip:port"].
 */
export const PEX_PEERS_PY = `
import ast, json, socket, struct, sys
text = sys.stdin.read()
start = text.index("{", text.index("Unknown response"))
reply = ast.literal_eval(text[start:text.rindex("}") + 1])
print(json.dumps(["%s:%s" % (socket.inet_ntoa(p[:4]), struct.unpack("H", p[4:6])[0]) for p in reply.get("peers", [])]))
`;

export function trackerDb(home: ZeroNetHome): string {
  return join(home.data, 'bootstrapper.db');
}

export const NAT_CLI = join(repo, 'apps/cli/dist/main.js');
export const NAT_SERVER = join(repo, 'apps/server/dist/main.js');

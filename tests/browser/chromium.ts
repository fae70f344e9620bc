/**
 * What the two in-namespace runners (run-in-netns.ts, ice-run-in-netns.ts) share: launching
 * Debian's chromium through playwright-core with the flags from TOOLCHAIN.md, running a list of
 * runs in it under a deadline, and always printing one JSON line (`{ browserVersion, runs,
 * totalMs, error? }`) on stdout, whether the runs finish, the deadline passes, a signal arrives
 * or something throws. Progress goes to stderr.
 */
import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium package. */
export const CHROMIUM = '/usr/bin/chromium';

/** Flags from TOOLCHAIN.md; without --allow-loopback-in-peer-connection no candidate is gathered on loopback. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--allow-loopback-in-peer-connection',
];

/** When this process started (this module is imported first thing by the runners). */
const started = Date.now();

/** A stderr logger whose lines carry `[prefix +<ms since start>ms]`. */
export function runnerLog(prefix: string): (msg: string) => void {
  return (msg) => void process.stderr.write(`[${prefix} +${Date.now() - started}ms] ${msg}\n`);
}

export interface BoundedRunnerOutput<R> {
  browserVersion: string | null;
  runs: R[];
  totalMs: number;
  error?: string;
}

export interface BoundedRunnerOptions<S extends { name: string }, R> {
  log: (msg: string) => void;
  /** Flags added to CHROMIUM_ARGS. */
  extraArgs?: readonly string[];
  /** Cap on the time any one run gets (it gets less when the deadline is nearer). */
  maxRunMs: number;
  runOne: (spec: S, browser: Browser, timeoutMs: number) => Promise<R>;
  /** Closes what the runs left open besides the browser (servers, sockets). */
  cleanup?: () => unknown;
}

/**
 * Reads `{ runs, deadlineMs }` from the JSON in argv[2], runs `runs` one after another in one
 * headless Chromium, then prints the output line and exits (0 when main finished, 1 on deadline,
 * SIGTERM/SIGINT or an exception), closing the browser and `cleanup`'s resources first in every case.
 */
export function runBounded<S extends { name: string }, R>(opts: BoundedRunnerOptions<S, R>): void {
  const { log } = opts;
  let browser: Browser | undefined;
  const results: R[] = [];
  let browserVersion: string | null = null;
  let printed = false;

  const print = (output: BoundedRunnerOutput<R>): void => {
    if (printed) return;
    printed = true;
    process.stdout.write(`${JSON.stringify(output)}\n`);
  };

  const cleanup = async (): Promise<void> => {
    const b = browser;
    browser = undefined;
    await Promise.allSettled([(async () => opts.cleanup?.())(), b?.close()]);
  };

  const fail = (error: string): void => {
    void cleanup().finally(() => {
      print({ browserVersion, runs: results, totalMs: Date.now() - started, error });
      process.exit(1);
    });
  };

  const main = async (): Promise<void> => {
    const input = JSON.parse(process.argv[2] ?? '') as { runs: readonly S[]; deadlineMs: number };
    const deadline = setTimeout(() => {
      log(`deadline of ${input.deadlineMs} ms reached`);
      fail(`runner deadline of ${input.deadlineMs} ms reached`);
    }, input.deadlineMs);
    deadline.unref();

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS, ...(opts.extraArgs ?? [])],
      timeout: 20_000,
      // The runner handles its own signals (closing its servers and sockets too).
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
    browserVersion = browser.version();
    log(`chromium ${browserVersion} launched`);
    // Each run gets what is left of the deadline, less a margin for cleanup.
    let error: string | undefined;
    for (const spec of input.runs) {
      const left = input.deadlineMs - (Date.now() - started) - 3_000;
      if (left < 2_000) {
        error = `out of time before run ${JSON.stringify(spec.name)}`;
        break;
      }
      results.push(await opts.runOne(spec, browser, Math.min(left, opts.maxRunMs)));
    }
    await cleanup();
    clearTimeout(deadline);
    print({ browserVersion, runs: results, totalMs: Date.now() - started, ...(error === undefined ? {} : { error }) });
  };

  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => fail(`runner got ${sig}`));

  main().then(
    () => process.exit(0),
    (e: unknown) => {
      const message = e instanceof Error ? (e.stack ?? e.message) : String(e);
      log(`failed: ${message}`);
      fail(message);
    },
  );
}

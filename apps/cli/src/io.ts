/** Where a command writes: stdout for results, stderr for progress and errors. */
export interface Io {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/**
 * Progress on stderr: a spinner line rewritten in place on a terminal, plain lines otherwise.
 * Silent when `enabled` is false (for `--json` and `--quiet`).
 */
export function progressReporter(io: Io, enabled: boolean): { update(text: string, line?: string): void; done(): void } {
  if (!enabled) return { update() {}, done() {} };
  const tty = io.stderr.isTTY === true;
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  let i = 0;
  let last: string | undefined;
  return {
    /** `text` is the spinner line on a terminal; `line`, when given, is printed elsewhere. */
    update(text: string, line?: string) {
      if (tty) {
        io.stderr.write(`\r\x1b[2K${frames[i++ % frames.length]} ${text}`);
      } else if (line !== undefined && line !== last) {
        io.stderr.write(`… ${line}\n`);
        last = line;
      }
    },
    done() {
      if (tty) io.stderr.write('\r\x1b[2K');
    },
  };
}

/** A duration in milliseconds rounded to microseconds (3 decimals), as every `--json` prints RTTs. */
export const roundMs = (ms: number): number => Math.round(ms * 1000) / 1000;

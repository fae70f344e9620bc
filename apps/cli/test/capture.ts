import { PassThrough } from 'node:stream';

/** An `Io` for running the CLI in-process, with what it wrote to stdout and stderr. */
export function capture() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += String(c)));
  stderr.on('data', (c) => (err += String(c)));
  return { io: { stdout, stderr }, out: () => out, err: () => err };
}

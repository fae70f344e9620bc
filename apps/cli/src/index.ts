/** The `nat` command line as a library (for embedding and in-process tests). */
export { runCli } from './cli.js';
export { ExitCode, UsageError } from './exit-codes.js';
export { renderReport, reportJson } from './commands/detect.js';
export { exposePublicCommand, type ExposePublicOptions } from './commands/expose-public.js';

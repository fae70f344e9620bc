/** The `nat-server` program as a library, for embedding and tests. */
export { run, ExitCode, type RunningServer } from './cli.js';
export { ServerConfig, ConfigError, resolveConfig, readConfigFile, toStunServerInit, toServerInit, authenticatorOf, formatZodError } from './config.js';

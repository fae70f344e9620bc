/** Address arithmetic shared by the client, the server and the CLI: per-source share keys. */
export * from './source-key.js';

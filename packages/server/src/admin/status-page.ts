/**
 * The status page: plain HTML rendered on the server (no script, no build step), refreshed by
 * the browser every 5 s. Every value is escaped. Elements carry `data-count`/`data-table`
 * attributes so that tests (and scrapers) read numbers without parsing prose.
 */
import type { StatusSnapshot } from './status.js';

const esc = (s: string | number): string => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, '-');

function table(name: string, head: readonly string[], rows: readonly (readonly (string | number)[])[], empty: string): string {
  if (rows.length === 0) return `<p class="empty" data-table="${name}" data-rows="0">${esc(empty)}</p>`;
  const th = head.map((h) => `<th>${esc(h)}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table data-table="${name}" data-rows="${rows.length}"><thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody></table>`;
}

function uptime(s: number): string {
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${d > 0 ? `${d}d ` : ''}${h}h ${m}m ${s % 60}s`;
}

/** The page for a snapshot; `reloadForm`: the CSRF value of the reload button, or undefined for no button. */
export function renderStatusPage(s: StatusSnapshot, options: { reloadCsrf?: string; notice?: string } = {}): string {
  const counts = Object.entries(s.counts)
    .map(([k, v]) => `<div class="count"><span class="n" data-count="${slug(k)}">${esc(v)}</span><span class="k">${esc(k)}</span></div>`)
    .join('\n');
  const reload =
    options.reloadCsrf === undefined
      ? ''
      : `<form method="post" action="/reload"><input type="hidden" name="csrf" value="${esc(options.reloadCsrf)}"><button type="submit">Reload configuration (users, secrets, TLS)</button></form>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><meta name="viewport" content="width=device-width">
<title>nat-server status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
.meta{color:#666}.counts{display:flex;flex-wrap:wrap;gap:.6em}.count{border:1px solid #ccc;border-radius:6px;padding:.5em .8em;min-width:9em}
.count .n{display:block;font-size:1.6em;font-weight:600}.count .k{color:#555}table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.25em .8em;text-align:left}
.empty{color:#777}.notice{background:#eef6ee;border:1px solid #9c9;padding:.5em}form{margin-top:1.5em}
</style></head><body>
<h1>nat-server</h1>
<p class="meta">version <span data-field="version">${esc(s.version)}</span> · up <span data-field="uptime" data-seconds="${s.uptimeS}">${esc(uptime(s.uptimeS))}</span> since ${esc(s.startedAt)}</p>
${options.notice === undefined ? '' : `<p class="notice">${esc(options.notice)}</p>`}
<div class="counts">${counts}</div>
<h2>TURN allocations by user</h2>
${table(
  'allocations',
  ['user', 'allocations', 'tier'],
  s.allocationsByUser.map((a) => [a.user, a.allocations, a.anonymous ? 'anonymous' : 'operator']),
  'no allocation',
)}
<h2>Rendezvous peers online</h2>
${table(
  'peers',
  ['peer id', 'source', 'tier', 'since'],
  s.peers.map((p) => [p.peer, p.source, p.anonymous ? 'anonymous' : 'listed', p.since]),
  'no peer online',
)}
<h2>Exposed ports</h2>
${table(
  'ports',
  ['port', 'protocol', 'user', 'service', 'connections'],
  s.exposedPorts.map((p) => [p.address.port, p.protocol, p.user, p.name, p.connections]),
  'no exposed port',
)}
<h2>Recent refusals</h2>
${table(
  'refusals',
  ['time', 'service', 'what', 'source', 'user'],
  s.recentRefusals.map((r) => [new Date(r.at).toISOString(), r.service, r.what, r.source, r.user ?? '']),
  'none',
)}
${reload}
</body></html>
`;
}

import type { z } from 'zod';
import { EncodeError, ParseError } from '../errors.js';
import { SignallingMessageId } from './fields.js';
import { SignallingMessage } from './messages.js';
import { MAX_SIGNALLING_MESSAGE_BYTES, SIGNALLING_VERSION } from './version.js';

/** Options of {@link decodeSignallingMessage}. */
export interface DecodeSignallingOptions {
  /** Largest accepted JSON text in UTF-8 bytes. Default {@link MAX_SIGNALLING_MESSAGE_BYTES}. */
  readonly maxBytes?: number;
}

/**
 * The outcome of {@link tryParseSignallingMessage} / {@link tryDecodeSignallingMessage}: the
 * message, or the error together with what a server answers with: `code` for the `error`
 * message, and `ref`, the bad message's `id` when it had a well-formed one.
 */
export type SignallingParseResult =
  | { readonly ok: true; readonly message: SignallingMessage }
  | {
      readonly ok: false;
      readonly error: ParseError;
      readonly code: 'bad-message' | 'version-unsupported';
      readonly ref?: string;
    };

const MAX_ISSUES_SHOWN = 4;
const MAX_KEYS_SHOWN = 4;
const MAX_SEGMENT_CHARS = 32;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A short, printable rendering of an untrusted key or value (never the whole thing). */
function quote(text: string): string {
  const cut = text.length > MAX_SEGMENT_CHARS ? `${text.slice(0, MAX_SEGMENT_CHARS)}...` : text;
  return JSON.stringify(cut);
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_][A-Za-z0-9_-]{0,31}$/.test(segment)) {
      out += out === '' ? segment : `.${segment}`;
    } else out += `[${quote(String(segment))}]`;
  }
  return out === '' ? '(root)' : out;
}

function formatIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    const shown = issue.keys.slice(0, MAX_KEYS_SHOWN).map((key) => formatPath([...issue.path, key]));
    const more = issue.keys.length > MAX_KEYS_SHOWN ? ` (+${issue.keys.length - MAX_KEYS_SHOWN} more)` : '';
    return `${shown.join(', ')}${more}: unknown key${issue.keys.length > 1 ? 's' : ''}`;
  }
  if (issue.code === 'invalid_union' && 'discriminator' in issue && issue.discriminator !== undefined) {
    return `${formatPath(issue.path)}: unknown message type`;
  }
  if (issue.code === 'invalid_key') {
    return `${formatPath(issue.path)}: bad key`;
  }
  return `${formatPath(issue.path)}: ${issue.message.slice(0, 160)}`;
}

/**
 * zod's issues as one compact line: `path: problem; path: problem (+N more)`. Unknown keys
 * come first (they say most about a sender speaking another dialect), and only the first
 * problem of each path is shown.
 */
function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  const ordered = [...issues.filter((issue) => issue.code === 'unrecognized_keys'), ...issues.filter((issue) => issue.code !== 'unrecognized_keys')];
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const issue of ordered) {
    const path = issue.code === 'unrecognized_keys' ? `${formatPath(issue.path)}+` : formatPath(issue.path);
    if (seen.has(path)) continue;
    seen.add(path);
    lines.push(formatIssue(issue));
  }
  const shown = lines.slice(0, MAX_ISSUES_SHOWN);
  const more = lines.length > MAX_ISSUES_SHOWN ? ` (+${lines.length - MAX_ISSUES_SHOWN} more)` : '';
  return `bad signalling message: ${shown.join('; ')}${more}`;
}

function refOf(input: Record<string, unknown>): string | undefined {
  const id = SignallingMessageId.safeParse(input['id']);
  return id.success ? id.data : undefined;
}

function failure(message: string, code: 'bad-message' | 'version-unsupported', ref: string | undefined): SignallingParseResult {
  const error = new ParseError('BAD_SYNTAX', message);
  return ref === undefined ? { ok: false, error, code } : { ok: false, error, code, ref };
}

/**
 * Validates an already-parsed JSON value as a signalling message without throwing. A present
 * `v` other than {@link SIGNALLING_VERSION} gives code `version-unsupported` before anything
 * else is looked at; any other mismatch gives `bad-message`.
 */
export function tryParseSignallingMessage(input: unknown): SignallingParseResult {
  const ref = isRecord(input) ? refOf(input) : undefined;
  if (isRecord(input) && 'v' in input && input['v'] !== SIGNALLING_VERSION) {
    const v = input['v'];
    const shown = typeof v === 'number' ? String(v) : typeof v === 'string' ? quote(v) : typeof v;
    return failure(`v: signalling version ${shown} unsupported (this side speaks version ${SIGNALLING_VERSION})`, 'version-unsupported', ref);
  }
  const result = SignallingMessage.safeParse(input);
  if (result.success) return { ok: true, message: result.data };
  return failure(formatIssues(result.error.issues), 'bad-message', ref);
}

/**
 * Validates an already-parsed JSON value as a signalling message. Returns the message, typed
 * by its `type`, or throws ParseError('BAD_SYNTAX') whose text names the path of each bad key
 * (for example `ufrag: Too small...` or `evil: unknown key`).
 */
export function parseSignallingMessage(input: unknown): SignallingMessage {
  const result = tryParseSignallingMessage(input);
  if (result.ok) return result.message;
  throw result.error;
}

/** UTF-8 length of `text` when it is at most `max` bytes, else undefined, in O(max) time. */
function utf8LengthWithin(text: string, max: number): number | undefined {
  // A UTF-16 code unit never takes fewer UTF-8 bytes than one, so a longer string is too big.
  if (text.length > max) return undefined;
  const bytes = Buffer.byteLength(text, 'utf8');
  return bytes > max ? undefined : bytes;
}

/**
 * Decodes one signalling message from its JSON text without throwing: the size cap (UTF-8
 * bytes, default 64 KiB) is checked before `JSON.parse`, then the schema.
 */
export function tryDecodeSignallingMessage(text: string, options: DecodeSignallingOptions = {}): SignallingParseResult {
  const max = options.maxBytes ?? MAX_SIGNALLING_MESSAGE_BYTES;
  if (typeof text !== 'string') return failure('signalling message is not text', 'bad-message', undefined);
  if (utf8LengthWithin(text, max) === undefined) {
    return failure(`signalling message larger than ${max} bytes`, 'bad-message', undefined);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message.slice(0, 120) : 'unparsable';
    return failure(`signalling message is not JSON: ${reason}`, 'bad-message', undefined);
  }
  return tryParseSignallingMessage(value);
}

/**
 * Decodes one signalling message from its JSON text (a WebSocket text frame). Throws
 * ParseError('BAD_SYNTAX') when the text is larger than `maxBytes` (default 64 KiB), is not
 * JSON, or does not match the schema.
 */
export function decodeSignallingMessage(text: string, options: DecodeSignallingOptions = {}): SignallingMessage {
  const result = tryDecodeSignallingMessage(text, options);
  if (result.ok) return result.message;
  throw result.error;
}

/**
 * Validates a message against its schema and returns its JSON text. Throws
 * EncodeError('BAD_VALUE') when it does not match, or when its text would be larger than
 * {@link MAX_SIGNALLING_MESSAGE_BYTES} (which the schema's bounds should make impossible).
 */
export function encodeSignallingMessage(message: SignallingMessage): string {
  const result = SignallingMessage.safeParse(message);
  if (!result.success) throw new EncodeError('BAD_VALUE', formatIssues(result.error.issues));
  const text = JSON.stringify(result.data);
  if (utf8LengthWithin(text, MAX_SIGNALLING_MESSAGE_BYTES) === undefined) {
    throw new EncodeError('BAD_VALUE', `signalling message larger than ${MAX_SIGNALLING_MESSAGE_BYTES} bytes`);
  }
  return text;
}

/**
 * The shell in the READMEs, read the way sh reads it: ```sh blocks, lines joined at a trailing
 * backslash, `#` comments dropped, words split with single quotes, double quotes and backslash
 * escapes. Enough for the commands the READMEs show (no expansions, no redirections).
 */

export interface ShBlock {
  /** The block's text, without the fences. */
  text: string;
  /** 1-based line of the opening fence. */
  line: number;
}

/** Every fenced block opened with ```sh (or ```bash, ```shell). */
export function shBlocks(markdown: string): ShBlock[] {
  const out: ShBlock[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^\s*```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (['sh', 'bash', 'shell'].includes(open[1]!)) out.push({ text: body.join('\n'), line: start + 1 });
  }
  return out;
}

interface Scan {
  words: string[];
  /** Where the comment starts (index into the line), or the line's length. */
  end: number;
}

/** Splits one line into words as sh does; stops at an unquoted `#` that starts a word. */
function scan(line: string): Scan {
  const words: string[] = [];
  let word: string | undefined;
  let i = 0;
  const push = (): void => {
    if (word !== undefined) words.push(word);
    word = undefined;
  };
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t') {
      push();
      i++;
    } else if (c === '#' && word === undefined) {
      return { words, end: i };
    } else if (c === "'") {
      const j = line.indexOf("'", i + 1);
      if (j < 0) throw new Error(`unterminated ' in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, j);
      i = j + 1;
    } else if (c === '"') {
      let j = i + 1;
      let s = '';
      while (j < line.length && line[j] !== '"') {
        if (line[j] === '\\' && j + 1 < line.length && '"\\$`'.includes(line[j + 1]!)) j++;
        s += line[j];
        j++;
      }
      if (j >= line.length) throw new Error(`unterminated " in: ${line}`);
      word = (word ?? '') + s;
      i = j + 1;
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[i + 1];
      i += 2;
    } else {
      word = (word ?? '') + c;
      i++;
    }
  }
  push();
  return { words, end: line.length };
}

/** The words of one command line. */
export function shellWords(line: string): string[] {
  return scan(line).words;
}

/** A block's command lines: continuations joined, comments and blank lines dropped, trimmed. */
export function commandLines(block: string): string[] {
  const joined = block.replace(/\\\n/g, ' ');
  const out: string[] = [];
  for (const raw of joined.split('\n')) {
    const line = raw.slice(0, scan(raw).end).trim().replace(/\s+/g, ' ');
    if (line !== '') out.push(line);
  }
  return out;
}

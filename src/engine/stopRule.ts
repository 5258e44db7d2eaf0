// Stop rules as data: a StopSpec says where a completion must end (one line, or a block that ends
// where the indentation falls back), so it can cross the process boundary; makeStopRule turns it
// into the `stopAt` callback the loop asks. Pure (no model, no 'vscode'): the editor uses the same
// functions to trim what it shows.

export type CompletionMode = 'single' | 'multi';

export interface StopSpec {
  mode: CompletionMode;
  /** Multi-line: lines indented less than this (non-empty) end the block. */
  minIndent: number;
  /** The cursor line after the cursor, trimmed: single-line suggestions stop before repeating it. */
  lineSuffix: string;
  /** First non-empty line after the cursor line (right-trimmed): a block stops before repeating it. */
  nextLine: string;
  /** Multi-line: most lines. */
  maxLines: number;
}

const CLOSERS = ')]}';
const QUOTES = `"'\``;

/** Indentation width of a line (a tab counts 4). */
export const indentOf = (line: string): number => (/^[ \t]*/.exec(line) as RegExpExecArray)[0].replace(/\t/g, '    ').length;

/**
 * Single-line: where the generated line runs into the text already after the cursor
 * (`foo(|)` + `a, b);` → cut before the `)` that closes the call), or -1.
 */
export function lineSuffixOverlap(line: string, lineSuffix: string): number {
  if (lineSuffix === '') return -1;
  const first = lineSuffix[0];
  const bracketOrQuote = CLOSERS.includes(first) || QUOTES.includes(first);
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (depth === 0 && i > 0 && (line.startsWith(lineSuffix, i) || (bracketOrQuote && c === first))) return i;
    if (depth === 0 && i === 0 && line.startsWith(lineSuffix, 0)) return 0;
    if ('([{'.includes(c)) depth++;
    else if (CLOSERS.includes(c)) depth = Math.max(0, depth - 1);
  }
  return -1;
}

/** The engine's `stopAt` rule for a spec: index to cut the generated text at, or null to go on. */
export function makeStopRule(spec: StopSpec): (generated: string) => number | null {
  if (spec.mode === 'single') {
    return (generated) => {
      const nl = generated.indexOf('\n');
      const line = nl >= 0 ? generated.slice(0, nl) : generated;
      const overlap = lineSuffixOverlap(line, spec.lineSuffix);
      if (overlap >= 0) return overlap;
      return nl >= 0 ? nl : null;
    };
  }
  return (generated) => {
    // Only complete lines (followed by '\n') are judged; the first line is the cursor's own.
    let lineStart = 0;
    let lines = 0;
    for (;;) {
      const nl = generated.indexOf('\n', lineStart);
      if (nl < 0) return null;
      const line = generated.slice(lineStart, nl).replace(/\r$/, '');
      if (lines > 0 && line.trim() !== '') {
        if (spec.nextLine !== '' && line.trimEnd() === spec.nextLine) return Math.max(0, lineStart - 1);
        if (indentOf(line) < spec.minIndent) {
          // A closing line (`}`, `});`, `end`) not already in the file ends the block and is kept.
          const closing = /^[\s)\]}]+[;,)]*$|^\s*end\b/.test(line);
          return closing ? nl : Math.max(0, lineStart - 1);
        }
      }
      lines++;
      if (lines >= spec.maxLines) return nl;
      lineStart = nl + 1;
    }
  };
}

/** The spec's first bad field, or undefined (a spec arrives from another process). */
export function stopSpecProblem(spec: unknown): string | undefined {
  if (typeof spec !== 'object' || spec === null) return 'must be an object';
  const s = spec as Record<string, unknown>;
  if (s.mode !== 'single' && s.mode !== 'multi') return `mode must be "single" or "multi", got ${JSON.stringify(s.mode)}`;
  for (const k of ['minIndent', 'maxLines'] as const) {
    if (typeof s[k] !== 'number' || !Number.isInteger(s[k]) || (s[k] as number) < 0) return `${k} must be a whole number >= 0, got ${JSON.stringify(s[k])}`;
  }
  for (const k of ['lineSuffix', 'nextLine'] as const) if (typeof s[k] !== 'string') return `${k} must be a string, got ${JSON.stringify(s[k])}`;
  return undefined;
}

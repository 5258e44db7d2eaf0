// Stage 2: how much to suggest (one line or a block) and where the model must stop.
// Pure (no 'vscode'). The decision is a plain, serializable `StopSpec` so it can cross to the
// inference process, where `makeStopRule` turns it into the engine's `stopAt` callback.

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

export interface PolicyInput {
  linePrefix: string;
  lineSuffix: string;
  /** Text before the cursor line (only its last non-empty line matters). */
  prefix: string;
  /** Text after the cursor (only the first lines matter). */
  suffix: string;
}

const OPENER = /(\{|\(|\[|=>|->|:)\s*$/;
const WORD_CHAR = /[\p{L}\p{N}_$]/u;
const CLOSERS = ')]}';
const QUOTES = `"'\``;

export const MAX_BLOCK_LINES = 16;

const indentOf = (line: string): number => (/^[ \t]*/.exec(line) as RegExpExecArray)[0].replace(/\t/g, '    ').length;

/** Does this line open a block whose body comes on the next lines? */
export function opensBlock(line: string): boolean {
  const t = line.replace(/\s*(\/\/.*|#.*)$/, '').trimEnd();
  if (!OPENER.test(t)) return false;
  // A trailing ':' opens a block only in Python-like statements, not in `case x:` object literals, etc.
  if (t.endsWith(':') && !/^\s*(def|class|if|elif|else|for|while|try|except|finally|with|async|match|case)\b/.test(t)) {
    return /^\s*(else|try|finally)\s*:$/.test(t);
  }
  return true;
}

/** Single or multi-line, or null when the cursor is where no suggestion belongs (inside a word). */
export function decideMode(input: PolicyInput): StopSpec | null {
  const { linePrefix, lineSuffix } = input;
  const after = lineSuffix.trim();
  if (lineSuffix.length > 0 && WORD_CHAR.test(lineSuffix[0])) return null; // mid-word
  const nextLine = firstNonEmptyLine(input.suffix.slice(input.suffix.indexOf('\n') + 1 || input.suffix.length));
  const spec: StopSpec = { mode: 'single', minIndent: 0, lineSuffix: after, nextLine, maxLines: 1 };
  if (after !== '') return spec;

  if (linePrefix.trim() === '') {
    // Empty line: a block when inside one (indented, or right after a line that opens one).
    const prev = lastNonEmptyLine(input.prefix.slice(0, input.prefix.length - linePrefix.length));
    const inBlock = indentOf(linePrefix) > 0 || (prev !== undefined && opensBlock(prev));
    if (!inBlock) return spec;
    const minIndent = Math.max(indentOf(linePrefix), prev !== undefined && opensBlock(prev) ? indentOf(prev) + 1 : 0);
    return { ...spec, mode: 'multi', minIndent, maxLines: MAX_BLOCK_LINES };
  }
  if (opensBlock(linePrefix)) {
    // End of a line that opens a block: the body on the next lines, deeper than this one.
    return { ...spec, mode: 'multi', minIndent: indentOf(linePrefix) + 1, maxLines: MAX_BLOCK_LINES };
  }
  return spec;
}

function firstNonEmptyLine(text: string): string {
  for (const line of text.split('\n')) if (line.trim() !== '') return line.trimEnd();
  return '';
}

function lastNonEmptyLine(text: string): string | undefined {
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i].trim() !== '') return lines[i];
  return undefined;
}

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

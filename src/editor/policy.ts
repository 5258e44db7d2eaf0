// Stage 2: how much to suggest (one line or a block) and where the model must stop.
// Pure (no 'vscode'). The decision is a plain, serializable `StopSpec` (src/engine/stopRule.ts),
// sent with the request; the engine turns it into its `stopAt` rule.
import { indentOf, type StopSpec } from '../engine/stopRule';

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

export const MAX_BLOCK_LINES = 16;

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

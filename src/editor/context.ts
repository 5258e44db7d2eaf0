// Stage 1 of an inline request: the fill-in-the-middle context around the cursor.
// Pure (no 'vscode'): works on any text with a cursor offset, so it is unit-tested in plain node.
//
// The windows bound what is sent (the engine owns the budget in tokens and cuts the prompt to it at
// line boundaries). They are chosen so that typing at the cursor keeps the prompt's beginning
// stable and the engine reuses its KV cache: the suffix (text after the cursor) does not change
// while typing, and the prefix starts at a line boundary that moves only in steps of `stride`
// characters.

export interface DocText {
  /** Length of the whole document in UTF-16 code units. */
  readonly length: number;
  /** Text between two offsets (like String.prototype.slice). */
  slice(start: number, end: number): string;
}

export interface ContextOptions {
  /** Most characters of prefix (text before the cursor) sent to the engine. */
  maxPrefixChars: number;
  /** Most characters of suffix (text after the cursor). */
  maxSuffixChars: number;
  /** The prefix window's start moves in steps of this many characters (KV-cache reuse). */
  stride: number;
  /** Documents longer than this get no completion. */
  maxDocChars: number;
}

export const DEFAULT_CONTEXT_OPTIONS: Readonly<ContextOptions> = Object.freeze({
  maxPrefixChars: 3000,
  maxSuffixChars: 1000,
  stride: 512,
  maxDocChars: 2_000_000,
});

export interface FimContext {
  /** Text before the cursor, from a line start (or the document start). */
  prefix: string;
  /** Text after the cursor, up to a line end (or the document end). */
  suffix: string;
  /** The cursor line before / after the cursor. */
  linePrefix: string;
  lineSuffix: string;
  /** Document offset where `prefix` starts. */
  prefixStart: number;
}

export type ContextResult = { ok: true; context: FimContext } | { ok: false; reason: string };

export function docFromString(text: string): DocText {
  return { length: text.length, slice: (a, b) => text.slice(a, b) };
}

/**
 * `doc` as it reads once [start, end) is replaced by `text` (an IntelliSense item the user has
 * selected but not yet accepted), without copying the document.
 */
export function docWithReplacement(doc: DocText, start: number, end: number, text: string): DocText {
  const shift = text.length - (end - start);
  const textEnd = start + text.length;
  const length = doc.length + shift;
  const read = (a: number, b: number): string => {
    a = Math.max(0, Math.min(a, length));
    b = Math.max(a, Math.min(b, length));
    let out = '';
    if (a < start) out += doc.slice(a, Math.min(b, start));
    if (b > start && a < textEnd) out += text.slice(Math.max(a, start) - start, Math.min(b, textEnd) - start);
    if (b > textEnd) out += doc.slice(Math.max(a, textEnd) - shift, b - shift);
    return out;
  };
  return { length, slice: read };
}

/** The FIM context at `offset`, or why there is none (binary, huge). */
export function buildContext(doc: DocText, offset: number, opts: ContextOptions = DEFAULT_CONTEXT_OPTIONS): ContextResult {
  if (doc.length > opts.maxDocChars) return { ok: false, reason: `document larger than ${opts.maxDocChars} characters` };
  offset = Math.max(0, Math.min(offset, doc.length));

  // Prefix: start on a grid of `stride` so it is stable while typing, then at the next line start.
  let start = 0;
  if (offset > opts.maxPrefixChars) {
    start = Math.ceil((offset - opts.maxPrefixChars) / opts.stride) * opts.stride;
    const head = doc.slice(start - 1, offset);
    const nl = head.indexOf('\n');
    // Line start after the grid point, unless the only line is the cursor's (then cut mid-line).
    if (nl >= 0) start = start - 1 + nl + 1;
  }
  const prefix = doc.slice(start, offset);

  // Suffix: up to the budget, cut at the last line end inside it (whole lines only).
  let end = Math.min(doc.length, offset + opts.maxSuffixChars);
  let suffix = doc.slice(offset, end);
  if (end < doc.length) {
    const nl = suffix.lastIndexOf('\n');
    if (nl >= 0) suffix = suffix.slice(0, nl + 1);
  }
  end = offset + suffix.length;

  if (prefix.includes('\u0000') || suffix.includes('\u0000')) return { ok: false, reason: 'binary content (NUL characters)' };

  const lineStart = prefix.lastIndexOf('\n') + 1;
  let linePrefix = prefix.slice(lineStart);
  if (lineStart === 0 && start > 0) linePrefix = lineText(doc, offset).before;
  const nlAfter = suffix.indexOf('\n');
  const lineSuffix = (nlAfter >= 0 ? suffix.slice(0, nlAfter) : suffix).replace(/\r$/, '');

  return { ok: true, context: { prefix, suffix, linePrefix, lineSuffix, prefixStart: start } };
}

/** The cursor line's text before the cursor (looked up in the document, for very long lines). */
function lineText(doc: DocText, offset: number): { before: string } {
  const from = Math.max(0, offset - 4096);
  const head = doc.slice(from, offset);
  return { before: head.slice(head.lastIndexOf('\n') + 1) };
}

// Stage 4: what is shown. Pure (no 'vscode').
// The stop rule already ended generation where it should; this trims what remains and drops
// suggestions that would only repeat the text after the cursor or show nothing useful.
import { lineSuffixOverlap, makeStopRule, type StopSpec } from '../engine/stopRule';

/** `linePrefix`: the cursor line before the cursor (when it ends in a blank, the suggestion's leading blanks are dropped). */
export function postprocess(generated: string, spec: StopSpec, suffix: string, linePrefix = ''): string {
  // Apply the stop rule again: the text may come from a cache or an engine that overshot.
  const cut = makeStopRule(spec)(generated);
  let text = cut === null ? generated : generated.slice(0, cut);
  // `sum + ` then ` {`: join with one blank, not two.
  if (/[ \t]$/.test(linePrefix)) text = text.replace(/^[ \t]+/, '');
  if (spec.mode === 'single') {
    const overlap = lineSuffixOverlap(text, spec.lineSuffix);
    if (overlap >= 0) text = text.slice(0, overlap);
  }
  // Trailing whitespace on every line, and trailing empty lines.
  text = text.replace(/[ \t\r]+$/gm, '').replace(/\n+$/, '');
  if (spec.mode === 'multi') text = dropRepeatedSuffixLines(text, suffix);
  if (text.trim() === '') return '';
  // Nothing new: the document already continues with exactly this.
  if (suffix.startsWith(text)) return '';
  return text;
}

/**
 * How sure the verifier was of a suggestion: the geometric mean of the probabilities of its first
 * CONFIDENCE_TOKENS tokens (what the user reads first; a long tail of confident repetition must
 * not lift an unsure start). 1 when there are no tokens.
 */
export function suggestionConfidence(tokenLogprobs: readonly number[]): number {
  const head = tokenLogprobs.slice(0, CONFIDENCE_TOKENS);
  if (head.length === 0) return 1;
  return Math.exp(head.reduce((a, b) => a + b, 0) / head.length);
}
export const CONFIDENCE_TOKENS = 16;

/** Drops trailing lines of a block that repeat the lines right after the cursor. */
function dropRepeatedSuffixLines(text: string, suffix: string): string {
  const lines = text.split('\n');
  const after = suffix.split('\n').slice(1).filter((l) => l.trim() !== '').map((l) => l.trimEnd());
  if (after.length === 0 || lines.length < 2) return text;
  // Longest k such that the last k lines equal the first k non-empty lines after the cursor.
  for (let k = Math.min(lines.length - 1, after.length); k > 0; k--) {
    const tail = lines.slice(lines.length - k).map((l) => l.trimEnd());
    if (tail.every((l, i) => l === after[i])) return lines.slice(0, lines.length - k).join('\n').replace(/\n+$/, '');
  }
  return text;
}

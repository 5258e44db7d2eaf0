// Runaway output: a model that loops writes the same lines, or the same few characters, again and
// again (Continue's stopAtRepeatingLines). The engine stops there and keeps one copy.

/** A block of 1..MAX_BLOCK_LINES lines written this many times in a row is a loop. */
const LINE_REPEATS = 3;
const MAX_BLOCK_LINES = 8;
/** Within a line: a piece of up to MAX_PERIOD characters repeated over at least MIN_SPAN characters. */
const MAX_PERIOD = 64;
const MIN_SPAN = 256;
const MIN_COPIES = 4;
/** Only the end of the text is looked at (each check is cheap, whatever the length). */
const TAIL_CHARS = 2048;

/**
 * Where to cut `text` because its end repeats itself (after the first copy of the repeated
 * lines or characters), or null when it does not.
 */
export function repetitionCut(text: string): number | null {
  return repeatedLinesCut(text) ?? periodicCut(text);
}

/**
 * How many characters at the end of `text` not to show yet: the line being written, and complete
 * lines that so far repeat the lines before them (a loop in the making). Streamed text is never
 * taken back, so what a cut may remove must not have been streamed.
 */
export function repetitionHoldback(text: string): number {
  const end = text.lastIndexOf('\n');
  const { starts, lines } = tailLines(text);
  let run = 0;
  for (let p = 1; p <= MAX_BLOCK_LINES; p++) {
    let r = 0;
    while (r + p < lines.length && lines[lines.length - 1 - r] === lines[lines.length - 1 - r - p]) r++;
    run = Math.max(run, r);
  }
  const holdFrom = run > 0 ? starts[lines.length - run] : end + 1;
  return text.length - holdFrom;
}

/** The complete lines at the end of `text` (up to TAIL_CHARS), with their start offsets. */
function tailLines(text: string): { starts: number[]; lines: string[] } {
  const starts: number[] = [];
  const lines: string[] = [];
  const end = text.lastIndexOf('\n');
  if (end < 0) return { starts, lines };
  const from = Math.max(0, end - TAIL_CHARS);
  let at = from === 0 ? 0 : text.indexOf('\n', from) + 1; // a partial first line is left out
  while (at <= end) {
    const nl = text.indexOf('\n', at);
    starts.push(at);
    lines.push(text.slice(at, nl));
    at = nl + 1;
  }
  return { starts, lines };
}

function repeatedLinesCut(text: string): number | null {
  const { starts, lines } = tailLines(text);
  const n = lines.length;
  for (let p = 1; p <= MAX_BLOCK_LINES && p * LINE_REPEATS <= n; p++) {
    let same = true;
    for (let i = n - p * (LINE_REPEATS - 1); i < n && same; i++) same = lines[i] === lines[i - p];
    if (same) return starts[n - p * (LINE_REPEATS - 1)];
  }
  return null;
}

function periodicCut(text: string): number | null {
  const n = text.length;
  if (n < MIN_SPAN) return null;
  const limit = Math.min(n, TAIL_CHARS);
  for (let p = 1; p <= MAX_PERIOD; p++) {
    let run = 0; // text[n-1-i] === text[n-1-i-p] for i < run
    while (run + p < limit && text.charCodeAt(n - 1 - run) === text.charCodeAt(n - 1 - run - p)) run++;
    const span = run + p;
    if (span >= MIN_SPAN && span >= MIN_COPIES * p) return n - span + p;
  }
  return null;
}

/** Whether the file really continues with the suggestion's first line (at least 3 non-blank characters). */
export function isRight(suggestion: string, truth: string): boolean {
  const first = suggestion.split('\n').find((l) => l.trim() !== '') ?? '';
  if (first.replace(/\s/g, '').length < 3) return false;
  const lead = suggestion.slice(0, suggestion.indexOf(first) + first.trimEnd().length);
  return truth.startsWith(lead);
}

/**
 * Whether the suggestion starts with the file's next word: its leading blanks and first run of
 * word characters (or, where the file goes on with punctuation, its first non-blank character).
 */
export function firstWordRight(suggestion: string, truth: string): boolean {
  const word = /^\s*(?:[A-Za-z0-9_$]+|\S)/.exec(truth)?.[0];
  if (!word || !suggestion.startsWith(word)) return false;
  // `tot` is not the word `total`: the suggestion's word must end where the file's does.
  return !/^[A-Za-z0-9_$]/.test(suggestion.slice(word.length)) || !/[A-Za-z0-9_$]$/.test(word);
}

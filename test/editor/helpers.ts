// Shared by the editor tests: documents with a cursor marker.
import { docFromString, type DocText } from '../../src/editor/context';

export const CURSOR = '█';

/** Splits a fixture with one █ into the document and the cursor offset. */
export function atCursor(text: string): { doc: DocText; text: string; offset: number; prefix: string; suffix: string } {
  const offset = text.indexOf(CURSOR);
  if (offset < 0 || text.indexOf(CURSOR, offset + 1) >= 0) throw new Error(`fixture needs exactly one ${CURSOR}: ${text}`);
  const plain = text.slice(0, offset) + text.slice(offset + 1);
  return { doc: docFromString(plain), text: plain, offset, prefix: plain.slice(0, offset), suffix: plain.slice(offset) };
}

// Search snippets: the server marks each matched word with U+0002 (start)
// and U+0003 (end); everything else is plain text, drawn as text nodes.

const START = "\u0002";
const END = "\u0003";

export interface SnippetPart {
  text: string;
  /** A matched word. */
  mark: boolean;
}

/** The snippet in runs of plain and matched text (stray markers dropped). */
export function snippetParts(snippet: string): SnippetPart[] {
  const plain = (t: string) => t.split(END).join("");
  const out: SnippetPart[] = [];
  const [first, ...marked] = snippet.split(START);
  if (first) out.push({ text: plain(first), mark: false });
  for (const part of marked) {
    const end = part.indexOf(END);
    const word = end < 0 ? part : part.slice(0, end);
    const after = end < 0 ? "" : plain(part.slice(end + 1));
    if (word) out.push({ text: word, mark: true });
    if (after) out.push({ text: after, mark: false });
  }
  return out.filter((p) => p.text);
}

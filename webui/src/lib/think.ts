// Separates a model's reasoning from its answer.
//
// Reasoning arrives either as `reasoning_content` deltas or inline as `<think>...</think>` in
// the content. The split is a pure function of the whole text received so far, so a tag cut
// across two chunks needs no state: while streaming, a trailing fragment that could still grow
// into a tag ("<thi") is held back rather than shown as answer text.

const OPEN = '<think>';
const CLOSE = '</think>';

export interface Split {
  /** Reasoning text (reasoning_content first, then inline think blocks). */
  reasoning: string;
  /** The answer text, without any think block. */
  answer: string;
  /** True while the model is still inside its reasoning. */
  thinking: boolean;
}

function partialTagAtEnd(text: string, tag: string): number {
  // Length of the longest proper prefix of `tag` that ends `text`.
  const max = Math.min(tag.length - 1, text.length);
  for (let n = max; n > 0; n--) {
    if (text.endsWith(tag.slice(0, n))) return n;
  }
  return 0;
}

export function splitThink(raw: string, reasoningDelta = '', streaming = false): Split {
  const reasoningParts: string[] = [];
  const answerParts: string[] = [];
  let thinking = false;
  let rest = raw;

  // A template may open the think block in the prompt: the output then starts inside it and
  // only the closing tag appears. Only when that closing tag comes before any opening tag.
  const firstOpen = rest.indexOf(OPEN);
  const firstClose = rest.indexOf(CLOSE);
  if (firstClose !== -1 && (firstOpen === -1 || firstClose < firstOpen)) {
    reasoningParts.push(rest.slice(0, firstClose));
    rest = rest.slice(firstClose + CLOSE.length);
  }

  for (;;) {
    const open = rest.indexOf(OPEN);
    if (open === -1) {
      let tail = rest;
      if (streaming) tail = tail.slice(0, tail.length - partialTagAtEnd(tail, OPEN));
      answerParts.push(tail);
      break;
    }
    answerParts.push(rest.slice(0, open));
    rest = rest.slice(open + OPEN.length);
    const close = rest.indexOf(CLOSE);
    if (close === -1) {
      let inner = rest;
      if (streaming) inner = inner.slice(0, inner.length - partialTagAtEnd(inner, CLOSE));
      reasoningParts.push(inner);
      thinking = streaming;
      break;
    }
    reasoningParts.push(rest.slice(0, close));
    rest = rest.slice(close + CLOSE.length);
  }

  const inline = reasoningParts.map((p) => p.trim()).filter(Boolean).join('\n\n');
  const reasoning = [reasoningDelta.trim(), inline].filter(Boolean).join('\n\n');
  const answer = answerParts.join('').replace(/^\s+/, '');
  if (streaming && !thinking && reasoningDelta !== '' && answer === '') thinking = true;
  return { reasoning, answer, thinking };
}

/** Strip reasoning from a finished text (titles, copies). */
export function answerOnly(raw: string): string {
  return splitThink(raw).answer.trim();
}

// KaTeX with its stylesheet and fonts bundled locally; loaded lazily by markdown.ts.

import katex from 'katex';
import 'katex/dist/katex.min.css';

export interface MathRenderer {
  render(tex: string, display: boolean): string;
}

const cache = new Map<string, string>();

export const mathRenderer: MathRenderer = {
  render(tex, display) {
    const key = `${display ? 'D' : 'I'}${tex}`;
    const hit = cache.get(key);
    if (hit !== undefined) return hit;
    const html = katex.renderToString(tex, {
      displayMode: display,
      throwOnError: false,
      output: 'htmlAndMathml',
      trust: false,
      strict: 'ignore',
    });
    if (cache.size > 500) cache.delete(cache.keys().next().value as string);
    cache.set(key, html);
    return html;
  },
};

// Markdown to sanitized HTML for chat messages: marked (GFM, tables), DOMPurify, and — loaded
// lazily on first need so the chat view starts small — highlight.js for code and KaTeX for math.
// Until they arrive, code renders plain and math as its source; `onExtrasReady` tells views to
// render again.

import { Marked, type Tokens, type TokenizerAndRendererExtension } from 'marked';
import DOMPurify from 'dompurify';
import type { Highlighter } from './highlight';
import type { MathRenderer } from './math';

let highlighter: Highlighter | null = null;
let math: MathRenderer | null = null;
let highlighterLoading: Promise<void> | null = null;
let mathLoading: Promise<void> | null = null;
const listeners = new Set<() => void>();

function notify() {
  for (const l of listeners) l();
}

/** Subscribe to "a lazy renderer finished loading"; returns the unsubscribe function. */
export function onExtrasReady(cb: () => void): () => void {
  listeners.add(cb);
  return () => listeners.delete(cb);
}

export function loadHighlighter(): Promise<void> {
  highlighterLoading ??= import('./highlight')
    .then((m) => {
      highlighter = m.highlighter;
      notify();
    })
    .catch((e) => {
      highlighterLoading = null;
      console.warn('highlighter failed to load', e);
    });
  return highlighterLoading;
}

export function loadMath(): Promise<void> {
  mathLoading ??= import('./math')
    .then((m) => {
      math = m.mathRenderer;
      notify();
    })
    .catch((e) => {
      mathLoading = null;
      console.warn('math renderer failed to load', e);
    });
  return mathLoading;
}

/** Warm both lazy renderers when the browser is idle. */
export function preloadExtras(): void {
  const go = () => {
    void loadHighlighter();
    void loadMath();
  };
  const w = globalThis as unknown as { requestIdleCallback?: (cb: () => void, o?: { timeout: number }) => void };
  if (w.requestIdleCallback) w.requestIdleCallback(go, { timeout: 3000 });
  else setTimeout(go, 1500);
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

// ------------------------------------------------------------------ math extensions

interface MathToken extends Tokens.Generic {
  type: 'mathBlock' | 'mathInline';
  text: string;
}

function renderMath(tex: string, display: boolean): string {
  if (!math) {
    void loadMath();
    const src = display ? `$$${tex}$$` : `$${tex}$`;
    return display
      ? `<div class="math math-pending">${escapeHtml(src)}</div>`
      : `<span class="math math-pending">${escapeHtml(src)}</span>`;
  }
  const html = math.render(tex, display);
  return display ? `<div class="math math-display">${html}</div>` : `<span class="math">${html}</span>`;
}

const mathBlock: TokenizerAndRendererExtension = {
  name: 'mathBlock',
  level: 'block',
  start(src: string) {
    const m = src.match(/(^|\n) {0,3}(\$\$|\\\[)/);
    return m ? (m.index ?? 0) + m[1].length : undefined;
  },
  tokenizer(src: string) {
    const m = /^ {0,3}\$\$([\s\S]+?)\$\$[ \t]*(?:\n|$)/.exec(src) ?? /^ {0,3}\\\[([\s\S]+?)\\\][ \t]*(?:\n|$)/.exec(src);
    if (!m) return undefined;
    return { type: 'mathBlock', raw: m[0], text: m[1].trim() } as MathToken;
  },
  renderer(token) {
    return renderMath((token as MathToken).text, true);
  },
};

const mathInline: TokenizerAndRendererExtension = {
  name: 'mathInline',
  level: 'inline',
  start(src: string) {
    const m = src.match(/\$|\\\(/);
    return m ? m.index : undefined;
  },
  tokenizer(src: string) {
    // $$...$$ inline (display), $...$ with no space just inside the dollars and no digit right
    // after the closing one (so "$5 and $10" stays text), and \( ... \).
    let m = /^\$\$(?!\$)([^$]+?)\$\$/.exec(src);
    if (m) return { type: 'mathInline', raw: m[0], text: m[1].trim(), display: true } as MathToken;
    m = /^\$(?![\s$])((?:\\.|[^\\$\n`])+?)(?<![\s\\])\$(?!\d)/.exec(src);
    // "$10 or $20": content starting with a digit must not contain spaces to count as math.
    if (m && !(/^\d/.test(m[1]) && /\s/.test(m[1]))) return { type: 'mathInline', raw: m[0], text: m[1] } as MathToken;
    m = /^\\\(([\s\S]+?)\\\)/.exec(src);
    if (m) return { type: 'mathInline', raw: m[0], text: m[1].trim() } as MathToken;
    return undefined;
  },
  renderer(token) {
    return renderMath((token as MathToken).text, Boolean((token as MathToken & { display?: boolean }).display));
  },
};

// ------------------------------------------------------------------ code blocks

function renderCode({ text, lang }: Tokens.Code): string {
  const language = (lang ?? '').trim().split(/\s+/)[0]?.toLowerCase() ?? '';
  let body: string;
  if (highlighter) {
    body = highlighter.highlight(text, language);
  } else {
    if (text.length > 0) void loadHighlighter();
    body = escapeHtml(text);
  }
  const label = language ? escapeHtml(language) : 'text';
  return (
    `<div class="code-block"><div class="code-head"><span class="code-lang">${label}</span>` +
    `<button type="button" class="copy-code" data-testid="copy-code" aria-label="Copy code">Copy</button></div>` +
    `<pre><code class="hljs${language ? ` language-${escapeHtml(language)}` : ''}">${body}</code></pre></div>`
  );
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  extensions: [mathBlock, mathInline],
  renderer: { code: renderCode },
});


// ------------------------------------------------------------------ sanitising

let hooked = false;

function purify(): typeof DOMPurify {
  if (!hooked) {
    hooked = true;
    DOMPurify.addHook('afterSanitizeAttributes', (node) => {
      if (node.tagName === 'A' && node.getAttribute('href')) {
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer nofollow');
      }
    });
  }
  return DOMPurify;
}

/** Render markdown to safe HTML. */
export function renderMarkdown(src: string): string {
  // Tables go in a scroller so wide ones scroll on phones.
  const html = marked
    .parse(src, { async: false })
    .replace(/<table>/g, '<div class="table-wrap"><table>')
    .replace(/<\/table>/g, '</table></div>');
  return purify().sanitize(html, {
    ADD_ATTR: ['target', 'aria-hidden', 'aria-label'],
    FORBID_TAGS: ['style', 'form', 'input', 'textarea', 'select'],
  });
}

/** For tests: whether the lazy renderers are in. */
export function extrasLoaded(): { highlighter: boolean; math: boolean } {
  return { highlighter: highlighter !== null, math: math !== null };
}

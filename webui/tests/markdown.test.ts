// @vitest-environment jsdom
import { describe, expect, it } from 'vitest';
import { extrasLoaded, loadHighlighter, loadMath, renderMarkdown } from '../src/lib/markdown';

describe('renderMarkdown', () => {
  it('renders GFM tables inside a scroll wrapper', () => {
    const html = renderMarkdown('| a | b |\n|---|:-:|\n| 1 | **2** |');
    expect(html).toContain('<div class="table-wrap"><table>');
    expect(html).toContain('<th>a</th>');
    expect(html).toMatch(/<td align="center"><strong>2<\/strong><\/td>|<td style="text-align:center"><strong>2<\/strong><\/td>/);
  });

  it('strips scripts, event handlers and javascript: links', () => {
    const html = renderMarkdown('<script>alert(1)</script>\n\n<img src=x onerror="alert(2)">\n\n[x](javascript:alert) <b onclick="y()">b</b>');
    expect(html).not.toContain('<script');
    expect(html).not.toContain('onerror');
    expect(html).not.toContain('javascript:');
    expect(html).not.toContain('onclick');
  });

  it('opens links in a new tab without an opener', () => {
    const html = renderMarkdown('[site](https://example.org)');
    expect(html).toContain('target="_blank"');
    expect(html).toContain('rel="noopener noreferrer nofollow"');
  });

  it('renders code blocks with a copy button, escaping the code', () => {
    const html = renderMarkdown('```python\nprint("<b>")\n```');
    expect(html).toContain('data-testid="copy-code"');
    expect(html).toContain('<span class="code-lang">python</span>');
    expect(html).toContain('&lt;b&gt;');
    expect(html).not.toContain('<b>');
  });

  it('renders an unclosed fence while streaming as code', () => {
    const html = renderMarkdown('Here:\n```js\nconst x = 1;');
    expect(html).toContain('code-block');
    expect(html).toContain('const x = 1;');
  });

  it('highlights code once highlight.js has loaded', async () => {
    await loadHighlighter();
    expect(extrasLoaded().highlighter).toBe(true);
    const html = renderMarkdown('```python\ndef f(): return 1\n```');
    expect(html).toContain('hljs-keyword');
    expect(html).toContain('language-python');
  });

  it('keeps math source until KaTeX loads, then renders it', async () => {
    const src = 'Euler: $e^{i\\pi}+1=0$ and\n\n$$\\int_0^1 x\\,dx$$\n\nand \\(a^2\\)';
    if (!extrasLoaded().math) expect(renderMarkdown(src)).toContain('math-pending');
    await loadMath();
    const html = renderMarkdown(src);
    expect(html).not.toContain('math-pending');
    expect(html).toContain('class="katex"');
    expect(html).toContain('katex-display');
    expect((html.match(/class="katex"/g) ?? []).length).toBeGreaterThanOrEqual(3);
  });

  it('leaves prices and code spans alone', async () => {
    await loadMath();
    const html = renderMarkdown('It costs $5 and $10. Use `$x$` literally.');
    expect(html).not.toContain('katex');
    expect(html).toContain('<code>$x$</code>');
  });
});

import { describe, expect, it } from 'vitest';
import { MAX_ATTACHMENT_BYTES, kindOf, refusal, withAttachments } from '../src/lib/attachments';

describe('attachments', () => {
  it('tells text, code, PDFs and images apart', () => {
    expect(kindOf({ name: 'notes.txt', type: 'text/plain' })).toBe('text');
    expect(kindOf({ name: 'main.rs', type: '' })).toBe('text');
    expect(kindOf({ name: 'Makefile', type: '' })).toBe('text');
    expect(kindOf({ name: 'paper.pdf', type: 'application/pdf' })).toBe('pdf');
    expect(kindOf({ name: 'cat.png', type: 'image/png' })).toBe('image');
    expect(kindOf({ name: 'blob.bin', type: 'application/octet-stream' })).toBe('other');
  });

  it('refuses images, binaries and big files with a reason', () => {
    expect(refusal({ name: 'cat.png', type: 'image/png', size: 10 }, 0)).toMatch(/vision model/);
    expect(refusal({ name: 'a.bin', type: 'application/octet-stream', size: 10 }, 0)).toMatch(/not a text, code or PDF/);
    expect(refusal({ name: 'big.txt', type: 'text/plain', size: MAX_ATTACHMENT_BYTES + 1 }, 0)).toMatch(/at most 256 KiB/);
    expect(refusal({ name: 'ok.py', type: '', size: 100 }, 0)).toBeNull();
  });

  it('puts each file before the question, fenced and named', () => {
    const text = withAttachments('What does it do?', [{ name: 'add.py', size: 20, text: 'def add(a, b):\n    return a + b\n' }]);
    expect(text).toBe('File `add.py`:\n```py\ndef add(a, b):\n    return a + b\n```\n\nWhat does it do?');
    expect(withAttachments('', [{ name: 'x.md', size: 9, text: '```js\n1\n```' }])).toBe('File `x.md`:\n~~~~md\n```js\n1\n```\n~~~~');
  });
});

import { describe, expect, it } from 'vitest';
import { answerOnly, splitThink } from '../src/lib/think';

describe('splitThink', () => {
  it('returns plain text as the answer', () => {
    expect(splitThink('Hello there')).toEqual({ reasoning: '', answer: 'Hello there', thinking: false });
  });

  it('moves a think block out of the answer', () => {
    const s = splitThink('<think>Let me see.\n</think>\n\nThe answer is 4.');
    expect(s.reasoning).toBe('Let me see.');
    expect(s.answer).toBe('The answer is 4.');
    expect(s.thinking).toBe(false);
  });

  it('marks an unclosed block as thinking while streaming', () => {
    const s = splitThink('<think>step one, step two', '', true);
    expect(s).toEqual({ reasoning: 'step one, step two', answer: '', thinking: true });
  });

  it('keeps an unclosed block as reasoning when finished (max_tokens hit)', () => {
    const s = splitThink('<think>never closed', '', false);
    expect(s.reasoning).toBe('never closed');
    expect(s.answer).toBe('');
    expect(s.thinking).toBe(false);
  });

  it('never shows a tag split across chunks as answer text', () => {
    const full = '<think>abc</think>Answer';
    for (let i = 0; i <= full.length; i++) {
      const s = splitThink(full.slice(0, i), '', true);
      expect(s.answer).not.toContain('<');
      expect(full.slice(0, i).length >= 18 ? s.answer : '').toBe(full.slice(18, i));
      expect('abc'.startsWith(s.reasoning)).toBe(true);
    }
  });

  it('holds back a trailing partial opening tag only while streaming', () => {
    expect(splitThink('Hello <thi', '', true).answer).toBe('Hello ');
    expect(splitThink('Hello <thi', '', false).answer).toBe('Hello <thi');
    expect(splitThink('a < b', '', true).answer).toBe('a < b');
    expect(splitThink('x <', '', true).answer).toBe('x ');
  });

  it('handles a closing tag without an opening one (template opened it)', () => {
    const s = splitThink('reasoning here</think>Final.');
    expect(s).toEqual({ reasoning: 'reasoning here', answer: 'Final.', thinking: false });
  });

  it('a closing tag after text that does not follow an open tag only counts when first', () => {
    const s = splitThink('<think>a</think>b</think>c');
    expect(s.reasoning).toBe('a');
    expect(s.answer).toBe('b</think>c');
  });

  it('joins several think blocks', () => {
    const s = splitThink('<think>one</think>A<think>two</think>B');
    expect(s.reasoning).toBe('one\n\ntwo');
    expect(s.answer).toBe('AB');
  });

  it('combines reasoning_content deltas with inline blocks', () => {
    const s = splitThink('Answer', 'thought via field', true);
    expect(s).toEqual({ reasoning: 'thought via field', answer: 'Answer', thinking: false });
    expect(splitThink('', 'thinking…', true).thinking).toBe(true);
    expect(splitThink('', 'thinking…', false).thinking).toBe(false);
  });

  it('answerOnly strips reasoning', () => {
    expect(answerOnly('<think>x</think>  "Title"  ')).toBe('"Title"');
  });
});

import { describe, expect, it } from 'vitest';
import {
  FALLBACK_CONFIG, answerStats, assistantMessage, chatRequest, cleanTitle, effectiveSettings,
  fallbackTitle, filterConversations, requestMessages, sortConversations, systemPrompt, titleRequest,
} from '../src/lib/chatlogic';
import { emptyState } from '../src/lib/generation';
import { isConversationId, newConversationId } from '../src/lib/ids';

describe('chat request building', () => {
  const cfg = { ...FALLBACK_CONFIG, modes: { ...FALLBACK_CONFIG.modes, fast: { label: 'Fast', system_prompt: 'Be brief.' } } };

  it('joins the mode prompt and the custom prompt', () => {
    expect(systemPrompt(cfg, 'fast', '  You are a pirate. ')).toBe('Be brief.\n\nYou are a pirate.');
    expect(systemPrompt(cfg, 'normal', '')).toBe('');
    expect(systemPrompt(cfg, null, 'x')).toBe('x');
  });

  it('drops reasoning, stats and empty assistant turns from the history', () => {
    const msgs = requestMessages('sys', [
      { role: 'user', content: 'q1' },
      { role: 'assistant', content: 'a1', reasoning: 'secret', stats: { ttft_ms: 1, tokens_per_second: 2, prompt_tokens: 3, completion_tokens: 4 } },
      { role: 'assistant', content: '  ' },
      { role: 'user', content: 'q2' },
    ]);
    expect(msgs).toEqual([
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'q1' },
      { role: 'assistant', content: 'a1' },
      { role: 'user', content: 'q2' },
    ]);
  });

  it('fills settings from the server defaults', () => {
    const s = effectiveSettings({ temperature: 0.7, top_p: 0.9, max_tokens: 512 }, { temperature: 0, max_tokens: NaN });
    expect(s).toEqual({ temperature: 0, top_p: 0.9, max_tokens: 512 });
    const req = chatRequest('m', [{ role: 'user', content: 'hi' }], s);
    expect(req.stream).toBe(true);
    expect(req.stream_options).toEqual({ include_usage: true });
  });

  it("leaves unset sampling out, so the model's own defaults apply", () => {
    const s = effectiveSettings({ temperature: null, top_p: null, max_tokens: 512 }, {});
    const req = chatRequest('m', [{ role: 'user', content: 'hi' }], s);
    expect('temperature' in req).toBe(false);
    expect('top_p' in req).toBe(false);
    expect(req.max_tokens).toBe(512);
    const own = chatRequest('m', [], effectiveSettings(s, { top_p: 0.5 }));
    expect(own.top_p).toBe(0.5);
    expect('temperature' in own).toBe(false);
  });
});

describe('answers', () => {
  it('computes stats from usage and client timing', () => {
    const s = emptyState();
    s.usage = { prompt_tokens: 10, completion_tokens: 101 };
    const stats = answerStats(s, { ttftMs: 250.4, firstTokenAt: 1000, endAt: 3000 });
    expect(stats).toEqual({ ttft_ms: 250, tokens_per_second: 50, prompt_tokens: 10, completion_tokens: 101 });
    expect(answerStats(emptyState(), { ttftMs: null, firstTokenAt: null, endAt: 1 }).tokens_per_second).toBeNull();
  });

  it('stores the answer without the think block, with the reasoning beside it', () => {
    const s = emptyState();
    s.raw = '<think>hmm</think>\n\nForty-two.\n';
    const m = assistantMessage(s, answerStats(s, { ttftMs: 1, firstTokenAt: null, endAt: 1 }));
    expect(m.content).toBe('Forty-two.');
    expect(m.reasoning).toBe('hmm');
    expect(assistantMessage(emptyState(), m.stats!).reasoning).toBeUndefined();
  });
});

describe('titles', () => {
  it('builds a short non-streaming request', () => {
    const r = titleRequest('m', 'x'.repeat(2000), 'y');
    expect(r.stream).toBe(false);
    expect(r.max_tokens).toBe(16);
    expect(r.messages[1].content.length).toBeLessThan(1400);
  });

  it('cleans what the model answers', () => {
    expect(cleanTitle('"Rust borrow checker basics."')).toBe('Rust borrow checker basics');
    expect(cleanTitle('Title: **Sourdough starter tips**\nmore')).toBe('Sourdough starter tips');
    expect(cleanTitle('<think>hm</think>Paris trip')).toBe('Paris trip');
    expect(cleanTitle('a'.repeat(100)).length).toBeLessThanOrEqual(60);
    expect(cleanTitle('   ')).toBe('');
  });

  it('falls back to the first message', () => {
    expect(fallbackTitle('  How do\nI  bake bread?  ')).toBe('How do I bake bread?');
    expect(fallbackTitle('w '.repeat(60)).length).toBeLessThanOrEqual(48);
    expect(fallbackTitle('')).toBe('New chat');
  });
});

describe('conversation list', () => {
  const list = [
    { id: 'a', title: 'Bread recipe', pinned: false, updated_at: 3 },
    { id: 'b', title: 'Rust lifetimes', pinned: true, updated_at: 1 },
    { id: 'c', title: 'Bread and butter', pinned: false, updated_at: 5 },
  ];
  it('sorts pinned first, then newest', () => {
    expect(sortConversations(list).map((c) => c.id)).toEqual(['b', 'c', 'a']);
  });
  it('searches by all words, case-insensitively', () => {
    expect(filterConversations(list, 'bread').map((c) => c.id)).toEqual(['a', 'c']);
    expect(filterConversations(list, 'BREAD butter').map((c) => c.id)).toEqual(['c']);
    expect(filterConversations(list, ' ')).toHaveLength(3);
  });
});

describe('conversation ids', () => {
  it('are valid for the server and unique', () => {
    const ids = new Set(Array.from({ length: 200 }, newConversationId));
    expect(ids.size).toBe(200);
    for (const id of ids) {
      expect(isConversationId(id)).toBe(true);
      expect(id.startsWith('c-')).toBe(true);
    }
    expect(isConversationId('')).toBe(false);
    expect(isConversationId('a/b')).toBe(false);
    expect(isConversationId('x'.repeat(129))).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import { applyEvent, emptyState, runGeneration, type Transport } from '../src/lib/generation';
import { parseAll } from '../src/lib/sse';
import { splitThink } from '../src/lib/think';
import type { ChatRequest } from '../src/lib/api';
import { sseBody } from './support/sse-body';

function chunk(delta: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta, finish_reason: null }], ...extra });
}

const PAYLOADS = [
  chunk({ role: 'assistant', content: '' }),
  chunk({ reasoning_content: 'Thinking ' }),
  chunk({ reasoning_content: 'hard…' }),
  chunk({ content: '<thi' }),
  chunk({ content: 'nk>inline</th' }),
  chunk({ content: 'ink>Héllo, ' }),
  chunk({ content: 'wörld 🌍! ' }),
  chunk({ content: '日本語' }),
  JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
  JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', model: 'm', choices: [], usage: { prompt_tokens: 5, completion_tokens: 9, total_tokens: 14 } }),
  '[DONE]',
];
const EXPECTED_RAW = '<think>inline</think>Héllo, wörld 🌍! 日本語';

/** A ReadableStream that yields `data` in pieces, then either closes or fails. */
function stream(data: Uint8Array, opts: { pieces?: number[]; failAfter?: boolean } = {}): ReadableStream<Uint8Array> {
  const cuts = [...(opts.pieces ?? []), data.length].filter((c) => c <= data.length);
  let i = 0;
  let prev = 0;
  return new ReadableStream({
    pull(controller) {
      if (i < cuts.length) {
        const c = cuts[i++];
        if (c > prev) controller.enqueue(data.slice(prev, c));
        prev = c;
        return;
      }
      if (opts.failAfter) controller.error(new TypeError('network error'));
      else controller.close();
    },
  });
}

function sse(s: ReadableStream<Uint8Array>, status = 200): Response {
  return new Response(s, { status, headers: { 'Content-Type': 'text/event-stream' } });
}

function json(status: number, message: string): Response {
  return new Response(JSON.stringify({ error: { message, type: 'x', param: null, code: null } }), { status });
}

const REQ: ChatRequest = { model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true };
const noWait = async () => {};

describe('applyEvent', () => {
  it('folds content, reasoning, usage, finish reason and DONE', () => {
    const s = emptyState();
    for (const ev of parseAll(sseBody(PAYLOADS))) applyEvent(s, ev);
    expect(s.raw).toBe(EXPECTED_RAW);
    expect(s.reasoning).toBe('Thinking hard…');
    expect(s.usage).toEqual({ prompt_tokens: 5, completion_tokens: 9, total_tokens: 14 });
    expect(s.finishReason).toBe('stop');
    expect(s.done).toBe(true);
    expect(s.offset).toBe(sseBody(PAYLOADS).length);
    const split = splitThink(s.raw, s.reasoning);
    expect(split.answer).toBe('Héllo, wörld 🌍! 日本語');
    expect(split.reasoning).toBe('Thinking hard…\n\ninline');
  });

  it('records an error chunk sent after the stream started', () => {
    const s = emptyState();
    for (const ev of parseAll(sseBody([chunk({ content: 'part' }), JSON.stringify({ error: { message: 'child crashed', type: 'server_error' } }), '[DONE]'])))
      applyEvent(s, ev);
    expect(s.raw).toBe('part');
    expect(s.error?.message).toBe('child crashed');
    expect(s.done).toBe(true);
  });

  it('uses its own byte count when events carry no id', () => {
    const b = sseBody(PAYLOADS, false);
    const s = emptyState();
    for (const ev of parseAll(b)) applyEvent(s, ev);
    expect(s.offset).toBe(b.length);
  });

  it('trusts the server id over its own count', () => {
    const s = emptyState();
    applyEvent(s, { event: 'message', data: chunk({ content: 'a' }), id: '999', end: 10 });
    expect(s.offset).toBe(999);
  });

  it('ignores malformed JSON without throwing', () => {
    const s = emptyState();
    expect(applyEvent(s, { event: 'message', data: '{nope', id: null, end: 12 })).toBe(false);
    expect(s.offset).toBe(12);
  });
});

/** A fake server: the full body, and a connection that drops after `dropAt` bytes. */
function fakeServer(full: Uint8Array, plan: { dropAt?: number[]; pieces?: number; gone?: boolean }) {
  const calls: string[] = [];
  const drops = [...(plan.dropAt ?? [])];
  const piece = plan.pieces ?? 7;
  const serve = (from: number): Response => {
    const rest = full.subarray(from);
    const drop = drops.shift();
    const limit = drop === undefined ? rest.length : Math.max(0, Math.min(rest.length, drop - from));
    const pieces = [];
    for (let i = piece; i < limit; i += piece) pieces.push(i);
    return sse(stream(rest.subarray(0, limit), { pieces, failAfter: drop !== undefined }));
  };
  const transport: Transport = {
    async start(b, id) {
      calls.push(`start ${id} ${b.model}`);
      return serve(0);
    },
    async resume(id, from) {
      calls.push(`resume ${id} ${from}`);
      if (plan.gone) return json(404, 'no such stream');
      return serve(from);
    },
  };
  return { transport, calls };
}

describe('runGeneration', () => {
  const full = sseBody(PAYLOADS);

  it('streams a whole answer and reports the first token once', async () => {
    const { transport, calls } = fakeServer(full, {});
    let firsts = 0;
    const r = await runGeneration({
      conversationId: 'c-1', transport, body: REQ, signal: new AbortController().signal,
      onUpdate: (_s, info) => { if (info.firstToken) firsts++; }, backoff: noWait,
    });
    expect(r.outcome).toBe('done');
    expect(r.state.raw).toBe(EXPECTED_RAW);
    expect(firsts).toBe(1);
    expect(calls).toEqual(['start c-1 m']);
  });

  it('re-attaches after a drop at every byte position with no text lost or doubled', async () => {
    for (let dropAt = 0; dropAt < full.length; dropAt++) {
      const { transport, calls } = fakeServer(full, { dropAt: [dropAt], pieces: 5 });
      const r = await runGeneration({ conversationId: 'c-1', transport, body: REQ, signal: new AbortController().signal, backoff: noWait });
      expect(r.outcome).toBe('done');
      expect(r.state.raw).toBe(EXPECTED_RAW);
      expect(r.state.reasoning).toBe('Thinking hard…');
      expect(r.state.offset).toBe(full.length);
      // It resumed from an event boundary at or before the drop.
      const from = Number(calls[1].split(' ')[2]);
      expect(from).toBeLessThanOrEqual(dropAt);
      expect(full.subarray(0, from).length === 0 || full[from - 1] === 0x0a).toBe(true);
    }
  });

  it('survives several drops in a row, including during resumes', async () => {
    const { transport, calls } = fakeServer(full, { dropAt: [40, 41, 300, 301, 302, 700], pieces: 3 });
    const r = await runGeneration({ conversationId: 'c-1', transport, body: REQ, signal: new AbortController().signal, backoff: noWait });
    expect(r.outcome).toBe('done');
    expect(r.state.raw).toBe(EXPECTED_RAW);
    expect(calls.length).toBe(7);
  });

  it('re-attaches when the body ends cleanly without [DONE]', async () => {
    const partial = sseBody(PAYLOADS.slice(0, 5));
    let resumed = -1;
    const transport: Transport = {
      start: async () => sse(stream(partial)),
      resume: async (_id, from) => {
        resumed = from;
        return sse(stream(full.subarray(from)));
      },
    };
    const r = await runGeneration({ conversationId: 'c', transport, body: REQ, signal: new AbortController().signal, backoff: noWait });
    expect(resumed).toBe(partial.length);
    expect(r.state.raw).toBe(EXPECTED_RAW);
  });

  it('resumes a saved state from its offset (page reload)', async () => {
    const s = emptyState();
    const evs = parseAll(full);
    for (const ev of evs.slice(0, 6)) applyEvent(s, ev);
    const saved = JSON.parse(JSON.stringify(s));
    const { transport, calls } = fakeServer(full, {});
    const r = await runGeneration({ conversationId: 'c-9', transport, state: saved, signal: new AbortController().signal, backoff: noWait });
    expect(calls).toEqual([`resume c-9 ${evs[5].end}`]);
    expect(r.state.raw).toBe(EXPECTED_RAW);
  });

  it('reports gone when the session no longer exists', async () => {
    const { transport } = fakeServer(full, { dropAt: [100], gone: true });
    const r = await runGeneration({ conversationId: 'c', transport, body: REQ, signal: new AbortController().signal, backoff: noWait });
    expect(r.outcome).toBe('gone');
    expect(r.status).toBe(404);
    expect(r.state.offset).toBeLessThanOrEqual(100);
  });

  it('reports an HTTP error on start without retrying', async () => {
    let starts = 0;
    const transport: Transport = {
      start: async () => (starts++, json(503, 'model failed to load')),
      resume: async () => { throw new Error('should not resume'); },
    };
    const r = await runGeneration({ conversationId: 'c', transport, body: REQ, signal: new AbortController().signal, backoff: noWait });
    expect(r.outcome).toBe('error');
    expect(r.status).toBe(503);
    expect((r.error as Error).message).toBe('model failed to load');
    expect(starts).toBe(1);
  });

  it('never re-sends the POST after a network failure; it tries to re-attach instead', async () => {
    const calls: string[] = [];
    const transport: Transport = {
      start: async () => { calls.push('start'); throw new TypeError('Failed to fetch'); },
      resume: async () => { calls.push('resume'); return json(404, 'gone'); },
    };
    const r = await runGeneration({ conversationId: 'c', transport, body: REQ, signal: new AbortController().signal, backoff: noWait });
    expect(calls).toEqual(['start', 'resume']);
    expect(r.outcome).toBe('gone');
  });

  it('gives up after maxRetries failed re-attaches without progress', async () => {
    let resumes = 0;
    const transport: Transport = {
      start: async () => sse(stream(full.subarray(0, 50), { failAfter: true })),
      resume: async () => { resumes++; throw new TypeError('offline'); },
    };
    const r = await runGeneration({ conversationId: 'c', transport, body: REQ, signal: new AbortController().signal, backoff: noWait, maxRetries: 3 });
    expect(r.outcome).toBe('error');
    expect(resumes).toBe(3);
  });

  it('stops when aborted mid-stream and keeps the partial text', async () => {
    const ac = new AbortController();
    let pull = 0;
    const evs = parseAll(full);
    const transport: Transport = {
      start: async (_b, _id, signal) => {
        const rs = new ReadableStream<Uint8Array>({
          pull(c) {
            if (pull < 7) c.enqueue(full.subarray(pull === 0 ? 0 : evs[pull - 1].end, evs[pull].end));
            pull++;
            if (pull === 7) ac.abort();
          },
        });
        signal.addEventListener('abort', () => rs.cancel().catch(() => {}));
        return sse(rs);
      },
      resume: async () => { throw new Error('no resume after abort'); },
    };
    const r = await runGeneration({ conversationId: 'c', transport, body: REQ, signal: ac.signal, backoff: noWait });
    expect(r.outcome).toBe('aborted');
    expect(r.state.raw.length).toBeGreaterThan(0);
    expect(r.state.done).toBe(false);
  });
});

describe('runGeneration when the server is down', () => {
  it('gives up quickly when it never got any response', async () => {
    let calls = 0;
    const transport: Transport = {
      start: async () => { calls++; throw new TypeError('Failed to fetch'); },
      resume: async () => { calls++; throw new TypeError('Failed to fetch'); },
    };
    const r = await runGeneration({ conversationId: 'c', transport, body: REQ, signal: new AbortController().signal, backoff: noWait, maxRetries: 8 });
    expect(r.outcome).toBe('error');
    expect(calls).toBe(3); // the POST and two re-attach attempts
  });

  it('retries a 5xx on re-attach, then succeeds', async () => {
    const full = sseBody(PAYLOADS);
    let resumes = 0;
    const transport: Transport = {
      start: async () => sse(stream(full.subarray(0, 100), { failAfter: true })),
      resume: async (_id, from) => (++resumes < 2 ? json(503, 'busy') : sse(stream(full.subarray(from)))),
    };
    const r = await runGeneration({ conversationId: 'c', transport, body: REQ, signal: new AbortController().signal, backoff: noWait });
    expect(r.outcome).toBe('done');
    expect(r.state.raw).toBe(EXPECTED_RAW);
  });
});

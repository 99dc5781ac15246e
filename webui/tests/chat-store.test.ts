// @vitest-environment jsdom
// The chat store against a fake server (a fetch stub): sending, saving, titles, and re-attaching
// after a reload from the offset saved in localStorage.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { sseBody } from './support/sse-body';

function chunk(delta: Record<string, unknown>): string {
  return JSON.stringify({ id: 'x', object: 'chat.completion.chunk', model: 'm1', choices: [{ index: 0, delta, finish_reason: null }] });
}

const PAYLOADS = [
  chunk({ role: 'assistant', content: '' }),
  chunk({ content: '<think>plan</think>' }),
  chunk({ content: 'Bonjour, ' }),
  chunk({ content: 'le monde — ça va ? ' }),
  chunk({ content: '🌍' }),
  JSON.stringify({ id: 'x', object: 'chat.completion.chunk', model: 'm1', choices: [], usage: { prompt_tokens: 12, completion_tokens: 6, total_tokens: 18 } }),
  '[DONE]',
];
const BODY = sseBody(PAYLOADS);
const ANSWER = 'Bonjour, le monde — ça va ? 🌍';

interface Call {
  method: string;
  path: string;
  body: unknown;
  headers: Record<string, string>;
}

class FakeServer {
  calls: Call[] = [];
  convs = new Map<string, Record<string, unknown>>();
  sessions = new Map<string, Uint8Array>();
  lookupIds: string[] | null = null; // null: every known session

  json(status: number, obj: unknown): Response {
    return new Response(status === 204 ? null : JSON.stringify(obj), { status, headers: { 'Content-Type': 'application/json' } });
  }

  stream(bytes: Uint8Array, pieces = 9): Response {
    let i = 0;
    const rs = new ReadableStream<Uint8Array>({
      pull(c) {
        if (i >= bytes.length) return c.close();
        c.enqueue(bytes.slice(i, i + pieces));
        i += pieces;
      },
    });
    return new Response(rs, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
  }

  fetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(String(input), 'http://corral.test');
    const method = (init.method ?? 'GET').toUpperCase();
    const body = init.body ? JSON.parse(String(init.body)) : undefined;
    const headers = (init.headers ?? {}) as Record<string, string>;
    this.calls.push({ method, path: url.pathname + url.search, body, headers });
    const p = url.pathname;
    if (p === '/api/conversations' && method === 'GET') return this.json(200, { data: [...this.convs.values()] });
    if (p === '/api/conversations' && method === 'POST') {
      const c = { title: '', pinned: false, settings: {}, messages: [], created_at: 1, updated_at: 1, ...body };
      this.convs.set(body.id, c);
      return this.json(201, c);
    }
    const m = /^\/api\/conversations\/(.+)$/.exec(p);
    if (m) {
      const c = this.convs.get(decodeURIComponent(m[1]));
      if (!c) return this.json(404, { error: { message: 'not found' } });
      if (method === 'PATCH') Object.assign(c, body);
      return this.json(200, c);
    }
    if (p === '/v1/chat/completions') {
      if (!body.stream) return this.json(200, { id: 'x', model: 'm1', choices: [{ index: 0, message: { role: 'assistant', content: '"Greeting the world."' }, finish_reason: 'stop' }] });
      const id = headers['X-Conversation-Id'];
      this.sessions.set(id, BODY);
      return this.stream(BODY);
    }
    const s = /^\/v1\/stream\/(.+)$/.exec(p);
    if (s) {
      const bytes = this.sessions.get(decodeURIComponent(s[1]));
      if (!bytes) return this.json(404, { error: { message: 'no such stream' } });
      return this.stream(bytes.subarray(Number(url.searchParams.get('from') ?? 0)));
    }
    if (p === '/v1/streams/lookup') {
      const ids: string[] = body.conversation_ids;
      const known = this.lookupIds ?? [...this.sessions.keys()];
      return this.json(200, { data: ids.filter((i) => known.includes(i)).map((i) => ({ conversation_id: i, state: 'running', bytes: 10, model: 'm1' })) });
    }
    if (p === '/v1/models') return this.json(200, { object: 'list', data: [{ id: 'm1', object: 'model', created: 0, owned_by: 'corral', state: 'loaded', progress: null, error: null, default: true }] });
    return this.json(404, { error: { message: `no route ${p}` } });
  };
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 5));
  }
}

let server: FakeServer;

beforeEach(() => {
  vi.resetModules();
  localStorage.clear();
  server = new FakeServer();
  vi.stubGlobal('fetch', server.fetch);
  location.hash = '';
});

afterEach(() => {
  vi.unstubAllGlobals();
});

async function load() {
  const { chat } = await import('../src/lib/chat.svelte');
  const { models } = await import('../src/lib/models.svelte');
  await models.refresh();
  return { chat, models };
}

describe('chat store', () => {
  it('sends, streams, saves the exchange and names the conversation', async () => {
    const { chat } = await load();
    chat.send(null, 'Say hello');
    const id = chat.list[0].id;
    expect(id).toMatch(/^c-[a-z0-9]+$/);
    expect(location.hash).toBe(`#/c/${id}`);
    await until(() => chat.list[0].title === 'Greeting the world');

    const conv = server.convs.get(id)!;
    const messages = conv.messages as { role: string; content: string; reasoning?: string; stats?: Record<string, unknown> }[];
    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(messages[1].content).toBe(ANSWER);
    expect(messages[1].reasoning).toBe('plan');
    expect(messages[1].stats).toMatchObject({ prompt_tokens: 12, completion_tokens: 6 });
    expect(conv.title).toBe('Greeting the world');

    const post = server.calls.find((c) => c.path === '/v1/chat/completions' && (c.body as { stream: boolean }).stream)!;
    expect(post.headers['X-Conversation-Id']).toBe(id);
    expect(post.body).toMatchObject({ model: 'm1', stream: true, stream_options: { include_usage: true } });
    const title = server.calls.find((c) => c.path === '/v1/chat/completions' && !(c.body as { stream: boolean }).stream)!;
    expect(title.headers['X-Conversation-Id']).toBeUndefined();
    expect((title.body as { max_tokens: number }).max_tokens).toBe(16);

    // Writes are ordered: create, the user's turn, then the answer.
    const writes = server.calls.filter((c) => c.path.startsWith('/api/conversations') && c.method !== 'GET').map((c) => c.method);
    expect(writes.slice(0, 3)).toEqual(['POST', 'PATCH', 'PATCH']);
    expect(Object.keys(localStorage).filter((k) => k.startsWith('corral.partial.'))).toEqual([]);
    expect(chat.live[id]).toBeUndefined();
  });

  it('re-attaches after a reload from the saved byte offset, with nothing lost or doubled', async () => {
    // What the page had saved when it went away: three events in.
    const { parseAll } = await import('../src/lib/sse');
    const { applyEvent, emptyState } = await import('../src/lib/generation');
    const evs = parseAll(BODY);
    const state = emptyState();
    for (const ev of evs.slice(0, 4)) applyEvent(state, ev);
    const history = [{ role: 'user', content: 'Say hello' }];
    server.convs.set('c-reload', { id: 'c-reload', title: 'T', pinned: false, model: 'm1', mode: 'normal', system_prompt: '', settings: {}, messages: history, created_at: 1, updated_at: 1 });
    server.sessions.set('c-reload', BODY);
    localStorage.setItem(
      'corral.partial.v1.c-reload',
      JSON.stringify({ v: 1, conversationId: 'c-reload', history, state, model: 'm1', startedAt: Date.now() - 500, ttftMs: 120, firstTokenAt: Date.now() - 400, savedAt: 0 }),
    );

    const { chat } = await load();
    await chat.init();
    await until(() => (server.convs.get('c-reload')!.messages as unknown[]).length === 2);
    const resume = server.calls.find((c) => c.path.startsWith('/v1/stream/'))!;
    expect(resume.path).toBe(`/v1/stream/c-reload?from=${evs[3].end}`);
    const msgs = server.convs.get('c-reload')!.messages as { content: string; stats: { ttft_ms: number } }[];
    expect(msgs[1].content).toBe(ANSWER);
    expect(msgs[1].stats.ttft_ms).toBe(120);
    expect(localStorage.getItem('corral.partial.v1.c-reload')).toBeNull();
  });

  it('falls back to the saved conversation when the stream is gone', async () => {
    const history = [{ role: 'user', content: 'Q' }];
    const saved = [...history, { role: 'assistant', content: 'Saved answer' }];
    server.convs.set('c-gone', { id: 'c-gone', title: 'T', pinned: false, model: 'm1', mode: 'normal', system_prompt: '', settings: {}, messages: saved, created_at: 1, updated_at: 1 });
    const { emptyState } = await import('../src/lib/generation');
    const state = { ...emptyState(40), raw: 'Sav' };
    localStorage.setItem('corral.partial.v1.c-gone', JSON.stringify({ v: 1, conversationId: 'c-gone', history, state, model: 'm1', startedAt: 0, ttftMs: null, firstTokenAt: null, savedAt: 0 }));

    const { chat } = await load();
    await chat.init();
    await until(() => localStorage.getItem('corral.partial.v1.c-gone') === null);
    expect(server.calls.some((c) => c.path.startsWith('/v1/stream/'))).toBe(false); // lookup said it is gone
    expect(chat.convs['c-gone'].messages.at(-1)?.content).toBe('Saved answer');
    expect((server.convs.get('c-gone')!.messages as unknown[]).length).toBe(2); // nothing appended
  });

  it('marks conversations generating elsewhere from the lookup', async () => {
    server.convs.set('c-other', { id: 'c-other', title: 'Elsewhere', pinned: false, model: 'm1', mode: 'normal', created_at: 1, updated_at: 1 });
    server.sessions.set('c-other', BODY);
    const { chat } = await load();
    await chat.init();
    expect(chat.isGenerating('c-other')).toBe(true);
    const lookup = server.calls.find((c) => c.path === '/v1/streams/lookup')!;
    expect(lookup.body).toEqual({ conversation_ids: ['c-other'] });
  });

  it('stops a generation: aborts the fetch, DELETEs the stream, keeps the partial answer', async () => {
    const { chat } = await load();
    // A stream that sends two events then stalls until aborted.
    const evs = (await import('../src/lib/sse')).parseAll(BODY);
    server.fetch = ((orig) => async (input: RequestInfo | URL, init: RequestInit = {}) => {
      if (String(input) === '/v1/chat/completions' && JSON.parse(String(init.body)).stream) {
        server.calls.push({ method: 'POST', path: '/v1/chat/completions', body: JSON.parse(String(init.body)), headers: init.headers as Record<string, string> });
        let sent = false;
        const rs = new ReadableStream<Uint8Array>({
          pull(c) {
            if (!sent) {
              sent = true;
              c.enqueue(BODY.slice(0, evs[3].end));
            }
            return new Promise(() => {});
          },
        });
        init.signal?.addEventListener('abort', () => rs.cancel().catch(() => {}));
        return new Response(rs, { status: 200 });
      }
      return orig(input, init);
    })(server.fetch);
    vi.stubGlobal('fetch', server.fetch);
    chat.send(null, 'Say hello');
    const id = chat.list[0].id;
    await until(() => (chat.live[id]?.raw ?? '').includes('Bonjour'));
    chat.stop(id);
    await until(() => ((server.convs.get(id)?.messages as unknown[]) ?? []).length === 2);
    expect(server.calls.some((c) => c.method === 'DELETE' && c.path === `/v1/stream/${id}`)).toBe(true);
    const msgs = server.convs.get(id)!.messages as { content: string }[];
    expect(msgs[1].content).toBe('Bonjour, le monde — ça va ?');
    expect(chat.isGenerating(id)).toBe(false);
  });
});

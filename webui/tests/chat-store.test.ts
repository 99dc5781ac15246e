// @vitest-environment jsdom
// The chat store against a fake server (a fetch stub): sending, saving, titles, and re-attaching
// after a reload from the offset saved in localStorage.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BODY, ANSWER, FakeServer, until } from './support/fake-server';

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

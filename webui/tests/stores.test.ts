// @vitest-environment jsdom
// The conversations and generations stores: one record per conversation id in each, created
// and dropped together, and a finished generation folded into the conversation once.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ANSWER, BODY, FakeServer, until } from './support/fake-server';

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
  const { conversations } = await import('../src/lib/conversations.svelte');
  const { generations } = await import('../src/lib/generations.svelte');
  const { models } = await import('../src/lib/models.svelte');
  await models.refresh();
  return { chat, conversations, generations };
}

/** Streaming answers send the first `bytes` of the body, then stall until aborted. */
function stallStreams(bytes: number): void {
  const orig = server.fetch;
  server.fetch = async (input: RequestInfo | URL, init: RequestInit = {}) => {
    if (String(input) === '/v1/chat/completions' && JSON.parse(String(init.body)).stream) {
      server.calls.push({ method: 'POST', path: '/v1/chat/completions', body: JSON.parse(String(init.body)), headers: init.headers as Record<string, string> });
      let sent = false;
      const rs = new ReadableStream<Uint8Array>({
        pull(c) {
          if (!sent) {
            sent = true;
            c.enqueue(BODY.slice(0, bytes));
          }
          return new Promise(() => {});
        },
      });
      init.signal?.addEventListener('abort', () => rs.cancel().catch(() => {}));
      return new Response(rs, { status: 200 });
    }
    return orig(input, init);
  };
  vi.stubGlobal('fetch', server.fetch);
}

describe('conversations and generations stores', () => {
  it('a new conversation gets one record with its conversation, status and provisional title', async () => {
    const { chat, conversations, generations } = await load();
    stallStreams(60);
    chat.send(null, 'Say hello to the whole wide world please');
    const id = chat.list[0].id;
    const rec = conversations.get(id)!;
    expect(rec.status).toBe('ready');
    expect(rec.conv?.messages.map((m) => m.content)).toEqual(['Say hello to the whole wide world please']);
    expect(rec.provisionalTitle).toBeTruthy();
    expect(rec.failed).toBeUndefined();
    expect(generations.get(id)?.live).toBeDefined();
    expect(generations.get(id)?.remote).toBeUndefined();
    // The facade's maps read the same records.
    expect(chat.convs[id]).toBe(rec.conv);
    expect(chat.convStatus[id]).toBe('ready');
    expect(chat.provisionalTitle[id]).toBe(rec.provisionalTitle);
    expect(chat.live[id]).toBe(generations.get(id)?.live);
    expect(id in chat.convs).toBe(true);
    expect(Object.keys(chat.live)).toEqual([id]);
    expect(() => {
      (chat.convs as Record<string, unknown>)[id] = undefined;
    }).toThrow(TypeError);
    chat.stop(id);
  });

  it('a finished generation folds into the messages once and its record goes', async () => {
    const { chat, conversations, generations } = await load();
    chat.send(null, 'Say hello');
    const id = chat.list[0].id;
    await until(() => chat.list[0].title === 'Greeting the world');
    const messages = conversations.conv(id)!.messages;
    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(messages.filter((m) => m.content === ANSWER)).toHaveLength(1);
    expect(generations.get(id)).toBeUndefined();
    expect(generations.records).toEqual({});
    expect(conversations.get(id)?.provisionalTitle).toBeUndefined(); // the generated title replaced it
    expect(chat.isGenerating(id)).toBe(false);

    // Nothing left to re-attach to: a second recovery does not append it again.
    await generations.recover();
    expect(conversations.conv(id)!.messages).toHaveLength(2);
    expect((server.convs.get(id)!.messages as unknown[]).length).toBe(2);
  });

  it('deleting a conversation mid-answer drops both records and the saved partial', async () => {
    const { chat, conversations, generations } = await load();
    stallStreams(60);
    chat.send(null, 'Say hello');
    const id = chat.list[0].id;
    await until(() => Boolean(generations.live(id)) && localStorage.getItem(`corral.partial.v1.${id}`) !== null);
    await chat.remove(id);
    expect(conversations.get(id)).toBeUndefined();
    expect(generations.get(id)).toBeUndefined();
    expect(chat.list.some((c) => c.id === id)).toBe(false);
    expect(localStorage.getItem(`corral.partial.v1.${id}`)).toBeNull();
    expect(server.calls.some((c) => c.method === 'DELETE' && c.path === `/api/conversations/${id}`)).toBe(true);
    // The aborted run settles later without bringing either record back.
    await new Promise((r) => setTimeout(r, 50));
    expect(conversations.get(id)).toBeUndefined();
    expect(generations.get(id)).toBeUndefined();
    const writes = server.calls.filter((c) => c.path === `/api/conversations/${id}` && c.method !== 'GET').map((c) => c.method);
    expect(writes.at(-1)).toBe('DELETE'); // no save after the delete
  });

  it('a generation elsewhere is a remote mark in the generation record, dropped with the conversation', async () => {
    server.convs.set('c-other', { id: 'c-other', title: 'Elsewhere', pinned: false, model: 'm1', mode: 'normal', created_at: 1, updated_at: 1 });
    server.sessions.set('c-other', BODY);
    const { chat, conversations, generations } = await load();
    await chat.init();
    expect(generations.get('c-other')?.remote?.state).toBe('running');
    expect(generations.get('c-other')?.live).toBeUndefined();
    expect(chat.remote['c-other']).toBe(generations.get('c-other')?.remote);
    expect(conversations.get('c-other')).toBeUndefined(); // not opened yet
    await chat.remove('c-other');
    expect(generations.get('c-other')).toBeUndefined();
    expect(chat.isGenerating('c-other')).toBe(false);
  });

  it('a failed start is recorded on the conversation record and cleared by the next run', async () => {
    const { chat, conversations, generations } = await load();
    const orig = server.fetch;
    let fail = true;
    vi.stubGlobal('fetch', async (input: RequestInfo | URL, init: RequestInit = {}) => {
      if (fail && String(input) === '/v1/chat/completions' && JSON.parse(String(init.body)).stream) {
        return new Response(JSON.stringify({ error: { message: 'model exploded' } }), { status: 500, headers: { 'Content-Type': 'application/json' } });
      }
      return orig(input, init);
    });
    chat.send(null, 'Say hello');
    const id = chat.list[0].id;
    await until(() => Boolean(conversations.get(id)?.failed));
    expect(chat.failed[id]).toBe(conversations.get(id)?.failed);
    expect(generations.get(id)).toBeUndefined();
    fail = false;
    chat.regenerate(id);
    expect(conversations.get(id)?.failed).toBeUndefined();
    await until(() => conversations.conv(id)!.messages.length === 2);
    expect(conversations.conv(id)!.messages[1].content).toBe(ANSWER);
  });
});

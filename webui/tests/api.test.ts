// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, api, getToken, onUnauthorized, setToken } from '../src/lib/api';
import { Partials, throttledSaver, type PartialRecord } from '../src/lib/partials';
import { emptyState } from '../src/lib/generation';
import { parseRoute, chatHref } from '../src/lib/router.svelte';

afterEach(() => {
  vi.unstubAllGlobals();
  setToken(null);
});

function stubFetch(res: () => Response) {
  const calls: { url: string; init: RequestInit }[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return res();
  });
  return calls;
}

describe('api client', () => {
  it('sends the bearer token and JSON bodies', async () => {
    setToken('tok-1');
    const calls = stubFetch(() => new Response(JSON.stringify({ id: 'c-1' }), { status: 200 }));
    await api.patchConversation('c-1', { title: 'x' });
    expect(calls[0].url).toBe('/api/conversations/c-1');
    expect(calls[0].init.method).toBe('PATCH');
    const h = calls[0].init.headers as Record<string, string>;
    expect(h.Authorization).toBe('Bearer tok-1');
    expect(h['Content-Type']).toBe('application/json');
    expect(JSON.parse(String(calls[0].init.body))).toEqual({ title: 'x' });
  });

  it('turns OpenAI-shaped errors into ApiError', async () => {
    stubFetch(() => new Response(JSON.stringify({ error: { message: 'model not found', type: 'invalid_request_error', param: 'model', code: 'model_not_found' } }), { status: 404 }));
    const err = await api.models().catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 404, message: 'model not found', type: 'invalid_request_error', param: 'model', code: 'model_not_found' });
  });

  it('reports network failures as unreachable', async () => {
    vi.stubGlobal('fetch', async () => {
      throw new TypeError('Failed to fetch');
    });
    const err = await api.uiConfig().catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.unreachable).toBe(true);
  });

  it('clears the token and calls the handler on 401, but not for the login call', async () => {
    const handler = vi.fn();
    onUnauthorized(handler);
    setToken('old');
    stubFetch(() => new Response(JSON.stringify({ error: { message: 'bad credentials' } }), { status: 401 }));
    await api.login('a', 'b').catch(() => {});
    expect(handler).not.toHaveBeenCalled();
    expect(getToken()).toBe('old');
    await api.conversations().catch(() => {});
    expect(handler).toHaveBeenCalledTimes(1);
    expect(getToken()).toBeNull();
  });

  it('builds analytics queries with only the set filters', async () => {
    const calls = stubFetch(() => new Response('{}', { status: 200 }));
    await api.analytics({ since: 100, limit: 25, offset: 0, country: 'DE', user: '', hide_private: true, model: undefined });
    expect(calls[0].url).toBe('/admin/analytics/summary?since=100&limit=25&offset=0&country=DE&hide_private=true');
    expect(api.exportCsvPath({ limit: 25, offset: 50, group: 'chat' })).toBe('/admin/analytics/export.csv?group=chat');
  });

  it('sends X-Conversation-Id on streaming chats and resumes with ?from=', async () => {
    const calls = stubFetch(() => new Response('', { status: 200 }));
    await api.startChat({ model: 'm', messages: [], stream: true }, 'c-abc');
    await api.resumeStream('c-abc', 1234);
    await api.lookupStreams(['c-abc']).catch(() => {});
    expect((calls[0].init.headers as Record<string, string>)['X-Conversation-Id']).toBe('c-abc');
    expect(calls[1].url).toBe('/v1/stream/c-abc?from=1234');
    expect(JSON.parse(String(calls[2].init.body))).toEqual({ conversation_ids: ['c-abc'] });
  });
});

describe('partials', () => {
  const rec = (id: string, offset: number): PartialRecord => ({
    v: 1, conversationId: id, history: [], state: { ...emptyState(offset), raw: `text@${offset}` }, model: 'm', startedAt: 0, ttftMs: null, firstTokenAt: null, savedAt: 0,
  });

  it('saves, lists and removes records', () => {
    localStorage.clear();
    const p = new Partials();
    p.save(rec('a', 10));
    p.save(rec('b', 20));
    localStorage.setItem('corral.partial.v1.bad', '{not json');
    expect(p.all().map((r) => r.conversationId).sort()).toEqual(['a', 'b']);
    expect(p.get('a')?.state.offset).toBe(10);
    p.remove('a');
    expect(p.get('a')).toBeNull();
  });

  it('throttles writes but always keeps the offset and text of one moment together', () => {
    vi.useFakeTimers();
    localStorage.clear();
    const p = new Partials();
    const saver = throttledSaver(p, 300);
    const r = rec('t', 0);
    for (let i = 1; i <= 5; i++) {
      r.state.offset = i * 100;
      r.state.raw = `text@${i * 100}`;
      saver.save(r);
    }
    expect(p.get('t')).toBeNull();
    vi.advanceTimersByTime(300);
    const saved = p.get('t')!;
    expect(saved.state.offset).toBe(500);
    expect(saved.state.raw).toBe('text@500');
    r.state.offset = 600;
    r.state.raw = 'text@600';
    saver.save(r);
    saver.flush();
    expect(p.get('t')!.state.raw).toBe('text@600');
    vi.useRealTimers();
  });
});

describe('routes', () => {
  it('parses hash routes', () => {
    expect(parseRoute('')).toEqual({ name: 'chat', conversationId: null });
    expect(parseRoute('#/c/c-abc.1')).toEqual({ name: 'chat', conversationId: 'c-abc.1' });
    expect(parseRoute('#/admin')).toEqual({ name: 'admin', tab: 'models' });
    expect(parseRoute('#/admin/dashboard')).toEqual({ name: 'admin', tab: 'dashboard' });
    expect(parseRoute(chatHref('c:1'))).toEqual({ name: 'chat', conversationId: 'c:1' });
  });
});

// The fake Corral server the store tests run against (a fetch stub): conversations, resumable
// streams by conversation id, stream lookups, titles and one loaded model.
import { sseBody } from './sse-body';

export function chunk(delta: Record<string, unknown>): string {
  return JSON.stringify({ id: 'x', object: 'chat.completion.chunk', model: 'm1', choices: [{ index: 0, delta, finish_reason: null }] });
}

export const PAYLOADS = [
  chunk({ role: 'assistant', content: '' }),
  chunk({ content: '<think>plan</think>' }),
  chunk({ content: 'Bonjour, ' }),
  chunk({ content: 'le monde — ça va ? ' }),
  chunk({ content: '🌍' }),
  JSON.stringify({ id: 'x', object: 'chat.completion.chunk', model: 'm1', choices: [], usage: { prompt_tokens: 12, completion_tokens: 6, total_tokens: 18 } }),
  '[DONE]',
];
export const BODY = sseBody(PAYLOADS);
export const ANSWER = 'Bonjour, le monde — ça va ? 🌍';

export interface Call {
  method: string;
  path: string;
  body: unknown;
  headers: Record<string, string>;
}

export class FakeServer {
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

export async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 5));
  }
}

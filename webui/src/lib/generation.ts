// One streaming generation: reads the SSE body of a chat completion, folds its chunks into a
// GenState, and keeps `offset`, the byte offset of the body after the last complete event.
// When the connection drops (or the body ends without `[DONE]`), it re-attaches with
// `GET /v1/stream/{id}?from=offset`: the replay starts at the next event, so no text is lost or
// doubled. The transport and timers are injected, so the whole loop is testable without a
// server.

import { SseParser, offsetFromId, type SseEvent } from './sse';
import type { ApiErrorBody, ChatRequest } from './api';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: number;
}

export interface GenState {
  /** Concatenated `delta.content` (may contain inline <think> blocks). */
  raw: string;
  /** Concatenated `delta.reasoning_content`. */
  reasoning: string;
  usage: Usage | null;
  finishReason: string | null;
  error: ApiErrorBody | null;
  /** `[DONE]` seen. */
  done: boolean;
  model: string | null;
  /** Bytes of the response body consumed, up to the end of the last complete event. */
  offset: number;
}

export function emptyState(offset = 0): GenState {
  return { raw: '', reasoning: '', usage: null, finishReason: null, error: null, done: false, model: null, offset };
}

interface ChunkDelta {
  content?: string | null;
  reasoning_content?: string | null;
  reasoning?: string | null;
}

interface Chunk {
  model?: string;
  choices?: { delta?: ChunkDelta; text?: string; finish_reason?: string | null }[];
  usage?: Usage | null;
  error?: ApiErrorBody | string;
}

/**
 * Fold one SSE event into the state (mutates and returns whether visible text grew).
 * Offsets come from the server's `id:` when it is a number, else from the parser's own count.
 */
export function applyEvent(s: GenState, ev: SseEvent): boolean {
  let grew = false;
  const data = ev.data;
  if (data === '[DONE]') {
    s.done = true;
  } else if (ev.event === 'message' || ev.event === 'chunk') {
    let chunk: Chunk | null = null;
    try {
      chunk = JSON.parse(data) as Chunk;
    } catch {
      chunk = null;
    }
    if (chunk && typeof chunk === 'object') {
      if (chunk.error) {
        s.error = typeof chunk.error === 'string' ? { message: chunk.error } : chunk.error;
      }
      if (chunk.model && !s.model) s.model = chunk.model;
      const choice = chunk.choices?.[0];
      if (choice) {
        const d = choice.delta;
        const content = d?.content ?? choice.text;
        if (typeof content === 'string' && content !== '') {
          s.raw += content;
          grew = true;
        }
        const r = d?.reasoning_content ?? d?.reasoning;
        if (typeof r === 'string' && r !== '') {
          s.reasoning += r;
          grew = true;
        }
        if (choice.finish_reason) s.finishReason = choice.finish_reason;
      }
      if (chunk.usage) s.usage = chunk.usage;
    }
  } else if (ev.event === 'error') {
    try {
      const body = JSON.parse(data) as { error?: ApiErrorBody } & ApiErrorBody;
      s.error = body.error ?? body;
    } catch {
      s.error = { message: data };
    }
  }
  s.offset = offsetFromId(ev.id) ?? ev.end;
  return grew;
}

export interface Transport {
  start(body: ChatRequest, conversationId: string, signal: AbortSignal): Promise<Response>;
  resume(conversationId: string, from: number, signal: AbortSignal): Promise<Response>;
}

export type Outcome =
  /** `[DONE]` arrived (the state may still carry an error event). */
  | 'done'
  /** Stopped by the caller. */
  | 'aborted'
  /** The session is gone (404, or the offset fell off the ring): use the saved conversation. */
  | 'gone'
  /** Could not start or re-attach (HTTP error or out of retries); see `error`. */
  | 'error';

export interface Result {
  outcome: Outcome;
  state: GenState;
  error?: unknown;
  /** HTTP status of the failing response, when there was one. */
  status?: number;
}

export interface RunOptions {
  conversationId: string;
  transport: Transport;
  signal: AbortSignal;
  /** Start a new generation with this body, or (when absent) re-attach at `state.offset`. */
  body?: ChatRequest;
  state?: GenState;
  /** Called after every event that changed something, and on connection changes. */
  onUpdate?: (s: GenState, info: { firstToken: boolean; reconnecting: boolean }) => void;
  /** Reconnect attempts in a row without progress before giving up (default 8). */
  maxRetries?: number;
  /** Wait before reconnect attempt n (1-based); resolves early when aborted. */
  backoff?: (attempt: number, signal: AbortSignal) => Promise<void>;
}

/** Error whose HTTP response is already known (thrown by `readError`). */
export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody,
  ) {
    super(body.message);
    this.name = 'HttpStatusError';
  }
}

async function readError(res: Response): Promise<HttpStatusError> {
  let body: ApiErrorBody = { message: `HTTP ${res.status}` };
  try {
    const parsed = JSON.parse(await res.text()) as { error?: ApiErrorBody };
    if (parsed?.error?.message) body = parsed.error;
  } catch {
    /* keep the status */
  }
  return new HttpStatusError(res.status, body);
}

function isAbort(e: unknown, signal: AbortSignal): boolean {
  return signal.aborted || (e instanceof DOMException && e.name === 'AbortError');
}

const defaultBackoff = (attempt: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const ms = Math.min(500 * 2 ** (attempt - 1), 8000);
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

export async function runGeneration(opts: RunOptions): Promise<Result> {
  const { conversationId, transport, signal } = opts;
  const s = opts.state ?? emptyState();
  const maxRetries = opts.maxRetries ?? 8;
  const backoff = opts.backoff ?? defaultBackoff;
  let firstTokenSeen = s.raw !== '' || s.reasoning !== '';
  let attempt = 0;
  let starting = opts.body !== undefined;
  // Until some response arrived, a failure is more likely "server down" than "connection
  // dropped": give up sooner.
  let connected = !starting;
  const limit = () => (connected ? maxRetries : Math.min(2, maxRetries));

  for (;;) {
    if (signal.aborted) return { outcome: 'aborted', state: s };
    let res: Response;
    try {
      res = starting
        ? await transport.start(opts.body as ChatRequest, conversationId, signal)
        : await transport.resume(conversationId, s.offset, signal);
    } catch (e) {
      if (isAbort(e, signal)) return { outcome: 'aborted', state: s };
      // A POST that never got an answer may never have reached the server: do not re-send it
      // (that would start a second generation); try to re-attach instead, and give up if the
      // session does not exist.
      if (++attempt > limit()) return { outcome: 'error', state: s, error: e };
      starting = false;
      opts.onUpdate?.(s, { firstToken: false, reconnecting: true });
      await backoff(attempt, signal);
      continue;
    }
    if (!res.ok) {
      const err = await readError(res);
      if (!starting && (res.status === 404 || res.status === 400 || res.status === 416 || res.status === 410)) {
        return { outcome: 'gone', state: s, error: err, status: res.status };
      }
      if (!starting && res.status >= 500 && ++attempt <= limit()) {
        await backoff(attempt, signal);
        continue;
      }
      return { outcome: 'error', state: s, error: err, status: res.status };
    }
    starting = false;
    connected = true;
    if (!res.body) return { outcome: 'error', state: s, error: new Error('response has no body') };

    const parser = new SseParser(s.offset);
    const reader = res.body.getReader();
    const onAbort = () => reader.cancel().catch(() => {});
    signal.addEventListener('abort', onAbort, { once: true });
    let progressed = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const ev of parser.push(value)) {
          const grew = applyEvent(s, ev);
          progressed = true;
          const firstToken = grew && !firstTokenSeen;
          if (grew) firstTokenSeen = true;
          opts.onUpdate?.(s, { firstToken, reconnecting: false });
          if (s.done) {
            reader.cancel().catch(() => {});
            return { outcome: 'done', state: s };
          }
        }
      }
    } catch (e) {
      if (isAbort(e, signal)) return { outcome: 'aborted', state: s };
      // Network lost mid-answer: fall through to re-attach.
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    if (signal.aborted) return { outcome: 'aborted', state: s };
    // The body ended (or broke) without [DONE]: re-attach where the last event ended.
    if (progressed) attempt = 0;
    if (++attempt > maxRetries) return { outcome: 'error', state: s, error: new Error('stream interrupted') };
    opts.onUpdate?.(s, { firstToken: false, reconnecting: true });
    await backoff(attempt, signal);
  }
}

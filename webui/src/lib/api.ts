// The one typed client for the Corral HTTP API. A contract change is an edit here.
//
// Every request carries `Authorization: Bearer <token>` when a token is stored; a 401 from
// anywhere (except the login call itself) clears it and calls the registered handler, which
// sends the user back to the login page.

import { SseParser, type SseEvent } from './sse';

// ---------------------------------------------------------------- contract types

export interface ApiErrorBody {
  message: string;
  type?: string | null;
  param?: string | null;
  code?: string | number | null;
}

export type ModeName = 'fast' | 'normal' | 'deep';

export interface SamplingSettings {
  // null: not sent, so the model's own default applies (its preset, or its GGUF's metadata).
  temperature: number | null;
  top_p: number | null;
  max_tokens: number;
}

export interface SearchHit {
  id: string;
  title: string;
  updated_at: number;
  snippet: string;
}

export interface UiConfig {
  version: string;
  auth_required: boolean;
  accounts?: boolean; // false: keys exist but no user can sign in yet
  default_model: string;
  modes: Record<ModeName, { label: string; system_prompt: string }>;
  defaults: SamplingSettings;
  /** The server's bounds per sampling setting (the protocol's), so the UI never offers a 400. */
  bounds?: Partial<Record<keyof SamplingSettings, { min?: number; max?: number }>>;
}

export interface User {
  name: string;
  admin: boolean;
}

export interface LoginResult {
  token: string;
  expires_at: number;
  user: User;
}

// reachable / degraded / unreachable: a remote model (an engine elsewhere) by its upstream's health.
export type ModelState =
  | 'unloaded'
  | 'loading'
  | 'loaded'
  | 'failed'
  | 'downloading'
  | 'reachable'
  | 'degraded'
  | 'unreachable';

/** A model whose process runs: a local one loaded or loading, a remote one whatever its upstream says. */
export function running(state: ModelState): boolean {
  return state === 'loaded' || state === 'loading' || state === 'reachable' || state === 'degraded' || state === 'unreachable';
}

export interface Model {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  state: ModelState;
  progress: number | null;
  error: string | null;
  default: boolean;
  /** chat, transcription or speech (older servers send none: chat). */
  kind?: string;
}

export interface MessageStats {
  ttft_ms: number | null;
  tokens_per_second: number | null;
  prompt_tokens: number | null;
  completion_tokens: number | null;
}

export interface StoredMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
  reasoning?: string;
  stats?: MessageStats;
  /** An answer that did not end by itself: stopped by the user, or cut at max_tokens. */
  finish?: 'stopped' | 'length';
  /** Other versions of this message, each with the messages that followed it (branches.ts). */
  alts?: StoredMessage[][];
  /** This version's place among all of them (0-based). */
  version?: number;
}

export interface ConversationSummary {
  id: string;
  title: string;
  pinned: boolean;
  model: string | null;
  mode: ModeName | null;
  created_at: number;
  updated_at: number;
}

export interface Conversation extends ConversationSummary {
  system_prompt: string;
  settings: Partial<SamplingSettings>;
  messages: StoredMessage[];
}

export type ConversationPatch = Partial<
  Pick<Conversation, 'title' | 'pinned' | 'model' | 'mode' | 'system_prompt' | 'settings' | 'messages'>
>;

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  stream: boolean;
  stream_options?: { include_usage: boolean };
  /** Go on with the last (assistant) message instead of answering anew. */
  continue_final_message?: boolean;
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
}

export interface ChatCompletion {
  id: string;
  model: string;
  choices: { index: number; message: { role: string; content: string | null; reasoning_content?: string }; finish_reason: string | null }[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export type StreamState = 'running' | 'done' | 'cancelled' | 'failed';

export interface StreamInfo {
  conversation_id: string;
  state: StreamState;
  bytes: number;
  model: string;
}

export interface AdminModel {
  id: string;
  state: ModelState;
  size_bytes: number | null;
  backend: string | null;
  source: string | null;
  loaded_since: number | null;
  last_used: number | null;
  memory_bytes: number | null;
  /** What the scheduler's memory budget counts for the model (weights, KV cache, logits). */
  estimated_bytes: number | null;
  in_flight: number;
  queued: number;
  keep_alive_deadline: number | null;
  progress: number | null;
  error: string | null;
  pinned: boolean;
}

export interface DownloadEvent {
  job: string;
  repo: string;
  state: 'running' | 'finished' | 'failed' | 'cancelled';
  bytes_done: number;
  bytes_total: number | null;
  bytes_per_second: number | null;
  files: Record<string, [number, number | null]>;
  error?: string | null;
}

export interface PullRequest {
  repo: string;
  revision?: string;
  files?: string[];
  include?: string[];
}

export interface ServerChild {
  model: string;
  pid: number | null;
  state: string;
  memory_bytes: number | null;
  cpu_percent: number | null;
}

export interface ServerInfo {
  version: string;
  uptime_s: number;
  queue_depth: number;
  children: ServerChild[];
}

export interface AnalyticsFilters {
  since?: number;
  until?: number;
  limit?: number;
  offset?: number;
  country?: string;
  group?: string;
  user?: string;
  model?: string;
  hide_private?: boolean;
}

export interface KeyCount {
  key: string;
  requests: number;
}

export interface AnalyticsEvent {
  ts: number;
  principal: string | null;
  method: string;
  path: string;
  route_group: string | null;
  action: string | null;
  status: number;
  latency_ms: number | null;
  client_ip: string | null;
  country: string | null;
  browser: string | null;
  os: string | null;
  device: string | null;
  model: string | null;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  ttft_ms: number | null;
  tokens_per_second: number | null;
  conversation_id: string | null;
}

export interface Percentiles {
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

export interface AnalyticsSummary {
  totals: {
    requests: number;
    errors: number;
    prompt_tokens: number;
    completion_tokens: number;
    unique_users: number;
    unique_ips: number;
    active_users_10m: number;
  };
  per_country: KeyCount[];
  per_group: KeyCount[];
  per_user: KeyCount[];
  per_model: (KeyCount & { prompt_tokens: number; completion_tokens: number })[];
  latency_ms: Percentiles;
  ttft_ms: Percentiles;
  over_time: { ts: number; requests: number }[];
  events: { total: number; items: AnalyticsEvent[] };
}

// ---------------------------------------------------------------- errors and auth

export class ApiError extends Error {
  readonly status: number;
  readonly type: string | null;
  readonly code: string | number | null;
  readonly param: string | null;

  constructor(status: number, body: ApiErrorBody) {
    super(body.message || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.type = body.type ?? null;
    this.code = body.code ?? null;
    this.param = body.param ?? null;
  }

  /** The request never got an HTTP answer (server down, network lost). */
  get unreachable(): boolean {
    return this.status === 0;
  }
}

const TOKEN_KEY = 'corral.token';
let unauthorizedHandler: (() => void) | null = null;
let memoryToken: string | null = null;

function storage(): Storage | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage;
  } catch {
    return null;
  }
}

export function getToken(): string | null {
  return storage()?.getItem(TOKEN_KEY) ?? memoryToken;
}

export function setToken(token: string | null): void {
  memoryToken = token;
  const s = storage();
  if (!s) return;
  if (token) s.setItem(TOKEN_KEY, token);
  else s.removeItem(TOKEN_KEY);
}

export function onUnauthorized(handler: () => void): void {
  unauthorizedHandler = handler;
}

function headers(extra?: Record<string, string>): Record<string, string> {
  const h: Record<string, string> = { ...extra };
  const token = getToken();
  if (token) h['Authorization'] = `Bearer ${token}`;
  return h;
}

async function errorFrom(res: Response): Promise<ApiError> {
  let body: ApiErrorBody = { message: `${res.status} ${res.statusText}`.trim() };
  try {
    const text = await res.text();
    try {
      const parsed = JSON.parse(text) as { error?: ApiErrorBody | string; message?: string };
      if (parsed && typeof parsed.error === 'object' && parsed.error) body = parsed.error;
      else if (parsed && typeof parsed.error === 'string') body = { message: parsed.error };
      else if (parsed && typeof parsed.message === 'string') body = { message: parsed.message };
    } catch {
      if (text && text.length < 300 && !text.trimStart().startsWith('<')) body = { message: text.trim() };
    }
  } catch {
    /* body unreadable: keep the status line */
  }
  return new ApiError(res.status, body);
}

function handle401(res: Response, path: string): void {
  if (res.status === 401 && path !== '/api/login') {
    setToken(null);
    unauthorizedHandler?.();
  }
}

/** fetch with auth headers; network failures become ApiError(status 0); non-2xx is returned. */
export async function rawFetch(path: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers: headers(init.headers) });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, { message: 'Server unreachable', type: 'network_error' });
  }
  handle401(res, path);
  return res;
}

async function request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const init: RequestInit & { headers: Record<string, string> } = { method, headers: {}, signal };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await rawFetch(path, init);
  if (!res.ok) throw await errorFrom(res);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(res.status, { message: `Unexpected response from ${path}`, type: 'bad_response' });
  }
}

function query(params: object): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    q.set(k, v === true ? 'true' : String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------- endpoints

export const api = {
  uiConfig: () => request<UiConfig>('GET', '/api/ui-config'),
  login: (username: string, password: string) => request<LoginResult>('POST', '/api/login', { username, password }),
  logout: () => request<void>('POST', '/api/logout'),
  me: () => request<User>('GET', '/api/me'),

  models: () => request<{ object: 'list'; data: Model[] }>('GET', '/v1/models').then((r) => r.data),

  conversations: () => request<{ data: ConversationSummary[] }>('GET', '/api/conversations').then((r) => r.data),
  /** The text of a PDF, extracted on the server (pypdf), for an attachment. */
  pdfText: async (file: Blob): Promise<{ text: string; pages: number }> => {
    const res = await rawFetch('/api/attachments/pdf-text', { method: 'POST', headers: { 'Content-Type': 'application/pdf' }, body: file });
    if (!res.ok) throw await errorFrom(res);
    return (await res.json()) as { text: string; pages: number };
  },
  /** Conversations whose title or message text has every word of `q` (SQLite FTS5, prefixes). */
  searchConversations: (q: string) =>
    request<{ data: SearchHit[] }>('GET', `/api/conversations?q=${encodeURIComponent(q)}`).then((r) => r.data),
  createConversation: (c: Partial<Pick<Conversation, 'id' | 'title' | 'model' | 'mode' | 'system_prompt' | 'settings' | 'messages'>>) =>
    request<Conversation>('POST', '/api/conversations', c),
  conversation: (id: string) => request<Conversation>('GET', `/api/conversations/${enc(id)}`),
  patchConversation: (id: string, patch: ConversationPatch) =>
    request<Conversation>('PATCH', `/api/conversations/${enc(id)}`, patch),
  deleteConversation: (id: string) => request<void>('DELETE', `/api/conversations/${enc(id)}`),

  /** Non-streaming completion (titles). Never sent with X-Conversation-Id. */
  complete: (body: ChatRequest, signal?: AbortSignal) =>
    request<ChatCompletion>('POST', '/v1/chat/completions', { ...body, stream: false }, signal),

  /** Start a resumable streaming generation; the caller reads the body. */
  async startChat(body: ChatRequest, conversationId: string, signal?: AbortSignal): Promise<Response> {
    return rawFetch('/v1/chat/completions', {
      method: 'POST',
      signal,
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', 'X-Conversation-Id': conversationId },
      body: JSON.stringify(body),
    });
  },
  /** Re-attach to a generation at a byte offset of its response body. */
  async resumeStream(conversationId: string, from: number, signal?: AbortSignal): Promise<Response> {
    return rawFetch(`/v1/stream/${enc(conversationId)}?from=${from}`, {
      method: 'GET',
      signal,
      headers: { Accept: 'text/event-stream' },
    });
  },
  stopStream: (conversationId: string) => request<void>('DELETE', `/v1/stream/${enc(conversationId)}`),
  lookupStreams: (ids: string[]) =>
    request<{ data: StreamInfo[] }>('POST', '/v1/streams/lookup', { conversation_ids: ids }).then((r) => r.data),

  adminModels: () => request<{ data: AdminModel[] }>('GET', '/admin/models').then((r) => r.data),
  pull: (p: PullRequest) => request<{ job: string }>('POST', '/admin/models/pull', p),
  cancelPull: (job: string) => request<unknown>('POST', '/admin/models/cancel', { job }),
  load: (model: string) => request<unknown>('POST', '/admin/models/load', { model }),
  unload: (model: string) => request<unknown>('POST', '/admin/models/unload', { model }),
  deleteModel: (model: string, force = false) =>
    request<unknown>('POST', '/admin/models/delete', force ? { model, force } : { model }),
  server: () => request<ServerInfo>('GET', '/admin/server'),
  analytics: (f: AnalyticsFilters) => request<AnalyticsSummary>('GET', `/admin/analytics/summary${query(f)}`),
  /** CSV export URL (fetched with the auth header by `downloadCsv`). */
  exportCsvPath: (f: AnalyticsFilters) => `/admin/analytics/export.csv${query({ ...f, limit: undefined, offset: undefined })}`,
  async downloadCsv(f: AnalyticsFilters): Promise<Blob> {
    const res = await rawFetch(api.exportCsvPath(f));
    if (!res.ok) throw await errorFrom(res);
    return res.blob();
  },
};

export { errorFrom };

// ---------------------------------------------------------------- SSE over fetch

/**
 * Follow an SSE endpoint (the admin event feed) with fetch, so the auth header can be sent.
 * Reconnects with back-off until `signal` aborts. `onStatus` reports connected/disconnected.
 */
export async function followEvents(
  path: string,
  onEvent: (ev: SseEvent) => void,
  signal: AbortSignal,
  onStatus?: (connected: boolean, error?: ApiError) => void,
): Promise<void> {
  let delay = 1000;
  while (!signal.aborted) {
    try {
      const res = await rawFetch(path, { signal, headers: { Accept: 'text/event-stream' } });
      if (!res.ok || !res.body) throw await errorFrom(res);
      onStatus?.(true);
      delay = 1000;
      const parser = new SseParser();
      const reader = res.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const ev of parser.push(value)) onEvent(ev);
      }
      onStatus?.(false);
    } catch (e) {
      if (signal.aborted) return;
      onStatus?.(false, e instanceof ApiError ? e : undefined);
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return;
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 15000);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

// Conversations and their generations.
//
// A conversation's stored messages live in `convs`; an answer being generated lives beside
// them in `live` until it is finished, then it is appended and the messages are saved with
// PATCH. While it runs, its byte offset and text are kept in localStorage (partials.ts), so a
// reload or a reopened tab re-attaches with /v1/stream/{id}?from=N; at start-up
// /v1/streams/lookup says which conversations are generating.

import {
  api,
  ApiError,
  type ChatRequest,
  type Conversation,
  type ConversationPatch,
  type ConversationSummary,
  type ModeName,
  type SamplingSettings,
  type StoredMessage,
  type StreamInfo,
} from './api';
import {
  answerStats,
  assistantMessage,
  chatRequest,
  cleanTitle,
  effectiveSettings,
  fallbackTitle,
  requestMessages,
  sortConversations,
  systemPrompt,
  titleRequest,
} from './chatlogic';
import { HttpStatusError, emptyState, runGeneration, type Result, type Transport, type Usage } from './generation';
import { archiveFrom, restoreVersion, switchVersion, versionsAt, withVersions } from './branches';
import { newConversationId } from './ids';
import { models } from './models.svelte';
import { Partials, throttledSaver, type PartialRecord } from './partials';
import { chatHref, router } from './router.svelte';
import { session } from './session.svelte';
import { splitThink } from './think';

export interface LiveAnswer {
  raw: string;
  reasoning: string;
  usage: Usage | null;
  /** No token yet. */
  waiting: boolean;
  reconnecting: boolean;
  /** The connection is lost and retries ran out; `reconnect()` tries again. */
  lost: boolean;
  startedAt: number;
  ttftMs: number | null;
  firstTokenAt: number | null;
  model: string;
  /** True when this client re-attached (reload, other device) rather than started it. */
  resumed: boolean;
}

export interface Draft {
  model: string;
  mode: ModeName;
  system_prompt: string;
  settings: Partial<SamplingSettings>;
}

const transport: Transport = {
  start: (body, id, signal) => api.startChat(body, id, signal),
  resume: (id, from, signal) => api.resumeStream(id, from, signal),
};

const LAST_MODEL_KEY = 'corral.lastModel';
const LAST_MODE_KEY = 'corral.lastMode';

function stored(key: string): string {
  try {
    return localStorage.getItem(key) ?? '';
  } catch {
    return '';
  }
}

function remember(key: string, value: string): void {
  try {
    localStorage.setItem(key, value);
  } catch {
    /* private mode */
  }
}

function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.unreachable ? 'Server unreachable.' : e.message;
  if (e instanceof HttpStatusError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

function summaryOf(c: Conversation): ConversationSummary {
  return { id: c.id, title: c.title, pinned: c.pinned, model: c.model, mode: c.mode, created_at: c.created_at, updated_at: c.updated_at };
}

function normalize(c: Conversation): Conversation {
  return {
    ...c,
    title: c.title ?? '',
    pinned: Boolean(c.pinned),
    system_prompt: c.system_prompt ?? '',
    settings: c.settings ?? {},
    messages: Array.isArray(c.messages) ? c.messages : [],
  };
}

class Chat {
  list = $state<ConversationSummary[]>([]);
  listStatus = $state<'loading' | 'ready' | 'error'>('loading');
  listError = $state('');
  convs = $state<Record<string, Conversation>>({});
  convStatus = $state<Record<string, 'loading' | 'ready' | 'missing' | 'error'>>({});
  live = $state<Record<string, LiveAnswer>>({});
  /** Generating according to /v1/streams/lookup, not (yet) attached here. */
  remote = $state<Record<string, StreamInfo>>({});
  /** The last generation of a conversation failed: the message to show beside a retry button. */
  failed = $state<Record<string, string>>({});
  /** Titles shown until the generated one arrives. */
  provisionalTitle = $state<Record<string, string>>({});
  notice = $state('');
  draft = $state<Draft>({ model: stored(LAST_MODEL_KEY), mode: (stored(LAST_MODE_KEY) as ModeName) || 'normal', system_prompt: '', settings: {} });

  private controllers = new Map<string, AbortController>();
  private partials = new Partials();
  private writes = new Map<string, Promise<unknown>>();
  private flushers = new Set<() => void>();
  private lookupTimer: ReturnType<typeof setTimeout> | null = null;
  private noticeTimer: ReturnType<typeof setTimeout> | null = null;
  private removed = new Set<string>();

  constructor() {
    if (typeof window !== 'undefined') {
      window.addEventListener('pagehide', () => this.flushAll());
      window.addEventListener('online', () => {
        for (const [id, l] of Object.entries(this.live)) if (l.lost) this.reconnect(id);
      });
    }
  }

  // ------------------------------------------------------------ queries

  sorted(): ConversationSummary[] {
    return sortConversations(this.list);
  }

  titleOf(id: string): string {
    const s = this.list.find((c) => c.id === id);
    return s?.title || this.convs[id]?.title || this.provisionalTitle[id] || 'New chat';
  }

  isGenerating(id: string): boolean {
    return Boolean(this.live[id] && !this.live[id].lost) || Boolean(this.remote[id]);
  }

  showNotice(text: string): void {
    this.notice = text;
    if (this.noticeTimer) clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => (this.notice = ''), 6000);
  }

  // ------------------------------------------------------------ start-up

  async init(): Promise<void> {
    await this.loadList();
    await this.recover();
  }

  async loadList(): Promise<void> {
    try {
      const data = await api.conversations();
      // Keep local conversations the server does not know yet (created a moment ago).
      const ids = new Set(data.map((c) => c.id));
      const localOnly = this.list.filter((c) => !ids.has(c.id) && this.convs[c.id]);
      this.list = [...localOnly, ...data];
      this.listStatus = 'ready';
      this.listError = '';
    } catch (e) {
      this.listStatus = 'error';
      this.listError = errorText(e);
    }
  }

  /** Re-attach to generations that were running when the page went away. */
  async recover(): Promise<void> {
    const recs = this.partials.all();
    const ids = [...new Set([...recs.map((r) => r.conversationId), ...this.sorted().map((c) => c.id)])].slice(0, 200);
    let infos: Map<string, StreamInfo> | null = null;
    if (ids.length) {
      try {
        infos = new Map((await api.lookupStreams(ids)).map((i) => [i.conversation_id, i]));
      } catch {
        infos = null; // lookup unavailable: try to re-attach anyway, a 404 settles it
      }
    }
    for (const rec of recs) {
      const id = rec.conversationId;
      if (this.live[id]) continue;
      if (rec.state.done) void this.finish(rec, { outcome: 'done', state: rec.state }, false);
      else if (infos && !infos.has(id)) void this.finish(rec, { outcome: 'gone', state: rec.state }, false);
      else void this.run(rec);
    }
    if (infos) {
      for (const info of infos.values()) {
        if (info.state === 'running' && !this.live[info.conversation_id]) this.remote[info.conversation_id] = info;
      }
    }
    this.scheduleLookup();
  }

  /** Keep the "generating elsewhere" marks fresh while there are any. */
  private scheduleLookup(): void {
    if (this.lookupTimer) clearTimeout(this.lookupTimer);
    if (Object.keys(this.remote).length === 0) return;
    this.lookupTimer = setTimeout(async () => {
      const ids = Object.keys(this.remote);
      try {
        const infos = new Map((await api.lookupStreams(ids)).map((i) => [i.conversation_id, i]));
        for (const id of ids) {
          const info = infos.get(id);
          if (info?.state === 'running') continue;
          delete this.remote[id];
          if (this.convs[id] && !this.live[id]) void this.reload(id);
        }
      } catch {
        /* try again later */
      }
      this.scheduleLookup();
    }, 5000);
  }

  // ------------------------------------------------------------ opening

  async open(id: string): Promise<void> {
    if (!this.convs[id]) {
      if (this.convStatus[id] === 'loading') return;
      this.convStatus[id] = 'loading';
      try {
        const c = normalize(await api.conversation(id));
        const rec = this.partials.get(id);
        if (rec && rec.history.length > c.messages.length) c.messages = rec.history;
        this.convs[id] = c;
        this.convStatus[id] = 'ready';
      } catch (e) {
        this.convStatus[id] = e instanceof ApiError && e.status === 404 ? 'missing' : 'error';
        if (this.convStatus[id] === 'error') this.showNotice(`Could not open the conversation: ${errorText(e)}`);
        return;
      }
    }
    this.attachRemote(id);
  }

  private async reload(id: string): Promise<void> {
    try {
      this.convs[id] = normalize(await api.conversation(id));
    } catch {
      /* keep what we have */
    }
  }

  /** Follow a generation started elsewhere (another tab or device) from its first byte. */
  private attachRemote(id: string): void {
    const info = this.remote[id];
    const conv = this.convs[id];
    if (!info || !conv || this.live[id]) return;
    if (conv.messages.at(-1)?.role === 'assistant') return;
    const rec: PartialRecord = this.partials.get(id) ?? {
      v: 1,
      conversationId: id,
      history: conv.messages,
      state: emptyState(0),
      model: info.model,
      startedAt: Date.now(),
      ttftMs: null,
      firstTokenAt: null,
      savedAt: 0,
    };
    void this.run(rec);
  }

  // ------------------------------------------------------------ sending

  /** Send a user message; `id` null starts a new conversation from the draft. */
  send(id: string | null, text: string): void {
    const content = text.trim();
    if (!content) return;
    let conv: Conversation;
    if (id && this.convs[id]) {
      conv = this.convs[id];
    } else {
      conv = this.createLocal(content);
      router.go(chatHref(conv.id));
    }
    if (this.isGenerating(conv.id)) return;
    if (!conv.title && conv.messages.length === 0) this.provisionalTitle[conv.id] ??= fallbackTitle(content);
    const history: StoredMessage[] = [...conv.messages, { role: 'user', content }];
    conv.messages = history;
    this.start(conv, history);
  }

  /** A new answer to the last question; the old one stays as an earlier version. */
  regenerate(id: string): void {
    const conv = this.convs[id];
    if (!conv || this.isGenerating(id)) return;
    let history = conv.messages;
    while (history.length && history.at(-1)?.role === 'assistant') history = history.slice(0, -1);
    if (!history.length) return;
    const at = history.length;
    const branch = at < conv.messages.length ? { alts: archiveFrom(conv.messages, at), altAt: versionsAt(conv.messages, at).current } : undefined;
    conv.messages = history;
    this.start(conv, history, branch);
  }

  /** Resend an edited question; the old one, with all that followed it, stays a version. */
  editAndResend(id: string, index: number, text: string): void {
    const conv = this.convs[id];
    const content = text.trim();
    if (!conv || !content || this.isGenerating(id) || conv.messages[index]?.role !== 'user') return;
    const edited = withVersions({ role: 'user', content }, archiveFrom(conv.messages, index));
    const history: StoredMessage[] = [...conv.messages.slice(0, index), edited];
    conv.messages = history;
    this.start(conv, history);
  }

  /** Show version `j` of message `index` (and the messages that followed that version). */
  showVersion(id: string, index: number, j: number): void {
    const conv = this.convs[id];
    if (!conv || this.isGenerating(id)) return;
    conv.messages = switchVersion(conv.messages, index, j);
    this.touch(id);
    void this.saveMessages(id, conv.messages);
  }

  /** Go on with a stopped or length-capped last answer, in the same message. */
  continueAnswer(id: string): void {
    const conv = this.convs[id];
    const last = conv?.messages.at(-1);
    if (!conv || !last || last.role !== 'assistant' || !last.finish || this.isGenerating(id)) return;
    const cfg = session.config;
    const model = conv.model || models.defaultId(cfg.default_model);
    if (!model) return;
    const history = conv.messages.slice(0, -1);
    const body: ChatRequest = {
      ...chatRequest(model, requestMessages(systemPrompt(cfg, conv.mode, conv.system_prompt), conv.messages), effectiveSettings(cfg.defaults, conv.settings)),
      continue_final_message: true,
    };
    const state = emptyState(0);
    state.raw = last.content;
    state.reasoning = last.reasoning ?? '';
    conv.messages = history; // the live answer shows the whole message as it grows
    delete this.failed[id];
    this.touch(id);
    const rec: PartialRecord = { v: 1, conversationId: id, history, state, model, startedAt: Date.now(), ttftMs: null, firstTokenAt: null, savedAt: 0, continues: last };
    void this.run(rec, body);
  }

  stop(id: string): void {
    this.controllers.get(id)?.abort();
    api.stopStream(id).catch(() => {});
    if (this.remote[id]) {
      delete this.remote[id];
      void this.reload(id);
    }
  }

  reconnect(id: string): void {
    const rec = this.partials.get(id);
    if (rec) void this.run(rec);
    else delete this.live[id];
  }

  dismissFailure(id: string): void {
    delete this.failed[id];
  }

  /**
   * A new conversation, created on the server at once with a provisional title from the first
   * message: a tab closed before the answer ends leaves a named entry, not another "New chat".
   * The model's title replaces it when the first answer is in.
   */
  private createLocal(firstMessage: string): Conversation {
    const id = newConversationId();
    const provisional = fallbackTitle(firstMessage);
    this.provisionalTitle[id] = provisional;
    const now = Date.now() / 1000;
    const d = this.draft;
    const conv: Conversation = {
      id,
      title: '',
      pinned: false,
      model: d.model || models.defaultId(session.config.default_model) || null,
      mode: d.mode,
      system_prompt: d.system_prompt,
      settings: { ...d.settings },
      messages: [],
      created_at: now,
      updated_at: now,
    };
    this.convs[id] = conv;
    this.convStatus[id] = 'ready';
    this.list = [summaryOf(conv), ...this.list];
    this.draft.system_prompt = '';
    this.draft.settings = {};
    const settings = conv.settings;
    this.write(id, async () => {
      await api.createConversation({ id, title: provisional, model: conv.model, mode: conv.mode, system_prompt: conv.system_prompt });
      if (Object.keys(settings).length) await api.patchConversation(id, { settings });
    });
    return conv;
  }

  private start(conv: Conversation, history: StoredMessage[], branch?: { alts: StoredMessage[][]; altAt: number }): void {
    const id = conv.id;
    delete this.failed[id];
    const cfg = session.config;
    const model = conv.model || models.defaultId(cfg.default_model);
    if (!model) {
      this.failed[id] = 'No model is available. An admin can pull one on the Models page.';
      return;
    }
    const body = chatRequest(model, requestMessages(systemPrompt(cfg, conv.mode, conv.system_prompt), history), effectiveSettings(cfg.defaults, conv.settings));
    this.touch(id);
    // The user's turn is on the server before the answer ends; a regeneration leaves the
    // server's copy (with the answer it replaces) alone until the new answer is in.
    if (!branch) this.saveMessages(id, history);
    const m = models.byId(model);
    if (m && m.state !== 'loaded') models.watch();
    const rec: PartialRecord = {
      v: 1,
      conversationId: id,
      history,
      state: emptyState(0),
      model,
      startedAt: Date.now(),
      ttftMs: null,
      firstTokenAt: null,
      savedAt: 0,
      ...(branch ?? {}),
    };
    void this.run(rec, body);
  }

  // ------------------------------------------------------------ the generation loop

  private async run(rec: PartialRecord, body?: ChatRequest): Promise<void> {
    const id = rec.conversationId;
    this.controllers.get(id)?.abort();
    const ac = new AbortController();
    this.controllers.set(id, ac);
    delete this.remote[id];
    delete this.failed[id];
    const s = rec.state;
    this.live[id] = {
      raw: s.raw,
      reasoning: s.reasoning,
      usage: s.usage,
      waiting: !(s.raw || s.reasoning),
      reconnecting: false,
      lost: false,
      startedAt: rec.startedAt,
      ttftMs: rec.ttftMs,
      firstTokenAt: rec.firstTokenAt,
      model: rec.model,
      resumed: !body,
    };
    this.partials.save(rec); // at once: a reload right after sending re-attaches from 0
    const saver = throttledSaver(this.partials, 250);
    const flushSaver = () => saver.flush();
    this.flushers.add(flushSaver);
    let frame = 0;
    const paint = () => {
      frame = 0;
      const l = this.live[id];
      if (!l || this.controllers.get(id) !== ac) return;
      l.raw = s.raw;
      l.reasoning = s.reasoning;
      l.usage = s.usage;
    };

    const result = await runGeneration({
      conversationId: id,
      transport,
      signal: ac.signal,
      body,
      state: s,
      onUpdate: (_state, info) => {
        const l = this.live[id];
        if (info.firstToken && rec.firstTokenAt === null) {
          rec.firstTokenAt = Date.now();
          rec.ttftMs = rec.firstTokenAt - rec.startedAt;
          if (l) {
            l.ttftMs = rec.ttftMs;
            l.firstTokenAt = rec.firstTokenAt;
          }
        }
        if (l) {
          if (l.reconnecting !== info.reconnecting) l.reconnecting = info.reconnecting;
          if (l.waiting && (s.raw || s.reasoning)) l.waiting = false;
        }
        saver.save(rec);
        if (!frame) frame = typeof requestAnimationFrame === 'function' ? requestAnimationFrame(paint) : (setTimeout(paint, 16) as unknown as number);
      },
    });
    if (frame && typeof cancelAnimationFrame === 'function') cancelAnimationFrame(frame);
    paint();
    this.flushers.delete(flushSaver);
    saver.cancel();
    if (this.controllers.get(id) !== ac) return; // superseded by a newer run
    this.controllers.delete(id);
    await this.finish(rec, result, Boolean(body));
  }

  private async finish(rec: PartialRecord, result: Result, started: boolean): Promise<void> {
    const id = rec.conversationId;
    const s = result.state;
    const stats = answerStats(s, { ttftMs: rec.ttftMs, firstTokenAt: rec.firstTokenAt, endAt: Date.now() });
    const hasText = Boolean(s.raw.trim() || s.reasoning.trim());
    const drop = () => {
      this.partials.remove(id);
      delete this.live[id];
      const conv = this.convs[id];
      // A continuation that failed leaves the answer as it was.
      if (rec.continues && conv && conv.messages.length === rec.history.length) conv.messages = [...rec.history, rec.continues];
      if (rec.alts?.length && conv && conv.messages.length === rec.history.length) conv.messages = restoreVersion(rec.history, rec.alts, rec.altAt ?? rec.alts.length - 1);
    };
    if (this.removed.has(id)) {
      drop();
      return;
    }

    if (result.outcome === 'done' || result.outcome === 'aborted') {
      const answer = splitThink(s.raw, s.reasoning).answer.trim();
      if (s.error && !answer) {
        drop();
        this.failed[id] = s.error.message || 'The model failed.';
        return;
      }
      if (!hasText) {
        drop();
        if (result.outcome === 'done') this.failed[id] = 'The model returned an empty answer.';
        return;
      }
      if (s.error) this.failed[id] = s.error.message;
      await this.commit(rec, assistantMessage(s, stats, result.outcome === 'aborted'));
      return;
    }

    if (result.outcome === 'gone') {
      if (started && !hasText) {
        drop();
        this.failed[id] = 'Lost the connection to the server before the answer started.';
        return;
      }
      // The session expired or never existed: the server's saved copy is the truth.
      let server: Conversation | null = null;
      try {
        server = normalize(await api.conversation(id));
      } catch {
        server = null;
      }
      const answered = server && server.messages.length > rec.history.length && server.messages.at(-1)?.role === 'assistant';
      if (server && (answered || !hasText)) {
        drop();
        this.convs[id] = server;
        return;
      }
      if (hasText) {
        const msg = assistantMessage(s, stats);
        await this.commit(rec, msg);
        this.showNotice('The generation was interrupted; the partial answer was kept.');
        return;
      }
      drop();
      return;
    }

    // 'error'
    if (result.status !== undefined) {
      drop();
      this.failed[id] = errorText(result.error);
      if (result.status === 404 && started) models.watch(5000);
      return;
    }
    if (started && !hasText) {
      // The message never got an answer at all: most likely the server is down.
      drop();
      this.failed[id] = 'Could not reach the server. Check that Corral is running, then retry.';
      return;
    }
    // Network trouble: keep the partial so a reconnect (or reload) can pick it up.
    this.partials.save(rec);
    const l = this.live[id];
    if (l) {
      l.lost = true;
      l.reconnecting = false;
    }
  }

  private async commit(rec: PartialRecord, answer: StoredMessage): Promise<void> {
    const id = rec.conversationId;
    const kept = rec.continues; // a continued answer keeps its place among its versions
    const msg = rec.alts?.length
      ? withVersions(answer, rec.alts)
      : kept?.alts?.length
        ? { ...answer, alts: kept.alts, version: kept.version }
        : answer;
    let history = rec.history;
    const conv = this.convs[id];
    if (!history.length && conv) history = conv.messages;
    const messages = [...history, msg];
    if (conv) conv.messages = messages;
    this.partials.remove(id);
    delete this.live[id];
    this.touch(id);
    await this.saveMessages(id, messages);
    const title = this.list.find((c) => c.id === id)?.title || conv?.title;
    const userTurns = messages.filter((m) => m.role === 'user');
    const untitled = !title || title === this.provisionalTitle[id];
    if (untitled && userTurns.length === 1 && msg.content) {
      void this.makeTitle(id, userTurns[0].content, msg.content, rec.model);
    }
  }

  private flushAll(): void {
    for (const f of this.flushers) f();
  }

  // ------------------------------------------------------------ titles

  private async makeTitle(id: string, user: string, answer: string, model: string): Promise<void> {
    let title = '';
    try {
      const res = await api.complete(titleRequest(model, user, answer));
      title = cleanTitle(res.choices?.[0]?.message?.content ?? '');
    } catch {
      title = '';
    }
    const current = this.list.find((c) => c.id === id)?.title;
    if (current && current !== this.provisionalTitle[id]) return; // renamed meanwhile
    this.rename(id, title || fallbackTitle(user));
  }

  // ------------------------------------------------------------ edits

  rename(id: string, title: string): void {
    const t = title.trim();
    if (!t) return;
    this.patchLocal(id, { title: t });
    delete this.provisionalTitle[id];
    this.write(id, () => api.patchConversation(id, { title: t }));
  }

  togglePin(id: string): void {
    const s = this.list.find((c) => c.id === id);
    const pinned = !(s?.pinned ?? this.convs[id]?.pinned);
    this.patchLocal(id, { pinned });
    this.write(id, () => api.patchConversation(id, { pinned }));
  }

  async remove(id: string): Promise<void> {
    this.removed.add(id);
    if (this.controllers.has(id)) this.stop(id);
    this.list = this.list.filter((c) => c.id !== id);
    delete this.convs[id];
    delete this.live[id];
    delete this.remote[id];
    this.partials.remove(id);
    if (router.route.name === 'chat' && router.route.conversationId === id) router.go('#/');
    try {
      await this.write(id, () => api.deleteConversation(id));
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) this.showNotice(`Delete failed: ${errorText(e)}`);
    }
  }

  /** Model, mode, system prompt or sampling settings of a conversation (or of the draft). */
  configure(id: string | null, patch: Partial<Pick<Conversation, 'model' | 'mode' | 'system_prompt' | 'settings'>>): void {
    if (patch.model) remember(LAST_MODEL_KEY, patch.model);
    if (patch.mode) remember(LAST_MODE_KEY, patch.mode);
    if (!id || !this.convs[id]) {
      Object.assign(this.draft, patch);
      return;
    }
    if (patch.model) this.draft.model = patch.model;
    if (patch.mode) this.draft.mode = patch.mode;
    this.patchLocal(id, patch);
    this.write(id, () => api.patchConversation(id, patch));
  }

  private patchLocal(id: string, patch: ConversationPatch): void {
    const conv = this.convs[id];
    if (conv) Object.assign(conv, patch);
    const i = this.list.findIndex((c) => c.id === id);
    if (i >= 0) {
      const { title, pinned, model, mode } = patch;
      const s = this.list[i];
      if (title !== undefined) s.title = title;
      if (pinned !== undefined) s.pinned = pinned;
      if (model !== undefined) s.model = model;
      if (mode !== undefined) s.mode = mode;
    }
  }

  private touch(id: string): void {
    const now = Date.now() / 1000;
    const s = this.list.find((c) => c.id === id);
    if (s) s.updated_at = now;
    const conv = this.convs[id];
    if (conv) conv.updated_at = now;
  }

  private saveMessages(id: string, messages: StoredMessage[]): Promise<void> {
    const copy = messages.map((m) => ({ ...m }));
    return this.write(id, () => api.patchConversation(id, { messages: copy })).then(
      () => undefined,
      (e) => this.showNotice(`Could not save the conversation: ${errorText(e)}`),
    );
  }

  /** Writes to one conversation run in order (create before patch, patches in sequence). */
  private write<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.writes.get(id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.writes.set(id, next);
    void next.finally(() => {
      if (this.writes.get(id) === next) this.writes.delete(id);
    }).catch(() => undefined);
    return next;
  }
}

export const chat = new Chat();

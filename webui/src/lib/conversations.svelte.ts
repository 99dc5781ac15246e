// The conversations: the list (summaries, for the sidebar) and one record per conversation id
// holding everything this page knows of it: the stored conversation once loaded, its load
// status, the provisional title shown until the generated one arrives, and the failure of its
// last generation. One record, so these cannot get out of step; removing a conversation drops
// the record whole. Writes to the server for one conversation run in order.

import {
  api,
  ApiError,
  type Conversation,
  type ConversationPatch,
  type ConversationSummary,
  type StoredMessage,
} from './api';
import { fallbackTitle, sortConversations } from './chatlogic';
import { draft } from './draft.svelte';
import { errorText } from './errors';
import { newConversationId } from './ids';
import { models } from './models.svelte';
import { notice } from './notice.svelte';
import { session } from './session.svelte';

export type LoadStatus = 'loading' | 'ready' | 'missing' | 'error';

export interface ConversationRecord {
  /** The stored conversation, once loaded or created here. */
  conv?: Conversation;
  status?: LoadStatus;
  /** The title shown until the generated one arrives. */
  provisionalTitle?: string;
  /** The last generation failed: the message to show beside a retry button. */
  failed?: string;
}

export function summaryOf(c: Conversation): ConversationSummary {
  return { id: c.id, title: c.title, pinned: c.pinned, model: c.model, mode: c.mode, created_at: c.created_at, updated_at: c.updated_at };
}

export function normalize(c: Conversation): Conversation {
  return {
    ...c,
    title: c.title ?? '',
    pinned: Boolean(c.pinned),
    system_prompt: c.system_prompt ?? '',
    settings: c.settings ?? {},
    messages: Array.isArray(c.messages) ? c.messages : [],
  };
}

export class Conversations {
  list = $state<ConversationSummary[]>([]);
  listStatus = $state<'loading' | 'ready' | 'error'>('loading');
  listError = $state('');
  records = $state<Record<string, ConversationRecord>>({});

  private writes = new Map<string, Promise<unknown>>();
  private removed = new Set<string>();

  // ------------------------------------------------------------ records

  get(id: string): ConversationRecord | undefined {
    return this.records[id];
  }

  conv(id: string): Conversation | undefined {
    return this.records[id]?.conv;
  }

  /** The record of `id`, made if there is none (the reactive one, not a copy). */
  private record(id: string): ConversationRecord {
    if (!this.records[id]) this.records[id] = {};
    return this.records[id];
  }

  /** Put a conversation in (loaded, created or re-read from the server); returns the reactive one. */
  setConv(id: string, c: Conversation): Conversation {
    const r = this.record(id);
    r.conv = c;
    return r.conv;
  }

  setFailed(id: string, message: string): void {
    this.record(id).failed = message;
  }

  clearFailed(id: string): void {
    const r = this.records[id];
    if (r?.failed !== undefined) delete r.failed;
  }

  /** A provisional title for `id` unless it has one. */
  provide(id: string, title: string): void {
    this.record(id).provisionalTitle ??= title;
  }

  wasRemoved(id: string): boolean {
    return this.removed.has(id);
  }

  // ------------------------------------------------------------ queries

  sorted(): ConversationSummary[] {
    return sortConversations(this.list);
  }

  titleOf(id: string): string {
    const s = this.list.find((c) => c.id === id);
    const r = this.records[id];
    return s?.title || r?.conv?.title || r?.provisionalTitle || 'New chat';
  }

  // ------------------------------------------------------------ loading

  async loadList(): Promise<void> {
    try {
      const data = await api.conversations();
      // Keep local conversations the server does not know yet (created a moment ago).
      const ids = new Set(data.map((c) => c.id));
      const localOnly = this.list.filter((c) => !ids.has(c.id) && this.conv(c.id));
      this.list = [...localOnly, ...data];
      this.listStatus = 'ready';
      this.listError = '';
    } catch (e) {
      this.listStatus = 'error';
      this.listError = errorText(e);
    }
  }

  /**
   * Load a conversation unless it is here; `saved` is a history kept locally by an unfinished
   * generation (longer than the server's while the answer runs). False when it is not here.
   */
  async load(id: string, saved?: (id: string) => StoredMessage[] | undefined): Promise<boolean> {
    if (this.conv(id)) return true;
    const r = this.record(id);
    if (r.status === 'loading') return false;
    r.status = 'loading';
    try {
      const c = normalize(await api.conversation(id));
      const history = saved?.(id);
      if (history && history.length > c.messages.length) c.messages = history;
      r.conv = c;
      r.status = 'ready';
      return true;
    } catch (e) {
      r.status = e instanceof ApiError && e.status === 404 ? 'missing' : 'error';
      if (r.status === 'error') notice.show(`Could not open the conversation: ${errorText(e)}`);
      return false;
    }
  }

  async reload(id: string): Promise<void> {
    try {
      const c = normalize(await api.conversation(id));
      this.record(id).conv = c;
    } catch {
      /* keep what we have */
    }
  }

  // ------------------------------------------------------------ creating and removing

  /**
   * A new conversation from the draft, created on the server at once with a provisional title
   * from the first message: a tab closed before the answer ends leaves a named entry, not
   * another "New chat". The model's title replaces it when the first answer is in.
   */
  create(firstMessage: string): Conversation {
    const id = newConversationId();
    const provisional = fallbackTitle(firstMessage);
    const now = Date.now() / 1000;
    const conv: Conversation = {
      id,
      title: '',
      pinned: false,
      model: draft.model || models.defaultId(session.config.default_model) || null,
      mode: draft.mode,
      system_prompt: draft.system_prompt,
      settings: { ...draft.settings },
      messages: [],
      created_at: now,
      updated_at: now,
    };
    this.records[id] = { conv, status: 'ready', provisionalTitle: provisional };
    this.list = [summaryOf(conv), ...this.list];
    draft.system_prompt = '';
    draft.settings = {};
    const settings = conv.settings;
    this.write(id, async () => {
      await api.createConversation({ id, title: provisional, model: conv.model, mode: conv.mode, system_prompt: conv.system_prompt });
      if (Object.keys(settings).length) await api.patchConversation(id, { settings });
    });
    return this.records[id].conv!;
  }

  /** Mark `id` removed (a generation that ends later leaves no trace). */
  markRemoved(id: string): void {
    this.removed.add(id);
  }

  /** Drop the record and the list entry, then delete on the server. */
  async remove(id: string): Promise<void> {
    this.removed.add(id);
    this.list = this.list.filter((c) => c.id !== id);
    delete this.records[id];
    try {
      await this.write(id, () => api.deleteConversation(id));
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) notice.show(`Delete failed: ${errorText(e)}`);
    }
  }

  // ------------------------------------------------------------ edits

  rename(id: string, title: string): void {
    const t = title.trim();
    if (!t) return;
    this.patchLocal(id, { title: t });
    const r = this.records[id];
    if (r?.provisionalTitle !== undefined) delete r.provisionalTitle;
    this.write(id, () => api.patchConversation(id, { title: t }));
  }

  togglePin(id: string): void {
    const s = this.list.find((c) => c.id === id);
    const pinned = !(s?.pinned ?? this.conv(id)?.pinned);
    this.patchLocal(id, { pinned });
    this.write(id, () => api.patchConversation(id, { pinned }));
  }

  /** Change a conversation here and on the server. */
  patch(id: string, patch: ConversationPatch): void {
    this.patchLocal(id, patch);
    this.write(id, () => api.patchConversation(id, patch));
  }

  private patchLocal(id: string, patch: ConversationPatch): void {
    const conv = this.conv(id);
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

  touch(id: string): void {
    const now = Date.now() / 1000;
    const s = this.list.find((c) => c.id === id);
    if (s) s.updated_at = now;
    const conv = this.conv(id);
    if (conv) conv.updated_at = now;
  }

  saveMessages(id: string, messages: StoredMessage[]): Promise<void> {
    const copy = messages.map((m) => ({ ...m }));
    return this.write(id, () => api.patchConversation(id, { messages: copy })).then(
      () => undefined,
      (e) => notice.show(`Could not save the conversation: ${errorText(e)}`),
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

export const conversations = new Conversations();

// The chat: what the components call. Conversations and their records live in
// conversations.svelte.ts, the answers being generated in generations.svelte.ts, what a
// finished generation does in settle.ts; this facade sends, regenerates, edits and removes,
// using both, and keeps the maps the components read (`convs`, `live`, `failed`, ...) as
// read-only views over the records.

import type { ChatRequest, Conversation, StoredMessage, StreamInfo } from './api';
import { chatRequest, effectiveSettings, fallbackTitle, requestMessages, systemPrompt } from './chatlogic';
import { conversations, type LoadStatus } from './conversations.svelte';
import { draft, rememberChoice } from './draft.svelte';
import { emptyState } from './generation';
import { generations, type LiveAnswer } from './generations.svelte';
import { archiveFrom, switchVersion, versionsAt, withVersions } from './branches';
import { models } from './models.svelte';
import { notice } from './notice.svelte';
import type { PartialRecord } from './partials';
import { chatHref, router } from './router.svelte';
import { session } from './session.svelte';
import { view } from './views';

export type { Draft } from './draft.svelte';
export type { LiveAnswer } from './generations.svelte';

const convIds = () => Object.keys(conversations.records);
const genIds = () => Object.keys(generations.records);

class Chat {
  readonly conversations = conversations;
  readonly generations = generations;
  readonly draft = draft;

  readonly convs = view<Conversation>((id) => conversations.get(id)?.conv, convIds);
  readonly convStatus = view<LoadStatus>((id) => conversations.get(id)?.status, convIds);
  /** The last generation of a conversation failed: the message to show beside a retry button. */
  readonly failed = view<string>((id) => conversations.get(id)?.failed, convIds);
  /** Titles shown until the generated one arrives. */
  readonly provisionalTitle = view<string>((id) => conversations.get(id)?.provisionalTitle, convIds);
  readonly live = view<LiveAnswer>((id) => generations.get(id)?.live, genIds);
  /** Generating according to /v1/streams/lookup, not (yet) attached here. */
  readonly remote = view<StreamInfo>((id) => generations.get(id)?.remote, genIds);

  get list() {
    return conversations.list;
  }
  get listStatus() {
    return conversations.listStatus;
  }
  get listError() {
    return conversations.listError;
  }
  get notice() {
    return notice.text;
  }

  // ------------------------------------------------------------ queries

  sorted() {
    return conversations.sorted();
  }

  titleOf(id: string): string {
    return conversations.titleOf(id);
  }

  isGenerating(id: string): boolean {
    return generations.isGenerating(id);
  }

  showNotice(text: string): void {
    notice.show(text);
  }

  // ------------------------------------------------------------ start-up and opening

  async init(): Promise<void> {
    await this.loadList();
    await this.recover();
  }

  loadList(): Promise<void> {
    return conversations.loadList();
  }

  /** Re-attach to generations that were running when the page went away. */
  recover(): Promise<void> {
    return generations.recover();
  }

  async open(id: string): Promise<void> {
    if (await conversations.load(id, (i) => generations.partials.get(i)?.history)) generations.attachRemote(id);
  }

  // ------------------------------------------------------------ sending

  /** Send a user message; `id` null starts a new conversation from the draft. */
  send(id: string | null, text: string): void {
    const content = text.trim();
    if (!content) return;
    let conv = id ? conversations.conv(id) : undefined;
    if (!conv) {
      conv = conversations.create(content);
      router.go(chatHref(conv.id));
    }
    if (this.isGenerating(conv.id)) return;
    if (!conv.title && conv.messages.length === 0) conversations.provide(conv.id, fallbackTitle(content));
    const history: StoredMessage[] = [...conv.messages, { role: 'user', content }];
    conv.messages = history;
    this.start(conv, history);
  }

  /** A new answer to the last question; the old one stays as an earlier version. */
  regenerate(id: string): void {
    const conv = conversations.conv(id);
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
    const conv = conversations.conv(id);
    const content = text.trim();
    if (!conv || !content || this.isGenerating(id) || conv.messages[index]?.role !== 'user') return;
    const edited = withVersions({ role: 'user', content }, archiveFrom(conv.messages, index));
    const history: StoredMessage[] = [...conv.messages.slice(0, index), edited];
    conv.messages = history;
    this.start(conv, history);
  }

  /** Show version `j` of message `index` (and the messages that followed that version). */
  showVersion(id: string, index: number, j: number): void {
    const conv = conversations.conv(id);
    if (!conv || this.isGenerating(id)) return;
    conv.messages = switchVersion(conv.messages, index, j);
    conversations.touch(id);
    void conversations.saveMessages(id, conv.messages);
  }

  /** Go on with a stopped or length-capped last answer, in the same message. */
  continueAnswer(id: string): void {
    const conv = conversations.conv(id);
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
    conversations.clearFailed(id);
    conversations.touch(id);
    const rec: PartialRecord = { v: 1, conversationId: id, history, state, model, startedAt: Date.now(), ttftMs: null, firstTokenAt: null, savedAt: 0, continues: last };
    void generations.run(rec, body);
  }

  stop(id: string): void {
    generations.stop(id);
  }

  reconnect(id: string): void {
    generations.reconnect(id);
  }

  dismissFailure(id: string): void {
    conversations.clearFailed(id);
  }

  private start(conv: Conversation, history: StoredMessage[], branch?: { alts: StoredMessage[][]; altAt: number }): void {
    const id = conv.id;
    conversations.clearFailed(id);
    const cfg = session.config;
    const model = conv.model || models.defaultId(cfg.default_model);
    if (!model) {
      conversations.setFailed(id, 'No model is available. An admin can pull one on the Models page.');
      return;
    }
    const body = chatRequest(model, requestMessages(systemPrompt(cfg, conv.mode, conv.system_prompt), history), effectiveSettings(cfg.defaults, conv.settings));
    conversations.touch(id);
    // The user's turn is on the server before the answer ends; a regeneration leaves the
    // server's copy (with the answer it replaces) alone until the new answer is in.
    if (!branch) void conversations.saveMessages(id, history);
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
    void generations.run(rec, body);
  }

  // ------------------------------------------------------------ edits

  rename(id: string, title: string): void {
    conversations.rename(id, title);
  }

  togglePin(id: string): void {
    conversations.togglePin(id);
  }

  /** Delete a conversation: its record and its generation record go together. */
  async remove(id: string): Promise<void> {
    conversations.markRemoved(id);
    generations.forget(id);
    const deleted = conversations.remove(id);
    if (router.route.name === 'chat' && router.route.conversationId === id) router.go('#/');
    await deleted;
  }

  /** Model, mode, system prompt or sampling settings of a conversation (or of the draft). */
  configure(id: string | null, patch: Partial<Pick<Conversation, 'model' | 'mode' | 'system_prompt' | 'settings'>>): void {
    rememberChoice(patch);
    if (!id || !conversations.conv(id)) {
      Object.assign(draft, patch);
      return;
    }
    if (patch.model) draft.model = patch.model;
    if (patch.mode) draft.mode = patch.mode;
    conversations.patch(id, patch);
  }
}

export const chat = new Chat();

// What a finished generation does to its conversation: the answer is folded into the
// conversation's messages once (and saved, and the conversation named after its first
// exchange), or the failure is recorded beside a retry button, or, when the connection is
// lost, the partial is kept for a reconnect.

import { api, type Conversation, type StoredMessage } from './api';
import { answerStats, assistantMessage, cleanTitle, fallbackTitle, titleRequest } from './chatlogic';
import { normalize } from './conversations.svelte';
import { restoreVersion, withVersions } from './branches';
import { errorText } from './errors';
import type { Result } from './generation';
import type { Generations } from './generations.svelte';
import { models } from './models.svelte';
import { notice } from './notice.svelte';
import type { PartialRecord } from './partials';
import { splitThink } from './think';

export async function settle(gens: Generations, rec: PartialRecord, result: Result, started: boolean): Promise<void> {
  const convs = gens.convs;
  const id = rec.conversationId;
  const s = result.state;
  const stats = answerStats(s, { ttftMs: rec.ttftMs, firstTokenAt: rec.firstTokenAt, endAt: Date.now() });
  const hasText = Boolean(s.raw.trim() || s.reasoning.trim());
  const drop = () => {
    gens.dropLive(id);
    const conv = convs.conv(id);
    // A continuation that failed leaves the answer as it was.
    if (rec.continues && conv && conv.messages.length === rec.history.length) conv.messages = [...rec.history, rec.continues];
    if (rec.alts?.length && conv && conv.messages.length === rec.history.length) conv.messages = restoreVersion(rec.history, rec.alts, rec.altAt ?? rec.alts.length - 1);
  };
  const fail = (message: string) => {
    drop();
    convs.setFailed(id, message);
  };
  if (convs.wasRemoved(id)) {
    drop();
    return;
  }

  if (result.outcome === 'done' || result.outcome === 'aborted') {
    const answer = splitThink(s.raw, s.reasoning).answer.trim();
    if (s.error && !answer) return fail(s.error.message || 'The model failed.');
    if (!hasText) {
      if (result.outcome === 'done') fail('The model returned an empty answer.');
      else drop();
      return;
    }
    if (s.error) convs.setFailed(id, s.error.message);
    await commit(gens, rec, assistantMessage(s, stats, result.outcome === 'aborted'));
    return;
  }

  if (result.outcome === 'gone') {
    if (started && !hasText) return fail('Lost the connection to the server before the answer started.');
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
      convs.setConv(id, server);
      return;
    }
    if (hasText) {
      await commit(gens, rec, assistantMessage(s, stats));
      notice.show('The generation was interrupted; the partial answer was kept.');
      return;
    }
    drop();
    return;
  }

  // 'error'
  if (result.status !== undefined) {
    fail(errorText(result.error));
    if (result.status === 404 && started) models.watch(5000);
    return;
  }
  // The message never got an answer at all: most likely the server is down.
  if (started && !hasText) return fail('Could not reach the server. Check that Corral is running, then retry.');
  // Network trouble: keep the partial so a reconnect (or reload) can pick it up.
  gens.markLost(rec);
}

/** Fold the answer into the conversation's messages, save them, and name a new conversation. */
async function commit(gens: Generations, rec: PartialRecord, answer: StoredMessage): Promise<void> {
  const convs = gens.convs;
  const id = rec.conversationId;
  const kept = rec.continues; // a continued answer keeps its place among its versions
  const msg = rec.alts?.length
    ? withVersions(answer, rec.alts)
    : kept?.alts?.length
      ? { ...answer, alts: kept.alts, version: kept.version }
      : answer;
  let history = rec.history;
  const conv = convs.conv(id);
  if (!history.length && conv) history = conv.messages;
  const messages = [...history, msg];
  if (conv) conv.messages = messages;
  gens.dropLive(id);
  convs.touch(id);
  await convs.saveMessages(id, messages);
  const title = convs.list.find((c) => c.id === id)?.title || conv?.title;
  const userTurns = messages.filter((m) => m.role === 'user');
  const untitled = !title || title === convs.get(id)?.provisionalTitle;
  if (untitled && userTurns.length === 1 && msg.content) {
    void makeTitle(gens, id, userTurns[0].content, msg.content, rec.model);
  }
}

async function makeTitle(gens: Generations, id: string, user: string, answer: string, model: string): Promise<void> {
  const convs = gens.convs;
  let title = '';
  try {
    const res = await api.complete(titleRequest(model, user, answer));
    title = cleanTitle(res.choices?.[0]?.message?.content ?? '');
  } catch {
    title = '';
  }
  const current = convs.list.find((c) => c.id === id)?.title;
  if (current && current !== convs.get(id)?.provisionalTitle) return; // renamed meanwhile
  convs.rename(id, title || fallbackTitle(user));
}

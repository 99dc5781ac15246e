// Pure helpers of the chat screen: request building, stats, titles, conversation ordering.

import type { ChatMessage, ChatRequest, ConversationSummary, MessageStats, SamplingSettings, StoredMessage, UiConfig, ModeName } from './api';
import type { GenState } from './generation';
import { splitThink } from './think';

export const FALLBACK_CONFIG: UiConfig = {
  version: '',
  auth_required: false,
  default_model: '',
  modes: {
    fast: { label: 'Fast', system_prompt: 'Answer briefly and directly.' },
    normal: { label: 'Normal', system_prompt: '' },
    deep: { label: 'Deep', system_prompt: 'Think carefully and answer thoroughly.' },
  },
  defaults: { temperature: null, top_p: null, max_tokens: 2048 },
};

export const MODES: ModeName[] = ['fast', 'normal', 'deep'];

/** The mode's prompt, then the conversation's own prompt. */
export function systemPrompt(config: UiConfig, mode: ModeName | null, custom: string | null | undefined): string {
  const modePrompt = config.modes?.[mode ?? 'normal']?.system_prompt ?? '';
  return [modePrompt.trim(), (custom ?? '').trim()].filter(Boolean).join('\n\n');
}

/** Messages for the model: the system prompt, then the history without reasoning or stats. */
export function requestMessages(system: string, history: StoredMessage[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (system) out.push({ role: 'system', content: system });
  for (const m of history) {
    if (m.role === 'system') continue;
    if (m.role === 'assistant' && !m.content.trim()) continue;
    out.push({ role: m.role, content: m.content });
  }
  return out;
}

export function effectiveSettings(defaults: SamplingSettings, own: Partial<SamplingSettings> | null | undefined): SamplingSettings {
  const pick = (k: keyof SamplingSettings) => {
    const v = own?.[k];
    return typeof v === 'number' && Number.isFinite(v) ? v : defaults[k];
  };
  return { temperature: pick('temperature'), top_p: pick('top_p'), max_tokens: pick('max_tokens') ?? FALLBACK_CONFIG.defaults.max_tokens };
}

/** The request; sampling left unset (null) is left out, so the model's own defaults apply. */
export function chatRequest(model: string, messages: ChatMessage[], s: SamplingSettings): ChatRequest {
  return {
    model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
    ...(s.temperature !== null ? { temperature: s.temperature } : {}),
    ...(s.top_p !== null ? { top_p: s.top_p } : {}),
    max_tokens: s.max_tokens,
  };
}

/**
 * Stats under an answer. TTFT is measured by the client (send to first token); tokens/s is the
 * completion tokens over the time from the first token to the end.
 */
export function answerStats(
  s: GenState,
  timing: { ttftMs: number | null; firstTokenAt: number | null; endAt: number },
): MessageStats {
  const completion = s.usage?.completion_tokens ?? null;
  let tps: number | null = null;
  if (completion !== null && timing.firstTokenAt !== null) {
    const secs = (timing.endAt - timing.firstTokenAt) / 1000;
    if (secs > 0.05 && completion > 1) tps = Math.round(((completion - 1) / secs) * 10) / 10;
  }
  return {
    ttft_ms: timing.ttftMs === null ? null : Math.round(timing.ttftMs),
    tokens_per_second: tps,
    prompt_tokens: s.usage?.prompt_tokens ?? null,
    completion_tokens: completion,
  };
}

/** The stored assistant message for a finished (or stopped) generation. */
export function assistantMessage(s: GenState, stats: MessageStats, stopped = false): StoredMessage {
  const split = splitThink(s.raw, s.reasoning, false);
  const msg: StoredMessage = { role: 'assistant', content: split.answer.trimEnd(), stats };
  if (split.reasoning) msg.reasoning = split.reasoning;
  if (stopped) msg.finish = 'stopped';
  else if (s.finishReason === 'length') msg.finish = 'length';
  return msg;
}

export function titleRequest(model: string, user: string, answer: string): ChatRequest {
  const clip = (t: string, n: number) => (t.length > n ? `${t.slice(0, n)}…` : t);
  return {
    model,
    stream: false,
    max_tokens: 16,
    temperature: 0.2,
    messages: [
      {
        role: 'system',
        content: 'You write titles. Reply with a short title of at most six words for the conversation below. No quotes, no punctuation at the end, nothing else.',
      },
      { role: 'user', content: `User: ${clip(user, 600)}\n\nAssistant: ${clip(answer, 600)}\n\nTitle:` },
    ],
  };
}

export function cleanTitle(text: string): string {
  let t = splitThink(text).answer;
  t = t.split('\n').map((l) => l.trim()).find(Boolean) ?? '';
  t = t.replace(/^(title|titre)\s*:\s*/i, '');
  t = t.replace(/^[#*_\s]+|[*_\s]+$/g, '');
  t = t.replace(/^["'“”‘’«»`]+|["'“”‘’«»`]+$/g, '');
  t = t.replace(/[.。!?:;,\s]+$/, '');
  if (t.length > 60) t = `${t.slice(0, 57).trimEnd()}…`;
  return t;
}

/** A title from the first user message, used until (or instead of) a generated one. */
export function fallbackTitle(userText: string): string {
  const line = userText.replace(/\s+/g, ' ').trim();
  return line.length > 48 ? `${line.slice(0, 47).trimEnd()}…` : line || 'New chat';
}

/** Pinned first, then most recently updated. */
export function sortConversations<T extends Pick<ConversationSummary, 'pinned' | 'updated_at'>>(list: T[]): T[] {
  return [...list].sort((a, b) => Number(b.pinned) - Number(a.pinned) || b.updated_at - a.updated_at);
}

export function filterConversations<T extends Pick<ConversationSummary, 'title'>>(list: T[], query: string): T[] {
  const q = query.trim().toLowerCase();
  if (!q) return list;
  const words = q.split(/\s+/);
  return list.filter((c) => {
    const t = (c.title || '').toLowerCase();
    return words.every((w) => t.includes(w));
  });
}

/** Group labels for the sidebar. */
export function dateGroup(ts: number, now = Date.now() / 1000): string {
  const day = 86400;
  const startOfToday = new Date(now * 1000);
  startOfToday.setHours(0, 0, 0, 0);
  const t0 = startOfToday.getTime() / 1000;
  if (ts >= t0) return 'Today';
  if (ts >= t0 - day) return 'Yesterday';
  if (ts >= t0 - 7 * day) return 'Previous 7 days';
  if (ts >= t0 - 30 * day) return 'Previous 30 days';
  return 'Older';
}

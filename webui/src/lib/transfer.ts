// Export and import of conversations: Markdown to read, JSON that imports back, and the
// conversations.json of a ChatGPT-style export mapped into the same shape. Pure functions.

import type { Conversation, ConversationPatch, StoredMessage } from './api';

export const EXPORT_FORMAT = 'corral.conversations';
export const EXPORT_VERSION = 1;

/** What an import creates: a conversation without id or times (the server gives those). */
export type ImportedConversation = Required<Pick<ConversationPatch, 'title' | 'messages'>> &
  Pick<ConversationPatch, 'model' | 'mode' | 'system_prompt' | 'settings'>;

const ROLE_HEADINGS: Record<StoredMessage['role'], string> = { user: 'User', assistant: 'Assistant', system: 'System' };

export function toMarkdown(convs: Conversation[]): string {
  return convs.map(conversationMarkdown).join('\n---\n\n');
}

function conversationMarkdown(c: Conversation): string {
  const when = new Date(c.created_at * 1000).toISOString().slice(0, 16).replace('T', ' ');
  const meta = [c.model, when].filter(Boolean).join(' · ');
  const parts = [`# ${c.title || 'Untitled conversation'}\n`, `_${meta}_\n`];
  if (c.system_prompt) parts.push(`## System\n\n${c.system_prompt}\n`);
  for (const m of c.messages) parts.push(`## ${ROLE_HEADINGS[m.role]}\n\n${m.content}\n`);
  return parts.join('\n');
}

export function toJson(convs: Conversation[], now = Date.now() / 1000): string {
  return JSON.stringify({ format: EXPORT_FORMAT, version: EXPORT_VERSION, exported_at: now, conversations: convs }, null, 2);
}

/** A file name for an export: the title (or "conversations"), dated, with the extension. */
export function exportFileName(title: string | null, ext: 'md' | 'json', now = new Date()): string {
  const base = (title ?? 'conversations').replace(/[^\p{L}\p{N}]+/gu, '-').replace(/^-+|-+$/g, '').slice(0, 60);
  return `${base || 'conversation'}-${now.toISOString().slice(0, 10)}.${ext}`;
}

export class ImportError extends Error {}

/** Conversations from an export file: Corral's JSON (whole export, a list, or one), or ChatGPT's. */
export function parseImport(text: string): ImportedConversation[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new ImportError('The file is not JSON: import takes a Corral JSON export or a ChatGPT conversations.json.');
  }
  const items = isObject(data) && Array.isArray(data.conversations) ? data.conversations : Array.isArray(data) ? data : [data];
  const out = items.map((item, i) => {
    if (isObject(item) && isObject(item.mapping)) return fromChatGpt(item);
    if (isObject(item) && Array.isArray(item.messages)) return fromCorral(item);
    throw new ImportError(`Item ${i + 1} is neither a Corral nor a ChatGPT conversation.`);
  });
  if (!out.length) throw new ImportError('The file holds no conversations.');
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function isRole(v: unknown): v is StoredMessage['role'] {
  return v === 'user' || v === 'assistant' || v === 'system';
}

function fromCorral(c: Record<string, unknown>): ImportedConversation {
  const messages: StoredMessage[] = [];
  for (const m of c.messages as unknown[]) {
    if (!isObject(m) || !isRole(m.role) || typeof m.content !== 'string') throw new ImportError('A message has no role or text.');
    const kept: StoredMessage = { role: m.role, content: m.content };
    if (typeof m.reasoning === 'string') kept.reasoning = m.reasoning;
    if (isObject(m.stats)) kept.stats = m.stats as unknown as StoredMessage['stats'];
    messages.push(kept);
  }
  const out: ImportedConversation = { title: str(c.title) ?? '', messages };
  if (str(c.model)) out.model = str(c.model);
  if (str(c.mode)) out.mode = str(c.mode) as ImportedConversation['mode'];
  if (str(c.system_prompt)) out.system_prompt = str(c.system_prompt);
  if (isObject(c.settings)) out.settings = c.settings as ImportedConversation['settings'];
  return out;
}

/**
 * ChatGPT's export keeps each conversation as a tree (`mapping`, node -> parent/children) so
 * that edits branch; the conversation as last seen is the path from `current_node` up to the
 * root. Only text parts of user and assistant messages come along; system and tool nodes do not.
 */
function fromChatGpt(c: Record<string, unknown>): ImportedConversation {
  const mapping = c.mapping as Record<string, unknown>;
  let nodeId = str(c.current_node) ?? lastLeaf(mapping);
  const path: Record<string, unknown>[] = [];
  const seen = new Set<string>();
  while (nodeId && !seen.has(nodeId) && isObject(mapping[nodeId])) {
    seen.add(nodeId);
    const node = mapping[nodeId] as Record<string, unknown>;
    path.push(node);
    nodeId = str(node.parent);
  }
  const messages: StoredMessage[] = [];
  for (const node of path.reverse()) {
    const msg = node.message;
    if (!isObject(msg) || !isObject(msg.author) || !isObject(msg.content)) continue;
    const role = msg.author.role;
    if (role !== 'user' && role !== 'assistant') continue;
    const parts = Array.isArray(msg.content.parts) ? msg.content.parts : [];
    const content = parts.filter((p): p is string => typeof p === 'string').join('\n').trim();
    if (content) messages.push({ role, content });
  }
  return { title: str(c.title) ?? '', messages };
}

function lastLeaf(mapping: Record<string, unknown>): string | undefined {
  const ids = Object.keys(mapping);
  return ids.find((id) => {
    const node = mapping[id];
    return isObject(node) && (!Array.isArray(node.children) || node.children.length === 0);
  });
}

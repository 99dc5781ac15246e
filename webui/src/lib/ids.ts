// Conversation ids: 1-128 characters of [A-Za-z0-9._:-] (the server rejects anything else).

export const CONVERSATION_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

export function isConversationId(id: string): boolean {
  return CONVERSATION_ID_RE.test(id);
}

export function newConversationId(): string {
  const bytes = new Uint8Array(10);
  crypto.getRandomValues(bytes);
  let s = '';
  for (const b of bytes) s += (b % 36).toString(36);
  return `c-${Date.now().toString(36)}${s}`;
}

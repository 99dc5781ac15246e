// The chat screen's keyboard shortcuts: one list for the keys and for the "?" dialog.

export type ShortcutAction = 'help' | 'new-chat' | 'search' | 'settings';

export const SHORTCUTS: { keys: string; action: string }[] = [
  { keys: '?', action: 'Show these shortcuts' },
  { keys: 'Ctrl + Shift + O', action: 'New chat' },
  { keys: 'Ctrl + K', action: 'Search conversations' },
  { keys: 'Ctrl + .', action: 'Conversation settings' },
  { keys: 'Esc', action: 'Close a panel, or stop the answer' },
  { keys: 'Enter / Shift + Enter', action: 'Send / new line' },
];

function typing(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return Boolean(el && (el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName)));
}

/** Which shortcut a key press is, if any ("?" only outside text fields). Cmd counts as Ctrl. */
export function shortcutOf(e: Pick<KeyboardEvent, 'key' | 'ctrlKey' | 'metaKey' | 'shiftKey' | 'altKey' | 'target'>): ShortcutAction | null {
  const mod = e.ctrlKey || e.metaKey;
  if (e.altKey) return null;
  if (!mod && e.key === '?' && !typing(e.target)) return 'help';
  if (mod && e.shiftKey && e.key.toLowerCase() === 'o') return 'new-chat';
  if (mod && !e.shiftKey && e.key.toLowerCase() === 'k') return 'search';
  if (mod && !e.shiftKey && e.key === '.') return 'settings';
  return null;
}

import { describe, expect, it } from 'vitest';
import { shortcutOf } from '../src/lib/shortcuts';

const key = (k: string, mods: Partial<{ ctrlKey: boolean; metaKey: boolean; shiftKey: boolean; altKey: boolean }> = {}, tagName = 'BODY') => ({
  key: k,
  ctrlKey: false,
  metaKey: false,
  shiftKey: false,
  altKey: false,
  ...mods,
  target: { tagName, isContentEditable: false } as unknown as EventTarget,
});

describe('keyboard shortcuts', () => {
  it('maps the keys, Cmd as Ctrl', () => {
    expect(shortcutOf(key('?', { shiftKey: true }))).toBe('help');
    expect(shortcutOf(key('O', { ctrlKey: true, shiftKey: true }))).toBe('new-chat');
    expect(shortcutOf(key('k', { metaKey: true }))).toBe('search');
    expect(shortcutOf(key('.', { ctrlKey: true }))).toBe('settings');
    expect(shortcutOf(key('k'))).toBeNull();
    expect(shortcutOf(key('k', { ctrlKey: true, altKey: true }))).toBeNull();
  });

  it('leaves "?" to text fields', () => {
    expect(shortcutOf(key('?', {}, 'TEXTAREA'))).toBeNull();
    expect(shortcutOf(key('?', {}, 'INPUT'))).toBeNull();
    expect(shortcutOf(key('k', { ctrlKey: true }, 'TEXTAREA'))).toBe('search');
  });
});

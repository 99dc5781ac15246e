// Versions of a message: regenerate and edit keep what they replace. The conversation's
// `messages` is the path shown; a message at position i may carry `alts`, the other tails
// that start at i (each a list whose first message is that version of message i), and
// `version`, its own place among all of them. Switching swaps the tail. Pure functions.

import type { StoredMessage } from './api';

export type Tail = StoredMessage[];

function bare(m: StoredMessage): StoredMessage {
  const { alts: _alts, version: _version, ...rest } = m;
  return rest;
}

/** The tail from `i` on, archived as one more version: the alts the new message at i gets. */
export function archiveFrom(messages: StoredMessage[], i: number): Tail[] {
  const head = messages[i];
  if (!head) return [];
  // In its own place: versions keep the order they were made in, whichever one showed.
  const all: Tail[] = [...(head.alts ?? [])];
  all.splice(versionsAt(messages, i).current, 0, [bare(head), ...messages.slice(i + 1)]);
  return all;
}

/** `msg` as the newest version at its position, after the archived `alts`. */
export function withVersions(msg: StoredMessage, alts: Tail[]): StoredMessage {
  return alts.length ? { ...msg, alts, version: alts.length } : msg;
}

export function versionsAt(messages: StoredMessage[], i: number): { current: number; count: number } {
  const m = messages[i];
  const count = (m?.alts?.length ?? 0) + 1;
  return { current: m?.version ?? count - 1, count };
}

/** The conversation showing version `j` of message i (0-based), its tail with it. */
export function switchVersion(messages: StoredMessage[], i: number, j: number): StoredMessage[] {
  const m = messages[i];
  if (!m) return messages;
  const { current, count } = versionsAt(messages, i);
  if (j < 0 || j >= count || j === current) return messages;
  const all: Tail[] = [...(m.alts ?? [])];
  all.splice(current, 0, [bare(m), ...messages.slice(i + 1)]);
  const chosen = all[j];
  const others = all.filter((_, k) => k !== j);
  return [...messages.slice(0, i), { ...chosen[0], alts: others, version: j }, ...chosen.slice(1)];
}

/** After a failed regeneration: version `at` (the one it was to replace) back in place. */
export function restoreVersion(prefix: StoredMessage[], alts: Tail[], at: number): StoredMessage[] {
  const chosen = alts[at];
  if (!chosen) return prefix;
  const others = alts.filter((_, k) => k !== at);
  const head = others.length ? { ...chosen[0], alts: others, version: at } : chosen[0];
  return [...prefix, head, ...chosen.slice(1)];
}

// Partial answers saved in localStorage while a generation runs, so that a reload, a reopened
// tab or a lost network can re-attach at the right byte offset. The record holds the offset and
// the text folded up to that offset together, so they always agree.

import type { StoredMessage } from './api';
import type { GenState } from './generation';

export interface PartialRecord {
  v: 1;
  conversationId: string;
  /** The conversation's messages the answer belongs after (what gets saved with it). */
  history: StoredMessage[];
  state: GenState;
  model: string;
  startedAt: number;
  /** Client-measured time to first token, once known. */
  ttftMs: number | null;
  /** Wall-clock ms (Date.now) of the first token, to compute tokens/s after a reload. */
  firstTokenAt: number | null;
  savedAt: number;
  /** Continuing this cut-short answer: its text starts the state, and it comes back on failure. */
  continues?: StoredMessage;
  /** A regeneration: the versions the new answer joins, and the one it replaced (branches.ts). */
  alts?: StoredMessage[][];
  altAt?: number;
}

const PREFIX = 'corral.partial.v1.';

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
  readonly length: number;
  key(index: number): string | null;
}

function defaultStore(): KeyValueStore | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage;
  } catch {
    return null;
  }
}

export class Partials {
  constructor(private readonly store: KeyValueStore | null = defaultStore()) {}

  save(rec: PartialRecord): void {
    if (!this.store) return;
    try {
      this.store.setItem(PREFIX + rec.conversationId, JSON.stringify({ ...rec, savedAt: Date.now() }));
    } catch {
      // Quota exceeded: drop the history copy (the server has it) and try once more.
      try {
        this.store.setItem(PREFIX + rec.conversationId, JSON.stringify({ ...rec, history: [], savedAt: Date.now() }));
      } catch {
        /* give up: resume will start from the server's copy */
      }
    }
  }

  get(conversationId: string): PartialRecord | null {
    const text = this.store?.getItem(PREFIX + conversationId);
    if (!text) return null;
    try {
      const rec = JSON.parse(text) as PartialRecord;
      if (rec.v !== 1 || typeof rec.state?.offset !== 'number') return null;
      return rec;
    } catch {
      return null;
    }
  }

  remove(conversationId: string): void {
    this.store?.removeItem(PREFIX + conversationId);
  }

  all(): PartialRecord[] {
    if (!this.store) return [];
    const ids: string[] = [];
    for (let i = 0; i < this.store.length; i++) {
      const k = this.store.key(i);
      if (k?.startsWith(PREFIX)) ids.push(k.slice(PREFIX.length));
    }
    return ids.map((id) => this.get(id)).filter((r): r is PartialRecord => r !== null);
  }
}

/** Throttle saves to one per `ms`, always keeping the newest record; `flush` writes it now. */
export function throttledSaver(partials: Partials, ms = 300) {
  let pending: PartialRecord | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (pending) partials.save(pending);
    pending = null;
  };
  return {
    save(rec: PartialRecord) {
      pending = { ...rec, state: { ...rec.state } };
      if (!timer) timer = setTimeout(flush, ms);
    },
    flush,
    cancel() {
      if (timer) clearTimeout(timer);
      timer = null;
      pending = null;
    },
  };
}

// The generations: one record per conversation id holding the answer being generated here
// (`live`, until it is finished and folded into the conversation's messages) or the mark that
// the server is generating one elsewhere (`remote`, from /v1/streams/lookup). While an answer
// runs, its byte offset and text are kept in localStorage (partials.ts), so a reload or a
// reopened tab re-attaches with /v1/stream/{id}?from=N; at start-up /v1/streams/lookup says
// which conversations are generating. What a finished generation does is in settle.ts.

import { api, type ChatRequest, type StreamInfo } from './api';
import { conversations, type Conversations } from './conversations.svelte';
import { emptyState, runGeneration, type Transport, type Usage } from './generation';
import { Partials, throttledSaver, type PartialRecord } from './partials';
import { settle } from './settle';

export interface LiveAnswer {
  raw: string;
  reasoning: string;
  usage: Usage | null;
  /** No token yet. */
  waiting: boolean;
  reconnecting: boolean;
  /** The connection is lost and retries ran out; `reconnect()` tries again. */
  lost: boolean;
  startedAt: number;
  ttftMs: number | null;
  firstTokenAt: number | null;
  model: string;
  /** True when this client re-attached (reload, other device) rather than started it. */
  resumed: boolean;
}

export interface GenerationRecord {
  /** The answer being generated (or re-attached to) here. */
  live?: LiveAnswer;
  /** Generating according to /v1/streams/lookup, not (yet) attached here. */
  remote?: StreamInfo;
}

const defaultTransport: Transport = {
  start: (body, id, signal) => api.startChat(body, id, signal),
  resume: (id, from, signal) => api.resumeStream(id, from, signal),
};

export class Generations {
  records = $state<Record<string, GenerationRecord>>({});
  readonly partials = new Partials();

  private controllers = new Map<string, AbortController>();
  private flushers = new Set<() => void>();
  private lookupTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    readonly convs: Conversations,
    private readonly transport: Transport = defaultTransport,
  ) {
    if (typeof window !== 'undefined') {
      window.addEventListener('pagehide', () => this.flushAll());
      window.addEventListener('online', () => {
        for (const [id, r] of Object.entries(this.records)) if (r.live?.lost) this.reconnect(id);
      });
    }
  }

  // ------------------------------------------------------------ records

  get(id: string): GenerationRecord | undefined {
    return this.records[id];
  }

  live(id: string): LiveAnswer | undefined {
    return this.records[id]?.live;
  }

  remote(id: string): StreamInfo | undefined {
    return this.records[id]?.remote;
  }

  isGenerating(id: string): boolean {
    const r = this.records[id];
    return Boolean(r?.live && !r.live.lost) || Boolean(r?.remote);
  }

  /** A record with neither a live answer nor a remote mark is dropped. */
  private clear(id: string, field: keyof GenerationRecord): void {
    const r = this.records[id];
    if (!r) return;
    if (r[field] !== undefined) delete r[field];
    if (r.live === undefined && r.remote === undefined) delete this.records[id];
  }

  /** The answer of `id` is finished or given up: its record and saved partial go. */
  dropLive(id: string): void {
    this.partials.remove(id);
    this.clear(id, 'live');
  }

  /** The connection is lost: keep the partial so a reconnect (or reload) can pick it up. */
  markLost(rec: PartialRecord): void {
    this.partials.save(rec);
    const l = this.live(rec.conversationId);
    if (l) {
      l.lost = true;
      l.reconnecting = false;
    }
  }

  // ------------------------------------------------------------ start-up

  /** Re-attach to generations that were running when the page went away. */
  async recover(): Promise<void> {
    const recs = this.partials.all();
    const ids = [...new Set([...recs.map((r) => r.conversationId), ...this.convs.sorted().map((c) => c.id)])].slice(0, 200);
    let infos: Map<string, StreamInfo> | null = null;
    if (ids.length) {
      try {
        infos = new Map((await api.lookupStreams(ids)).map((i) => [i.conversation_id, i]));
      } catch {
        infos = null; // lookup unavailable: try to re-attach anyway, a 404 settles it
      }
    }
    for (const rec of recs) {
      const id = rec.conversationId;
      if (this.live(id)) continue;
      if (rec.state.done) void settle(this, rec, { outcome: 'done', state: rec.state }, false);
      else if (infos && !infos.has(id)) void settle(this, rec, { outcome: 'gone', state: rec.state }, false);
      else void this.run(rec);
    }
    if (infos) {
      for (const info of infos.values()) {
        const id = info.conversation_id;
        if (info.state !== 'running' || this.live(id)) continue;
        if (!this.records[id]) this.records[id] = {};
        this.records[id].remote = info;
      }
    }
    this.scheduleLookup();
  }

  /** Keep the "generating elsewhere" marks fresh while there are any. */
  private scheduleLookup(): void {
    if (this.lookupTimer) clearTimeout(this.lookupTimer);
    const remoteIds = () => Object.keys(this.records).filter((id) => this.remote(id));
    if (remoteIds().length === 0) return;
    this.lookupTimer = setTimeout(async () => {
      const ids = remoteIds();
      try {
        const infos = new Map((await api.lookupStreams(ids)).map((i) => [i.conversation_id, i]));
        for (const id of ids) {
          const info = infos.get(id);
          if (info?.state === 'running') continue;
          this.clear(id, 'remote');
          if (this.convs.conv(id) && !this.live(id)) void this.convs.reload(id);
        }
      } catch {
        /* try again later */
      }
      this.scheduleLookup();
    }, 5000);
  }

  /** Follow a generation started elsewhere (another tab or device) from its first byte. */
  attachRemote(id: string): void {
    const info = this.remote(id);
    const conv = this.convs.conv(id);
    if (!info || !conv || this.live(id)) return;
    if (conv.messages.at(-1)?.role === 'assistant') return;
    const rec: PartialRecord = this.partials.get(id) ?? {
      v: 1,
      conversationId: id,
      history: conv.messages,
      state: emptyState(0),
      model: info.model,
      startedAt: Date.now(),
      ttftMs: null,
      firstTokenAt: null,
      savedAt: 0,
    };
    void this.run(rec);
  }

  // ------------------------------------------------------------ controls

  stop(id: string): void {
    this.controllers.get(id)?.abort();
    api.stopStream(id).catch(() => {});
    if (this.remote(id)) {
      this.clear(id, 'remote');
      if (!this.convs.wasRemoved(id)) void this.convs.reload(id);
    }
  }

  reconnect(id: string): void {
    const rec = this.partials.get(id);
    if (rec) void this.run(rec);
    else this.clear(id, 'live');
  }

  /** The conversation is deleted: stop what runs and drop the record with its saved partial. */
  forget(id: string): void {
    if (this.controllers.has(id)) this.stop(id);
    delete this.records[id];
    this.partials.remove(id);
  }

  private flushAll(): void {
    for (const f of this.flushers) f();
  }

  // ------------------------------------------------------------ the generation loop

  /** Start (with `body`) or re-attach to (without) the generation of `rec`, and settle it. */
  async run(rec: PartialRecord, body?: ChatRequest): Promise<void> {
    const id = rec.conversationId;
    this.controllers.get(id)?.abort();
    const ac = new AbortController();
    this.controllers.set(id, ac);
    this.convs.clearFailed(id);
    const s = rec.state;
    this.records[id] = {
      live: {
        raw: s.raw,
        reasoning: s.reasoning,
        usage: s.usage,
        waiting: !(s.raw || s.reasoning),
        reconnecting: false,
        lost: false,
        startedAt: rec.startedAt,
        ttftMs: rec.ttftMs,
        firstTokenAt: rec.firstTokenAt,
        model: rec.model,
        resumed: !body,
      },
    }; // a remote mark goes: this client follows it now
    this.partials.save(rec); // at once: a reload right after sending re-attaches from 0
    const saver = throttledSaver(this.partials, 250);
    const flushSaver = () => saver.flush();
    this.flushers.add(flushSaver);
    let frame = 0;
    const paint = () => {
      frame = 0;
      const l = this.live(id);
      if (!l || this.controllers.get(id) !== ac) return;
      l.raw = s.raw;
      l.reasoning = s.reasoning;
      l.usage = s.usage;
    };

    const result = await runGeneration({
      conversationId: id,
      transport: this.transport,
      signal: ac.signal,
      body,
      state: s,
      onUpdate: (_state, info) => {
        const l = this.live(id);
        if (info.firstToken && rec.firstTokenAt === null) {
          rec.firstTokenAt = Date.now();
          rec.ttftMs = rec.firstTokenAt - rec.startedAt;
          if (l) {
            l.ttftMs = rec.ttftMs;
            l.firstTokenAt = rec.firstTokenAt;
          }
        }
        if (l) {
          if (l.reconnecting !== info.reconnecting) l.reconnecting = info.reconnecting;
          if (l.waiting && (s.raw || s.reasoning)) l.waiting = false;
        }
        saver.save(rec);
        if (!frame) frame = typeof requestAnimationFrame === 'function' ? requestAnimationFrame(paint) : (setTimeout(paint, 16) as unknown as number);
      },
    });
    if (frame && typeof cancelAnimationFrame === 'function') cancelAnimationFrame(frame);
    paint();
    this.flushers.delete(flushSaver);
    saver.cancel();
    if (this.controllers.get(id) !== ac) return; // superseded by a newer run
    this.controllers.delete(id);
    await settle(this, rec, result, Boolean(body));
  }
}

export const generations = new Generations(conversations);

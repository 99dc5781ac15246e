// Incremental Server-Sent Events parser: bytes in, events out, with byte offsets.
//
// Lines are split on bytes (CR and LF never occur inside a multi-byte UTF-8 sequence), so a
// character split across two chunks is simply held back with the rest of its partial line and
// decoded once the line is complete. Every dispatched event carries `end`: the absolute byte
// offset just after the blank line that ended it, counted from `startOffset`. That is the
// number to resume from (`GET /v1/stream/{id}?from=end`): the replay then starts exactly at the
// next event. Field handling follows the WHATWG EventSource rules.

export interface SseEvent {
  /** Event type; "message" when the event named none. */
  event: string;
  /** The data lines joined with "\n". */
  data: string;
  /** The `id:` field of this event, or null when it had none. */
  id: string | null;
  /** Absolute byte offset just after this event's terminating blank line. */
  end: number;
}

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = new Uint8Array(0);

export class SseParser {
  private pending: Uint8Array = EMPTY; // bytes of an incomplete line
  private consumed: number; // absolute offset of the first byte in `pending`
  private skipLf = false; // the previous chunk ended with CR: a leading LF belongs to it
  private atStreamStart: boolean;
  private readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true }); // BOM handled below
  // The event being assembled.
  private dataLines: string[] = [];
  private eventType = '';
  private eventId: string | null = null;
  private hasFields = false;
  /** The last `id:` seen in the stream (persists across events, as in EventSource). */
  lastEventId = '';
  /** Absolute offset after the last dispatched event (or the start offset). */
  committed: number;

  constructor(startOffset = 0) {
    this.consumed = startOffset;
    this.committed = startOffset;
    this.atStreamStart = startOffset === 0;
  }

  /** Absolute offset of all bytes fed so far. */
  get offset(): number {
    return this.consumed + this.pending.length;
  }

  /** Feed the next chunk of the body; returns the events it completed, in order. */
  push(chunk: Uint8Array): SseEvent[] {
    const out: SseEvent[] = [];
    if (chunk.length === 0) return out;
    let buf: Uint8Array;
    if (this.pending.length === 0) {
      buf = chunk;
    } else {
      buf = new Uint8Array(this.pending.length + chunk.length);
      buf.set(this.pending, 0);
      buf.set(chunk, this.pending.length);
    }
    let start = 0;
    if (this.skipLf) {
      this.skipLf = false;
      if (buf[0] === LF) {
        start = 1;
        this.consumed += 1;
      }
    }
    let i = start;
    while (i < buf.length) {
      const b = buf[i];
      if (b !== LF && b !== CR) {
        i++;
        continue;
      }
      let next = i + 1;
      if (b === CR) {
        if (next < buf.length) {
          if (buf[next] === LF) next++;
        } else {
          this.skipLf = true; // an LF may open the next chunk
        }
      }
      const line = buf.subarray(start, i);
      this.consumed += next - start;
      this.handleLine(line, out);
      start = next;
      i = next;
    }
    this.pending = start < buf.length ? buf.slice(start) : EMPTY;
    return out;
  }

  /** Discard an unfinished event (as EventSource does at end of stream). */
  reset(): void {
    this.pending = EMPTY;
    this.dataLines = [];
    this.eventType = '';
    this.eventId = null;
    this.hasFields = false;
  }

  private handleLine(bytes: Uint8Array, out: SseEvent[]): void {
    let line = this.decoder.decode(bytes);
    if (this.atStreamStart) {
      this.atStreamStart = false;
      if (line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    }
    if (line === '') {
      this.dispatch(out);
      return;
    }
    if (line.charCodeAt(0) === 0x3a /* ':' */) return; // comment, e.g. ": ping"
    const colon = line.indexOf(':');
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = '';
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    }
    switch (field) {
      case 'data':
        this.dataLines.push(value);
        this.hasFields = true;
        break;
      case 'event':
        this.eventType = value;
        this.hasFields = true;
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.eventId = value;
          this.lastEventId = value;
        }
        this.hasFields = true;
        break;
      default:
        break; // "retry" and unknown fields are ignored
    }
  }

  private dispatch(out: SseEvent[]): void {
    const had = this.hasFields;
    const hasData = this.dataLines.length > 0;
    if (hasData) {
      out.push({
        event: this.eventType || 'message',
        data: this.dataLines.join('\n'),
        id: this.eventId,
        end: this.consumed,
      });
    }
    if (had || hasData) this.committed = this.consumed;
    this.dataLines = [];
    this.eventType = '';
    this.eventId = null;
    this.hasFields = false;
  }
}

/** Parse an `id:` value as a byte offset; null when it is not a non-negative integer. */
export function offsetFromId(id: string | null): number | null {
  if (id === null || !/^\d{1,15}$/.test(id)) return null;
  return Number(id);
}

/** Parse a whole body at once (tests, small responses). */
export function parseAll(body: Uint8Array | string, startOffset = 0): SseEvent[] {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  return new SseParser(startOffset).push(bytes);
}

import { describe, expect, it } from 'vitest';
import { SseParser, offsetFromId, parseAll, type SseEvent } from '../src/lib/sse';

const enc = new TextEncoder();
const bytes = (s: string) => enc.encode(s);

/** Feed `body` split at the given cut points; return all events. */
function feedSplit(body: Uint8Array, cuts: number[], start = 0): { events: SseEvent[]; parser: SseParser } {
  const parser = new SseParser(start);
  const events: SseEvent[] = [];
  let prev = 0;
  for (const c of [...cuts, body.length]) {
    events.push(...parser.push(body.subarray(prev, c)));
    prev = c;
  }
  return { events, parser };
}

function strip(evs: SseEvent[]) {
  return evs.map(({ event, data, id, end }) => ({ event, data, id, end }));
}

/** An OpenAI-style body with `id:` offsets, the way the server writes it. */
function serverBody(payloads: string[]): string {
  let out = '';
  for (const p of payloads) {
    const base = `data: ${p}\n`;
    // id is the byte offset after the event, including the id line itself: find the fixed point.
    let id = 0;
    for (;;) {
      const ev = `${base}id: ${id}\n\n`;
      const end = enc.encode(out + ev).length;
      if (end === id) {
        out += ev;
        break;
      }
      id = end;
    }
  }
  return out;
}

describe('SseParser basics', () => {
  it('parses data events and reports byte offsets after each event', () => {
    const body = 'data: one\n\ndata: two\n\n';
    const evs = parseAll(body);
    expect(strip(evs)).toEqual([
      { event: 'message', data: 'one', id: null, end: 11 },
      { event: 'message', data: 'two', id: null, end: 22 },
    ]);
  });

  it('joins multi-line data with newlines and strips one leading space only', () => {
    const evs = parseAll('data:  a\ndata:b\ndata\n\n');
    expect(evs[0].data).toBe(' a\nb\n');
  });

  it('reads event and id fields, ignores comments, retry and unknown fields', () => {
    const evs = parseAll(': ping\n\nretry: 10\nfoo: bar\nevent: model\nid: 42\ndata: {"x":1}\n\n');
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ event: 'model', id: '42', data: '{"x":1}' });
  });

  it('does not dispatch an event without data, but still records its id', () => {
    const p = new SseParser();
    expect(p.push(bytes('id: 7\n\n'))).toEqual([]);
    expect(p.lastEventId).toBe('7');
    const [ev] = p.push(bytes('data: x\n\n'));
    expect(ev.id).toBeNull(); // this event had no id of its own
    expect(p.lastEventId).toBe('7');
  });

  it('accepts CRLF and CR line endings', () => {
    expect(parseAll('data: a\r\n\r\ndata: b\r\rdata: c\n\n').map((e) => e.data)).toEqual(['a', 'b', 'c']);
    expect(parseAll('data: a\r\n\r\n')[0].end).toBe(11);
  });

  it('handles CRLF split between chunks', () => {
    const body = bytes('data: a\r\n\r\ndata: b\r\n\r\n');
    for (let cut = 1; cut < body.length; cut++) {
      const { events } = feedSplit(body, [cut]);
      expect(events.map((e) => e.data)).toEqual(['a', 'b']);
    }
  });

  it('strips a UTF-8 BOM at the start of the stream but counts its bytes', () => {
    const body = new Uint8Array([0xef, 0xbb, 0xbf, ...bytes('data: x\n\n')]);
    const [ev] = parseAll(body);
    expect(ev.data).toBe('x');
    expect(ev.end).toBe(body.length);
  });

  it('does not strip a BOM-like character when resuming mid-stream', () => {
    const body = new Uint8Array([0xef, 0xbb, 0xbf, ...bytes('data: x\n\n')]);
    // A resumed parser starts at an event boundary; a BOM there is a field name character.
    const [ev] = new SseParser(100).push(new Uint8Array([...bytes('data: \ufeffy\n\n')]));
    expect(ev.data).toBe('\ufeffy');
    expect(parseAll(body, 5)).toHaveLength(0); // "\ufeffdata" is an unknown field
  });

  it('discards an unfinished event at the end of the body', () => {
    const p = new SseParser();
    expect(p.push(bytes('data: a\n\ndata: partial'))).toHaveLength(1);
    expect(p.committed).toBe(9);
    expect(p.offset).toBe(22);
  });

  it('does not move the committed offset past a comment-only block', () => {
    const p = new SseParser();
    p.push(bytes('data: a\n\n: ping\n\n'));
    expect(p.committed).toBe(9);
  });

  it('starts offsets from the resume point', () => {
    const [ev] = parseAll('data: z\n\n', 1000);
    expect(ev.end).toBe(1009);
  });

  it('parses offsetFromId strictly', () => {
    expect(offsetFromId('123')).toBe(123);
    expect(offsetFromId('0')).toBe(0);
    expect(offsetFromId(null)).toBeNull();
    expect(offsetFromId('')).toBeNull();
    expect(offsetFromId('-1')).toBeNull();
    expect(offsetFromId('12a')).toBeNull();
    expect(offsetFromId('1.5')).toBeNull();
  });
});

describe('SseParser chunking', () => {
  const payloads = [
    '{"choices":[{"delta":{"content":"Héllo"}}]}',
    '{"choices":[{"delta":{"content":" wörld 🌍"}}]}',
    '{"choices":[{"delta":{"content":" 日本語のテキスト"}}]}',
    '{"choices":[{"delta":{"content":"\\n"}}]}',
    '[DONE]',
  ];
  const text = serverBody(payloads);
  const body = bytes(text);
  const whole = strip(parseAll(body));

  it('the fixture has server-style ids equal to the byte offsets', () => {
    expect(whole.map((e) => e.data)).toEqual(payloads);
    for (const e of whole) expect(Number(e.id)).toBe(e.end);
    expect(whole[whole.length - 1].end).toBe(body.length);
    expect(body.length).toBeGreaterThan(text.length); // multi-byte characters present
  });

  it('gives identical events for every single split point (incl. inside UTF-8 sequences)', () => {
    for (let cut = 0; cut <= body.length; cut++) {
      expect(strip(feedSplit(body, [cut]).events)).toEqual(whole);
    }
  });

  it('gives identical events when fed one byte at a time', () => {
    const cuts = Array.from({ length: body.length }, (_, i) => i);
    expect(strip(feedSplit(body, cuts).events)).toEqual(whole);
  });

  it('gives identical events for random multi-way splits', () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + Math.floor(rand() * 8);
      const cuts = Array.from({ length: n }, () => Math.floor(rand() * body.length)).sort((a, b) => a - b);
      expect(strip(feedSplit(body, cuts).events)).toEqual(whole);
    }
  });

  it('resuming from any event end replays exactly the remaining events', () => {
    for (const e of whole) {
      const rest = strip(parseAll(body.subarray(e.end), e.end));
      expect(rest).toEqual(whole.filter((w) => w.end > e.end));
    }
  });

  it('a prefix of the body plus a resume from its committed offset equals the whole', () => {
    for (let cut = 0; cut <= body.length; cut++) {
      const first = new SseParser();
      const got = strip(first.push(body.subarray(0, cut)));
      const from = first.committed;
      got.push(...strip(parseAll(body.subarray(from), from)));
      expect(got).toEqual(whole);
    }
  });

  it('handles many events in one chunk and an event spread over many chunks', () => {
    const big = 'x'.repeat(100_000);
    const b = bytes(`data: ${big}\n\n`);
    const cuts = [];
    for (let i = 1000; i < b.length; i += 1000) cuts.push(i);
    const { events } = feedSplit(b, cuts);
    expect(events).toHaveLength(1);
    expect(events[0].data.length).toBe(100_000);
    expect(events[0].end).toBe(b.length);
  });
});

describe('the supervisor framing (id line first, pings in the body)', () => {
  // As supervisor/resumable.py writes it: "id: <offset after the event>\n" + event, and
  // ": ping\n\n" comments appended to the same byte stream.
  function frame(events: string[]): Uint8Array {
    let out = new Uint8Array(0);
    const add = (b: Uint8Array) => {
      const n = new Uint8Array(out.length + b.length);
      n.set(out);
      n.set(b, out.length);
      out = n;
    };
    for (const e of events) {
      if (e === 'PING') {
        add(enc.encode(': ping\n\n'));
        continue;
      }
      const ev = enc.encode(`data: ${e}\n\n`);
      let digits = 1;
      for (;;) {
        const end = out.length + 5 + digits + ev.length;
        if (String(end).length === digits) {
          add(enc.encode(`id: ${end}\n`));
          add(ev);
          break;
        }
        digits++;
      }
    }
    return out;
  }

  it('ids equal the parser byte offsets, pings included', () => {
    const body = frame(['{"a":"é"}', 'PING', '{"b":"🌍"}', 'PING', 'PING', '[DONE]']);
    const evs = parseAll(body);
    expect(evs.map((e) => e.data)).toEqual(['{"a":"é"}', '{"b":"🌍"}', '[DONE]']);
    for (const e of evs) expect(Number(e.id)).toBe(e.end);
    expect(evs[2].end).toBe(body.length);
    // Resuming at any event's id replays exactly the rest, pings or not.
    for (const e of evs) {
      expect(parseAll(body.subarray(e.end), e.end).map((x) => x.data)).toEqual(evs.filter((w) => w.end > e.end).map((w) => w.data));
    }
  });
});

// A server-style SSE body for tests: each event carries `id: <byte offset after the event>`,
// as Corral writes it (the id line's own digits count, so the offset is solved for).
const enc = new TextEncoder();

export function sseBody(payloads: string[], withIds = true): Uint8Array {
  let out = '';
  for (const p of payloads) {
    if (!withIds) {
      out += `data: ${p}\n\n`;
      continue;
    }
    let id = 0;
    for (;;) {
      const ev = `data: ${p}\nid: ${id}\n\n`;
      const end = enc.encode(out + ev).length;
      if (end === id) {
        out += ev;
        break;
      }
      id = end;
    }
  }
  return enc.encode(out);
}

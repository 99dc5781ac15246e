import { describe, expect, it } from 'vitest';
import type { StoredMessage } from '../src/lib/api';
import { archiveFrom, restoreVersion, switchVersion, versionsAt, withVersions } from '../src/lib/branches';

const u = (content: string): StoredMessage => ({ role: 'user', content });
const a = (content: string): StoredMessage => ({ role: 'assistant', content });
const texts = (ms: StoredMessage[]) => ms.map((m) => m.content);

describe('message versions', () => {
  it('regenerate keeps the old answer as version 1 of 2', () => {
    const conv = [u('q'), a('first')];
    const alts = archiveFrom(conv, 1);
    const now = [u('q'), withVersions(a('second'), alts)];
    expect(versionsAt(now, 1)).toEqual({ current: 1, count: 2 });
    const back = switchVersion(now, 1, 0);
    expect(texts(back)).toEqual(['q', 'first']);
    expect(versionsAt(back, 1)).toEqual({ current: 0, count: 2 });
    expect(texts(switchVersion(back, 1, 1))).toEqual(['q', 'second']);
  });

  it('an edit keeps the old question with everything after it', () => {
    const conv = [u('q1'), a('a1'), u('q2'), a('a2')];
    const alts = archiveFrom(conv, 0);
    const edited = [withVersions(u('q1 edited'), alts), a('a1 new')];
    const old = switchVersion(edited, 0, 0);
    expect(texts(old)).toEqual(['q1', 'a1', 'q2', 'a2']);
    expect(texts(switchVersion(old, 0, 1))).toEqual(['q1 edited', 'a1 new']);
    // a third version, made while version 1 shows
    const third = [withVersions(u('q1 again'), archiveFrom(old, 0)), a('a1 again')];
    expect(versionsAt(third, 0)).toEqual({ current: 2, count: 3 });
    expect(texts(switchVersion(third, 0, 0))).toEqual(['q1', 'a1', 'q2', 'a2']); // in the order made
    expect(texts(switchVersion(third, 0, 1))).toEqual(['q1 edited', 'a1 new']);
  });

  it('a failed regeneration puts the answer back', () => {
    const conv = [u('q'), withVersions(a('two'), [[a('one')]])];
    const alts = archiveFrom(conv, 1);
    const restored = restoreVersion([u('q')], alts, versionsAt(conv, 1).current);
    expect(texts(restored)).toEqual(['q', 'two']);
    expect(versionsAt(restored, 1)).toEqual({ current: 1, count: 2 });
  });
});

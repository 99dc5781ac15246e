// @vitest-environment jsdom
// The voice settings: kept in localStorage, and what each /v1/audio/speech request carries.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const KEY = 'corral.voice';
const VOICES = [
  { id: 'en_US-joe-medium', object: 'voice', model: 'piper-joe' },
  { id: 'alice', object: 'voice', model: 'coqui-multi', languages: ['en', 'fr-fr', 'pt-br'] },
  { id: 'bob', object: 'voice', model: 'coqui-multi', languages: ['en', 'fr-fr', 'pt-br'] },
];

interface Sent {
  url: string;
  body: unknown;
}

let sent: Sent[];

function fakeFetch(voicesStatus = 200) {
  return vi.fn(async (url: string, init?: RequestInit) => {
    sent.push({ url, body: init?.body ? JSON.parse(String(init.body)) : undefined });
    if (url === '/v1/audio/voices') {
      return new Response(JSON.stringify({ object: 'list', data: VOICES }), {
        status: voicesStatus,
        headers: { 'Content-Type': 'application/json' },
      });
    }
    return new Response(new Uint8Array([0xff, 0xf3, 0, 0]), { headers: { 'Content-Type': 'audio/mpeg' } });
  });
}

beforeEach(() => {
  vi.resetModules();
  localStorage.clear();
  sent = [];
  vi.stubGlobal('fetch', fakeFetch());
});

afterEach(() => {
  vi.unstubAllGlobals();
});

async function load() {
  const { voicePrefs } = await import('../src/lib/voicePrefs.svelte');
  const { speak } = await import('../src/lib/speech');
  return { voicePrefs, speak };
}

const speechBodies = () => sent.filter((s) => s.url === '/v1/audio/speech').map((s) => s.body);

describe('voice settings', () => {
  it('keeps the quality and language in this browser', async () => {
    const { voicePrefs } = await load();
    expect(voicePrefs.quality).toBe('normal');
    expect(voicePrefs.language).toBe('');
    voicePrefs.quality = 'best';
    voicePrefs.language = 'fr-fr';
    voicePrefs.save();
    expect(JSON.parse(localStorage.getItem(KEY)!)).toMatchObject({ quality: 'best', language: 'fr-fr' });

    vi.resetModules();
    const again = await load();
    expect(again.voicePrefs.quality).toBe('best');
    expect(again.voicePrefs.language).toBe('fr-fr');
  });

  it('falls back to normal for a preset it does not know', async () => {
    localStorage.setItem(KEY, JSON.stringify({ voice: 'piper-joe/en_US-joe-medium', speed: 1.2, quality: 'ultra', language: 7 }));
    const { voicePrefs } = await load();
    expect(voicePrefs.quality).toBe('normal');
    expect(voicePrefs.language).toBe('');
    expect(voicePrefs.voice).toBe('piper-joe/en_US-joe-medium');
    expect(voicePrefs.speed).toBe(1.2);
  });

  it('lists languages only for a model that has them', async () => {
    const { voicePrefs } = await load();
    await voicePrefs.load();
    expect(voicePrefs.languagesOf('coqui-multi')).toEqual(['en', 'fr-fr', 'pt-br']);
    expect(voicePrefs.languagesOf('piper-joe')).toEqual([]);
    expect(voicePrefs.modelFor('piper-joe')).toBe('piper-joe');
    voicePrefs.voice = 'coqui-multi/bob';
    expect(voicePrefs.modelFor('piper-joe')).toBe('coqui-multi');
  });
});

describe('the speech request', () => {
  it('carries the quality, and the language to a model that takes it', async () => {
    const { voicePrefs, speak } = await load();
    voicePrefs.voice = 'coqui-multi/alice';
    voicePrefs.quality = 'better';
    voicePrefs.language = 'pt-br';
    voicePrefs.speed = 1.25;
    await speak('Olá.', 'piper-joe');
    expect(speechBodies()).toEqual([
      { model: 'coqui-multi', voice: 'alice', speed: 1.25, quality: 'better', language: 'pt-br', input: 'Olá.', response_format: 'mp3' },
    ]);
  });

  it('leaves the language out for a model without it (it would be a 400)', async () => {
    const { voicePrefs, speak } = await load();
    voicePrefs.voice = 'piper-joe/en_US-joe-medium';
    voicePrefs.quality = 'best';
    voicePrefs.language = 'fr-fr';
    await speak('Hello.', 'coqui-multi');
    expect(speechBodies()).toEqual([
      { model: 'piper-joe', voice: 'en_US-joe-medium', speed: 1, quality: 'best', input: 'Hello.', response_format: 'mp3' },
    ]);
  });

  it('uses the saved voice and language without the settings panel opening first', async () => {
    localStorage.setItem(KEY, JSON.stringify({ voice: 'coqui-multi/bob', speed: 1, quality: 'best', language: 'fr-fr' }));
    const { speak } = await load();
    await speak('Bonjour.', 'piper-joe');
    await speak('Encore.', 'piper-joe');
    expect(sent.filter((s) => s.url === '/v1/audio/voices')).toHaveLength(1);
    expect(speechBodies().map((b) => b as Record<string, unknown>)).toMatchObject([
      { model: 'coqui-multi', voice: 'bob', quality: 'best', language: 'fr-fr', input: 'Bonjour.' },
      { model: 'coqui-multi', voice: 'bob', quality: 'best', language: 'fr-fr', input: 'Encore.' },
    ]);
  });

  it('speaks with the defaults when the voice list cannot be read', async () => {
    vi.stubGlobal('fetch', fakeFetch(503));
    localStorage.setItem(KEY, JSON.stringify({ voice: 'coqui-multi/bob', quality: 'better', language: 'fr-fr' }));
    const { speak } = await load();
    await speak('Hello.', 'piper-joe');
    expect(speechBodies()).toEqual([{ model: 'piper-joe', speed: 1, quality: 'better', input: 'Hello.', response_format: 'mp3' }]);
    vi.stubGlobal('fetch', fakeFetch());
    await speak('Bonjour.', 'piper-joe');
    expect(speechBodies()[1]).toMatchObject({ model: 'coqui-multi', voice: 'bob', language: 'fr-fr' });
  });
});

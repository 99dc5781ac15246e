// The reader's voice and speed, kept in this browser (they are a listener's taste, not a
// conversation's setting).

import { rawFetch } from './api';

const KEY = 'corral.voice';

export interface Voice {
  id: string;
  model: string;
}

class VoicePrefs {
  voice = $state('');
  speed = $state(1);
  voices = $state<Voice[]>([]);

  constructor() {
    try {
      const saved = JSON.parse(globalThis.localStorage?.getItem(KEY) ?? '{}') as { voice?: string; speed?: number };
      this.voice = saved.voice ?? '';
      this.speed = typeof saved.speed === 'number' ? saved.speed : 1;
    } catch {
      /* nothing saved, or storage is off */
    }
  }

  save(): void {
    try {
      globalThis.localStorage?.setItem(KEY, JSON.stringify({ voice: this.voice, speed: this.speed }));
    } catch {
      /* storage is off: the choice lasts for this page */
    }
  }

  async load(): Promise<void> {
    const res = await rawFetch('/v1/audio/voices');
    if (res.ok) this.voices = ((await res.json()) as { data: Voice[] }).data;
  }

  /** The model and voice to speak with: the chosen voice when it still exists. */
  pick(fallbackModel: string): { model: string; voice?: string } {
    const chosen = this.voices.find((v) => `${v.model}/${v.id}` === this.voice);
    return chosen ? { model: chosen.model, voice: chosen.id } : { model: fallbackModel };
  }
}

export const voicePrefs = new VoicePrefs();

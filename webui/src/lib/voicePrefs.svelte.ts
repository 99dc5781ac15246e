// The reader's voice, speed, quality preset and language, kept in this browser (they are a
// listener's taste, not a conversation's setting).

import { rawFetch } from './api';

const KEY = 'corral.voice';

export const QUALITIES = ['normal', 'better', 'best'] as const;
export type Quality = (typeof QUALITIES)[number];

export interface Voice {
  id: string;
  model: string;
  /** Only a multilingual model lists them (GET /v1/audio/voices). */
  languages?: string[];
}

/** What /v1/audio/speech gets from these settings, besides the input and format. */
export interface SpeechChoice {
  model: string;
  voice?: string;
  speed: number;
  quality: Quality;
  language?: string;
}

interface Saved {
  voice?: unknown;
  speed?: unknown;
  quality?: unknown;
  language?: unknown;
}

class VoicePrefs {
  voice = $state('');
  speed = $state(1);
  quality = $state<Quality>('normal');
  /** '' is the model's own default language. */
  language = $state('');
  voices = $state<Voice[]>([]);

  constructor() {
    try {
      const saved = JSON.parse(globalThis.localStorage?.getItem(KEY) ?? '{}') as Saved;
      this.voice = typeof saved.voice === 'string' ? saved.voice : '';
      this.speed = typeof saved.speed === 'number' ? saved.speed : 1;
      // A preset an older or newer UI saved that this one does not know falls back to normal.
      this.quality = QUALITIES.find((q) => q === saved.quality) ?? 'normal';
      this.language = typeof saved.language === 'string' ? saved.language : '';
    } catch {
      /* nothing saved, or storage is off */
    }
  }

  save(): void {
    try {
      const { voice, speed, quality, language } = this;
      globalThis.localStorage?.setItem(KEY, JSON.stringify({ voice, speed, quality, language }));
    } catch {
      /* storage is off: the choice lasts for this page */
    }
  }

  private loading: Promise<void> | null = null;

  /** Fetch the voice list; false when the server did not give it. */
  async load(): Promise<boolean> {
    const res = await rawFetch('/v1/audio/voices');
    if (res.ok) this.voices = ((await res.json()) as { data: Voice[] }).data;
    return res.ok;
  }

  /**
   * The voice list, fetched once: a saved voice or language means nothing until the list
   * says which model has it, and reading aloud must not wait for the settings panel to open.
   */
  ready(): Promise<void> {
    // Not given now: speak with the defaults, and ask again next time.
    const forget = () => void (this.loading = null);
    this.loading ??= this.load().then((ok) => (ok ? undefined : forget()), forget);
    return this.loading;
  }

  private chosen(): Voice | undefined {
    return this.voices.find((v) => `${v.model}/${v.id}` === this.voice);
  }

  /** The model that will speak: the chosen voice's, else `fallbackModel`. */
  modelFor(fallbackModel: string): string {
    return this.chosen()?.model ?? fallbackModel;
  }

  /** The languages that model takes; empty for a model with one (every Piper voice). */
  languagesOf(model: string): string[] {
    const all = this.voices.filter((v) => v.model === model).flatMap((v) => v.languages ?? []);
    return [...new Set(all)];
  }

  /**
   * The speech request's settings: the chosen voice when it still exists, and the chosen
   * language only when the speaking model takes it (another model would refuse it with a 400).
   */
  pick(fallbackModel: string): SpeechChoice {
    const chosen = this.chosen();
    const model = chosen?.model ?? fallbackModel;
    const choice: SpeechChoice = {
      model,
      speed: Math.min(4, Math.max(0.25, Number(this.speed) || 1)),
      quality: this.quality,
    };
    if (chosen) choice.voice = chosen.id;
    if (this.language && this.languagesOf(model).includes(this.language)) choice.language = this.language;
    return choice;
  }
}

export const voicePrefs = new VoicePrefs();

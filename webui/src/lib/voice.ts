// Hands-free voice mode: the answer is spoken sentence by sentence while it streams.
//
// Each complete sentence is sent to /v1/audio/speech as soon as the text holds it (so the
// next sentence is being synthesised while the previous one plays), and played in order.

import { speak, speakable } from './speech';

/** The end (exclusive) of the last complete sentence in `text`, or 0 when there is none. */
export function sentenceEnd(text: string): number {
  let end = 0;
  const re = /[.!?…]+["')\]]*(\s+|$)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index + m[0].length < text.length || /\s$/.test(m[0])) end = m.index + m[0].length;
  }
  return end;
}

export class SentenceSpeaker {
  private spoken = 0;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  /** performance.now() of the first sound, for the time-to-first-audio figure. */
  firstSoundAt: number | null = null;

  constructor(
    private readonly model: string,
    private readonly audio: HTMLAudioElement,
    private readonly onfirstsound: (at: number) => void,
    private readonly onerror: (message: string) => void,
  ) {}

  /** Give the answer's text so far; `final` speaks what is left after the last sentence. */
  feed(text: string, final = false): void {
    if (this.stopped) return;
    const rest = text.slice(this.spoken);
    const end = final ? rest.length : sentenceEnd(rest);
    if (end <= 0) return;
    this.spoken += end;
    const words = speakable(rest.slice(0, end));
    if (!words) return;
    const audio = speak(words, this.model); // starts now, while earlier sentences play
    audio.catch(() => undefined); // awaited in order below; no unhandled rejection meanwhile
    this.chain = this.chain.then(() => this.play(audio));
  }

  stop(): void {
    this.stopped = true;
    this.audio.pause();
  }

  private async play(pending: Promise<Blob>): Promise<void> {
    if (this.stopped) return;
    let url = '';
    try {
      url = URL.createObjectURL(await pending);
      this.audio.src = url;
      const ended = new Promise<void>((resolve) => {
        this.audio.onended = () => resolve();
        this.audio.onpause = () => resolve();
      });
      await this.audio.play();
      if (this.firstSoundAt === null) {
        this.firstSoundAt = performance.now();
        this.onfirstsound(this.firstSoundAt);
      }
      await ended;
    } catch (e) {
      this.onerror(e instanceof Error ? e.message : String(e));
    } finally {
      if (url) URL.revokeObjectURL(url);
    }
  }
}

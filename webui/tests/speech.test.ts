import { describe, expect, it } from 'vitest';
import { speakable, unavailableReason } from '../src/lib/speech';

describe('speakable', () => {
  it('drops code blocks and markup, keeps link text', () => {
    const md = '# Title\n\nSee [the docs](http://x) and `ls`.\n\n```sh\nrm -rf /\n```\n**Done**.';
    expect(speakable(md)).toBe('Title See the docs and ls. Done.');
  });
});

describe('unavailableReason', () => {
  it('says why there is no voice or no transcriber', () => {
    expect(unavailableReason('speech', undefined)).toContain('No text-to-speech model');
    expect(unavailableReason('transcription', undefined)).toContain('No speech-to-text model');
    expect(unavailableReason('speech', { id: 'v' })).toBe('');
  });
});

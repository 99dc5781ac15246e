import { describe, expect, it } from 'vitest';
import { sentenceEnd } from '../src/lib/voice';

describe('sentenceEnd', () => {
  it('finds the end of the last complete sentence', () => {
    expect(sentenceEnd('Hello there. How are')).toBe('Hello there. '.length);
    expect(sentenceEnd('One. Two! Three? Fou')).toBe('One. Two! Three? '.length);
    expect(sentenceEnd('No end yet')).toBe(0);
    // A full stop at the very end may be a decimal point or an abbreviation still growing.
    expect(sentenceEnd('It costs 3.')).toBe(0);
    expect(sentenceEnd('He said "yes." Then')).toBe('He said "yes." '.length);
  });
});

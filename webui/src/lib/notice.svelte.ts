// The one-line notice shown above a conversation (a failed save, an import, an interrupted
// generation); it goes away after a few seconds.

class Notice {
  text = $state('');
  private timer: ReturnType<typeof setTimeout> | null = null;

  show(text: string): void {
    this.text = text;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => (this.text = ''), 6000);
  }
}

export const notice = new Notice();

import { describe, expect, it } from 'vitest';
import { ConsoleLogger, formatDuration, progressText } from '../../pipeline/logger.ts';

/** A stream that keeps what is written. */
function sink() {
  const chunks: string[] = [];
  return { stream: { write: (s: string) => { chunks.push(s); return true; }, isTTY: false } as unknown as NodeJS.WriteStream, text: () => chunks.join('') };
}

describe('progress', () => {
  it('says the count, the rate and the time left at that rate', () => {
    expect(progressText(0, 128, 0)).toBe('0/128');
    expect(progressText(12, 128, 8_000)).toBe('12/128, 1.5/s, about 1m 17s left');
    expect(progressText(3, 10, 30_000)).toBe('3/10, 10.0s each, about 1m 10s left');
    expect(progressText(500, 2000, 10_000)).toBe('500/2000, 50/s, about 30s left');
    expect(progressText(10, 10, 5_000)).toBe('10/10, 2.0/s');
    expect(formatDuration(400)).toBe('1s');
    expect(formatDuration(7_530_000)).toBe('2h 5m');
  });

  it('without a terminal: a start line, a line at most every 10 s while work goes on, an end line', () => {
    const out = sink();
    let t = 1_000;
    const logger = new ConsoleLogger({ stream: out.stream, live: false, now: () => t });
    const bar = logger.progress('class-visualization', 128);
    for (let i = 0; i < 40; i++) { t += 1_000; bar.tick(); } // 1 per second: a line at 10 s, 20 s, 30 s, 40 s
    bar.done();
    expect(out.text().split('\n')).toEqual([
      'class-visualization: 128 to do',
      'class-visualization: 10/128, 1.0/s, about 1m 58s left',
      'class-visualization: 20/128, 1.0/s, about 1m 48s left',
      'class-visualization: 30/128, 1.0/s, about 1m 38s left',
      'class-visualization: 40/128, 1.0/s, about 1m 28s left',
      'class-visualization: 40/128 in 40.0s',
      '',
    ]);
  });

  it('on a terminal: one redrawn bar with the rate and the time left', () => {
    const out = sink();
    let t = 0;
    const logger = new ConsoleLogger({ stream: out.stream, live: true, now: () => t });
    const bar = logger.progress('occlusion', 4);
    t = 2_000;
    bar.tick();
    expect(out.text()).toBe('\r\x1b[2Kocclusion [######..................] 1/4, 2.0s each, about 6s left');
  });
});

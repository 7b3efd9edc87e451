// One series as a server-rendered SVG bar chart: no script, an accessible name, and its numbers in a table beside it.
import type { Bucket, Series } from './activity.js';

const WIDTH = 720;
const HEIGHT = 160;
const LEFT = 48;
const BOTTOM = 24;

const escapeXml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function bucketLabel(start: Date, bucket: Bucket): string {
  const iso = start.toISOString();
  return bucket === 'day' ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

/** The chart's SVG; `id` makes its title and description referable. */
export function barChartSvg(series: Series, starts: Date[], bucket: Bucket, id: string): string {
  const max = Math.max(1, ...series.counts);
  const plotWidth = WIDTH - LEFT;
  const plotHeight = HEIGHT - BOTTOM - 8;
  const step = plotWidth / Math.max(1, series.counts.length);
  const barWidth = Math.max(1, step * 0.8);
  const first = starts[0];
  const last = starts[starts.length - 1];
  const range = first && last ? `${bucketLabel(first, bucket)} to ${bucketLabel(last, bucket)}` : '';
  const bars = series.counts
    .map((n, i) => {
      if (n === 0) return '';
      const h = (n / max) * plotHeight;
      const x = LEFT + i * step;
      const label = `${bucketLabel(starts[i]!, bucket)}: ${n}`;
      return `<rect x="${x.toFixed(1)}" y="${(8 + plotHeight - h).toFixed(1)}" width="${barWidth.toFixed(1)}" height="${h.toFixed(1)}"><title>${escapeXml(label)}</title></rect>`;
    })
    .join('');
  const axis = [
    `<line x1="${LEFT}" y1="${8 + plotHeight}" x2="${WIDTH}" y2="${8 + plotHeight}" class="axis"/>`,
    `<text x="${LEFT - 6}" y="14" text-anchor="end">${max}</text>`,
    `<text x="${LEFT - 6}" y="${8 + plotHeight}" text-anchor="end">0</text>`,
    first ? `<text x="${LEFT}" y="${HEIGHT - 6}">${escapeXml(bucketLabel(first, bucket))}</text>` : '',
    last ? `<text x="${WIDTH}" y="${HEIGHT - 6}" text-anchor="end">${escapeXml(bucketLabel(last, bucket))}</text>` : '',
  ].join('');
  const title = `${series.name} per ${bucket}`;
  const desc = `${series.total} in all from ${range}; at most ${max} in one ${bucket}.`;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-labelledby="${id}-title ${id}-desc">` +
    `<title id="${id}-title">${escapeXml(title)}</title><desc id="${id}-desc">${escapeXml(desc)}</desc>${axis}<g class="bars">${bars}</g></svg>`
  );
}

// Small hand-made SVG charts (no chart library: a line chart and a scatter are all the views need).

export interface Series { name: string; colour: string; dash?: string; points: [number, number][] }

const W = 700, H = 260, L = 48, R = 210, T = 12, B = 34;

function ticks(min: number, max: number, count = 5, integer = false): number[] {
  if (max <= min) return [min];
  const step = Math.pow(10, Math.floor(Math.log10((max - min) / count)));
  const found = [1, 2, 5, 10].map(m => m * step).find(s => (max - min) / s <= count) ?? step * 10;
  const nice = integer ? Math.max(1, found) : found;
  const out: number[] = [];
  for (let v = Math.ceil(min / nice) * nice; v <= max + 1e-12; v += nice) out.push(Number(v.toPrecision(6)));
  return out;
}

export function LineChart({ series, xLabel, yLabel, label, yMax }: { series: Series[]; xLabel: string; yLabel: string; label: string; yMax?: number }) {
  const all = series.flatMap(s => s.points);
  if (all.length === 0) return null;
  const x0 = Math.min(...all.map(p => p[0])), x1 = Math.max(...all.map(p => p[0]), x0 + 1);
  const y1 = yMax ?? Math.max(...all.map(p => p[1]), 1e-9) * 1.05;
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => H - B - (y / y1) * (H - T - B);
  return (
    <svg class="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label} width={W} height={H}>
      {ticks(0, y1).map(v => (
        <g key={`y${v}`}><line x1={L} x2={W - R} y1={sy(v)} y2={sy(v)} stroke="#e5e7eb" /><text x={L - 4} y={sy(v) + 4} text-anchor="end">{v}</text></g>
      ))}
      {ticks(x0, x1, 8, true).map(v => <text key={`x${v}`} x={sx(v)} y={H - B + 14} text-anchor="middle">{v}</text>)}
      <text x={(L + W - R) / 2} y={H - 4} text-anchor="middle">{xLabel}</text>
      <text x={12} y={(T + H - B) / 2} text-anchor="middle" transform={`rotate(-90 12 ${(T + H - B) / 2})`}>{yLabel}</text>
      <line x1={L} x2={L} y1={T} y2={H - B} stroke="#999" /><line x1={L} x2={W - R} y1={H - B} y2={H - B} stroke="#999" />
      {series.map((s, i) => (
        <g key={s.name}>
          <polyline fill="none" stroke={s.colour} stroke-width={2} stroke-dasharray={s.dash} points={s.points.map(p => `${sx(p[0])},${sy(p[1])}`).join(' ')} />
          {s.points.map((p, j) => <circle key={j} cx={sx(p[0])} cy={sy(p[1])} r={2.5} fill={s.colour}><title>{`${s.name}: ${p[0]} → ${p[1].toFixed(4)}`}</title></circle>)}
          <line x1={W - R + 10} x2={W - R + 30} y1={T + 10 + i * 18} y2={T + 10 + i * 18} stroke={s.colour} stroke-width={2} stroke-dasharray={s.dash} />
          <text x={W - R + 34} y={T + 14 + i * 18}>{s.name}</text>
        </g>
      ))}
    </svg>
  );
}

export interface Point { x: number; y: number; label: string; colour: string }
export interface Arrow { from: [number, number]; to: [number, number] }

export function Scatter({ points, arrows, label, xLabel, yLabel }: { points: Point[]; arrows: Arrow[]; label: string; xLabel: string; yLabel: string }) {
  if (points.length === 0) return null;
  const size = 520, pad = 40;
  const xs = points.map(p => p.x), ys = points.map(p => p.y);
  const [xa, xb] = [Math.min(...xs), Math.max(...xs)], [ya, yb] = [Math.min(...ys), Math.max(...ys)];
  const span = Math.max(xb - xa, yb - ya, 1e-9);
  const cx = (xa + xb) / 2, cy = (ya + yb) / 2;
  const sx = (x: number) => size / 2 + ((x - cx) / span) * (size - 2 * pad);
  const sy = (y: number) => size / 2 - ((y - cy) / span) * (size - 2 * pad);
  return (
    <svg class="chart" viewBox={`0 0 ${size + 220} ${size}`} width={size + 220} height={size} role="img" aria-label={label}>
      <defs><marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#d97706" /></marker></defs>
      <rect x={0.5} y={0.5} width={size - 1} height={size - 1} fill="#fff" stroke="#ddd" />
      <text x={size / 2} y={size - 6} text-anchor="middle">{xLabel}</text>
      <text x={12} y={size / 2} text-anchor="middle" transform={`rotate(-90 12 ${size / 2})`}>{yLabel}</text>
      {arrows.map((a, i) => <line key={i} x1={sx(a.from[0])} y1={sy(a.from[1])} x2={sx(a.to[0])} y2={sy(a.to[1])} stroke="#d97706" stroke-width={1.8} marker-end="url(#arrowhead)" />)}
      {points.map((p, i) => (
        <g key={i}>
          <circle cx={sx(p.x)} cy={sy(p.y)} r={5} fill={p.colour}><title>{p.label}</title></circle>
          <text x={sx(p.x) + 7} y={sy(p.y) + 4}>{p.label.length > 28 ? p.label.slice(0, 27) + '…' : p.label}</text>
        </g>
      ))}
    </svg>
  );
}

import { useEffect, useState } from 'preact/hooks';
import { post, percent, showPiece, type CompareReport, type ComparedToken } from '../api';
import { cli, ErrorLine, Field, Reproduce, type ViewProps } from '../common';

const topK = 10;

/** The post's table: the same question with and without a system prompt, token by token. */
export function CompareView({ model }: ViewProps) {
  const [prompt, setPrompt] = useState('Once upon a time');
  const [systemA, setSystemA] = useState('');
  const [systemB, setSystemB] = useState('The story is about a dragon.');
  const [raw, setRaw] = useState(false);
  const [report, setReport] = useState<CompareReport | null>(null);
  const [error, setError] = useState<string | null>(null);

  const run = async () => {
    setError(null);
    try {
      setReport(await post<CompareReport>('/v1/inspect/compare', {
        prompt, system_a: systemA || null, system_b: systemB || null, top: topK, raw,
      }));
    } catch (e) { setError((e as Error).message); }
  };
  useEffect(() => { run(); }, []);
  const onKey = (e: KeyboardEvent) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); run(); } };

  const newIds = new Set(report?.new_in_top_k.map(t => t.id));
  const command = cli(model, 'compare', ['--prompt', prompt, ...(systemA ? ['--system-a', systemA] : []), ...(systemB ? ['--system-b', systemB] : []), '--top', topK, ...(raw ? ['--raw'] : [])]);
  return (
    <section class="view compare">
      <div class="form" onKeyDown={onKey}>
        <Field label="Prompt"><textarea aria-label="Prompt" rows={2} value={prompt} onInput={e => setPrompt((e.target as HTMLTextAreaElement).value)} /></Field>
        <Field label="System prompt A (without)"><textarea aria-label="System prompt A" rows={2} value={systemA} onInput={e => setSystemA((e.target as HTMLTextAreaElement).value)} /></Field>
        <Field label="System prompt B (with)"><textarea aria-label="System prompt B" rows={2} value={systemB} onInput={e => setSystemB((e.target as HTMLTextAreaElement).value)} /></Field>
        <label class="check"><input type="checkbox" checked={raw} onChange={e => setRaw((e.target as HTMLInputElement).checked)} /> raw text (no chat template)</label>
        <button onClick={run}>Compare</button>
      </div>
      <ErrorLine error={error} />
      {report ? (
        <>
          <p class="summary" aria-label="Divergence">KL(A‖B) {report.kl_ab.toFixed(4)} nats · KL(B‖A) {report.kl_ba.toFixed(4)} · JS {report.js.toFixed(4)} · TV {report.tv.toFixed(4)} · entropy A {report.entropy_a.toFixed(3)}, B {report.entropy_b.toFixed(3)} · top-{report.top_k} overlap {report.top_k_overlap}/{report.top_k}</p>
          <table class="dist" aria-label="With and without">
            <thead><tr><th>rank (B)</th><th>token</th><th>probability with (B)</th><th>without (A)</th><th>was</th><th>change</th><th></th></tr></thead>
            <tbody>
              {report.top_b.map(t => (
                <tr key={t.id}>
                  <td>{t.rank_b}</td><td class="tok">{showPiece(t.piece)}</td><td>{percent(t.prob_b, 2)}</td><td>{percent(t.prob_a, 2)}</td>
                  <td>#{t.rank_a}</td><td>{change(t)}</td><td>{newIds.has(t.id) ? <span class="badge new">new in top {report.top_k}</span> : null}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Dropped from the top {report.top_k}</h2>
          <table class="dist" aria-label="Dropped">
            <thead><tr><th>token</th><th>was (A)</th><th>now (B)</th><th>probability without</th><th>with</th></tr></thead>
            <tbody>
              {report.dropped.map(t => (
                <tr key={t.id}><td class="tok">{showPiece(t.piece)}</td><td>#{t.rank_a}</td><td>#{t.rank_b}</td><td>{percent(t.prob_a, 2)}</td><td>{percent(t.prob_b, 2)}</td></tr>
              ))}
            </tbody>
          </table>
          {report.dropped.length === 0 ? <p class="note">none</p> : null}
        </>
      ) : null}
      <Reproduce command={command} json={report} name="compare" />
    </section>
  );
}

function change(t: ComparedToken): string {
  const moved = t.rank_a - t.rank_b;
  return moved > 0 ? `▲ ${moved}` : moved < 0 ? `▼ ${-moved}` : '=';
}

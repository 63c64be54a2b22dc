import { useEffect, useState } from 'preact/hooks';
import { post, percent } from '../api';
import { LineChart } from '../chart';
import { cli, ErrorLine, Field, Reproduce, type ViewProps } from '../common';

interface Turn { turn: number; context_tokens: number; system_tokens: number; distance: number; system_share: number; system_share_per_layer: number[]; sink_share: number; kl_without_system: number }
interface DriftReport { template: string; turns: Turn[]; reanchored: Turn[] | null; reanchor_every: number; context_full_at_turn: number | null }

/** "user: …" / "assistant: …" lines (a line without a role continues the previous message). */
function parseConversation(text: string): { role: string; content: string }[] {
  const messages: { role: string; content: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /^(user|assistant):\s?(.*)$/i.exec(line);
    if (m) messages.push({ role: m[1].toLowerCase(), content: m[2] });
    else if (messages.length && line.trim()) messages[messages.length - 1].content += '\n' + line;
  }
  return messages;
}

const example = 'user: Tell me about the cat.\nassistant: The cat was big and soft.\nuser: What did it eat?\nassistant: It ate fish every day.\nuser: Where did it sleep?\nassistant: It slept in a box by the fire.\nuser: Did it have a friend?';

/** Attention paid to the system prompt turn by turn, with and without re-anchoring, the sink apart. */
export function DriftView({ model }: ViewProps) {
  const [system, setSystem] = useState('You are a pirate. Always talk like a pirate.');
  const [mode, setMode] = useState<'synthetic' | 'conversation'>('synthetic');
  const [synthetic, setSynthetic] = useState(8);
  const [conversation, setConversation] = useState(example);
  const [every, setEvery] = useState(3);
  const [report, setReport] = useState<DriftReport | null>(null);
  const [error, setError] = useState<string | null>(null);

  const run = async () => {
    setError(null);
    try {
      setReport(await post<DriftReport>('/v1/inspect/drift', {
        system, reanchor: every,
        ...(mode === 'synthetic' ? { synthetic } : { conversation: parseConversation(conversation) }),
      }));
    } catch (e) { setError((e as Error).message); }
  };
  useEffect(() => { run(); }, []);

  const series = report ? [
    { name: 'system prompt', colour: '#1d4ed8', points: report.turns.map(t => [t.turn, t.system_share] as [number, number]) },
    ...(report.reanchored ? [{ name: `re-anchored every ${report.reanchor_every}`, colour: '#16a34a', points: report.reanchored.map(t => [t.turn, t.system_share] as [number, number]) }] : []),
    { name: 'sink (first token)', colour: '#9ca3af', dash: '5 4', points: report.turns.map(t => [t.turn, t.sink_share] as [number, number]) },
  ] : [];
  const command = cli(model, 'drift', ['--system', system, ...(mode === 'synthetic' ? ['--synthetic', synthetic] : ['--conversation', 'conversation.json']), ...(every > 0 ? ['--reanchor', every] : []), '--json']);
  return (
    <section class="view drift" data-ready={report ? '' : undefined}>
      <Field label="System prompt"><textarea aria-label="System prompt" rows={2} value={system} onInput={e => setSystem((e.target as HTMLTextAreaElement).value)} /></Field>
      <div class="controls">
        <label><input type="radio" name="mode" checked={mode === 'synthetic'} onChange={() => setMode('synthetic')} /> synthetic turns</label>
        <label><span>Synthetic turns</span> <input type="number" aria-label="Synthetic turns" min={1} max={200} value={synthetic} onInput={e => setSynthetic(Number((e.target as HTMLInputElement).value) || 1)} /></label>
        <label><input type="radio" name="mode" checked={mode === 'conversation'} onChange={() => setMode('conversation')} /> my conversation</label>
        <label><span>Re-anchor every</span> <input type="number" aria-label="Re-anchor every" min={0} max={100} value={every} onInput={e => setEvery(Number((e.target as HTMLInputElement).value) || 0)} /> turns (0 = off)</label>
        <button onClick={run}>Measure drift</button>
      </div>
      {mode === 'conversation' ? <Field label="Conversation (user: / assistant: lines)"><textarea aria-label="Conversation" rows={7} value={conversation} onInput={e => setConversation((e.target as HTMLTextAreaElement).value)} /></Field> : null}
      <ErrorLine error={error} />
      {report ? (
        <>
          <h2>Attention the newest turn pays to the system prompt (mean over layers and heads; template {report.template})</h2>
          <LineChart series={series} xLabel="turn" yLabel="attention share" label="Attention to the system prompt per turn" />
          {report.context_full_at_turn != null ? <p class="note">The context was full at turn {report.context_full_at_turn}; measuring stopped there.</p> : null}
          <table class="dist" aria-label="Drift per turn">
            <thead><tr><th>turn</th><th>context tokens</th><th>distance</th><th>system share</th>{report.reanchored ? <th>re-anchored</th> : null}<th>sink share</th><th>KL without system</th></tr></thead>
            <tbody>{report.turns.map((t, i) => (
              <tr key={t.turn}><td>{t.turn}</td><td>{t.context_tokens}</td><td>{t.distance}</td><td>{percent(t.system_share, 2)}</td>
                {report.reanchored ? <td>{report.reanchored[i] ? percent(report.reanchored[i].system_share, 2) : ''}</td> : null}
                <td>{percent(t.sink_share, 1)}</td><td>{t.kl_without_system.toFixed(4)}</td></tr>
            ))}</tbody>
          </table>
        </>
      ) : null}
      <Reproduce command={command} json={report} name="drift" />
    </section>
  );
}

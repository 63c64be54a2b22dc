import { useEffect, useState } from 'preact/hooks';
import { get, NeedsKey, setApiKey } from './api';
import { NextTokenView } from './views/next';
import { CompareView } from './views/compare';
import { InsideView } from './views/inside';
import { DriftView } from './views/drift';
import { SteerView } from './views/steer';
import { RoutingView } from './views/routing';
import { MapView } from './views/map';

export interface ModelInfo { id: string }

const views = [
  { hash: 'next', name: 'Next token', View: NextTokenView },
  { hash: 'ab', name: 'System prompt A/B', View: CompareView },
  { hash: 'inside', name: 'Inside the model', View: InsideView },
  { hash: 'drift', name: 'Drift', View: DriftView },
  { hash: 'steer', name: 'Steering lab', View: SteerView },
  { hash: 'routing', name: 'Routing', View: RoutingView },
  { hash: 'map', name: 'Activation Space Navigator', View: MapView },
];

function current(): string {
  const hash = location.hash.replace(/^#/, '');
  return views.some(v => v.hash === hash) ? hash : 'next';
}

export function App() {
  const [view, setView] = useState(current());
  const [model, setModel] = useState<ModelInfo | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [needsKey, setNeedsKey] = useState(false);
  const loadModel = () => get<{ data: ModelInfo[] }>('/v1/models').then(m => { setModel(m.data[0]); setNeedsKey(false); setError(null); },
    e => { setNeedsKey(e instanceof NeedsKey); setError(String(e.message ?? e)); });
  useEffect(() => {
    const onHash = () => setView(current());
    addEventListener('hashchange', onHash);
    loadModel();
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const choose = (hash: string) => { location.hash = hash; setView(hash); };
  return (
    <div class="app">
      <header>
        <h1>NextToken</h1>
        <span class="model" aria-label="Model">{model ? model.id : error ?? '…'}</span>
        {needsKey ? (
          <form class="key" onSubmit={e => { e.preventDefault(); setApiKey((e.currentTarget.elements.namedItem('key') as HTMLInputElement).value); location.reload(); }}>
            <label>API key <input name="key" type="password" aria-label="API key" /></label> <button>Use</button>
          </form>
        ) : null}
        <nav role="tablist" aria-label="Views">
          {views.map(v => (
            <button role="tab" aria-selected={v.hash === view} class={v.hash === view ? 'tab active' : 'tab'}
              onClick={() => choose(v.hash)} key={v.hash}>{v.name}</button>
          ))}
        </nav>
      </header>
      <main role="tabpanel" aria-label={views.find(v => v.hash === view)!.name}>
        {views.map(v => v.hash === view ? <v.View key={v.hash} model={model} /> : null)}
      </main>
    </div>
  );
}

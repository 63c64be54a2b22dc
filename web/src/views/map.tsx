import type { ViewProps } from '../common';

export function MapView(_props: ViewProps) {
  return (
    <section class="view">
      <h2>Activation Space Navigator</h2>
      <p class="note">This view needs the server's <code>/v1/inspect/map</code> endpoint, which this build does not have yet.</p>
    </section>
  );
}

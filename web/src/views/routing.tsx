import type { ViewProps } from '../common';

export function RoutingView(_props: ViewProps) {
  return (
    <section class="view">
      <h2>Routing</h2>
      <p class="note">This view needs the server's <code>/v1/inspect/routing</code> endpoint, which this build does not have yet.</p>
    </section>
  );
}

// The dashboard: one feed (web/dashboard-feed.js) and a panel per concern, each
// its own module bound to a data-module element. A panel that fails to start
// says so in place; the others keep working.

import { el } from './dom.js';
import { DashboardFeed } from './dashboard-feed.js';
import { RoomsPanel } from './dashboard-rooms.js';
import { ModelsPanel } from './dashboard-models.js';
import { LabelersPanel } from './dashboard-labelers.js';
import { QualityPanel } from './dashboard-quality.js';

const PANELS = { 'rooms-panel': RoomsPanel, 'models-panel': ModelsPanel, 'labelers-panel': LabelersPanel,
                 'quality-panel': QualityPanel };

/** The room filter: a select of the rooms seen so far; choosing one reloads the page. */
function roomFilter(form, feed) {
  const select = form.querySelector('select');
  if (!select) return;
  select.addEventListener('change', () => form.submit());
  feed.addEventListener('stats', (event) => {
    for (const room of Object.keys(event.detail)) {
      if (![...select.options].some((option) => option.value === room)) {
        select.append(el('option', { value: room, text: room }));
      }
    }
  });
}

for (const root of document.querySelectorAll('[data-module="dashboard"]')) {
  let feed;
  try {
    feed = new DashboardFeed(root);
  } catch (error) {
    console.error(error);
    root.prepend(el('p', { className: 'notice', text: `The dashboard could not start: ${error.message}` }));
    continue;
  }
  for (const [name, Panel] of Object.entries(PANELS)) {
    for (const panel of root.querySelectorAll(`[data-module="${name}"]`)) {
      try {
        new Panel(panel, feed);
      } catch (error) {
        console.error(error);
        panel.prepend(el('p', { className: 'notice', text: `This panel could not start: ${error.message}` }));
      }
    }
  }
  feed.addEventListener('refused', () => {
    root.dataset.refused = 'true'; // the panels would only show their empty states
    root.prepend(el('p', { className: 'notice', 'data-refused-notice': '', text:
      'The server refused this dashboard: it wants the component token. '
      + 'Open /dashboard?token=<component token> (the token the server was started with).' }));
  });
  const filter = root.querySelector('[data-room-filter]');
  if (filter) roomFilter(filter, feed);
  feed.start();
}

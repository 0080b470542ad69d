// The labeling page: joins a feedback room as a labeler, shows one task at a
// time (the next one is already here), and sends each answer after a short
// undo window. Answers not yet acknowledged survive a reconnect and are sent
// again once the server is back, so no label is lost.

import { asText, el, need } from './dom.js';
import { ConnState, RelayClient, newId, showConnection, socketUrl, takeToken } from './relay.js';
import { renderSample } from './renderers.js';
import { createAnswerControl } from './answers.js';

const NAME_KEY = 'swergio_al.labeler';
const OUTBOX_KEY = 'swergio_al.outbox'; // answers not yet confirmed, per room and name
// Errors meaning "this task id is no longer yours": wait for the task to come back.
const TASK_GONE = new Set(['unknown_task', 'not_your_task']);
const STALE_GRACE_MS = 3000;
const NEXT_TASK_MS = 2000; // how long an empty screen after an answer means "the next one is coming"

/** Numbers as people write them: at most two decimals, no float noise. */
function readable(value) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return asText(value);
  return String(Math.abs(value) >= 100 ? Math.round(value) : Number(value.toFixed(2)));
}

function percent(p) {
  return `${Math.round(Math.min(1, Math.max(0, p)) * 100)}%`;
}

/** Why a person is asked, in plain words. */
function whyAsked(data, confidence) {
  const top = Array.isArray(data.top) ? data.top.filter((t) => Array.isArray(t) && t.length === 2) : [];
  if (top.length >= 2) return `Asked because the model is torn between ${asText(top[0][0])} and ${asText(top[1][0])}.`;
  if (confidence !== null) return `Asked because the model is only ${percent(confidence)} sure.`;
  const spread = Number(data.uncertainty);
  if (Number.isFinite(spread) && typeof data.prediction === 'number') {
    return `Asked because the model's guess could be off by about ${readable(spread)}.`;
  }
  if (data.prediction === undefined || data.prediction === null) return 'Asked because the model has not learned enough to guess yet.';
  return 'Asked because the model is unsure about this one.';
}

class LabelApp {
  /** @param {HTMLElement} root */
  constructor(root) {
    this.root = root;
    this.room = root.dataset.room;
    this.undoSeconds = Number(root.dataset.undoSeconds ?? 4);
    this.nameForm = need(root, '[data-name-form]');
    this.taskView = need(root, '[data-task]');
    this.waitingView = need(root, '[data-waiting]');
    this.waitingEmpty = need(root, '[data-waiting-empty]');
    this.waitingNext = need(root, '[data-waiting-next]');
    this.nextDue = 0; // until then, an empty screen is the next task on its way, not an empty queue
    this.progress = need(root, '[data-progress]');
    this.undoBar = need(root, '[data-undo]');
    this.messageLine = need(root, '[data-message]');
    this.offline = need(root, '[data-offline]');
    this.stoppedView = need(root, '[data-stopped]');
    this.stopped = null; // why this page no longer labels (ConnState.TAKEN_OVER or REFUSED), else null
    /** @type {{data: object, stale: boolean, spent: number, draft?: unknown}[]} tasks[0] is on screen */
    this.tasks = [];
    /** answers given but not acknowledged, by sample_id */
    this.pending = new Map();
    this.undoable = null;
    this.shown = null; // {entry, control, media, since}
    this.session = 0;
    this.relay = null;
  }

  start() {
    const token = takeToken('swergio_al.labeler_token');
    const name = localStorage.getItem(NAME_KEY);
    if (name) {
      this.connect(name, token);
      return;
    }
    this.nameForm.hidden = false;
    // No socket is opened before there is a name: the badge says so, not "connecting…".
    const badge = document.querySelector('[data-conn]');
    if (badge) {
      badge.dataset.state = 'closed';
      badge.textContent = 'not connected — enter your name to start';
    }
    const input = need(this.nameForm, '[data-name-input]');
    input.focus();
    this.nameForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const chosen = input.value.trim();
      if (!chosen) return;
      localStorage.setItem(NAME_KEY, chosen);
      this.nameForm.hidden = true;
      this.connect(chosen, token);
    });
  }

  connect(name, token) {
    this.name = name;
    this.loadOutbox();
    need(this.progress, '[data-room-name]').textContent = this.room;
    need(this.progress, '[data-labeler-name]').textContent = name;
    this.progress.hidden = false;
    this.relay = new RelayClient({ url: socketUrl(this.root.dataset.wsPath || '/ws'), name, role: 'labeler',
                                   token, rooms: [this.room] });
    showConnection(this.relay, document.querySelector('[data-conn]'));
    this.relay.addEventListener('message', (event) => this.onMessage(event.detail));
    this.relay.addEventListener('ready', () => this.onReady());
    this.relay.addEventListener('state', (event) => this.onState(event.detail.state));
    need(this.taskView, '[data-submit]').addEventListener('click', (event) => { event.currentTarget.blur(); this.submit(); });
    need(this.taskView, '[data-skip]').addEventListener('click', (event) => { event.currentTarget.blur(); this.skip(); });
    need(this.undoBar, '[data-undo-button]').addEventListener('click', () => this.undo());
    need(this.progress, '[data-change-name]').addEventListener('click', () => this.changeName());
    need(this.stoppedView, '[data-take-over]').addEventListener('click', () => this.takeOver());
    document.addEventListener('keydown', (event) => this.onKey(event));
    // Leaving the page ends the undo window: the answer goes now (best effort:
    // beforeunload still has an open socket on desktop, pagehide is what phones
    // fire); the outbox in localStorage sends it on the next visit if it was lost.
    for (const type of ['beforeunload', 'pagehide']) window.addEventListener(type, () => this.flushUndoable());
    this.relay.connect();
    this.render();
  }

  /** Forget the name and start over; answers still waiting are sent first. */
  changeName() {
    this.flushUndoable();
    if (this.pending.size && !window.confirm('Some answers are not confirmed yet. Change the name anyway?')) return;
    localStorage.removeItem(NAME_KEY);
    this.relay.close();
    location.reload();
  }

  // -- connection ---------------------------------------------------------

  onState(state) {
    this.root.dataset.conn = state;
    this.offline.hidden = state !== ConnState.RECONNECTING;
    if (state !== ConnState.OPEN) {
      // The server takes our leases back when we are gone; our copies are stale
      // until it hands the same samples out again.
      for (const entry of this.tasks) entry.stale = true;
      for (const pend of this.pending.values()) if (pend.state === 'sent') pend.state = 'queued';
      this.updateCounts();
    }
    // Taken over or refused, this page gets no more tasks: a sample left on screen
    // would be answered for nothing, and "no samples right now" would be untrue.
    const stopped = state === ConnState.TAKEN_OVER || state === ConnState.REFUSED ? state : null;
    if (stopped !== this.stopped) {
      this.stopped = stopped;
      this.render();
    }
  }

  /** Label on this page again: a new connection under the name ends the other page's. */
  takeOver() {
    this.flushUndoable(); // kept in the outbox, sent by the page that loads next
    location.reload();
  }

  onReady() {
    this.render(); // connected with nothing to show yet: the empty-queue state says so
    // Send what waited for the connection; an old task id the server no longer
    // knows comes back as an error and the answer waits for the task to return.
    for (const pend of this.pending.values()) if (pend.state === 'queued') this.sendLabel(pend);
    clearTimeout(this.pruneTimer);
    this.pruneTimer = setTimeout(() => this.pruneStale(), STALE_GRACE_MS);
  }

  /** Drop stale tasks the server did not hand back (it gave them to someone else). */
  pruneStale() {
    const keep = this.tasks.filter((entry, i) => !entry.stale || i === 0);
    if (keep.length !== this.tasks.length) {
      this.tasks = keep;
      this.render();
    }
  }

  onMessage(message) {
    const data = message.DATA ?? {};
    switch (message.TYPE) {
      case 'FEEDBACK/TASK': this.onTask(data); break;
      case 'FEEDBACK/ACK': this.onAck(data); break;
      case 'FEEDBACK/STATS': this.onStats(data); break;
      case 'FEEDBACK/CANCEL': this.onCancel(data); break;
      case 'ERROR': this.onError(message); break;
      default: break;
    }
  }

  onTask(data) {
    if (!data || typeof data.task_id !== 'string') return;
    const sampleId = asText(data.sample_id ?? data.task_id);
    const pend = this.pending.get(sampleId);
    if (pend) {
      // We answered this sample already (before a reconnect): send it under the new id.
      const changed = pend.entry.data.task_id !== data.task_id;
      pend.entry.data = data;
      if (pend.state === 'queued' || (pend.state === 'sent' && changed)) this.sendLabel(pend);
      return;
    }
    const known = this.tasks.find((entry) => asText(entry.data.sample_id ?? entry.data.task_id) === sampleId);
    if (known) {
      known.data = data; // same sample, new lease: keep what is on screen and typed
      known.stale = false;
      this.render();
      return;
    }
    this.tasks.push({ data, stale: false, spent: 0 });
    this.render();
  }

  onAck(data) {
    for (const [sampleId, pend] of this.pending) {
      if (pend.entry.data.task_id === data.task_id) {
        this.pending.delete(sampleId);
        this.session += 1;
        this.root.dataset.acked = String(this.session);
        break;
      }
    }
    this.updateCounts();
  }

  onStats(data) {
    for (const key of ['queued', 'labelers']) {
      const node = this.progress.querySelector(`[data-stat="${key}"]`);
      if (node && data[key] !== undefined) node.textContent = asText(data[key]);
    }
  }

  onCancel(data) {
    const gone = new Set((data.sample_ids ?? []).map(asText));
    const before = this.tasks.length;
    const shownGone = this.tasks.length > 0 && gone.has(asText(this.tasks[0].data.sample_id));
    this.tasks = this.tasks.filter((entry) => !gone.has(asText(entry.data.sample_id)));
    if (shownGone) this.say('The model no longer needs that sample; here is the next one.');
    if (this.tasks.length !== before) this.render();
  }

  onError(message) {
    const pend = [...this.pending.values()].find((p) => p.messageId && p.messageId === message.REF);
    if (pend && TASK_GONE.has(message.CODE)) {
      pend.state = 'queued'; // sent again when the server hands this sample back
      this.updateCounts();
      this.reclaim(pend);
      return;
    }
    if (pend) {
      this.pending.delete(asText(pend.entry.data.sample_id ?? pend.entry.data.task_id));
      this.updateCounts();
    }
    this.say(`server: ${asText(message.MESSAGE ?? message.CODE)}`);
  }

  /**
   * The task id of an answer is gone (its lease ran out, or the server lost
   * it). The server hands the sample out again as a new task when it can, and
   * the answer goes with it (onTask); if it went to someone else meanwhile,
   * this answer is no longer needed.
   */
  reclaim(pend) {
    const key = asText(pend.entry.data.sample_id ?? pend.entry.data.task_id);
    clearTimeout(pend.giveUp);
    pend.giveUp = setTimeout(() => {
      if (this.pending.get(key) !== pend || pend.state !== 'queued' || !this.relay?.isOpen) return;
      this.pending.delete(key);
      this.say(`Sample ${key} was labeled meanwhile (before a reload, or by someone else); this answer was not needed.`);
      this.updateCounts();
    }, STALE_GRACE_MS);
  }

  // -- answering ----------------------------------------------------------

  submit() {
    const shown = this.shown;
    if (!shown) return;
    const answer = shown.control.value();
    if (answer === undefined) {
      if (shown.control.textBox) {
        shown.control.textBox.focus(); // Enter on an empty text answer opens the box
        this.say(shown.control.hint ?? 'Type the answer, then Enter.');
      } else {
        this.say('Pick an answer first.');
      }
      return;
    }
    this.flushUndoable();
    const entry = this.tasks.shift();
    const seconds = entry.spent + (performance.now() - shown.since) / 1000;
    this.shown = null;
    const pend = { entry, answer, seconds: Math.round(seconds * 100) / 100, state: 'undoable', messageId: null };
    this.pending.set(asText(entry.data.sample_id ?? entry.data.task_id), pend);
    this.say('');
    if (this.undoSeconds > 0) {
      this.undoable = pend;
      pend.deadline = performance.now() + this.undoSeconds * 1000;
      pend.timer = setInterval(() => this.tickUndo(), 100);
    } else {
      this.sendLabel(pend);
    }
    this.render();
  }

  tickUndo() {
    const pend = this.undoable;
    if (!pend) return;
    if (performance.now() >= pend.deadline) this.flushUndoable();
    else this.renderUndo();
  }

  /** The undo window is over (or another answer replaced it): send now. */
  flushUndoable() {
    const pend = this.undoable;
    if (!pend) return;
    clearInterval(pend.timer);
    this.undoable = null;
    this.sendLabel(pend);
    this.renderUndo();
  }

  undo() {
    const pend = this.undoable;
    if (!pend) {
      this.say('Nothing to undo: the last answer was already sent.');
      return;
    }
    clearInterval(pend.timer);
    this.undoable = null;
    this.pending.delete(asText(pend.entry.data.sample_id ?? pend.entry.data.task_id));
    this.keepDraft();
    pend.entry.draft = pend.answer;
    pend.entry.spent = pend.seconds;
    this.tasks.unshift(pend.entry);
    this.say('Answer taken back.');
    this.render();
  }

  sendLabel(pend) {
    pend.state = 'queued';
    if (this.relay?.isOpen) {
      const message = { ID: newId(), TYPE: 'FEEDBACK/LABEL', TO_ROOM: this.room,
                        DATA: { task_id: pend.entry.data.task_id, answer: pend.answer, seconds: pend.seconds } };
      pend.messageId = message.ID;
      if (this.relay.send(message)) {
        pend.state = 'sent';
        // A held answer in its undo window used the second task slot: the server hands
        // the next task only once this label is in, a round trip from now.
        this.nextDue = performance.now() + NEXT_TASK_MS;
        clearTimeout(this.nextTimer);
        this.nextTimer = setTimeout(() => this.render(), NEXT_TASK_MS);
      }
    }
    this.updateCounts();
  }

  skip() {
    if (!this.shown) return;
    const entry = this.tasks.shift();
    this.shown = null;
    if (!entry.stale && this.relay?.isOpen) {
      this.relay.send({ TYPE: 'FEEDBACK/SKIP', TO_ROOM: this.room, DATA: { task_id: entry.data.task_id } });
    }
    this.say('Skipped.');
    this.render();
  }

  // -- keyboard -----------------------------------------------------------

  onKey(event) {
    if (!this.nameForm.hidden) return;
    if (this.stopped) {
      if (event.key === 'Enter' && this.stopped === ConnState.TAKEN_OVER) {
        event.preventDefault();
        this.takeOver();
      }
      return;
    }
    const target = event.target;
    const typing = target instanceof HTMLTextAreaElement || target instanceof HTMLInputElement;
    const key = event.key;
    if (typing) {
      if (key === 'Escape') target.blur();
      else if (key === 'Enter' && !event.shiftKey) { event.preventDefault(); this.submit(); }
      else if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === 'z' && !target.value) { event.preventDefault(); this.undo(); }
      return;
    }
    if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === 'z') { event.preventDefault(); this.undo(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (key.length === 1 && !' sSuU'.includes(key) && this.shown?.control.press(key)) {
      event.preventDefault();
    } else if (key === 'Enter') {
      event.preventDefault();
      this.submit();
    } else if (key === ' ') {
      event.preventDefault();
      this.shown?.media.toggle?.();
    } else if (key === 's' || key === 'S') {
      this.skip();
    } else if (key === 'u' || key === 'U') {
      this.undo();
    }
  }

  // -- view ---------------------------------------------------------------

  keepDraft() {
    if (!this.shown) return;
    this.shown.entry.draft = this.shown.control.value();
    this.shown.entry.spent += (performance.now() - this.shown.since) / 1000;
    this.shown.media.stop?.();
  }

  render() {
    this.stoppedView.hidden = !this.stopped;
    for (const why of this.stoppedView.querySelectorAll('[data-stopped-why]')) {
      why.hidden = why.dataset.stoppedWhy !== this.stopped;
    }
    need(this.stoppedView, '[data-stopped-name]').textContent = this.name ?? '';
    const help = this.root.querySelector('[data-shortcuts]');
    if (help) help.hidden = Boolean(this.stopped); // its keys answer nothing here now
    const entry = this.stopped ? undefined : this.tasks[0];
    if (this.shown && this.shown.entry !== entry) {
      this.keepDraft();
      this.shown = null;
    }
    this.taskView.hidden = !entry; // visible before showTask: hidden elements take no focus
    if (entry && !this.shown) this.showTask(entry);
    if (entry) this.taskView.dataset.taskId = entry.data.task_id;
    this.waitingView.hidden = Boolean(entry) || !this.relay?.isOpen;
    const coming = !entry && performance.now() < this.nextDue;
    this.waitingEmpty.hidden = coming;
    this.waitingNext.hidden = !coming;
    this.root.dataset.prefetched = String(Math.max(0, this.tasks.length - 1));
    this.renderUndo();
    this.updateCounts();
  }

  showTask(entry) {
    const data = entry.data;
    const kind = asText(data.kind || 'json');
    this.taskView.dataset.kind = kind;
    this.taskView.dataset.sampleId = asText(data.sample_id);
    need(this.taskView, '[data-question]').textContent = asText(data.question || 'What is the right answer?');
    const media = renderSample(kind, data.content, need(this.taskView, '[data-sample]'));
    const prediction = need(this.taskView, '[data-prediction]');
    const predicted = data.prediction !== undefined && data.prediction !== null;
    const confidence = Number(data.confidence);
    const known = predicted && data.confidence !== null && data.confidence !== undefined && Number.isFinite(confidence);
    const spread = Number(data.uncertainty);
    const bar = need(this.taskView, '[data-confidence-bar]');
    bar.style.width = known ? `${Math.round(Math.min(1, Math.max(0, confidence)) * 100)}%` : '0%';
    bar.parentElement.hidden = !known;
    bar.parentElement.title = known ? `the model gives its answer ${percent(confidence)}` : '';
    prediction.textContent = predicted ? readable(data.prediction) : 'nothing yet';
    if (predicted && !known && Number.isFinite(spread) && typeof data.prediction === 'number') {
      prediction.append(` ± ${readable(spread)}`); // a regressor: its doubt in the answer's unit
    }
    if (known) prediction.append(` (${percent(confidence)} sure)`);
    need(this.taskView, '[data-why]').textContent = whyAsked(data, known ? confidence : null);
    const control = createAnswerControl(data.answer);
    need(this.taskView, '[data-answer]').replaceChildren(control.element);
    if (entry.draft !== undefined) control.set(entry.draft);
    this.shown = { entry, control, media, since: performance.now() };
    this.renderShortcuts(control, media);
    // Type straight away, unless Space should first play the sample (Enter opens the box).
    if (control.textBox && !media.toggle) control.textBox.focus({ preventScroll: true });
  }

  /** The shortcut help for the task on screen only. */
  renderShortcuts(control, media) {
    const help = this.root.querySelector('[data-shortcuts]');
    if (!help) return;
    const kbd = (text) => el('kbd', { text });
    const parts = [];
    if (control.keys.length) {
      const shown = control.keys.length > 4 ? [control.keys[0], '…', control.keys.at(-1)] : control.keys;
      parts.push([...shown.flatMap((k, i) => [...(i ? [' '] : []), k === '…' ? '…' : kbd(k)]), ' pick an answer (each button shows its key)']);
    }
    if (control.textBox) parts.push([kbd('Enter'), ' on an empty answer opens the box, ', kbd('Esc'), ' leaves it']);
    parts.push([kbd('Enter'), ' submit']);
    if (media.toggle) parts.push([kbd('Space'), ' play/stop']);
    parts.push([kbd('S'), ' skip']);
    parts.push([kbd('U'), ' undo']);
    help.replaceChildren(...parts.flatMap((part, i) => (i ? [' · ', ...part] : part)));
  }

  renderUndo() {
    const pend = this.undoable;
    this.undoBar.hidden = !pend;
    if (!pend) return;
    need(this.undoBar, '[data-undo-answer]').textContent = asText(pend.answer);
    const left = Math.max(0, (pend.deadline - performance.now()) / 1000);
    need(this.undoBar, '[data-undo-countdown]').textContent = left.toFixed(1);
  }

  // -- outbox: answers survive a closed tab or a crashed browser ------------

  get outboxKey() {
    return `${OUTBOX_KEY}:${this.room}:${this.name}`;
  }

  saveOutbox() {
    const items = [...this.pending.values()].map((p) => ({ data: p.entry.data, answer: p.answer, seconds: p.seconds }));
    try {
      if (items.length) localStorage.setItem(this.outboxKey, JSON.stringify(items));
      else localStorage.removeItem(this.outboxKey);
    } catch (error) {
      // storage full or denied: the page itself still holds the answers
    }
  }

  /** Answers a previous visit could not get confirmed: sent once connected (onReady). */
  loadOutbox() {
    let items;
    try {
      items = JSON.parse(localStorage.getItem(this.outboxKey) || '[]');
    } catch (error) {
      items = [];
    }
    if (!Array.isArray(items)) return;
    for (const item of items) {
      if (!item?.data || typeof item.data.task_id !== 'string' || item.answer === undefined) continue;
      const entry = { data: item.data, stale: true, spent: 0 };
      this.pending.set(asText(item.data.sample_id ?? item.data.task_id),
                       { entry, answer: item.answer, seconds: Number(item.seconds) || 0, state: 'queued', messageId: null });
    }
  }

  updateCounts() {
    this.saveOutbox();
    need(this.progress, '[data-stat="session"]').textContent = String(this.session);
    const unsent = [...this.pending.values()].filter((p) => p.state !== 'undoable').length;
    need(this.progress, '[data-stat="unsent"]').textContent = String(unsent);
    need(this.progress, '[data-stat-wrap="unsent"]').hidden = unsent === 0;
    this.root.dataset.unsent = String(unsent);
  }

  say(text) {
    this.messageLine.textContent = text;
  }
}

for (const root of document.querySelectorAll('[data-module="label-app"]')) {
  try {
    new LabelApp(root).start();
  } catch (error) {
    console.error(error);
    root.prepend(el('p', { className: 'notice', text: `The labeling page could not start: ${error.message}` }));
  }
}

// The melody renderer: a piano roll in SVG and a Web Audio synth to hear it.
// content: {notes: MIDI numbers (null or negative = rest), velocities (0..127),
//           durations (beats), bpm}

import { el, svg } from './dom.js';

const BEAT_WIDTH = 24;
const ROW_HEIGHT = 8;
const NAMES = ['C', 'C♯', 'D', 'D♯', 'E', 'F', 'F♯', 'G', 'G♯', 'A', 'A♯', 'B'];

/** MIDI 60 → "C4". */
export function pitchName(pitch) {
  return `${NAMES[pitch % 12]}${Math.floor(pitch / 12) - 1}`;
}

/** @returns {{pitch: number|null, velocity: number, start: number, beats: number}[]} */
export function parseMelody(content) {
  if (!content || !Array.isArray(content.notes)) throw new TypeError('melody content needs a notes array');
  const durations = Array.isArray(content.durations) ? content.durations : [];
  const velocities = Array.isArray(content.velocities) ? content.velocities : [];
  const starts = Array.isArray(content.starts) ? content.starts : [];
  let start = 0;
  return content.notes.map((note, i) => {
    const beats = Number(durations[i] ?? 1);
    const pitch = typeof note === 'number' && note >= 0 ? Math.round(note) : null;
    const velocity = Math.min(127, Math.max(0, Number(velocities[i] ?? 96) || 0));
    const given = Number(starts[i]); // explicit starts win; else events follow each other
    const event = { pitch, velocity, start: Number.isFinite(given) && given >= 0 ? given : start,
                    beats: Number.isFinite(beats) && beats > 0 ? beats : 1 };
    start = event.start + event.beats;
    return event;
  });
}

export function renderMelody(content, container) {
  const events = parseMelody(content);
  const bpm = Number(content.bpm) > 0 ? Number(content.bpm) : 120;
  const sounding = events.filter((e) => e.pitch !== null);
  const total = Math.max(0, ...events.map((e) => e.start + e.beats)) || 1;
  const perBar = Number(content.beats_per_bar) > 0 ? Number(content.beats_per_bar) : 4;
  const low = sounding.length ? Math.min(...sounding.map((e) => e.pitch)) - 2 : 58;
  const high = sounding.length ? Math.max(...sounding.map((e) => e.pitch)) + 2 : 72;
  const width = total * BEAT_WIDTH;
  const height = (high - low + 1) * ROW_HEIGHT;

  const roll = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'piano-roll', role: 'img',
                            preserveAspectRatio: 'none', 'data-notes': sounding.length });
  roll.append(svg('title')); roll.lastChild.textContent = `${sounding.length} notes, ${total} beats at ${bpm} bpm`;
  for (let pitch = low; pitch <= high; pitch += 1) {
    if ([1, 3, 6, 8, 10].includes(pitch % 12)) {
      roll.append(svg('rect', { x: 0, y: (high - pitch) * ROW_HEIGHT, width, height: ROW_HEIGHT, class: 'black-key' }));
    }
  }
  for (let beat = 0; beat <= total; beat += 1) {
    roll.append(svg('line', { x1: beat * BEAT_WIDTH, x2: beat * BEAT_WIDTH, y1: 0, y2: height,
                              class: beat % perBar === 0 ? 'bar-line' : 'beat-line' }));
  }
  const rests = events.filter((e) => e.pitch === null);
  for (const e of rests) { // a rest: a shaded band over its beats, so silence is visible
    const band = svg('rect', { x: e.start * BEAT_WIDTH, y: 0, width: e.beats * BEAT_WIDTH, height, class: 'rest' });
    band.append(svg('title'));
    band.lastChild.textContent = `rest, ${e.beats} beat${e.beats === 1 ? '' : 's'}`;
    roll.append(band);
  }
  for (const e of sounding) {
    const note = svg('rect', { x: e.start * BEAT_WIDTH + 1, y: (high - e.pitch) * ROW_HEIGHT + 1,
                               width: Math.max(2, e.beats * BEAT_WIDTH - 2), height: ROW_HEIGHT - 2,
                               rx: 2, class: 'note', 'data-pitch': pitchName(e.pitch),
                               'fill-opacity': (0.35 + 0.65 * e.velocity / 127).toFixed(2) });
    note.append(svg('title'));
    note.lastChild.textContent = pitchName(e.pitch);
    roll.append(note);
  }
  const playhead = svg('line', { x1: 0, x2: 0, y1: 0, y2: height, class: 'playhead' });
  roll.append(playhead);

  const button = el('button', { type: 'button', className: 'play', 'data-play': '' });
  const player = new MelodyPlayer(events, bpm, {
    onChange(playing) {
      button.textContent = playing ? '■ Stop' : '▶ Play';
      button.append(' ', el('kbd', { text: 'Space' }));
      button.dataset.playing = String(playing);
    },
    onBeat(beat) {
      const x = beat * BEAT_WIDTH;
      playhead.setAttribute('x1', String(x));
      playhead.setAttribute('x2', String(x));
    },
  });
  button.addEventListener('click', () => { player.toggle(); button.blur(); });
  // Pitch names beside the roll (HTML, so the stretched SVG does not distort them):
  // every C, and the lowest and highest note played.
  const named = new Set();
  for (let pitch = low; pitch <= high; pitch += 1) if (pitch % 12 === 0) named.add(pitch);
  for (const end of sounding.length ? [low + 2, high - 2] : []) { // unless a C sits close by
    if (![...named].some((c) => Math.abs(c - end) <= 2)) named.add(end);
  }
  const axis = el('div', { className: 'pitch-axis', 'aria-hidden': 'true' }, [...named].sort((a, b) => b - a).map((pitch) => {
    const label = el('span', { text: pitchName(pitch) });
    label.style.top = `${((high - pitch + 0.5) / (high - low + 1)) * 100}%`;
    return label;
  }));
  const restText = rests.length ? ` · ${rests.length} rest${rests.length === 1 ? '' : 's'}` : '';
  container.append(el('div', { className: 'melody' }, [el('div', { className: 'roll-wrap' }, [axis, roll]), el('div', { className: 'melody-info' }, [
    button, ` ${sounding.length} notes${restText} · ${total} beats · ${bpm} bpm`
      + (typeof content.key === 'string' ? ` · ${content.key} ${typeof content.scale === 'string' ? content.scale : ''}` : '')])]));
  return { toggle: () => player.toggle(), stop: () => player.stop() };
}

/** Plays events with oscillators; one AudioContext per page, made on first play. */
class MelodyPlayer {
  static context = null;

  constructor(events, bpm, { onChange, onBeat }) {
    this.events = events;
    this.secondsPerBeat = 60 / bpm;
    this.onChange = onChange;
    this.onBeat = onBeat;
    this.voices = [];
    this.frame = 0;
    this.startedAt = 0;
    this.onChange(false);
  }

  get playing() {
    return this.voices.length > 0;
  }

  toggle() {
    if (this.playing) this.stop();
    else this.play();
  }

  play() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) throw new Error('this browser has no Web Audio API');
    MelodyPlayer.context ??= new Context();
    const ctx = MelodyPlayer.context;
    if (ctx.state === 'suspended') ctx.resume();
    const t0 = ctx.currentTime + 0.05;
    const master = ctx.createGain();
    master.gain.value = 0.25;
    master.connect(ctx.destination);
    let end = t0;
    for (const e of this.events) {
      if (e.pitch === null) continue;
      const start = t0 + e.start * this.secondsPerBeat;
      const stop = start + e.beats * this.secondsPerBeat;
      const osc = ctx.createOscillator();
      const env = ctx.createGain();
      osc.type = 'triangle';
      osc.frequency.value = 440 * 2 ** ((e.pitch - 69) / 12);
      const peak = e.velocity / 127;
      env.gain.setValueAtTime(0, start);
      env.gain.linearRampToValueAtTime(peak, start + 0.01); // attack
      env.gain.linearRampToValueAtTime(peak * 0.7, start + 0.08); // decay to sustain
      env.gain.setValueAtTime(peak * 0.7, Math.max(start + 0.08, stop - 0.05));
      env.gain.linearRampToValueAtTime(0, stop); // release
      osc.connect(env).connect(master);
      osc.start(start);
      osc.stop(stop + 0.01);
      this.voices.push(osc);
      end = Math.max(end, stop);
    }
    this.master = master;
    this.startedAt = t0;
    this.endsAt = end;
    if (!this.voices.length) return;
    this.onChange(true);
    const tick = () => {
      const now = ctx.currentTime;
      if (now >= this.endsAt) { this.stop(); return; }
      this.onBeat(Math.max(0, now - this.startedAt) / this.secondsPerBeat);
      this.frame = requestAnimationFrame(tick);
    };
    this.frame = requestAnimationFrame(tick);
  }

  stop() {
    cancelAnimationFrame(this.frame);
    for (const osc of this.voices) {
      try { osc.stop(); } catch (error) { /* already stopped */ }
    }
    this.voices = [];
    if (this.master) this.master.disconnect();
    this.master = null;
    this.onBeat(0);
    this.onChange(false);
  }
}

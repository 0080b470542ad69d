// A small relay client for the browser: the same protocol as the Python
// Component (register, join rooms, reconnect with capped, jittered backoff).

/** Connection states, shown on the page as they are. */
export const ConnState = Object.freeze({
  CONNECTING: 'connecting',
  OPEN: 'open',
  RECONNECTING: 'reconnecting',
  TAKEN_OVER: 'taken-over',
  REFUSED: 'refused',
  CLOSED: 'closed',
});

// Close codes the server uses (swergio_al/protocol.py CloseCode).
const CLOSE_TAKEN_OVER = 4001;
const CLOSE_UNAUTHORIZED = 4003;
const CLOSE_POLICY = 1008;

/** @returns {string} a hex id like Python's uuid4().hex */
export function newId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** @param {string} path @returns {string} the ws:// or wss:// URL of `path` on this host */
export function socketUrl(path) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}

/**
 * A token arrives once in the page URL (?token=...): keep it for this tab and
 * take it out of the address bar, history and screenshots.
 * @param {string} key sessionStorage key @returns {string}
 */
export function takeToken(key) {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(key, fromUrl);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(key) || '';
}

/**
 * Events: 'state' (detail: {state, attempt, delay}), 'ready' (registered and
 * joined; fires after every (re)connect), 'message' (detail: the message).
 */
export class RelayClient extends EventTarget {
  /**
   * @param {{url: string, name: string, role?: string, token?: string,
   *          rooms?: string[], initialDelay?: number, maxDelay?: number}} options
   */
  constructor({ url, name, role = 'component', token = '', rooms = [],
                initialDelay = 0.25, maxDelay = 5 }) {
    super();
    this.url = url;
    this.name = name;
    this.role = role;
    this.token = token;
    this.rooms = rooms;
    this.initialDelay = initialDelay;
    this.maxDelay = maxDelay;
    this.state = ConnState.CLOSED;
    this.attempt = 0;
    this.socket = null;
    this.timer = null;
  }

  get isOpen() {
    return this.state === ConnState.OPEN;
  }

  connect() {
    if (this.socket) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.setState(this.attempt === 0 ? ConnState.CONNECTING : ConnState.RECONNECTING);
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.addEventListener('open', () => this.onOpen());
    socket.addEventListener('message', (event) => this.onFrame(event.data));
    socket.addEventListener('close', (event) => this.onClose(socket, event.code));
  }

  /** Close for good (no reconnect). */
  close() {
    clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    this.setState(ConnState.CLOSED);
    if (socket) socket.close(1000);
  }

  refuse() {
    const socket = this.socket;
    this.socket = null;
    clearTimeout(this.timer);
    this.setState(ConnState.REFUSED);
    if (socket) socket.close(1000);
  }

  /** Join one more room: now when connected, and after every reconnect.
   * @returns {boolean} false when it was joined already */
  join(room) {
    if (this.rooms.includes(room)) return false;
    this.rooms.push(room);
    if (this.isOpen) this.send({ TYPE: 'COMMAND/JOINROOM', TO_ROOM: '_command', ROOM: room });
    return true;
  }

  /** @param {object} message @returns {boolean} false when not connected (nothing sent) */
  send(message) {
    if (!this.isOpen) return false;
    if (!message.ID) message.ID = newId();
    this.socket.send(JSON.stringify(message));
    return true;
  }

  onOpen() {
    const register = { TYPE: 'COMMAND/REGISTER', TO_ROOM: '_command', NAME: this.name, ROLE: this.role };
    if (this.token) register.TOKEN = this.token;
    this.socket.send(JSON.stringify({ ID: newId(), ...register }));
    for (const room of this.rooms) {
      this.socket.send(JSON.stringify({ ID: newId(), TYPE: 'COMMAND/JOINROOM', TO_ROOM: '_command', ROOM: room }));
    }
    // Frames on one socket are handled in order, so anything sent from here on
    // reaches the server after the register and joins.
    this.attempt = 0;
    this.setState(ConnState.OPEN);
    this.dispatchEvent(new CustomEvent('ready'));
  }

  onFrame(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch (error) {
      console.warn('relay: ignoring a frame that is not JSON', error);
      return;
    }
    if (!message || typeof message !== 'object') return;
    if (message.TYPE === 'ERROR' && message.CODE === 'unauthorized') {
      this.refuse(); // a wrong or missing token: retrying cannot help
      return;
    }
    this.dispatchEvent(new CustomEvent('message', { detail: message }));
  }

  onClose(socket, code) {
    if (socket !== this.socket) return; // an old socket we already gave up on
    this.socket = null;
    if (code === CLOSE_TAKEN_OVER) {
      this.setState(ConnState.TAKEN_OVER);
    } else if (code === CLOSE_UNAUTHORIZED || code === CLOSE_POLICY) {
      this.refuse();
    } else {
      this.scheduleReconnect();
    }
  }

  scheduleReconnect() {
    this.attempt += 1;
    const ceiling = Math.min(this.maxDelay, this.initialDelay * 2 ** (this.attempt - 1));
    const delay = ceiling / 2 + Math.random() * ceiling / 2;
    this.setState(ConnState.RECONNECTING, delay);
    this.timer = setTimeout(() => this.connect(), delay * 1000);
  }

  setState(state, delay = 0) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, attempt: this.attempt, delay } }));
  }
}

/**
 * Show a client's state in an element marked data-conn.
 * @param {RelayClient} client @param {HTMLElement|null} element
 */
export function showConnection(client, element) {
  if (!element) return;
  const words = {
    [ConnState.CONNECTING]: 'connecting…',
    [ConnState.OPEN]: 'online',
    [ConnState.RECONNECTING]: 'reconnecting…',
    [ConnState.TAKEN_OVER]: 'opened elsewhere — reload to take over',
    [ConnState.REFUSED]: 'refused: check the link or token',
    [ConnState.CLOSED]: 'offline',
  };
  client.addEventListener('state', (event) => {
    const { state, attempt } = event.detail;
    element.dataset.state = state;
    element.textContent = words[state] + (state === ConnState.RECONNECTING && attempt > 1 ? ` (try ${attempt})` : '');
  });
}

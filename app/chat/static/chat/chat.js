// The room page: one WebSocket per page, speaking the protocol documented in app/README.md.
// User-supplied text only ever reaches the DOM through textContent, so it is shown, never parsed.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("chat-config").textContent);
  const byId = (id) => document.getElementById(id);
  const ui = {
    messages: byId("messages"),
    online: byId("online"),
    onlineCount: byId("online-count"),
    state: byId("connection-state"),
    notice: byId("notice"),
    nickForm: byId("nick-form"),
    nickInput: byId("nick-input"),
    messageForm: byId("message-form"),
    messageInput: byId("message-input"),
    sendButton: byId("send-button"),
  };

  const PING_EVERY_MS = 20000; // an application-level ping finds connections that died silently
  const PONG_TIMEOUT_MS = 10000;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  const NICK_STORAGE_KEY = "djchat.nick";

  const state = {
    nick: null,
    socket: null,
    everJoined: false,
    attempt: 0, // consecutive failed connections, for the backoff
    // Every message up to this id has been received: the `since` a reconnect resumes from.
    caughtUpTo: null,
    paging: false, // fetching a gap through the HTTP API; live messages must not move caughtUpTo
    rendered: new Set(),
    onlineShown: [],
    timers: { retry: null, ping: null, pong: null },
  };

  // --- rendering ---------------------------------------------------------------------------

  function setConnectionState(name, text, title = "") {
    ui.state.dataset.state = name;
    ui.state.textContent = text;
    ui.state.title = title;
  }

  function showNotice(text) {
    ui.notice.textContent = text || "";
    ui.notice.hidden = !text;
  }

  function nearBottom() {
    const list = ui.messages;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function formatTime(ts) {
    return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function renderMessage(message) {
    if (state.rendered.has(message.id)) return;
    state.rendered.add(message.id);

    const item = document.createElement("li");
    item.className = "message";
    item.dataset.id = String(message.id);
    if (message.nick === state.nick) item.classList.add("own");
    const time = document.createElement("time");
    time.dateTime = message.ts;
    time.title = message.ts;
    time.textContent = formatTime(message.ts);
    const nick = document.createElement("span");
    nick.className = message.account ? "nick account" : "nick";
    nick.title = message.account ? "signed in with this account" : "a visitor's chosen nick";
    nick.textContent = message.nick;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text;
    item.append(time, nick, text);

    // Usually the newest; messages relayed by different servers may arrive slightly out of order,
    // and a resumed gap is filled in later, so insert by id.
    const stickToBottom = nearBottom();
    let before = null;
    for (
      let node = ui.messages.lastElementChild;
      node && Number(node.dataset.id) > message.id;
      node = node.previousElementSibling
    ) {
      before = node;
    }
    ui.messages.insertBefore(item, before);
    if (stickToBottom) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function advanceCursor(id) {
    if (state.caughtUpTo === null || id > state.caughtUpTo) state.caughtUpTo = id;
  }

  // The server's order: case-insensitive, then by code point.
  function compareNicks(a, b) {
    const [la, lb] = [a.toLowerCase(), b.toLowerCase()];
    if (la !== lb) return la < lb ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function applyPresenceChange(online, change) {
    const nicks = new Set(online);
    change.joined.forEach((nick) => nicks.add(nick));
    change.left.forEach((nick) => nicks.delete(nick));
    return [...nicks].sort(compareNicks);
  }

  function renderOnline(nicks) {
    state.onlineShown = nicks;
    const items = nicks.map((nick) => {
      const item = document.createElement("li");
      item.textContent = nick;
      if (nick === state.nick) item.className = "me";
      return item;
    });
    ui.online.replaceChildren(...items);
    ui.onlineCount.textContent = `(${nicks.length})`;
  }

  // --- the connection ----------------------------------------------------------------------

  function socketUrl() {
    const params = new URLSearchParams();
    if (!config.username) params.set("nick", state.nick);
    if (state.caughtUpTo !== null) params.set("since", String(state.caughtUpTo));
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = params.toString();
    return `${scheme}//${location.host}${config.wsPath}${query ? `?${query}` : ""}`;
  }

  function connect() {
    clearTimeout(state.timers.retry);
    setConnectionState("connecting", "connecting…");
    const socket = new WebSocket(socketUrl());
    const attempt = { socket, joined: false };
    state.socket = socket;

    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      switch (frame.type) {
        case "history":
          attempt.joined = true;
          onHistory(frame);
          break;
        case "message":
          renderMessage(frame);
          if (!state.paging) advanceCursor(frame.id);
          break;
        case "presence":
          renderOnline(frame.online);
          break;
        case "presence_change":
          renderOnline(applyPresenceChange(state.onlineShown, frame));
          break;
        case "pong":
          clearTimeout(state.timers.pong);
          break;
        case "error":
          showNotice(frame.detail);
          break;
        default:
          break; // frames added to the protocol later are ignored, not fatal
      }
    });
    socket.addEventListener("close", () => onDropped(attempt));
  }

  function onHistory(frame) {
    const resumed = state.everJoined;
    state.everJoined = true;
    state.attempt = 0;
    setConnectionState("online", "connected", `served by ${frame.served_by}`);
    showNotice("");
    if (ui.nickForm) ui.nickForm.hidden = true;
    ui.messageForm.hidden = false;
    ui.sendButton.disabled = false;
    frame.messages.forEach(renderMessage);
    startPinging();

    const last = frame.messages.at(-1);
    if (resumed && frame.messages.length >= config.resumeLimit) {
      fillGap(last.id); // the resume was capped: the rest comes page by page over HTTP
    } else if (last) {
      advanceCursor(last.id);
    }
  }

  async function fillGap(from) {
    state.paging = true;
    let cursor = from;
    try {
      for (;;) {
        const response = await fetch(`${config.apiUrl}?since=${cursor}`, {
          credentials: "same-origin",
        });
        if (!response.ok) return;
        const page = await response.json();
        page.forEach(renderMessage);
        if (page.length) cursor = page.at(-1).id;
        if (page.length < config.resumeLimit) break;
      }
      // Caught up: everything rendered so far is contiguous.
      state.rendered.forEach(advanceCursor);
    } finally {
      state.paging = false;
      advanceCursor(cursor);
    }
  }

  function onDropped(attempt) {
    if (state.socket !== attempt.socket) return; // already handled (e.g. pong timeout)
    state.socket = null;
    stopPinging();
    ui.sendButton.disabled = true;
    if (!attempt.joined && !state.everJoined && !config.username) {
      // Refused at the handshake, or nothing answered. The usual reason is the nick: invalid,
      // or the username of a registered account. Let the person choose again.
      setConnectionState("offline", "offline");
      askForNick(
        `Could not join as “${state.nick}”. It may be a registered username; try another nick.`,
      );
      return;
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    // Exponential backoff with jitter, so a restarted server is not hit by everyone at once.
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.attempt);
    const delay = Math.round(ceiling * (0.5 + Math.random() / 2));
    state.attempt += 1;
    setConnectionState("reconnecting", `reconnecting in ${Math.ceil(delay / 1000)} s…`);
    state.timers.retry = setTimeout(connect, delay);
  }

  function startPinging() {
    stopPinging();
    state.timers.ping = setInterval(() => {
      const socket = state.socket;
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      socket.send(JSON.stringify({ type: "ping" }));
      clearTimeout(state.timers.pong);
      state.timers.pong = setTimeout(() => {
        // No answer: the connection is dead even if the browser has not noticed yet.
        socket.close();
        onDropped({ socket, joined: true });
      }, PONG_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  function stopPinging() {
    clearInterval(state.timers.ping);
    clearTimeout(state.timers.pong);
  }

  // --- forms -------------------------------------------------------------------------------

  // Mirrors the server's rule (1–32 printable characters); the server has the last word.
  function acceptableNick(nick) {
    const length = [...nick].length;
    return length >= 1 && length <= config.nickMaxLength && !/[\p{C}\p{Z}]/u.test(nick.replaceAll(" ", ""));
  }

  function askForNick(message, suggestion = "") {
    ui.messageForm.hidden = true;
    ui.nickForm.hidden = false;
    ui.nickInput.value = suggestion || state.nick || "";
    showNotice(message);
    ui.nickInput.focus();
  }

  function remember(nick) {
    try {
      localStorage.setItem(NICK_STORAGE_KEY, nick);
    } catch {
      // storage disabled: the nick is simply asked again next time
    }
  }

  function recalled() {
    try {
      return localStorage.getItem(NICK_STORAGE_KEY);
    } catch {
      return null;
    }
  }

  function join(nick) {
    state.nick = nick;
    state.everJoined = false;
    remember(nick);
    ui.nickForm.hidden = true;
    showNotice("");
    connect();
  }

  function wireForms() {
    ui.messageInput.maxLength = config.maxLength;
    ui.messageForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = ui.messageInput.value;
      if (!text.trim()) return;
      const socket = state.socket;
      if (!socket || socket.readyState !== WebSocket.OPEN) {
        showNotice("Not connected right now; your message was not sent.");
        return;
      }
      socket.send(JSON.stringify({ type: "message", text }));
      ui.messageInput.value = "";
      ui.messageInput.focus();
    });

    if (!ui.nickForm) return;
    ui.nickForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const nick = ui.nickInput.value.trim();
      if (!acceptableNick(nick)) {
        showNotice(`A nick is 1 to ${config.nickMaxLength} printable characters.`);
        return;
      }
      join(nick);
    });
  }

  function start() {
    if (!config.canChat) return;
    wireForms();
    window.addEventListener("online", () => {
      if (!state.socket && state.everJoined) connect();
    });
    if (config.username) {
      state.nick = config.username;
      connect();
      return;
    }
    const remembered = (recalled() ?? "").trim();
    if (acceptableNick(remembered)) {
      join(remembered); // the nick this visitor chose here before
      return;
    }
    // A link's ?nick= only fills in the form: whoever made the link does not choose the name a
    // visitor speaks under, the visitor confirms it.
    askForNick("", (new URLSearchParams(location.search).get("nick") ?? "").trim());
  }

  start();
})();

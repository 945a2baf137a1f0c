// greenchat's browser client: IRC over the IRCv3 WebSocket of the server that served this page.
// No build step and no libraries: an IRC line parser, the connection (with reconnects),
// the chat state, and the rendering, in that order.
"use strict";

// ---- IRC lines -------------------------------------------------------------------------

const TAG_ESCAPES = { ":": ";", s: " ", "\\": "\\", r: "\r", n: "\n" };

function unescapeTag(value) {
  return value.replace(/\\(.?)/g, (_, c) => (c in TAG_ESCAPES ? TAG_ESCAPES[c] : c));
}

// "@a=b :nick!u@h CMD p1 :trailing" -> {tags, source, nick, command, params}
function parseLine(line) {
  const msg = { tags: {}, source: "", nick: "", command: "", params: [] };
  let rest = line;
  if (rest.startsWith("@")) {
    const space = rest.indexOf(" ");
    for (const tag of rest.slice(1, space).split(";")) {
      const eq = tag.indexOf("=");
      if (eq === -1) msg.tags[tag] = "";
      else msg.tags[tag.slice(0, eq)] = unescapeTag(tag.slice(eq + 1));
    }
    rest = rest.slice(space + 1).trimStart();
  }
  if (rest.startsWith(":")) {
    const space = rest.indexOf(" ");
    msg.source = rest.slice(1, space);
    msg.nick = msg.source.split("!")[0];
    rest = rest.slice(space + 1).trimStart();
  }
  while (rest) {
    if (rest.startsWith(":")) {
      msg.params.push(rest.slice(1));
      break;
    }
    const space = rest.indexOf(" ");
    if (space === -1) {
      msg.params.push(rest);
      break;
    }
    msg.params.push(rest.slice(0, space));
    rest = rest.slice(space + 1).trimStart();
  }
  msg.command = (msg.params.shift() || "").toUpperCase();
  return msg;
}

// The last parameter gets a ':' when it needs one (or always, for text).
function buildLine(command, ...params) {
  const last = params.length - 1;
  return [command, ...params.map((p, i) =>
    i === last && (p === "" || p.includes(" ") || p.startsWith(":")) ? ":" + p : p)].join(" ");
}

// rfc1459 case mapping, as the server's (ISUPPORT CASEMAPPING=rfc1459): ASCII only, so
// "#Über" and "#über" stay two channels, as they are on the server.
const FOLD = { "[": "{", "]": "}", "\\": "|", "~": "^" };
function casefold(name) {
  return name.replace(/[A-Z[\]\\~]/g, (c) => FOLD[c] || c.toLowerCase());
}

const isChannel = (name) => name.startsWith("#");

// The colour greenchat-join gives a nick: crc32 of its folded form, modulo the 12 colours.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function nickColor(nick) {
  let crc = 0xffffffff;
  for (const byte of new TextEncoder().encode(casefold(nick))) {
    crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  }
  return "c" + (((crc ^ 0xffffffff) >>> 0) % 12);
}

// ---- the chat state ------------------------------------------------------------------------

const WANTED_CAPS = ["server-time", "echo-message", "message-tags", "multi-prefix", "batch",
  "away-notify", "extended-join", "chghost", "setname", "labeled-response", "draft/chathistory",
  "draft/event-playback"];
const LOGIN_CAPS = ["sasl", "draft/account-registration"];
const PREFIX_RANK = { "~": 0, "&": 1, "@": 2, "%": 3, "+": 4 };
const HISTORY_LINES = 50;
const MAX_BUFFER_LINES = 1000;

const state = {
  nick: "",
  wantNick: "",
  caps: new Set(),       // enabled
  offered: new Map(),    // cap -> value, from CAP LS
  buffers: new Map(),    // folded name -> {name, topic, members: Map(nick -> prefixes), lines, unread, mentioned}
  current: "",           // folded name of the buffer on screen
  history: [],           // lines the user sent, for Up
  historyAt: 0,
  registered: false,
  password: "",          // kept in memory only, to log in again after a reconnect
  create: false,         // register an account (draft/account-registration) first
  account: "",           // the account logged in to
  accountName: "",       // the account to log in to: the nick picked on the login form
  loggingIn: false,      // CAP END waits for the login (or registration) to end
};

function buffer(name) {
  const key = casefold(name);
  if (!state.buffers.has(key)) {
    state.buffers.set(key, { name, topic: "", members: new Map(), lines: [], unread: false,
      mentioned: false });
    if (!state.current) state.current = key;
    renderChannels();
  }
  return state.buffers.get(key);
}

function savedChannels() {
  return [...state.buffers.values()].filter((b) => isChannel(b.name)).map((b) => b.name);
}

function remember() {
  localStorage.setItem("greenchat.nick", state.wantNick);
  localStorage.setItem("greenchat.channels", JSON.stringify(savedChannels()));
}

// ---- the connection --------------------------------------------------------------------------

let socket = null;
let retryDelay = 1000;
let retryTimer = null;
let quitting = false;

function connect() {
  clearTimeout(retryTimer);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  setStatus("connecting…", false);
  socket = new WebSocket(`${scheme}://${location.host}/`, ["text.ircv3.net"]);
  socket.onopen = () => {
    retryDelay = 1000;
    state.caps.clear();
    state.offered.clear();
    state.registered = false;
    state.account = "";
    state.loggingIn = false;
    send("CAP LS 302");
    send(buildLine("NICK", state.wantNick));
    send(buildLine("USER", "web", "0", "*", "greenchat web client"));
  };
  socket.onmessage = (event) => {
    for (const line of String(event.data).split(/\r?\n/)) if (line) handle(parseLine(line));
  };
  socket.onclose = () => {
    socket = null;
    state.registered = false;
    if (quitting) {
      setStatus("disconnected", true);
      return;
    }
    const wait = retryDelay * (0.8 + Math.random() * 0.4);
    setStatus(`disconnected; reconnecting in ${Math.round(wait / 1000)} s`, true);
    retryTimer = setTimeout(connect, wait);
    retryDelay = Math.min(retryDelay * 2, 30000);
  };
}

function send(line) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(line);
}

// ---- logging in ---------------------------------------------------------------------------

// After CAP ACK: register the account first (when asked and offered), else log in with SASL.
// False when there is nothing to do, and CAP END may go now.
function startLogin() {
  if (!state.password || state.loggingIn) return false;
  if (state.create && state.caps.has("draft/account-registration")) {
    send(buildLine("REGISTER", "*", "*", state.password));
  } else if (state.caps.has("sasl")) {
    send("AUTHENTICATE PLAIN");
  } else {
    note("This server offers no login.", "error");
    return false;
  }
  state.loggingIn = true;
  return true;
}

// RFC 4616: NUL account NUL password, base64 (of its UTF-8).
function plainResponse() {
  const bytes = new TextEncoder().encode(`\0${state.accountName}\0${state.password}`);
  return btoa(String.fromCharCode(...bytes));
}

// The login ended: say why if it failed, and finish registering either way.
function endLogin(error) {
  if (!state.loggingIn) return;
  state.loggingIn = false;
  state.create = false; // made, or refused: from now on, log in
  if (error) note(`Not logged in: ${error}`, "error");
  if (!state.registered) send("CAP END");
}

// ---- what the server says ----------------------------------------------------------------------

function when(msg) {
  return msg.tags.time ? new Date(msg.tags.time) : new Date();
}

function isMe(nick) {
  return casefold(nick) === casefold(state.nick);
}

function mentions(text) {
  if (!state.nick) return false;
  const escaped = state.nick.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^\\w])${escaped}($|[^\\w])`, "i").test(text);
}

const handlers = {
  PING: (m) => send(buildLine("PONG", ...m.params)),
  CAP: (m) => {
    const sub = (m.params[1] || "").toUpperCase();
    if (sub === "LS") {
      const more = m.params[2] === "*";
      for (const item of m.params[m.params.length - 1].split(" ")) {
        if (!item) continue;
        const eq = item.indexOf("=");
        state.offered.set(eq === -1 ? item : item.slice(0, eq), eq === -1 ? "" : item.slice(eq + 1));
      }
      if (!more) {
        const wanted = WANTED_CAPS.filter((c) => state.offered.has(c));
        if (state.password) wanted.push(...LOGIN_CAPS.filter((c) => state.offered.has(c)));
        if (wanted.length) send(buildLine("CAP", "REQ", wanted.join(" ")));
        else send("CAP END");
      }
    } else if (sub === "ACK") {
      for (const cap of m.params[2].split(" ")) {
        if (cap.startsWith("-")) state.caps.delete(cap.slice(1));
        else if (cap) state.caps.add(cap);
      }
      if (!state.registered && !startLogin()) send("CAP END");
    } else if (sub === "NAK" && !state.registered) {
      send("CAP END");
    }
  },
  // Logging in: SASL PLAIN over this WebSocket, or making the account first.
  AUTHENTICATE: (m) => {
    if (m.params[0] === "+") send(buildLine("AUTHENTICATE", plainResponse()));
  },
  REGISTER: (m) => { // REGISTER SUCCESS <account> :text, and a 900: we are logged in
    if (m.params[0] !== "SUCCESS") return;
    note(`Account ${m.params[1]} created.`, "notice");
    endLogin("");
  },
  "900": (m) => { state.account = m.params[2]; },
  "903": () => endLogin(""),
  "904": (m) => endLogin(m.params[1]),
  "905": (m) => endLogin(m.params[1]),
  "906": () => endLogin("login aborted"),
  "907": () => endLogin(""),
  "001": (m) => {
    state.nick = m.params[0];
    state.registered = true;
    setStatus(`connected as ${state.nick}${state.account ? ` (logged in as ${state.account})` : ""}`, false);
    for (const name of savedChannels()) send(buildLine("JOIN", name)); // rejoin after a reconnect too
    remember();
  },
  "433": () => { // nick in use: try with a _ (before registration) or say so
    if (!state.registered) {
      state.wantNick = (state.wantNick + "_").slice(0, 30);
      send(buildLine("NICK", state.wantNick));
    } else {
      note("That nick is taken.", "error");
    }
  },
  "301": (m) => note(`${m.params[1]} is away: ${m.params[2] || ""}`, "notice"),
  "305": (m) => note(m.params[1], "notice"), // no longer away
  "306": (m) => note(m.params[1], "notice"), // now away
  "372": (m) => note(m.params[1].replace(/^- ?/, ""), "notice"), // the message of the day
  "422": () => {}, // no message of the day: nothing to say
  "332": (m) => { buffer(m.params[1]).topic = m.params[2]; renderTopic(); },
  "353": (m) => {
    const b = buffer(m.params[2]);
    if (!b.namesPending) { b.members.clear(); b.namesPending = true; }
    for (const entry of m.params[3].split(" ")) {
      if (!entry) continue;
      const nick = entry.replace(/^[~&@%+]+/, "");
      b.members.set(nick, entry.slice(0, entry.length - nick.length));
    }
  },
  "366": (m) => { buffer(m.params[1]).namesPending = false; renderMembers(); },
  JOIN: (m) => {
    const b = buffer(m.params[0]);
    b.members.set(m.nick, "");
    if (isMe(m.nick)) {
      state.current = casefold(b.name);
      remember();
      renderAll();
      if (state.caps.has("draft/chathistory")) {
        send(buildLine("CHATHISTORY", "LATEST", b.name, "*", String(HISTORY_LINES)));
      }
    }
    add(b, { msg: m, kind: "event", text: `${m.nick} joined ${b.name}` });
    renderMembers();
  },
  PART: (m) => {
    const b = buffer(m.params[0]);
    b.members.delete(m.nick);
    const why = m.params[1] ? ` (${m.params[1]})` : "";
    if (isMe(m.nick)) {
      dropBuffer(b);
    } else {
      add(b, { msg: m, kind: "event", text: `${m.nick} left ${b.name}${why}` });
      renderMembers();
    }
  },
  KICK: (m) => {
    const b = buffer(m.params[0]);
    b.members.delete(m.params[1]);
    add(b, { msg: m, kind: "event", text: `${m.params[1]} was kicked by ${m.nick} (${m.params[2] || ""})` });
    if (isMe(m.params[1])) remember();
    renderMembers();
  },
  QUIT: (m) => {
    for (const b of state.buffers.values()) {
      if (b.members.delete(m.nick)) {
        add(b, { msg: m, kind: "event", text: `${m.nick} quit (${m.params[0] || ""})` });
      }
    }
    renderMembers();
  },
  NICK: (m) => {
    const now = m.params[0];
    if (isMe(m.nick)) { state.nick = now; state.wantNick = now; remember(); setStatus(`connected as ${now}`, false); }
    for (const b of state.buffers.values()) {
      if (b.members.has(m.nick)) {
        b.members.set(now, b.members.get(m.nick));
        b.members.delete(m.nick);
        add(b, { msg: m, kind: "event", text: `${m.nick} is now ${now}` });
      }
    }
    renderMembers();
  },
  TOPIC: (m) => {
    const b = buffer(m.params[0]);
    b.topic = m.params[1] || "";
    add(b, { msg: m, kind: "event", text: `${m.nick} set the topic: ${b.topic}` });
    renderTopic();
  },
  MODE: (m) => {
    if (!isChannel(m.params[0])) return;
    add(buffer(m.params[0]), { msg: m, kind: "event", text: `${m.nick} set mode ${m.params.slice(1).join(" ")}` });
    send(buildLine("NAMES", m.params[0])); // prefixes may have changed
  },
  PRIVMSG: (m) => message(m, "message"),
  NOTICE: (m) => message(m, "notice"),
  ERROR: (m) => note(`Server: ${m.params[0] || "closing"}`, "error"),
  FAIL: (m) => {
    if (m.params[0] === "REGISTER" && state.loggingIn) endLogin(m.params[m.params.length - 1]);
    else note(m.params[m.params.length - 1], "error");
  },
};

function message(m, kind) {
  const [target, text = ""] = m.params;
  if (!m.nick || m.nick.includes(".")) { // from the server
    note(text, "notice");
    return;
  }
  const b = buffer(isChannel(target) ? target : isMe(m.nick) ? target : m.nick);
  let body = text;
  let action = false;
  if (body.startsWith("\x01ACTION ") && body.endsWith("\x01")) {
    body = body.slice(8, -1);
    action = true;
  } else if (body.startsWith("\x01")) {
    return; // other CTCP: not shown
  }
  const mentioned = !isMe(m.nick) && (mentions(body) || !isChannel(target));
  add(b, { msg: m, kind, nick: m.nick, text: body, action, mentioned });
}

function handle(m) {
  const batch = m.tags.batch;
  if (m.command === "BATCH" || (batch && m.command !== "PRIVMSG" && m.command !== "NOTICE")) return;
  const handler = handlers[m.command];
  if (handler) {
    handler(m);
  } else if (/^[45]\d\d$/.test(m.command)) { // errors: shown where the user is looking
    note(m.params.slice(1).join(" "), "error");
  }
}

// ---- adding lines and buffers ----------------------------------------------------------------------

function add(b, entry) {
  entry.time = when(entry.msg);
  const history = Boolean(entry.msg.tags.batch);
  b.lines.push(entry);
  if (history) b.lines.sort((x, y) => x.time - y.time); // a chathistory batch: in time order
  if (b.lines.length > MAX_BUFFER_LINES) b.lines.splice(0, b.lines.length - MAX_BUFFER_LINES);
  const key = casefold(b.name);
  if (key === state.current) {
    if (history) renderMessages(); else appendMessage(entry);
  } else if (entry.kind !== "event" && !history) {
    b.unread = true;
    b.mentioned = b.mentioned || Boolean(entry.mentioned);
    renderChannels();
  }
}

function note(text, kind) {
  const b = state.buffers.get(state.current) || buffer(state.nick || "server");
  add(b, { msg: { tags: {} }, kind, text });
}

function dropBuffer(b) {
  state.buffers.delete(casefold(b.name));
  if (state.current === casefold(b.name)) state.current = [...state.buffers.keys()][0] || "";
  remember();
  renderAll();
}

function show(key) {
  const b = state.buffers.get(key);
  if (!b) return;
  state.current = key;
  b.unread = b.mentioned = false;
  closePanels();
  renderAll();
  document.getElementById("input").focus();
}

// ---- what the user types ----------------------------------------------------------------------

const HELP = "Commands: /join #channel, /part [reason], /msg nick text, /me action, /nick name, " +
  "/topic [text], /away [message], /quit [message]. Tab completes nicks; Up recalls your lines.";

function currentName() {
  const b = state.buffers.get(state.current);
  return b ? b.name : "";
}

function say(target, text) {
  if (!target) { note("Join a channel first: /join #lobby", "error"); return; }
  send(buildLine("PRIVMSG", target, text));
  if (!state.caps.has("echo-message")) { // else the server's echo shows it, once
    const b = buffer(target);
    add(b, { msg: { tags: {} }, kind: "message", nick: state.nick, text: text.replace(/^\x01ACTION (.*)\x01$/, "$1"),
      action: text.startsWith("\x01ACTION ") });
  }
}

function runCommand(line) {
  const [word, ...rest] = line.slice(1).split(" ");
  const args = rest.join(" ").trim();
  const here = currentName();
  switch (word.toLowerCase()) {
    case "join": case "j":
      for (const name of args.split(/[ ,]+/).filter(Boolean)) send(buildLine("JOIN", isChannel(name) ? name : "#" + name));
      break;
    case "part": case "leave":
      if (isChannel(here)) send(buildLine("PART", here, ...(args ? [args] : [])));
      else if (here) dropBuffer(state.buffers.get(state.current));
      break;
    case "msg": case "query": {
      const [to, ...words] = args.split(" ");
      if (!to) { note("Usage: /msg nick text", "error"); break; }
      if (words.length) say(to, words.join(" "));
      show(casefold(buffer(to).name));
      break;
    }
    case "me": say(here, `\x01ACTION ${args}\x01`); break;
    case "nick":
      if (args) { state.wantNick = args; send(buildLine("NICK", args)); }
      break;
    case "topic":
      if (args) send(buildLine("TOPIC", here, args)); else send(buildLine("TOPIC", here));
      break;
    case "away": send(args ? buildLine("AWAY", args) : "AWAY"); break;
    case "quit":
      quitting = true;
      send(buildLine("QUIT", args || "Leaving"));
      break;
    case "help": note(HELP, "notice"); break;
    default: note(`Unknown command /${word}. ${HELP}`, "error");
  }
}

function submit(event) {
  event.preventDefault();
  const input = document.getElementById("input");
  const line = input.value;
  if (!line.trim()) return;
  state.history.push(line);
  state.historyAt = state.history.length;
  input.value = "";
  if (line.startsWith("/") && !line.startsWith("//")) runCommand(line);
  else say(currentName(), line.startsWith("//") ? line.slice(1) : line);
}

function completeNick(input) {
  const upto = input.value.slice(0, input.selectionStart);
  const start = upto.lastIndexOf(" ") + 1;
  const word = upto.slice(start);
  if (!word) return;
  const b = state.buffers.get(state.current);
  const found = b && [...b.members.keys()].sort().find((n) => casefold(n).startsWith(casefold(word)));
  if (!found) return;
  const suffix = start === 0 ? ": " : " ";
  input.value = upto.slice(0, start) + found + suffix + input.value.slice(input.selectionStart);
  const at = start + found.length + suffix.length;
  input.setSelectionRange(at, at);
}

function keydown(event) {
  const input = event.target;
  if (event.key === "Tab" && input.value) {
    event.preventDefault();
    completeNick(input);
  } else if (event.key === "ArrowUp" && state.historyAt > 0) {
    event.preventDefault();
    input.value = state.history[--state.historyAt];
  } else if (event.key === "ArrowDown" && state.historyAt < state.history.length) {
    event.preventDefault();
    input.value = state.history[++state.historyAt] || "";
  }
}

// ---- rendering ------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

function setStatus(text, down) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("down", down);
}

function renderAll() {
  renderChannels();
  renderTopic();
  renderMembers();
  renderMessages();
}

function renderChannels() {
  const list = $("channel-list");
  list.replaceChildren(...[...state.buffers.entries()].map(([key, b]) => {
    const button = el("button", { type: "button", textContent: b.name });
    button.classList.toggle("unread", b.unread);
    button.classList.toggle("mentioned", b.mentioned);
    button.setAttribute("aria-current", String(key === state.current));
    button.dataset.buffer = b.name;
    button.addEventListener("click", () => show(key));
    return el("li", {}, button);
  }));
}

function renderTopic() {
  const b = state.buffers.get(state.current);
  $("title").textContent = b ? b.name : "greenchat";
  $("topic").textContent = b ? b.topic : "";
  document.title = b ? `${b.name} · greenchat` : "greenchat";
}

function rank(prefixes) {
  return prefixes ? PREFIX_RANK[prefixes[0]] ?? 5 : 5;
}

function renderMembers() {
  const b = state.buffers.get(state.current);
  const members = b ? [...b.members.entries()] : [];
  members.sort(([n1, p1], [n2, p2]) => rank(p1) - rank(p2) || casefold(n1).localeCompare(casefold(n2)));
  $("member-count").textContent = `Members (${members.length})`;
  $("member-list").replaceChildren(...members.map(([nick, prefixes]) =>
    el("li", { className: nickColor(nick), textContent: (prefixes ? prefixes[0] : "") + nick })));
}

function renderMessage(entry) {
  const time = el("time", {
    dateTime: entry.time.toISOString(),
    textContent: entry.time.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
  });
  const item = el("li", { className: entry.kind }, time);
  if (entry.nick) {
    const shown = entry.action ? `* ${entry.nick}` : entry.kind === "notice" ? `-${entry.nick}-` : `<${entry.nick}>`;
    item.append(el("span", { className: `nick ${nickColor(entry.nick)}`, textContent: shown }));
  }
  item.append(el("span", { className: "text", textContent: entry.text }));
  if (entry.mentioned) item.classList.add("mention");
  return item;
}

function renderMessages() {
  const b = state.buffers.get(state.current);
  $("messages").replaceChildren(...(b ? b.lines.map(renderMessage) : []));
  scrollDown(true);
}

function appendMessage(entry) {
  const pane = document.querySelector(".messages-pane");
  const atBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40;
  $("messages").append(renderMessage(entry));
  scrollDown(atBottom);
}

function scrollDown(really) {
  const pane = document.querySelector(".messages-pane");
  if (really) pane.scrollTop = pane.scrollHeight;
}

function closePanels() {
  for (const id of ["channels", "members"]) {
    $(id).classList.remove("open");
    $(`toggle-${id}`).setAttribute("aria-expanded", "false");
  }
}

function togglePanel(id) {
  const open = !$(id).classList.contains("open");
  closePanels();
  $(id).classList.toggle("open", open);
  $(`toggle-${id}`).setAttribute("aria-expanded", String(open));
}

// ---- start --------------------------------------------------------------------------------

function start(event) {
  event.preventDefault();
  const nick = $("nick").value.trim();
  if (!$("nick").checkValidity() || !nick) {
    $("login-error").textContent = "A nick is letters, digits and [ ] \\ ` _ ^ { | } -, not starting with a digit.";
    return;
  }
  state.wantNick = state.accountName = nick;
  state.password = $("password").value; // never stored: only this page's memory has it
  state.create = Boolean(state.password) && $("create").checked;
  $("password").value = "";
  localStorage.setItem("greenchat.nick", nick);
  const channel = $("channel").value.trim() || "#lobby";
  buffer(isChannel(channel) ? channel : "#" + channel);
  $("login").hidden = true;
  $("chat").hidden = false;
  $("input").focus();
  connect();
}

document.addEventListener("DOMContentLoaded", () => {
  $("nick").value = localStorage.getItem("greenchat.nick") || "";
  try {
    for (const name of JSON.parse(localStorage.getItem("greenchat.channels") || "[]")) buffer(name);
  } catch (_) { /* a bad saved list: start from #lobby */ }
  $("login").addEventListener("submit", start);
  $("composer").addEventListener("submit", submit);
  $("input").addEventListener("keydown", keydown);
  $("toggle-channels").addEventListener("click", () => togglePanel("channels"));
  $("toggle-members").addEventListener("click", () => togglePanel("members"));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closePanels();
  });
});

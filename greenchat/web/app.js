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

// ---- lines in time: history, read markers (pure: no DOM, no state) ---------------------------
// A line (an "entry") has at least {msg, kind, time: Date}; from the server also serverTime
// (its time tag), msgid, and nick; mine is true for our own.

// What identifies a line, to hold it once: its msgid (a stored join, part, quit... has the
// msgid its live line had, as a message does).
function lineKeys(entry) {
  return entry.msgid ? [`id:${entry.msgid}`] : [];
}

// Whether a line from history is one of those held (seen: their lineKeys).
function isHeld(seen, entry) {
  return lineKeys(entry).some((key) => seen.has(key));
}

// Both lists in time order, as one; of two lines at the same time, the incoming one first
// (history is older than what it is merged into).
function mergeLines(lines, incoming) {
  const out = [];
  let i = 0;
  let j = 0;
  while (i < lines.length && j < incoming.length) {
    out.push(incoming[j].time <= lines[i].time ? incoming[j++] : lines[i++]);
  }
  return out.concat(lines.slice(i), incoming.slice(j));
}

// CHATHISTORY BEFORE's reference: the oldest line shown that the server surely stored (a
// message with a msgid, not deleted), or the oldest line history returned (the cursor),
// whichever is older, as msgid=...; as timestamp=... when it has no msgid or byTime is
// set; else the oldest server time shown; null when there is none (ask for the LATEST).
function historyReference(lines, cursor, byTime = false) {
  let best = lines.find((entry) => entry.msgid && entry.kind !== "event" && !entry.redacted) || null;
  if (cursor && (!best || cursor.time <= best.time)) best = cursor;
  if (best && best.msgid && !byTime) return `msgid=${best.msgid}`;
  if (best && best.serverTime) return `timestamp=${best.serverTime}`;
  const timed = lines.find((entry) => entry.serverTime);
  return timed ? `timestamp=${timed.serverTime}` : null;
}

// MARKREAD's last parameter: "timestamp=..." as a Date, "*" as null; undefined if neither.
function parseMarker(value) {
  if (value === "*") return null;
  const found = /^timestamp=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)$/.exec(value);
  if (!found) return undefined;
  const time = new Date(found[1]);
  return Number.isNaN(time.getTime()) ? undefined : time;
}

// A line someone else said, which can be unread.
function countable(entry) {
  return (entry.kind === "message" || entry.kind === "notice") && Boolean(entry.nick) &&
    !entry.mine && !entry.redacted;
}

// Where the "new messages" rule goes: the index of the line it is drawn above (the one
// after the last line at or before the marker), or -1 when no unread line follows it.
function ruleIndex(lines, marker) {
  let at = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i].time <= marker) { at = i + 1; break; }
  }
  return lines.slice(at).some(countable) ? at : -1;
}

// {count, mentioned} of the countable lines newer than the marker.
function unreadCounts(lines, marker) {
  let count = 0;
  let mentioned = false;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i].time <= marker) {
      if (lines[i].serverTime) break; // in server order from here on; a note of ours may not be
      continue;
    }
    if (!countable(lines[i])) continue;
    count += 1;
    mentioned = mentioned || Boolean(lines[i].mentioned);
  }
  return { count, mentioned };
}

// ---- the chat state ------------------------------------------------------------------------

const WANTED_CAPS = ["server-time", "echo-message", "message-tags", "multi-prefix", "batch",
  "away-notify", "extended-join", "chghost", "setname", "labeled-response", "draft/chathistory",
  "draft/event-playback", "draft/read-marker", "draft/message-redaction"];
const LOGIN_CAPS = ["sasl", "draft/account-registration"];
const PREFIX_RANK = { "~": 0, "&": 1, "@": 2, "%": 3, "+": 4 };
const HISTORY_LINES = 50;
const MAX_BUFFER_LINES = 1000;  // live lines beyond this drop the oldest (scrolling back may pass it)
const HISTORY_TIMEOUT = 15000;  // ms: a CHATHISTORY still unanswered is given up (scroll up to retry)
const MARKREAD_DELAY = 1500;    // ms: at most one MARKREAD per buffer this often
const HISTORY_RETRY = 5000;     // ms after a FAIL CHATHISTORY before asking again
const TOP_ZONE = 40;            // px from the top of the list: scrolled "to the top"

const state = {
  nick: "",
  wantNick: "",
  caps: new Set(),       // enabled
  offered: new Map(),    // cap -> value, from CAP LS
  buffers: new Map(),    // folded name -> a buffer (newBuffer)
  current: "",           // folded name of the buffer on screen
  history: [],           // lines the user sent, for Up
  historyAt: 0,
  registered: false,
  password: "",          // kept in memory only, to log in again after a reconnect
  create: false,         // register an account (draft/account-registration) first
  account: "",           // the account logged in to
  accountName: "",       // the account to log in to: the nick picked on the login form
  loggingIn: false,      // CAP END waits for the login (or registration) to end
  batches: new Map(),    // open BATCH reference -> {type, target, lines}
  redacted: new Set(),   // msgids redacted before their line was seen (history may bring it)
};

function newBuffer(name) {
  return {
    name, topic: "", members: new Map(), lines: [],
    unread: 0, mentioned: false, // live lines since last shown, when there is no read marker
    joined: false,       // a channel we are in (history may be asked for)
    seen: new Set(),     // lineKeys of every line held: history is deduplicated against it
    loading: "",         // the CHATHISTORY in flight: "latest", "before" (scrolled up), "fill"
    loadTimer: null,
    asked: "",           // the reference of that CHATHISTORY BEFORE
    byTime: false,       // the msgid given found nothing: the next one by its time instead
    failedAt: 0,         // when the last FAIL CHATHISTORY for it came (ms)
    historyEnd: false,   // an empty batch came back: nothing older
    cursor: null,        // the oldest line history has returned: {msgid, serverTime, time}
    marker: undefined,   // draft/read-marker: a Date, null for none ("*"), undefined: not told
    markerFresh: false,  // the next MARKREAD is the first since joining: it places the rule
    rule: null,          // where the "new messages" rule is drawn (a Date, or none)
    wanted: 0,           // ms: the newest line seen, to send in the next MARKREAD
    sent: 0,             // ms: the last MARKREAD sent
    markTimer: null,
    op: false,           // we may delete others' lines here (channel operator)
  };
}

// A channel, or a conversation with someone (not the server, not ourselves).
function conversational(name) {
  return isChannel(name) || (name !== "server" && !name.includes(".") && !isMe(name));
}

function buffer(name) {
  const key = casefold(name);
  if (!state.buffers.has(key)) {
    const b = newBuffer(name);
    state.buffers.set(key, b);
    if (!state.current) state.current = key;
    if (!isChannel(name)) askMarker(b);
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
    state.batches.clear();
    state.registered = false;
    for (const b of state.buffers.values()) {
      b.joined = false;
      stopLoading(b);
      b.sent = 0;
    }
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
      $("history-edge").hidden = !hasHistory();
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
    for (const b of state.buffers.values()) if (!isChannel(b.name)) askMarker(b);
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
  "366": (m) => {
    const b = buffer(m.params[1]);
    b.namesPending = false;
    renderMembers();
    const op = amOp(b);
    if (op !== b.op) { // the delete buttons on others' lines come or go
      b.op = op;
      if (casefold(b.name) === state.current) keepView(drawLines);
    }
  },
  JOIN: (m) => {
    const b = buffer(m.params[0]);
    b.members.set(m.nick, "");
    if (isMe(m.nick)) {
      b.joined = true;
      b.markerFresh = true;
      setCurrent(casefold(b.name));
      requestHistory(b, "latest");
      remember();
      renderAll();
    }
    add(b, { msg: m, kind: "event", text: eventText(m) });
    renderMembers();
  },
  PART: (m) => {
    const b = buffer(m.params[0]);
    b.members.delete(m.nick);
    if (isMe(m.nick)) {
      dropBuffer(b);
    } else {
      add(b, { msg: m, kind: "event", text: eventText(m) });
      renderMembers();
    }
  },
  KICK: (m) => {
    const b = buffer(m.params[0]);
    b.members.delete(m.params[1]);
    add(b, { msg: m, kind: "event", text: eventText(m) });
    if (isMe(m.params[1])) { b.joined = false; remember(); }
    renderMembers();
  },
  QUIT: (m) => {
    for (const b of state.buffers.values()) {
      if (b.members.delete(m.nick)) add(b, { msg: m, kind: "event", text: eventText(m) });
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
        add(b, { msg: m, kind: "event", text: eventText(m) });
      }
    }
    renderMembers();
  },
  TOPIC: (m) => {
    const b = buffer(m.params[0]);
    b.topic = m.params[1] || "";
    add(b, { msg: m, kind: "event", text: eventText(m) });
    renderTopic();
  },
  MODE: (m) => {
    if (!isChannel(m.params[0])) return;
    add(buffer(m.params[0]), { msg: m, kind: "event", text: eventText(m) });
    send(buildLine("NAMES", m.params[0])); // prefixes may have changed
  },
  PRIVMSG: (m) => message(m, "message"),
  NOTICE: (m) => message(m, "notice"),
  BATCH: (m) => {
    const [ref = "", type = "", target = ""] = m.params;
    if (ref.startsWith("+")) {
      state.batches.set(ref.slice(1), { type: type.toLowerCase(), target, lines: [] });
    } else if (ref.startsWith("-")) {
      const batch = state.batches.get(ref.slice(1));
      state.batches.delete(ref.slice(1));
      if (batch && batch.type === "chathistory") historyBatch(batch);
    }
  },
  MARKREAD: (m) => { // draft/read-marker: where this account has read up to, on any device
    const [target, value = ""] = m.params;
    const b = state.buffers.get(casefold(target || ""));
    const marker = parseMarker(value);
    if (!b || marker === undefined) return;
    b.marker = marker;
    if (marker) b.sent = Math.max(b.sent, marker.getTime());
    // The rule moves with the marker, except in the buffer being read: there it stays
    // where the new lines began until the reader leaves.
    if (b.markerFresh || !viewing(b)) b.rule = readUpTo(b);
    b.markerFresh = false;
    if (casefold(b.name) === state.current) keepView(placeRule);
    renderChannels();
  },
  REDACT: (m) => redact(m.params[1], m.params[2] || "", m.nick),
  ERROR: (m) => note(`Server: ${m.params[0] || "closing"}`, "error"),
  FAIL: (m) => {
    const [command, , context = ""] = m.params; // FAIL <command> <code> [<context>...] :text
    const text = m.params[m.params.length - 1];
    if (command === "REGISTER" && state.loggingIn) {
      endLogin(text);
    } else if (command === "MARKREAD") {
      // Not a thing to bother the reader with: the marker just stays where it was.
    } else if (command === "CHATHISTORY") { // FAIL CHATHISTORY <code> <subcommand> [<target>] :text
      const b = m.params.slice(2, -1).map((p) => state.buffers.get(casefold(p))).find(Boolean);
      if (b) { stopLoading(b); b.failedAt = Date.now(); renderHistoryEdge(); }
      note(`History: ${text}`, "error", b);
    } else if (command === "REDACT") {
      const msgid = m.params.length > 4 ? m.params[3] : "";
      const found = msgid && findLine(msgid);
      if (found) { found.entry.pendingRedact = false; redrawLine(found.entry); }
      note(`Could not delete the message: ${text}`, "error", found ? found.b : state.buffers.get(casefold(context)));
    } else {
      note(text, "error");
    }
  },
};

// What a join, part, kick, quit, nick change, topic or mode change says (live or played back).
function eventText(m) {
  const [first = "", second = "", third = ""] = m.params;
  switch (m.command) {
    case "JOIN": return `${m.nick} joined ${first}`;
    case "PART": return `${m.nick} left ${first}${second ? ` (${second})` : ""}`;
    case "KICK": return `${second} was kicked by ${m.nick} (${third})`;
    case "QUIT": return `${m.nick} quit (${first})`;
    case "NICK": return `${m.nick} is now ${first}`;
    case "TOPIC": return `${m.nick} set the topic: ${second}`;
    case "MODE": return isChannel(first) ? `${m.nick} set mode ${m.params.slice(1).join(" ")}` : "";
    default: return "";
  }
}

// A PRIVMSG or NOTICE as a line (null for CTCP other than ACTION, and for the server's).
function messageEntry(m, kind) {
  const [target, text = ""] = m.params;
  if (!m.nick || m.nick.includes(".")) return null;
  let body = text;
  let action = false;
  if (body.startsWith("\x01ACTION ") && body.endsWith("\x01")) {
    body = body.slice(8, -1);
    action = true;
  } else if (body.startsWith("\x01")) {
    return null; // other CTCP: not shown
  }
  const mentioned = !isMe(m.nick) && (mentions(body) || !isChannel(target));
  return { msg: m, kind, nick: m.nick, text: body, action, mentioned };
}

function message(m, kind) {
  const [target, text = ""] = m.params;
  if (!m.nick || m.nick.includes(".")) { // from the server
    note(text, "notice");
    return;
  }
  const entry = messageEntry(m, kind);
  if (!entry) return;
  const b = buffer(isChannel(target) ? target : isMe(m.nick) ? target : m.nick);
  add(b, entry);
  if (entry.mine && casefold(b.name) === state.current) { // our own line: read up to here
    b.rule = null;
    keepView(placeRule);
    scrollDown(true);
    wantMarkRead(b);
  }
}

function handle(m) {
  const batch = m.tags.batch && state.batches.get(m.tags.batch);
  if (batch && batch.type === "chathistory") { // kept for the end of the batch
    batch.lines.push(m);
    return;
  }
  if (m.tags.batch && !batch && m.command !== "PRIVMSG" && m.command !== "NOTICE") return;
  const handler = handlers[m.command];
  if (handler) {
    handler(m);
  } else if (/^[45]\d\d$/.test(m.command)) { // errors: shown where the user is looking
    note(m.params.slice(1).join(" "), "error");
  }
}

// ---- adding lines and buffers ----------------------------------------------------------------------

// The times, msgid and owner of a line, from its message.
function finish(entry) {
  const tags = entry.msg.tags;
  entry.time = when(entry.msg);
  entry.serverTime = tags.time || "";
  entry.msgid = tags.msgid || "";
  entry.mine = Boolean(entry.nick) && isMe(entry.nick);
  entry.redacted = entry.msgid && state.redacted.has(entry.msgid) ? { reason: "" } : null;
  return entry;
}

// A live line: at the end of its buffer.
function add(b, entry) {
  finish(entry);
  for (const key of lineKeys(entry)) b.seen.add(key);
  b.lines.push(entry);
  const current = casefold(b.name) === state.current;
  if (current) appendMessage(b, entry);
  if (b.lines.length > MAX_BUFFER_LINES && (!current || atBottom())) {
    trim(b, b.lines.length - MAX_BUFFER_LINES);
  }
  if (current) {
    keepView(placeRule);
    if (entry.serverTime && viewing(b) && atBottom()) wantMarkRead(b);
  } else if (countable(entry)) {
    b.unread += 1;
    b.mentioned = b.mentioned || Boolean(entry.mentioned);
    renderChannels();
  }
}

// Drop the oldest lines of a buffer (history can bring them back).
function trim(b, count) {
  for (const entry of b.lines.splice(0, count)) {
    for (const key of lineKeys(entry)) b.seen.delete(key);
    if (entry.node) entry.node.remove();
  }
  b.historyEnd = false;
  b.cursor = null;
  if (casefold(b.name) === state.current) renderHistoryEdge();
}

// A line of ours (no server time, no msgid) in buffer b, or where the user is looking.
function note(text, kind, b) {
  const where = b || state.buffers.get(state.current) || buffer(state.nick || "server");
  add(where, { msg: { tags: {} }, kind, text });
}

function dropBuffer(b) {
  flushMarkRead(b);
  state.buffers.delete(casefold(b.name));
  if (state.current === casefold(b.name)) setCurrent([...state.buffers.keys()][0] || "");
  remember();
  renderAll();
}

// Another buffer on screen. The one left was read as far as it was seen (said now, not
// in a moment); the one shown draws its rule where its reader left off.
function setCurrent(key) {
  const before = state.buffers.get(state.current);
  if (state.current === key) return;
  if (before) {
    flushMarkRead(before);
    before.rule = readUpTo(before);
  }
  state.current = key;
  const b = state.buffers.get(key);
  if (b) b.rule = readUpTo(b);
}

// The read marker, or what we told the server and it has not answered yet.
function readUpTo(b) {
  return b.sent ? new Date(b.sent) : b.marker || null;
}

function show(key) {
  const b = state.buffers.get(key);
  if (!b) return;
  setCurrent(key);
  b.unread = 0;
  b.mentioned = false;
  closePanels();
  renderAll();
  document.getElementById("input").focus();
}

// ---- history: CHATHISTORY on join and when scrolled to the top ------------------------------

function hasHistory() {
  return state.caps.has("draft/chathistory") && state.caps.has("batch");
}

// Ask for a buffer's latest lines, or ("before", "fill") those older than the oldest shown.
function requestHistory(b, why) {
  if (!hasHistory() || !state.registered || b.loading || !conversational(b.name)) return;
  if (isChannel(b.name) && !b.joined) return;
  if (why !== "latest" && (b.historyEnd || Date.now() - b.failedAt < HISTORY_RETRY)) return;
  const ref = why === "latest" ? null : historyReference(b.lines, b.cursor, b.byTime);
  b.loading = why;
  b.asked = ref || "";
  b.loadTimer = setTimeout(() => { stopLoading(b); renderHistoryEdge(); }, HISTORY_TIMEOUT);
  if (ref) send(buildLine("CHATHISTORY", "BEFORE", b.name, ref, String(HISTORY_LINES)));
  else send(buildLine("CHATHISTORY", "LATEST", b.name, "*", String(HISTORY_LINES)));
  if (casefold(b.name) === state.current) renderHistoryEdge();
}

function stopLoading(b) {
  clearTimeout(b.loadTimer);
  b.loading = "";
}

// The lines of a chathistory batch, merged into their buffer: older ones above, none twice.
function historyBatch(batch) {
  const b = batch.target && state.buffers.get(casefold(batch.target));
  if (!b) return; // not asked for (or the buffer was closed meanwhile)
  const why = b.loading;
  stopLoading(b);
  const entries = [];
  const redactions = [];
  for (const m of batch.lines) {
    let entry = null;
    if (m.command === "PRIVMSG" || m.command === "NOTICE") {
      entry = messageEntry(m, m.command === "PRIVMSG" ? "message" : "notice");
    } else if (m.command === "REDACT") {
      redactions.push(m);
    } else {
      const text = eventText(m);
      if (text) entry = { msg: m, kind: "event", text };
    }
    if (entry) entries.push(finish(entry));
  }
  // The oldest line returned (shown or not: a CTCP, say), where the next BEFORE starts.
  const first = batch.lines.find((m) => m.command !== "REDACT" && (m.tags.msgid || m.tags.time));
  if (first && (!b.cursor || when(first) <= b.cursor.time)) {
    b.cursor = { msgid: first.tags.msgid || "", serverTime: first.tags.time || "", time: when(first) };
  }
  // Nothing older: the beginning. Unless the msgid asked about is unknown to the server
  // (deleted since, say): then once more by its time.
  let again = false;
  if (!batch.lines.length && why) {
    again = why !== "latest" && b.asked.startsWith("msgid=") && !b.byTime;
    if (again) b.byTime = true;
    else b.historyEnd = true;
  } else {
    b.byTime = false;
  }
  const fresh = entries.filter((entry) => {
    if (isHeld(b.seen, entry)) return false;
    for (const key of lineKeys(entry)) b.seen.add(key);
    return true;
  });
  b.lines = mergeLines(b.lines, fresh);
  for (const m of redactions) redact(m.params[1], m.params[2] || "", m.nick);
  if (casefold(b.name) === state.current) {
    // Scrolled up for these: the line at the top stays put. Else at the bottom if there.
    keepView(drawLines, why === "before");
    if (fresh.length && viewing(b)) wantMarkRead(b);
  }
  if (again) requestHistory(b, why);
  else fillView(b, why);
  renderChannels();
}

// Keep asking while the list does not fill the pane, or the user is still at its top.
function fillView(b, why) {
  if (b.historyEnd || casefold(b.name) !== state.current) return;
  const pane = document.querySelector(".messages-pane");
  if (pane.scrollHeight <= pane.clientHeight + 1) requestHistory(b, "fill");
  else if (why === "before" && pane.scrollTop < TOP_ZONE) requestHistory(b, "before");
}

function scrolled() {
  const b = state.buffers.get(state.current);
  if (!b) return;
  const pane = document.querySelector(".messages-pane");
  if (pane.scrollTop < TOP_ZONE && pane.scrollHeight > pane.clientHeight + 1) requestHistory(b, "before");
  if (viewing(b)) wantMarkRead(b);
}

// ---- read markers (draft/read-marker) ---------------------------------------------------------

function pageActive() {
  return document.visibilityState === "visible" && document.hasFocus();
}

// The user is reading buffer b now.
function viewing(b) {
  return casefold(b.name) === state.current && pageActive();
}

// MARKREAD <nick>: where a private conversation was read to (channels are told on JOIN).
function askMarker(b) {
  if (state.caps.has("draft/read-marker") && state.registered && conversational(b.name)) {
    send(buildLine("MARKREAD", b.name));
  }
}

// Note the newest line on screen; a MARKREAD for it goes within MARKREAD_DELAY, once.
function wantMarkRead(b) {
  if (!state.caps.has("draft/read-marker") || !conversational(b.name)) return;
  const last = b.lines.findLast((entry) => entry.serverTime);
  if (!last || last.time.getTime() <= Math.max(b.wanted, b.sent)) return; // read to the end
  const newest = newestVisible(b);
  if (!newest) return;
  b.wanted = Math.max(b.wanted, newest.time.getTime());
  if (!b.markTimer) b.markTimer = setTimeout(() => sendMarkRead(b), MARKREAD_DELAY);
}

function flushMarkRead(b) {
  if (b.markTimer) { clearTimeout(b.markTimer); sendMarkRead(b); }
}

function sendMarkRead(b) {
  b.markTimer = null;
  if (b.wanted <= b.sent || !state.registered) return; // only forwards
  b.sent = b.wanted;
  send(buildLine("MARKREAD", b.name, `timestamp=${new Date(b.wanted).toISOString()}`));
}

// The newest line with a server time that is at least partly on screen.
function newestVisible(b) {
  const pane = document.querySelector(".messages-pane");
  const bottom = pane.getBoundingClientRect().bottom;
  for (let i = b.lines.length - 1; i >= 0; i--) {
    const entry = b.lines[i];
    if (!entry.serverTime || !entry.node || !entry.node.isConnected) continue;
    if (entry.node.getBoundingClientRect().top < bottom) return entry;
  }
  return null;
}

// The page came back into view: what is on screen now is read.
function pageBack() {
  const b = state.buffers.get(state.current);
  if (b && pageActive()) wantMarkRead(b);
}

// The page went out of view: the rule follows the marker again, so that what comes
// meanwhile is below it.
function pageLeft() {
  const b = state.buffers.get(state.current);
  if (!b) return;
  flushMarkRead(b);
  b.rule = readUpTo(b);
  keepView(placeRule);
}

// ---- redaction (draft/message-redaction) -----------------------------------------------------

function findLine(msgid) {
  for (const b of state.buffers.values()) {
    const entry = b.lines.find((e) => e.msgid === msgid);
    if (entry) return { b, entry };
  }
  return null;
}

// REDACT <target> <msgid> [:reason]: the line is shown as deleted.
function redact(msgid, reason, by) {
  if (!msgid) return;
  const found = findLine(msgid);
  if (!found) {
    state.redacted.add(msgid);
    if (state.redacted.size > 1000) state.redacted.delete(state.redacted.values().next().value);
    return;
  }
  const { b, entry } = found;
  const other = by && !isMe(by) && casefold(by) !== casefold(entry.nick || "");
  entry.redacted = { reason, by: other ? by : "" }; // "by bob" when not its sender, nor us
  entry.pendingRedact = false;
  redrawLine(entry);
  renderChannels();
  if (casefold(b.name) === state.current) keepView(placeRule);
}

function amOp(b) {
  if (!isChannel(b.name)) return false;
  for (const [nick, prefixes] of b.members) {
    if (isMe(nick)) return /[~&@]/.test(prefixes);
  }
  return false;
}

function canDelete(b, entry) {
  return state.caps.has("draft/message-redaction") && Boolean(entry.msgid) && !entry.redacted &&
    entry.kind !== "event" && Boolean(entry.nick) && (entry.mine || amOp(b));
}

function deleteLine(b, entry) {
  send(buildLine("REDACT", b.name, entry.msgid));
  if (state.caps.has("echo-message")) { // the server's REDACT back marks it deleted
    entry.pendingRedact = true;
    redrawLine(entry);
  } else {
    redact(entry.msgid, "", state.nick);
  }
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

// Unread lines: those newer than the read marker, or (with no marker) those that came
// while the buffer was not on screen. None for the buffer on screen.
function unreadOf(key, b) {
  if (key === state.current) return { count: 0, mentioned: false };
  const upTo = readUpTo(b);
  if (upTo) return unreadCounts(b.lines, upTo);
  return { count: b.unread, mentioned: b.mentioned };
}

function renderChannels() {
  const list = $("channel-list");
  list.replaceChildren(...[...state.buffers.entries()].map(([key, b]) => {
    const button = el("button", { type: "button", textContent: b.name });
    const { count, mentioned } = unreadOf(key, b);
    button.classList.toggle("unread", count > 0);
    button.classList.toggle("mentioned", count > 0 && mentioned);
    if (count > 0) {
      button.append(el("span", { className: "count", textContent: count > 99 ? "99+" : String(count) },
        el("span", { className: "visually-hidden", textContent: " unread" })));
    }
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

function renderMessage(b, entry) {
  const time = el("time", {
    dateTime: entry.time.toISOString(),
    textContent: entry.time.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
  });
  const item = el("li", { className: entry.kind }, time);
  if (entry.msgid) item.dataset.msgid = entry.msgid;
  if (entry.nick) {
    const shown = entry.action ? `* ${entry.nick}` : entry.kind === "notice" ? `-${entry.nick}-` : `<${entry.nick}>`;
    item.append(el("span", { className: `nick ${nickColor(entry.nick)}`, textContent: shown }));
  }
  if (entry.redacted) {
    const { reason, by } = entry.redacted;
    const why = [by && `by ${by}`, reason].filter(Boolean).join(": ");
    item.classList.add("redacted");
    item.append(el("span", { className: "text", textContent: `message deleted${why ? ` (${why})` : ""}` }));
  } else {
    item.append(el("span", { className: "text", textContent: entry.text }));
    if (entry.mentioned) item.classList.add("mention");
    if (entry.pendingRedact) item.classList.add("deleting");
    else if (canDelete(b, entry)) item.append(deleteButton(b, entry));
  }
  entry.node = item;
  return item;
}

// A small button on the line, shown on hover or focus; a second click within a few
// seconds deletes the line for everyone.
function deleteButton(b, entry) {
  const button = el("button", { type: "button", className: "delete", textContent: "delete",
    title: "Delete this message for everyone" });
  let timer = null;
  button.addEventListener("click", () => {
    if (!button.classList.contains("armed")) {
      button.classList.add("armed");
      button.textContent = "delete?";
      timer = setTimeout(() => { button.classList.remove("armed"); button.textContent = "delete"; }, 4000);
      return;
    }
    clearTimeout(timer);
    deleteLine(b, entry);
  });
  return button;
}

// A line drawn again where it is (deleted, or being deleted).
function redrawLine(entry) {
  const b = state.buffers.get(state.current);
  if (!b || !entry.node || !entry.node.isConnected) return;
  const old = entry.node;
  keepView(() => old.replaceWith(renderMessage(b, entry)));
}

// The whole list of the buffer on screen.
function drawLines() {
  const b = state.buffers.get(state.current);
  $("messages").replaceChildren(...(b ? b.lines.map((entry) => renderMessage(b, entry)) : []));
  placeRule();
  renderHistoryEdge();
}

function renderMessages() {
  drawLines();
  scrollDown(true);
  const b = state.buffers.get(state.current);
  if (b) {
    fillView(b, "");
    if (viewing(b)) wantMarkRead(b);
  }
}

function appendMessage(b, entry) {
  const bottom = atBottom();
  $("messages").append(renderMessage(b, entry));
  scrollDown(bottom);
}

// The "new messages" rule, after the last line at or before the buffer's rule time.
function placeRule() {
  const b = state.buffers.get(state.current);
  const at = b && b.rule ? ruleIndex(b.lines, b.rule) : -1;
  const next = at >= 0 && b.lines[at].node && b.lines[at].node.isConnected ? b.lines[at].node : null;
  const rules = [...$("messages").querySelectorAll(".read-marker")];
  if (next && rules.length === 1 && rules[0].nextSibling === next) return; // where it was
  for (const old of rules) old.remove();
  if (!next) return;
  const rule = el("li", { className: "read-marker" }, el("span", { textContent: "new messages" }));
  rule.setAttribute("role", "separator");
  next.before(rule);
}

// The line above the list: "loading…", "beginning of history", or nothing.
function renderHistoryEdge() {
  const edge = $("history-edge");
  const b = state.buffers.get(state.current);
  edge.hidden = !hasHistory();
  edge.textContent = !b ? "" : b.loading ? "loading…" : b.historyEnd ? "beginning of history" : "";
  edge.classList.toggle("end", Boolean(b && !b.loading && b.historyEnd));
}

function atBottom() {
  const pane = document.querySelector(".messages-pane");
  return pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40;
}

// Change the list without moving what the user is looking at: the first line at least
// partly on screen stays where it is (or, at the bottom and not anchoring, the bottom).
function keepView(change, anchor = false) {
  const pane = document.querySelector(".messages-pane");
  const stick = !anchor && atBottom();
  const top = pane.getBoundingClientRect().top;
  let held = null;
  let offset = 0;
  if (!stick) {
    const b = state.buffers.get(state.current);
    held = b && b.lines.find((e) => e.node && e.node.isConnected && e.node.getBoundingClientRect().bottom > top);
    if (held) offset = held.node.getBoundingClientRect().top - top;
  }
  change();
  if (stick) scrollDown(true);
  else if (held && held.node && held.node.isConnected) {
    pane.scrollTop += held.node.getBoundingClientRect().top - top - offset;
  }
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
  document.querySelector(".messages-pane").addEventListener("scroll", scrolled, { passive: true });
  window.addEventListener("focus", pageBack);
  window.addEventListener("blur", pageLeft);
  document.addEventListener("visibilitychange", () => (document.hidden ? pageLeft() : pageBack()));
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

// Oudertelefoon web chat: sends messages, polls for new ones. No build step, no framework.
//
// API: POST /chat/api/messages {text, client_id}; GET /chat/api/messages?after=N ->
// {messages: [{n, from, text, at}], next}. A message that could not be sent stays on screen
// and is sent again with the SAME client_id, so the server stores it once. A message that deleted
// the conversation ("stop en wis") answers {deleted: true, notice: [texts]}.
// "Snel weg" (POST /chat/api/exit) replaces the page with a neutral site; "onthoud dit gesprek"
// (POST /chat/api/remember {remember}) makes the cookie last.
// Answers: 401 (the server does not know this chat's token): the page asks POST /chat/api/session
// for a new one, once, then sends again; 429 (too many messages): the message stays on screen and
// is sent again after Retry-After; any other 4xx is not sent again (said on the message); 5xx and
// network errors are tried again with a growing wait.
(function () {
  "use strict";

  var log = document.getElementById("log");
  var form = document.getElementById("form");
  var text = document.getElementById("text");
  var button = document.getElementById("send");
  var status = document.getElementById("status");
  var notice = document.getElementById("notice");
  var exitForm = document.getElementById("exit");
  var remember = document.getElementById("remember");

  var NAMES = { bot: "Oudertelefoon", person: "Medewerker", parent: "Jij" };
  var TEXT = {
    sending: "Wordt verstuurd…",
    notSent: "Nog niet verstuurd",
    sent: "Verstuurd",
    retry: "Geen verbinding. We proberen het zo opnieuw. Je bericht blijft hier staan.",
    offline: "Geen verbinding. We proberen het zo opnieuw.",
    expired: "Je chat is verlopen. Laad de pagina opnieuw om verder te gaan.",
    renewed: "Je chat is opnieuw begonnen. Je eerdere berichten staan hier niet meer. Typ gerust verder.",
    busy: "Even wachten. Er komen nu veel berichten tegelijk binnen. Je bericht blijft hier staan. We versturen het vanzelf over {wait}. In gevaar? Bel 112.",
    refused: "We konden dit bericht niet versturen. Is het heel lang? Maak het korter en probeer het opnieuw.",
    deleted: "Alles is verwijderd. Je kunt altijd opnieuw beginnen. In gevaar? Bel 112.",
    closed: "Dit gesprek is afgesloten. Je kunt altijd een nieuw gesprek beginnen. In gevaar? Bel 112.",
    rememberFailed: "Dat lukte niet. Probeer het zo nog eens."
  };
  var POLL_MS = 1500;
  var HIDDEN_POLL_MS = 10000;
  var OFFLINE_POLL_MS = 3000;
  var MAX_RETRY_MS = 5000;
  var STORE_KEY = "ot_chat_pending";

  var next = 0;           // messages 1..next are on screen
  var queue = [];         // own messages the server has not shown yet: {text, client_id, el, accepted, gen}
  var closedShown = false, convo = null;
  var polling = false, pollAgain = false, pollTimer = null, pollGen = 0, pollFailures = 0;
  var sending = false, sendTimer = null, sendFailures = 0, lastAcceptedAt = 0;
  var busyUntil = 0;      // told to wait (429): nothing is sent before this time
  var renewing = false, renewedAt = 0;
  var stopped = false;    // the session is gone: no more requests until a reload
  var staleBefore = 0;    // polls started before the conversation was deleted show nothing

  // Snel weg ----------------------------------------------------------------------------------
  // At once: the page replaces itself with a neutral site (location.replace: Back does not come
  // here), and the server forgets this browser's link to the conversation (the request outlives
  // the page: keepalive). Nothing waits for the answer.

  function quickExit(event) {
    if (event) { event.preventDefault(); }
    stopped = true;
    clearTimeout(pollTimer);
    clearTimeout(sendTimer);
    try { sessionStorage.removeItem(STORE_KEY); } catch (e) { /* storage off: nothing kept */ }
    log.textContent = "";
    text.value = "";
    var sent = false;
    try {
      fetch("/chat/api/exit", { method: "POST", credentials: "same-origin", keepalive: true, cache: "no-store" });
      sent = true;
    } catch (e) { sent = false; }
    if (!sent && navigator.sendBeacon) { navigator.sendBeacon("/chat/api/exit"); }
    window.location.replace(exitForm.getAttribute("data-exit-url") || "about:blank");
  }
  exitForm.addEventListener("submit", quickExit);

  // Rendering -----------------------------------------------------------------------------

  function el(tag, className) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    return node;
  }

  // Web addresses, e-mail addresses and phone numbers in a reply become links (built as DOM
  // nodes, never as HTML). Only numbers that are in the text are linked; nothing is added.
  var LINKS = /([\w.+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+)|(https?:\/\/[^\s]+|(?:www\.)?[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:nl|com|org|net|eu|info)(?:\/[^\s]*)?)|(\+?\d[\d -]{1,13}\d)/gi;

  function phoneHref(match, before, after) {
    if (/[\d:.,\/]$/.test(before) || /^[\d:\/]/.test(after)) { return null; }
    var digits = match.replace(/[^\d+]/g, "");
    if (/^(112|113|0\d{7,10}|14\d{3,4}|\+31\d{9})$/.test(digits)) { return "tel:" + digits; }
    return null;
  }

  function linkify(parent, value) {
    var last = 0, m;
    LINKS.lastIndex = 0;
    while ((m = LINKS.exec(value)) !== null) {
      var shown = m[0], href = null;
      if (m[1]) {
        href = "mailto:" + shown;
      } else if (m[2]) {
        shown = shown.replace(/[.,;:!?)'"]+$/, "");
        href = /^https?:\/\//i.test(shown) ? shown : "https://" + shown;
      } else {
        href = phoneHref(shown, value.slice(0, m.index), value.slice(m.index + shown.length));
      }
      if (!href) { continue; }
      parent.appendChild(document.createTextNode(value.slice(last, m.index)));
      var a = el("a");
      a.href = href;
      a.textContent = shown;
      if (/^https?:/i.test(href)) { a.target = "_blank"; a.rel = "noopener noreferrer"; }
      parent.appendChild(a);
      last = m.index + shown.length;
      LINKS.lastIndex = last;
    }
    parent.appendChild(document.createTextNode(value.slice(last)));
  }

  function bubble(from, value, name) {
    var div = el("div", "msg " + (NAMES[from] ? from : "bot"));
    var who = el("p", "who");
    who.textContent = (from === "person" && name) ? name : (NAMES[from] || NAMES.bot);
    var body = el("p", "text");
    if (from === "parent") { body.textContent = value; } else { linkify(body, value); }
    div.appendChild(who);
    div.appendChild(body);
    return div;
  }

  function setMeta(item, value) {
    var meta = item.el.querySelector(".meta");
    if (!meta) { meta = el("p", "meta"); item.el.appendChild(meta); }
    meta.textContent = value;
  }

  function firstPending() { return log.querySelector(".msg.pending"); }

  function nearBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 80; }

  // Show new messages from their start: the whole batch when it fits, else its first message at
  // the top of the log, so a long answer is read from its beginning.
  function reveal(first) {
    var top = first.offsetTop - 8;
    log.scrollTop = Math.min(top, log.scrollHeight - log.clientHeight);
  }

  function say(kind, value) {
    status.textContent = value;
    status.setAttribute("data-kind", kind);
  }

  function clearStatus(kind) {
    if (status.getAttribute("data-kind") === kind) { say("", ""); }
  }

  function showNotice(value) {
    notice.textContent = "";
    linkify(notice, value);
    notice.hidden = false;
  }

  // Own messages not yet sent survive a reload of this tab (same client_id, so stored once).

  function save() {
    try {
      var open = queue.filter(function (i) { return !i.accepted; })
        .map(function (i) { return { text: i.text, client_id: i.client_id }; });
      if (open.length) { sessionStorage.setItem(STORE_KEY, JSON.stringify(open)); }
      else { sessionStorage.removeItem(STORE_KEY); }
    } catch (e) { /* storage off: the message still retries while the page is open */ }
  }

  function restore() {
    var saved = [];
    try { saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "[]"); } catch (e) { saved = []; }
    saved.forEach(function (s) {
      if (s && typeof s.text === "string" && typeof s.client_id === "string") { add(s.text, s.client_id); }
    });
  }

  // Polling ---------------------------------------------------------------------------------

  function schedule() {
    clearTimeout(pollTimer);
    if (stopped) { return; }
    var wait = pollFailures ? OFFLINE_POLL_MS : (document.hidden ? HIDDEN_POLL_MS : POLL_MS);
    pollTimer = setTimeout(poll, wait);
  }

  function poll() {
    if (stopped) { return; }
    if (polling) { pollAgain = true; return; }   // one poll at a time: nothing is shown twice
    polling = true;
    clearTimeout(pollTimer);
    var gen = ++pollGen;
    fetch("/chat/api/messages?after=" + next, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { renew(); return null; }
        if (!r.ok) { throw new Error("status " + r.status); }
        return r.json();
      })
      .then(function (data) {
        if (!data) { return; }
        if (pollFailures) { pollFailures = 0; clearStatus("offline"); }
        apply(data, gen);
        if (queue.some(function (i) { return !i.accepted; })) { flush(true); }
      })
      .catch(function () {
        pollFailures += 1;
        if (!queue.length) { say("offline", TEXT.offline); }
      })
      .then(function () {
        polling = false;
        if (pollAgain) { pollAgain = false; poll(); } else { schedule(); }
      });
  }

  function apply(data, gen) {
    if (gen < staleBefore) { return; }   // it started before "stop en wis": old messages
    var switched = convo !== null && (data.c || null) !== convo;
    if (switched || data.next < next) {
      // The conversation is gone (deleted: "verwijder mijn gegevens"), or closed and replaced by
      // a new one.
      // Gone within seconds of the parent's own message: they asked for it to be deleted.
      var deleted = Date.now() - lastAcceptedAt < 10000 && !data.c;
      Array.prototype.slice.call(log.querySelectorAll(".msg:not(.pending)")).forEach(function (m) {
        m.parentNode.removeChild(m);
      });
      dropAccepted(Infinity);
      next = 0;
      if (closedShown && data.c) {
        notice.hidden = true;   // the closed one was seen; this is a new conversation
      } else {
        showNotice(deleted ? TEXT.deleted : TEXT.closed);
      }
      closedShown = false;
      convo = data.c || null;
      clearStatus("sent");
      if (data.next > 0) { pollAgain = true; }   // a new conversation already started
      return;
    }
    convo = data.c || null;
    var initial = !log.hasAttribute("data-loaded");
    var follow = initial || nearBottom() || queue.length > 0;
    dropAccepted(gen);
    var fresh = (data.messages || []).filter(function (m) { return m.n > next; });
    var first = null, lastOwn = null, last = null;
    var before = firstPending();
    fresh.forEach(function (m) {
      var node = bubble(m.from, m.text, m.name);
      node.setAttribute("data-n", String(m.n));
      log.insertBefore(node, before);
      next = Math.max(next, m.n);
      if (!first) { first = node; }
      if (m.from === "parent") { lastOwn = node; }
      last = node;
    });
    next = Math.max(next, data.next);
    // Closed by a person or by "stop": its last message says so; no second notice.
    if (data.closed && !closedShown) { closedShown = true; }
    if (!data.closed) { closedShown = false; }
    log.setAttribute("data-loaded", "");
    // Back on the page (a reload): start at the parent's last message and what came after it.
    if (initial && last) { reveal(lastOwn || last); } else if (first && follow) { reveal(first); }
  }

  // Accepted own messages leave the "pending" place once a poll that started after the server
  // took them has brought them back, in the server's order.
  function dropAccepted(gen) {
    queue = queue.filter(function (item) {
      if (item.accepted && item.gen < gen) {
        if (item.el.parentNode) { item.el.parentNode.removeChild(item.el); }
        return false;
      }
      return true;
    });
  }

  // This message deleted the conversation ("stop en wis", or "ja" to the question): everything on
  // screen goes, and the server's last words are shown.
  function wiped(notes) {
    clearConversation();   // the server made the cookie a session cookie again
    var value = (notes && notes.length) ? notes.join("\n") : TEXT.deleted;
    showNotice(value);
    clearStatus("sent");
  }

  function expire() {
    stopped = true;
    clearTimeout(pollTimer);
    clearTimeout(sendTimer);
    say("expired", TEXT.expired);
  }

  // The server refused this chat's token (401: made elsewhere, or cleared by "Snel weg" in another
  // tab): ask for a new one, once, and go on in a new, empty chat. Unsent messages stay and go
  // out in the new chat. Refused again soon after (cookies off?): stop and say so.
  function renew() {
    if (renewing || stopped) { return; }
    if (renewedAt && Date.now() - renewedAt < 30000) { expire(); return; }
    renewing = true;
    fetch("/chat/api/session", { method: "POST", credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.ok) {
          renewing = false;
          renewedAt = Date.now();
          restart();
          poll();
          flush(true);
          return;
        }
        if (r.status >= 400 && r.status < 500) { renewing = false; expire(); return; }
        throw new Error("status " + r.status);
      })
      .catch(function () {
        // No connection: the next poll or send meets the 401 again and asks again.
        renewing = false;
        say("offline", TEXT.offline);
        pollFailures += 1;
        schedule();
      });
  }

  function restart() {
    var shown = log.querySelectorAll(".msg:not(.pending)").length > 0;
    clearConversation();   // a new token is a session cookie
    if (shown) { showNotice(TEXT.renewed); }
  }

  // Everything of the conversation on screen goes; unsent messages stay to go out again.
  function clearConversation() {
    staleBefore = pollGen + 1;
    Array.prototype.slice.call(log.querySelectorAll(".msg:not(.pending)")).forEach(function (m) {
      m.parentNode.removeChild(m);
    });
    dropAccepted(Infinity);
    next = 0;
    convo = null;
    closedShown = false;
    remember.checked = false;
  }

  // Told to wait (429): the message stays, marked not sent yet, and goes out after the wait.
  function busyWait(item, r) {
    var seconds = parseInt(r.headers.get("Retry-After") || "", 10);
    if (!(seconds > 0)) { seconds = 30; }
    seconds = Math.min(seconds, 3600);
    busyUntil = Date.now() + seconds * 1000;
    setMeta(item, TEXT.notSent);
    var wait = seconds < 60 ? seconds + " seconden"
      : (Math.ceil(seconds / 60) === 1 ? "1 minuut" : Math.ceil(seconds / 60) + " minuten");
    say("busy", TEXT.busy.replace("{wait}", wait));
    clearTimeout(sendTimer);
    sendTimer = setTimeout(function () { busyUntil = 0; flush(false); }, seconds * 1000 + 250);
  }

  // Sending -----------------------------------------------------------------------------------

  function newId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function add(value, clientId) {
    var item = { text: value, client_id: clientId, accepted: false, gen: 0 };
    item.el = bubble("parent", value);
    item.el.classList.add("pending");
    setMeta(item, TEXT.sending);
    log.appendChild(item.el);
    queue.push(item);
    return item;
  }

  // Own messages go out one at a time, in order. A failure waits a little longer each time
  // (at most a few seconds); a poll that works again sends at once.
  function flush(now) {
    if (sending || stopped || renewing) { return; }
    if (busyUntil > Date.now()) { return; }   // the timer sends when the wait is over
    var item = null;
    for (var i = 0; i < queue.length; i++) { if (!queue[i].accepted) { item = queue[i]; break; } }
    if (!item) { return; }
    if (now) { clearTimeout(sendTimer); }
    sending = true;
    fetch("/chat/api/messages", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: item.text, client_id: item.client_id })
    }).then(function (r) {
      sending = false;
      if (r.ok) {
        sendFailures = 0;
        clearStatus("busy");
        item.accepted = true;
        item.gen = pollGen;
        lastAcceptedAt = Date.now();
        setMeta(item, TEXT.sent);
        say("sent", TEXT.sent);
        save();
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (data && data.deleted) { wiped(data.notice); }
          poll();
          flush(true);
        });
      }
      if (r.status === 401) { setMeta(item, TEXT.notSent); renew(); return; }
      if (r.status === 429) { busyWait(item, r); return; }
      if (r.status >= 400 && r.status < 500 && r.status !== 408) {
        // The server will never take this one: say so, keep it visible, go on with the next.
        item.el.classList.remove("pending");
        item.el.classList.add("refused");
        setMeta(item, TEXT.refused);
        queue.splice(queue.indexOf(item), 1);
        save();
        flush(true);
        return;
      }
      throw new Error("status " + r.status);
    }).catch(function () {
      sending = false;
      sendFailures += 1;
      setMeta(item, TEXT.notSent);
      say("retry", TEXT.retry);
      clearTimeout(sendTimer);
      sendTimer = setTimeout(function () { flush(false); },
        Math.min(1000 * Math.pow(2, sendFailures - 1), MAX_RETRY_MS));
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var value = text.value;
    if (!value.trim() || stopped) { return; }
    text.value = "";
    grow();
    notice.hidden = true;
    add(value, newId());
    save();
    log.scrollTop = log.scrollHeight;
    flush(true);
    text.focus();
  });

  text.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (form.requestSubmit) { form.requestSubmit(); } else { button.click(); }
    }
  });

  // The textarea grows with what is typed, up to a few lines.
  function grow() {
    text.style.height = "auto";
    text.style.height = Math.min(text.scrollHeight + 4, 180) + "px";
  }
  text.addEventListener("input", grow);

  document.addEventListener("visibilitychange", function () { if (!document.hidden) { poll(); } });
  window.addEventListener("online", function () { poll(); flush(true); });

  // "Onthoud dit gesprek op dit apparaat": the server makes the cookie last, or not.
  remember.addEventListener("change", function () {
    var wanted = remember.checked;
    remember.disabled = true;
    fetch("/chat/api/remember", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ remember: wanted })
    }).then(function (r) {
      if (r.status === 401) { remember.checked = !wanted; renew(); return; }
      if (!r.ok) { throw new Error("status " + r.status); }
      clearStatus("remember");
    }).catch(function () {
      remember.checked = !wanted;
      say("remember", TEXT.rememberFailed);
    }).then(function () { remember.disabled = stopped; });
  });

  text.disabled = false;
  button.disabled = false;
  remember.disabled = false;
  restore();
  poll();
  flush(true);
})();

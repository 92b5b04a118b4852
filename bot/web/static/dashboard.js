// Oudertelefoon dashboard: live updates, the acute alert, and sending replies. Plain JS, no build.
//
// The page tells this script what it is through data-attributes on <body>: data-page ("queue" or
// "conversation"), data-user (the logged-in person), data-on-shift ("ja"/"nee": an acute alert
// sounds for everyone on shift, volunteers too), data-professional ("ja"/"nee"),
// data-conversation (on the conversation page).
// Live events come from GET /dashboard/events (server-sent events, JSON without any text:
// {type, conversation_id, queue, user_id, priority}); when that fails, the page polls every 10 s.
(function () {
  "use strict";

  var body = document.body;
  var page = body.getAttribute("data-page") || "";
  var me = body.getAttribute("data-user") || "";
  var onShift = body.getAttribute("data-on-shift") === "ja";
  var conversationId = body.getAttribute("data-conversation") || "";
  var alerts = document.getElementById("alerts");
  var connection = document.getElementById("connection");
  var csrfInput = document.querySelector('input[name="csrf_token"]');
  var csrf = csrfInput ? csrfInput.value : "";

  var POLL_MS = 10000;
  var QUEUE_REFRESH_MS = 60000;  // waiting times move on even when nothing happens
  var RECONNECT_MS = 15000;
  var HEADERS = { "X-Requested-With": "fetch" };
  var TEXT = {
    offline: "Live bijwerken lukt nu niet. De pagina ververst elke 10 seconden.",
    loggedOut: "Je bent uitgelogd. Log opnieuw in om verder te werken.",
    acuteQueue: "ACUUT: een ouder in acuut gevaar wacht in de wachtrij.",
    acuteMine: "ACUUT: een ouder in jouw gesprek schreef iets dat op acuut gevaar wijst.",
    claimedByOther: "Dit gesprek is opgepakt door iemand anders.",
    closed: "Dit gesprek is afgesloten.",
    released: "Dit gesprek staat weer in de wachtrij.",
    transferred: "Dit gesprek is doorgezet naar de andere wachtrij.",
    empty: "Schrijf eerst een bericht.",
    sending: "Wordt verstuurd…",
    sent: "Verstuurd.",
    noConnection: "Geen verbinding. Je tekst staat er nog; probeer het zo opnieuw.",
    failed: "Versturen lukte niet. Je tekst staat er nog.",
    replyLoggedOut: "Je bent uitgelogd. Je tekst staat er nog: kopieer hem, log opnieuw in en plak hem dan."
  };

  function ref(id) { return "#" + String(id || "").slice(0, 6); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text) { node.textContent = text; }
    return node;
  }

  function setConnection(message) {
    if (connection) { connection.textContent = message || ""; }
  }

  var loggedOut = false;
  function showLoggedOut() {
    if (loggedOut) { return; }
    loggedOut = true;
    stopPolling();
    if (source) { source.close(); source = null; }
    if (!connection) { return; }
    connection.textContent = TEXT.loggedOut + " ";
    var link = el("a", "", "Inloggen");
    link.href = "/login?next=" + encodeURIComponent(location.pathname);
    connection.appendChild(link);
  }

  function get(url) {
    return fetch(url, { headers: HEADERS, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) { showLoggedOut(); throw new Error("401"); }
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      });
  }

  // Sound: a short double beep (WebAudio). Browsers allow sound only after the person has
  // clicked or typed on the page, so the audio context is made on the first interaction.
  var audio = null;
  function unlockAudio() {
    try {
      if (!audio) {
        var Context = window.AudioContext || window.webkitAudioContext;
        if (Context) { audio = new Context(); }
      }
      if (audio && audio.state === "suspended") { audio.resume(); }
    } catch (error) { audio = null; }
  }
  document.addEventListener("pointerdown", unlockAudio, true);
  document.addEventListener("keydown", unlockAudio, true);

  function beep() {
    body.setAttribute("data-beeps", String(Number(body.getAttribute("data-beeps") || 0) + 1));
    unlockAudio();
    if (!audio) { return; }
    try {
      var start = audio.currentTime + 0.02;
      [0, 0.32].forEach(function (offset) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        osc.type = "sine";
        osc.frequency.value = 880;
        gain.gain.setValueAtTime(0.0001, start + offset);
        gain.gain.exponentialRampToValueAtTime(0.3, start + offset + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.24);
        osc.connect(gain);
        gain.connect(audio.destination);
        osc.start(start + offset);
        osc.stop(start + offset + 0.26);
      });
    } catch (error) { /* no sound, the banner is there */ }
  }

  // The acute banner: role=alert, aria-live=assertive (the #alerts container in base.html).
  var alerted = {};
  function acuteBanner(event) {
    var id = event.conversation_id || "";
    var mine = Boolean(event.user_id) && event.user_id === me;
    // An acute message in a conversation someone else has: their alert, not this person's.
    if (event.type === "acute" && event.user_id && !mine) { return; }
    // Danger now reaches everyone who is on shift, in every queue (whether they may take it or
    // not: the card says who takes care).
    if (!mine && !onShift) { return; }
    var now = Date.now();
    if (alerted[id] && now - alerted[id] < 60000) { return; }
    alerted[id] = now;
    if (!alerts) { return; }
    var box = el("div", "alert acute");
    box.setAttribute("data-conversation", id);
    var text = el("p");
    var strong = el("strong", "", (mine ? TEXT.acuteMine : TEXT.acuteQueue).split(":")[0] + ":");
    var icon = el("span", "", "⚠ ");
    icon.setAttribute("aria-hidden", "true");
    strong.insertBefore(icon, strong.firstChild);
    text.appendChild(strong);
    text.appendChild(document.createTextNode(
      (mine ? TEXT.acuteMine : TEXT.acuteQueue).split(":").slice(1).join(":") + " Gesprek " + ref(id) + "."));
    box.appendChild(text);
    if (id) {
      var open = el("a", "button", id === conversationId ? "Pagina vernieuwen" : "Open gesprek " + ref(id));
      open.href = "/dashboard/conversations/" + encodeURIComponent(id);
      box.appendChild(open);
    }
    var dismiss = el("button", "secondary", "Sluiten");
    dismiss.type = "button";
    dismiss.addEventListener("click", function () { box.remove(); });
    box.appendChild(dismiss);
    alerts.appendChild(box);
    beep();
  }

  // Queue page ------------------------------------------------------------------------------
  var lists = document.getElementById("queue-lists");
  var queueStatus = document.getElementById("queue-status");
  var refreshing = false, refreshAgain = false, refreshTimer = null;

  function focusKey() {
    var active = document.activeElement;
    if (!lists || !active || !lists.contains(active)) { return null; }
    var row = active.closest("[data-conversation]");
    return { id: row ? row.getAttribute("data-conversation") : null, text: active.textContent.trim() };
  }

  function restoreFocus(key) {
    if (!key) { return; }
    var target = null;
    if (key.id) {
      var row = lists.querySelector('[data-conversation="' + (window.CSS && CSS.escape ? CSS.escape(key.id) : key.id) + '"]');
      if (row) {
        var candidates = row.querySelectorAll("button, a");
        for (var i = 0; i < candidates.length; i++) {
          if (candidates[i].textContent.trim() === key.text) { target = candidates[i]; break; }
        }
      }
    }
    (target || document.getElementById("main")).focus();
  }

  function refreshQueue() {
    if (!lists || loggedOut) { return; }
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    var before = lists.querySelector(".lists");
    var waitingBefore = before ? Number(before.getAttribute("data-waiting") || 0) : 0;
    get(lists.getAttribute("data-src")).then(function (html) {
      var key = focusKey();
      lists.innerHTML = html;
      restoreFocus(key);
      var after = lists.querySelector(".lists");
      var waiting = after ? Number(after.getAttribute("data-waiting") || 0) : 0;
      if (queueStatus && waiting !== waitingBefore) {
        queueStatus.textContent = waiting === 1 ? "1 gesprek wacht." : waiting + " gesprekken wachten.";
      }
      body.setAttribute("data-refreshed", String(Number(body.getAttribute("data-refreshed") || 0) + 1));
    }).catch(function () { /* the next event or poll tries again */ }).then(function () {
      refreshing = false;
      if (refreshAgain) { refreshAgain = false; scheduleQueue(); }
    });
  }

  function scheduleQueue() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshQueue, 200);
  }

  // Conversation page -----------------------------------------------------------------------
  var transcript = document.getElementById("transcript");
  var liveNotice = document.getElementById("live-notice");
  var after = transcript ? Number(transcript.getAttribute("data-after") || 0) : 0;
  var loading = false, loadAgain = false;

  function nearBottom() {
    return transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 80;
  }

  function loadMessages() {
    if (!transcript || loggedOut) { return; }
    if (loading) { loadAgain = true; return; }
    loading = true;
    var stick = nearBottom();
    get(transcript.getAttribute("data-src") + "?after=" + after).then(function (html) {
      var holder = document.createElement("template");
      holder.innerHTML = html;
      var items = holder.content.querySelectorAll("li[data-n]");
      for (var i = 0; i < items.length; i++) {
        var n = Number(items[i].getAttribute("data-n"));
        if (n <= after) { continue; }
        items[i].classList.add("new");
        transcript.appendChild(items[i]);
        after = n;
      }
      transcript.setAttribute("data-after", String(after));
      if (stick && items.length) { transcript.scrollTop = transcript.scrollHeight; }
    }).catch(function () { /* tried again on the next event or poll */ }).then(function () {
      loading = false;
      if (loadAgain) { loadAgain = false; loadMessages(); }
    });
  }

  function showLive(message) {
    if (!liveNotice) { return; }
    liveNotice.textContent = message;
    liveNotice.classList.remove("empty-notice");
  }

  function conversationEvent(event) {
    var other = event.user_id && event.user_id !== me;
    if (event.type === "claimed" && other) {
      showLive(TEXT.claimedByOther);
      var claim = document.getElementById("claim-form");
      if (claim) { claim.hidden = true; }
    } else if (event.type === "closed" && other) {
      showLive(TEXT.closed);
    } else if (event.type === "released" && other) {
      showLive(TEXT.released);
    } else if (event.type === "transferred" && other) {
      showLive(TEXT.transferred);
    }
    loadMessages();
  }

  // Reply box: sent with fetch; on failure the text stays and the error is shown.
  var replyForm = document.getElementById("reply-form");
  if (replyForm) {
    var replyText = document.getElementById("reply-text");
    var replyError = document.getElementById("reply-error");
    var replySend = document.getElementById("reply-send");
    var notice = document.getElementById("notice");
    var sending = false;

    var setError = function (message) { replyError.textContent = message || ""; };
    var setNotice = function (message) {
      if (!notice) { return; }
      notice.textContent = message;
      notice.classList.toggle("empty-notice", !message);
    };

    var send = function () {
      if (sending) { return; }
      if (!replyText.value.trim()) { setError(TEXT.empty); replyText.focus(); return; }
      sending = true;
      replySend.disabled = true;
      setError("");
      setNotice(TEXT.sending);
      fetch(replyForm.action, {
        method: "POST",
        headers: { "X-Requested-With": "fetch", "X-CSRF-Token": csrf },
        body: new FormData(replyForm),
        credentials: "same-origin"
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (response.ok && data.ok) {
            replyText.value = "";
            setNotice(TEXT.sent);
            loadMessages();
            return;
          }
          setNotice("");
          if (response.status === 401) { setError(TEXT.replyLoggedOut); showLoggedOut(); return; }
          setError(data.error || TEXT.failed);
        });
      }).catch(function () {
        setNotice("");
        setError(TEXT.noConnection);
      }).then(function () {
        sending = false;
        replySend.disabled = false;
        replyText.focus();
      });
    };

    replyForm.addEventListener("submit", function (event) { event.preventDefault(); send(); });
    replyText.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); send(); }
    });

    // Quick inserts: the text goes into the reply box at the cursor.
    document.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest("button[data-insert]") : null;
      if (!button) { return; }
      var insert = button.getAttribute("data-insert");
      var start = replyText.selectionStart, end = replyText.selectionEnd;
      var value = replyText.value;
      if (typeof start !== "number") { start = end = value.length; }
      var before = value.slice(0, start), afterText = value.slice(end);
      var glue = before && !/\s$/.test(before) ? (/\n$/.test(insert) ? "" : "\n") : "";
      replyText.value = before + glue + insert + afterText;
      var caret = (before + glue + insert).length;
      replyText.focus();
      replyText.setSelectionRange(caret, caret);
      replyText.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }

  // Events ----------------------------------------------------------------------------------
  var QUEUE_TYPES = { queued: 1, claimed: 1, released: 1, transferred: 1, closed: 1, acute: 1, shift: 1 };

  function handle(event) {
    if (!event || !event.type) { return; }
    // Other scripts (static/supervision.js) act on the same events: one stream per page.
    document.dispatchEvent(new CustomEvent("ot:event", { detail: event }));
    if (event.type === "acute" || (event.type === "queued" && event.priority === 0)) {
      acuteBanner(event);
    }
    if (page === "queue" && QUEUE_TYPES[event.type]) { scheduleQueue(); }
    if (page === "conversation" && event.conversation_id === conversationId) { conversationEvent(event); }
  }

  // For static/supervision.js: the same sound as the acute alert.
  window.otDashboard = { beep: beep };

  var source = null, pollTimer = null, reconnectTimer = null, wasDown = false;

  function poll() {
    if (page === "queue") { refreshQueue(); }
    if (page === "conversation") { loadMessages(); }
  }

  function startPolling() {
    if (pollTimer || loggedOut) { return; }
    wasDown = true;
    setConnection(TEXT.offline);
    pollTimer = setInterval(poll, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  }

  function connect() {
    if (loggedOut) { return; }
    if (!window.EventSource) { startPolling(); return; }
    source = new EventSource("/dashboard/events");
    source.onopen = function () {
      stopPolling();
      setConnection("");
      body.setAttribute("data-live", "ja");
      if (wasDown) { wasDown = false; poll(); }  // catch up on what was missed
    };
    source.onmessage = function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (error) { return; }
      handle(event);
    };
    source.onerror = function () {
      body.setAttribute("data-live", "nee");
      startPolling();
      if (source && source.readyState === EventSource.CLOSED) {
        // The server refused (logged out?) or the browser gave up: check, then try again later.
        source = null;
        get("/dashboard/queue").catch(function () { /* 401 shows the login link */ });
        clearTimeout(reconnectTimer);
        reconnectTimer = setTimeout(connect, RECONNECT_MS);
      }
    };
  }

  if (page === "queue" || page === "conversation") {
    connect();
    if (page === "queue") {
      setInterval(function () { if (!document.hidden) { refreshQueue(); } }, QUEUE_REFRESH_MS);
    }
    if (transcript) { transcript.scrollTop = transcript.scrollHeight; }
  } else if (me) {
    connect();  // other pages still raise the acute alert
  }
  window.addEventListener("pagehide", function () { if (source) { source.close(); } });
})();

// Oudertelefoon dashboard, supervision ("Meekijken"): the help alert for supervisors, the live
// list, and on the holder's conversation page the notes and the takeover. Plain JS, no build.
//
// It reads the events of static/dashboard.js's one event stream (a "ot:event" DOM event per
// server-sent event). help, help_cleared, note and takeover are personal: the server sends each
// only to the person it names (handoff.events.PERSONAL), so whoever gets one is meant.
(function () {
  "use strict";

  var body = document.body;
  var page = body.getAttribute("data-page") || "";
  var conversationId = body.getAttribute("data-conversation") || "";
  var supervising = body.getAttribute("data-supervision") === "ja";
  var alerts = document.getElementById("alerts");
  var HEADERS = { "X-Requested-With": "fetch" };
  var TEXT = {
    help: "HULP GEVRAAGD: een medewerker vraagt om hulp bij gesprek ",
    note: "Nieuwe notitie van je begeleider bij gesprek ",
    noteHere: "Je kreeg een notitie van je begeleider, bij 'Hulp en notities'. De ouder ziet die niet.",
    takeover: "Je gesprek is overgenomen door een begeleider: ",
    takeoverHere: "Een begeleider heeft dit gesprek overgenomen. Jij kunt hier niet meer antwoorden; de ouder hoort wie er nu is.",
    helpCount: function (n) { return n === 1 ? "1 gesprek vraagt om hulp." : n + " gesprekken vragen om hulp."; }
  };

  function ref(id) { return "#" + String(id || "").replace(/-/g, "").slice(0, 6); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text) { node.textContent = text; }
    return node;
  }

  function get(url) {
    return fetch(url, { headers: HEADERS, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      });
  }

  function beep() {
    if (window.otDashboard && window.otDashboard.beep) { window.otDashboard.beep(); }
  }

  // A banner in the #alerts container of base.html (role=alert), one per conversation and kind.
  function banner(kind, id, text, linkText, href) {
    if (!alerts) { return; }
    var old = alerts.querySelector('[data-kind="' + kind + '"][data-conversation="' + id + '"]');
    if (old) { old.remove(); }
    var box = el("div", "alert " + kind);
    box.setAttribute("data-kind", kind);
    box.setAttribute("data-conversation", id);
    var p = el("p");
    p.appendChild(el("strong", "", text + ref(id) + "."));
    box.appendChild(p);
    if (href) {
      var link = el("a", "button", linkText);
      link.href = href;
      box.appendChild(link);
    }
    var dismiss = el("button", "secondary", "Sluiten");
    dismiss.type = "button";
    dismiss.addEventListener("click", function () { box.remove(); });
    box.appendChild(dismiss);
    alerts.appendChild(box);
  }

  function removeBanner(kind, id) {
    if (!alerts) { return; }
    var box = alerts.querySelector('[data-kind="' + kind + '"][data-conversation="' + id + '"]');
    if (box) { box.remove(); }
  }

  // The "Meekijken" page: the list refreshes on events and every data-refresh seconds.
  var lists = document.getElementById("supervision-lists");
  var listStatus = document.getElementById("supervision-status");
  var refreshing = false, again = false, timer = null;

  function refreshList() {
    if (!lists) { return; }
    if (refreshing) { again = true; return; }
    refreshing = true;
    get(lists.getAttribute("data-src")).then(function (html) {
      var before = lists.querySelector(".lists");
      var helpBefore = before ? Number(before.getAttribute("data-help") || 0) : 0;
      lists.innerHTML = html;
      var after = lists.querySelector(".lists");
      var help = after ? Number(after.getAttribute("data-help") || 0) : 0;
      if (listStatus && help !== helpBefore && help > 0) { listStatus.textContent = TEXT.helpCount(help); }
      body.setAttribute("data-refreshed", String(Number(body.getAttribute("data-refreshed") || 0) + 1));
    }).catch(function () { /* the next event or refresh tries again */ }).then(function () {
      refreshing = false;
      if (again) { again = false; schedule(); }
    });
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refreshList, 200);
  }

  if (lists) {
    var seconds = Number(body.getAttribute("data-refresh") || 30);
    setInterval(function () { if (!document.hidden) { refreshList(); } }, seconds * 1000);
  }

  // The holder's conversation page: the box with "Vraag hulp" and the notes.
  function refreshHolder() {
    var box = document.getElementById("supervision-holder");
    if (!box) { return; }
    get(box.getAttribute("data-src")).then(function (html) {
      var holder = document.createElement("template");
      holder.innerHTML = html.trim();
      var fresh = holder.content.querySelector("#supervision-holder");
      if (fresh) { box.replaceWith(fresh); }
      body.setAttribute("data-notes-refreshed", String(Number(body.getAttribute("data-notes-refreshed") || 0) + 1));
    }).catch(function () { /* shown again when the page is opened */ });
  }

  function takenOver() {
    var live = document.getElementById("live-notice");
    if (live) {
      live.textContent = TEXT.takeoverHere;
      live.classList.remove("empty-notice");
    }
    ["reply-form", "supervision-holder"].forEach(function (id) {
      var node = document.getElementById(id);
      if (node) { node.hidden = true; }
    });
    var actions = document.querySelector('[aria-labelledby="h-actions"]');
    if (actions) { actions.hidden = true; }
  }

  var LIST_TYPES = { queued: 1, claimed: 1, released: 1, transferred: 1, closed: 1, message: 1, acute: 1,
                     help: 1, help_cleared: 1 };

  document.addEventListener("ot:event", function (dom) {
    var event = dom.detail || {};
    var id = event.conversation_id || "";
    var here = page === "conversation" && id === conversationId && !supervising;
    if (event.type === "help") {
      banner("help", id, TEXT.help, "Meelezen " + ref(id), "/dashboard/supervision/" + encodeURIComponent(id));
      beep();
    } else if (event.type === "help_cleared") {
      removeBanner("help", id);
      if (here) { refreshHolder(); }
    } else if (event.type === "note") {
      if (here) {
        refreshHolder();
        var live = document.getElementById("live-notice");
        if (live) { live.textContent = TEXT.noteHere; live.classList.remove("empty-notice"); }
      } else {
        banner("note", id, TEXT.note, "Open gesprek " + ref(id), "/dashboard/conversations/" + encodeURIComponent(id));
      }
    } else if (event.type === "takeover") {
      if (here) { takenOver(); } else { banner("takeover", id, TEXT.takeover, "", ""); }
    }
    if (lists && LIST_TYPES[event.type]) { schedule(); }
  });
})();

// Oudertelefoon web chat: posts messages, polls for new ones. No build step, no framework.
(function () {
  "use strict";
  var log = document.getElementById("log");
  var form = document.getElementById("form");
  var text = document.getElementById("text");
  var status = document.getElementById("status");
  var next = 0;
  var names = { bot: "Oudertelefoon", person: "Medewerker", parent: "Jij" };

  function newId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function show(items) {
    items.forEach(function (m) {
      var div = document.createElement("div");
      div.className = "msg " + m.from;
      var who = document.createElement("span");
      who.className = "who";
      who.textContent = names[m.from] || "";
      div.appendChild(who);
      div.appendChild(document.createTextNode(m.text));
      log.appendChild(div);
    });
    if (items.length) { log.scrollTop = log.scrollHeight; }
  }

  function poll() {
    return fetch("/chat/api/messages?after=" + next, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data) { show(data.messages); next = data.next; status.textContent = ""; }
      })
      .catch(function () { status.textContent = "Geen verbinding. We proberen het opnieuw."; });
  }

  function send(body, attempt) {
    return fetch("/chat/api/messages", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (r) {
      if (!r.ok) { throw new Error("status " + r.status); }
      return poll();
    }).catch(function () {
      // The same client_id is sent again: the server stores it once.
      status.textContent = "Versturen lukt nog niet. We proberen het opnieuw.";
      if (attempt < 5) { setTimeout(function () { send(body, attempt + 1); }, 2000 * (attempt + 1)); }
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var value = text.value;
    if (!value.trim()) { return; }
    text.value = "";
    send({ text: value, client_id: newId() }, 0);
  });

  text.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  poll();
  setInterval(poll, 1500);
  text.focus();
})();

/* dashboard.js - live updates for the meshsync dashboard (progressive:
 * every button also works as a plain form without JavaScript). */
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var live = document.getElementById("live");
  var activity = document.getElementById("activity");
  var lastSeq = null;

  function say(text, cls) {
    if (!live) return;
    live.textContent = text;
    live.className = "live " + (cls || "");
  }

  /* Event times arrive in UTC; show them in the node's zone, named, like
   * the server-rendered ones. */
  var tz = document.body.getAttribute("data-tz") || "UTC";
  function localTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso || "";
    try {
      var parts = new Intl.DateTimeFormat("en-GB", {
        timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit",
        hour12: false, timeZoneName: "short"
      }).formatToParts(d);
      var v = {};
      for (var i = 0; i < parts.length; i++) v[parts[i].type] = parts[i].value;
      return v.year + "-" + v.month + "-" + v.day + " " + v.hour + ":" +
        v.minute + ":" + v.second + " " + v.timeZoneName;
    } catch (e) { return iso; }
  }

  function addActivity(ev, text) {
    if (!activity) return;
    var li = document.createElement("li");
    var t = document.createElement("time");
    t.textContent = localTime(ev.time);
    t.setAttribute("datetime", ev.time || "");
    var k = document.createElement("span");
    k.className = "kind";
    k.textContent = ev.kind;
    li.appendChild(t);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(k);
    li.appendChild(document.createTextNode(" " + text));
    if (ev.ok === false) li.className = "warn";
    activity.insertBefore(li, activity.firstChild);
    while (activity.children.length > 50) activity.removeChild(activity.lastChild);
  }

  /* At most one reload every 10 s: events published by two processes at
   * once may arrive out of order, which is not a lost event. */
  function mayReload() {
    var now = Date.now(), last = 0;
    try { last = parseInt(sessionStorage.getItem("meshsync.reload") || "0", 10); } catch (e) {}
    if (now - last < 10000) return false;
    try { sessionStorage.setItem("meshsync.reload", String(now)); } catch (e) {}
    return true;
  }

  function peerRow(name) {
    var rows = document.querySelectorAll("tr[data-peer]");
    for (var i = 0; i < rows.length; i++)
      if (rows[i].getAttribute("data-peer") === name) return rows[i];
    return null;
  }

  function onEvent(ev) {
    /* Our own sequence numbers: a gap means events were missed (nchan's
     * buffer moved on), so the page reloads its state from the server. */
    if (lastSeq !== null && ev.seq > lastSeq + 1 && mayReload()) {
      window.location.reload();
      return;
    }
    if (lastSeq === null || ev.seq > lastSeq) lastSeq = ev.seq;
    if (ev.kind === "sync-start") {
      say("Syncing with " + ev.peer + "…", "busy");
    } else if (ev.kind === "sync-progress") {
      var mb = (ev.bytes / 1048576).toFixed(1);
      say("Syncing with " + ev.peer + "… " + ev.sent + " sent, " + ev.received +
          " received; files " + ev.files_done + (ev.files_total ? " of " +
          ev.files_total : "") + " (" + mb + " MiB)", "busy");
    } else if (ev.kind === "sync") {
      var row = peerRow(ev.peer);
      if (ev.ok) {
        say(ev.peer + ": " + ev.summary, "ok");
        addActivity(ev, ev.peer + " " + ev.summary);
        if (row) {
          var c = row.querySelector(".last-ok"); if (c) c.textContent = localTime(ev.time);
          var e = row.querySelector(".last-error"); if (e) e.textContent = "";
        }
      } else {
        say(ev.peer + ": sync failed: " + ev.error, "bad");
        addActivity(ev, ev.peer + " failed: " + ev.error);
        if (row) { var e2 = row.querySelector(".last-error"); if (e2) e2.textContent = ev.error; }
      }
    } else if (ev.kind === "received") {
      addActivity(ev, "changes received from " + ev.peer);
    } else if (ev.kind === "local-change") {
      addActivity(ev, ev.db ? ev.changes + " change(s) in " + ev.db : ev.files + " file change(s)");
    }
  }

  if (window.EventSource) {
    var es = new EventSource("/sync/events");
    es.onmessage = function (m) {
      var ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      onEvent(ev);
    };
  }

  /* Sync buttons: POST the JSON API and show the result line in place. */
  var forms = document.querySelectorAll("form.sync-now");
  for (var i = 0; i < forms.length; i++) {
    forms[i].addEventListener("submit", function (e) {
      e.preventDefault();
      var peer = this.querySelector('input[name="peer"]');
      var url = "/api/sync/sync" + (peer && peer.value ? "?peer=" + encodeURIComponent(peer.value) : "");
      say("Syncing…", "busy");
      var xhr = new XMLHttpRequest();
      xhr.open("POST", url, true);
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.onload = function () {
        var res;
        try { res = JSON.parse(xhr.responseText); } catch (err) { say("Sync failed.", "bad"); return; }
        if (xhr.status !== 200) { say("Sync failed: " + (res.error || xhr.status), "bad"); return; }
        var f = res.files || {};
        say(res.sent + " sent, " + res.received + " received, " + res.conflicts +
            " conflicts; files: " + f.sent + " sent, " + f.received + " received, " +
            f.conflicts + " conflicts" + (res.failed ? " (" + res.failed + " failed)" : ""),
            res.failed ? "bad" : "ok");
      };
      xhr.onerror = function () { say("Sync failed: no answer.", "bad"); };
      xhr.send();
    });
  }
})();

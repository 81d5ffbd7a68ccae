/* auto_sync.js - include in the application's base template:
 *   <script src="/sync/static/js/auto_sync.js" defer></script>
 * Asks this node's meshsync worker to sync soon after a page loads, when
 * the browser comes back online, and when the tab becomes visible or gets
 * focus; at most once per 5 s; silent on errors; nothing on a node
 * without peers (the server answers {"started": false, "reason": "no peers"}).
 */
(function () {
  "use strict";
  var COOLDOWN_MS = 5000, LOAD_DELAY_MS = 1000, NOTICE_MS = 3000;
  var KEY = "meshsync.auto_sync.last";
  var last = 0, noPeers = false, timer = null;

  function now() { return Date.now(); }

  /* The cooldown is shared by every trigger, and by tabs of the same site. */
  function lastRun() {
    try { return Math.max(last, parseInt(sessionStorage.getItem(KEY) || "0", 10)); }
    catch (e) { return last; }
  }
  function remember(t) {
    last = t;
    try { sessionStorage.setItem(KEY, String(t)); } catch (e) { /* private mode */ }
  }

  function notice(text) {
    if (!document.body) return;
    var el = document.createElement("div");
    el.setAttribute("role", "status");
    el.textContent = text;
    el.style.cssText = "position:fixed;right:1rem;bottom:1rem;z-index:2147483647;" +
      "background:#24292f;color:#fff;padding:.4rem .8rem;border-radius:6px;" +
      "font:14px system-ui,sans-serif;opacity:.92;pointer-events:none";
    document.body.appendChild(el);
    setTimeout(function () { if (el.parentNode) el.parentNode.removeChild(el); }, NOTICE_MS);
  }

  function trigger() {
    if (noPeers) return;
    if (typeof navigator !== "undefined" && navigator.onLine === false) return;
    var t = now();
    if (t - lastRun() < COOLDOWN_MS) return;
    remember(t);
    var xhr;
    try {
      xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/sync/trigger", true);
      xhr.setRequestHeader("Content-Type", "application/json");
      xhr.timeout = 5000;
    } catch (e) { return; }
    xhr.onload = function () {
      var res = null;
      try { res = JSON.parse(xhr.responseText); } catch (e) { return; }
      if (!res) return;
      if (res.reason === "no peers") { noPeers = true; return; }
      if (xhr.status === 202 && res.started) notice("Syncing with other servers…");
    };
    /* Errors stay silent: the periodic sync is the safety net. */
    xhr.onerror = xhr.ontimeout = function () {};
    try { xhr.send("{}"); } catch (e) { /* ignore */ }
  }

  function soon(delay) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(function () { timer = null; trigger(); }, delay);
  }

  if (document.readyState === "complete") soon(LOAD_DELAY_MS);
  else window.addEventListener("load", function () { soon(LOAD_DELAY_MS); });
  window.addEventListener("online", function () { soon(0); });
  window.addEventListener("focus", function () { soon(0); });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") soon(0);
  });
})();

// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // Status refreshes by itself: the page names the JSON it watches (data-poll) and
  // marks the values it shows (data-live="runtime-nginx.idle", "deployment-7.status").
  function apply(item) {
    var key = item.name !== undefined ? "runtime-" + item.name : "deployment-" + item.id;
    var changed = false;
    document.querySelectorAll('[data-live^="' + key + '."]').forEach(function (el) {
      var value = String(item[el.dataset.live.split(".")[1]]);
      if (el.textContent === value) return;
      changed = true;
      el.textContent = value;
      if (el.classList.contains("badge")) el.className = "badge badge-" + value;
    });
    return changed;
  }

  function busy() {  // the user is in the middle of something: do not reload under them
    return Array.prototype.some.call(document.querySelectorAll("input[type=file], input[type=text]"),
      function (el) { return el.files ? el.files.length > 0 : el.value !== ""; });
  }

  function poll(root) {
    root.dataset.poll.split(" ").forEach(function (url) {
      fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
        .then(function (resp) { return resp.ok ? resp.json() : null; })
        .then(function (data) {
          if (data === null) return;
          var changed = [].concat(data).map(apply).some(Boolean);
          if (changed && root.hasAttribute("data-reload-on-change") && !busy()) location.reload();
        })
        .catch(function () {});
    });
  }

  // Release and other destructive buttons: confirm() here, a confirmation page without JS.
  function confirmBeforeSubmit(form) {
    form.addEventListener("submit", function (event) {
      if (window.confirm(form.dataset.confirm)) form.elements.confirmed.value = "yes";
      else event.preventDefault();
    });
  }

  // Live logs: ask for the lines after our cursor every second (while the tab is
  // visible); slow down when the server says it is busy or we poll too much.
  var LOG_KEEP = 1000;
  function followLogs(pre) {
    var cursor = pre.dataset.cursor, delay = 1000;
    var empty = document.querySelector("[data-logs-empty]");
    function show(lines) {
      var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(document.createTextNode(lines.join("\n") + "\n"));
      var all = pre.textContent.split("\n");
      if (all.length > LOG_KEEP + 200) pre.textContent = all.slice(-LOG_KEEP).join("\n");
      pre.hidden = false;
      if (empty) empty.hidden = true;
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }
    function tick() {
      if (document.hidden) { setTimeout(tick, delay); return; }
      var query = cursor ? "?since=" + encodeURIComponent(cursor) : "?tail=50";
      fetch(pre.dataset.follow + query, {credentials: "same-origin",
                                         headers: {Accept: "application/json"}})
        .then(function (resp) {
          if (resp.status === 404 || resp.status === 410) { delay = 0; return null; }
          delay = resp.ok ? 1000 : 5000;
          return resp.ok ? resp.json() : null;
        })
        .then(function (data) {
          if (data && data.lines.length) show(data.lines);
          if (data && data.cursor) cursor = data.cursor;
        })
        .catch(function () { delay = 5000; })
        .then(function () { if (delay) setTimeout(tick, delay); });
    }
    setTimeout(tick, delay);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var logs = document.querySelector("pre[data-follow]");
    if (logs) followLogs(logs);
    document.querySelectorAll("form[data-confirm]").forEach(confirmBeforeSubmit);
    var root = document.querySelector("[data-poll]");
    if (root) setInterval(function () { poll(root); }, 5000);
  });
})();

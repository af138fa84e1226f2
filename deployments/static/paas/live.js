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

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-confirm]").forEach(confirmBeforeSubmit);
    var root = document.querySelector("[data-poll]");
    if (root) setInterval(function () { poll(root); }, 5000);
  });
})();

// The recordings list checks every 20 s whether a newer recording matches the search
// ("appears after the call, on refresh") and then reloads page 1, unless the user is typing.
(function () {
  "use strict";
  var note = document.getElementById("refresh-note");
  if (!note || note.dataset.page !== "1") { return; }
  var newest = Number(note.dataset.newest || 0);
  var query = note.dataset.query || "";
  function check() {
    fetch("/recordings/newest" + (query ? "?" + query : ""), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || !(data.newest > newest)) { return; }
        var active = document.activeElement;
        if (active && (active.tagName === "INPUT" || active.tagName === "SELECT" || active.tagName === "TEXTAREA")) {
          note.textContent = "New calls are in: search again to see them.";
          return;
        }
        window.location.reload();
      })
      .catch(function () {});
  }
  window.setInterval(check, 20000);
})();

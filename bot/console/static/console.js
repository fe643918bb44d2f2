/* Live parts of the console without a build step: every element with data-refresh is re-fetched
   (an HTML fragment from the server) every data-poll-ms milliseconds while the page is open. */
(function () {
  "use strict";
  var every = parseInt(document.body.getAttribute("data-poll-ms"), 10) || 3000;
  function refresh(el) {
    var url = el.getAttribute("data-refresh");
    fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (html) {
        if (html === null || html === el.getAttribute("data-last")) { return; }
        el.setAttribute("data-last", html);
        el.innerHTML = html;
        var counts = el.querySelectorAll("[data-count-new]");
        for (var i = 0; i < counts.length; i++) {
          var badge = document.querySelector('[data-count="' + counts[i].getAttribute("data-count-new") + '"]');
          if (badge) { badge.textContent = counts[i].textContent; }
        }
      })
      .catch(function () { /* the next round tries again */ });
  }
  var job = document.getElementById("job");
  function follow() {
    fetch(job.getAttribute("data-progress"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) {
        if (!j) { return; }
        var bar = document.getElementById("bar");
        bar.max = j.total || 1;
        bar.value = j.done || 0;
        document.getElementById("job-text").textContent = [j.stage, (j.done || 0) + "/" + (j.total || 0), j.result].join(" ");
        if (j.running) { setTimeout(follow, 500); } else { window.location.reload(); }
      })
      .catch(function () { setTimeout(follow, 2000); });
  }
  if (job && job.getAttribute("data-running") === "yes") { follow(); }
  var live = document.querySelectorAll("[data-refresh]");
  if (live.length) {
    setInterval(function () { for (var i = 0; i < live.length; i++) { refresh(live[i]); } }, every);
  }
})();

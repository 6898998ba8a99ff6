/* Refresh the page's content while the execution or trace it shows runs; plain script, no library or CDN.
   The server marks a running page with data-live="1"; open span details stay open across refreshes. */
(function () {
  "use strict";
  var PERIOD_MS = 1000;

  function isLive(root) {
    return root.querySelector("[data-live='1']") !== null;
  }

  function openSpanIds(root) {
    return Array.prototype.map.call(root.querySelectorAll(".wf-row > details[open]"), function (details) {
      return details.parentNode.getAttribute("data-span-id");
    });
  }

  function refresh() {
    var content = document.getElementById("content-main");
    if (!content || !isLive(content)) {
      return;
    }
    fetch(window.location.href, {credentials: "same-origin"})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("content-main");
        if (!fresh) {
          return;
        }
        openSpanIds(content).forEach(function (spanId) {
          var details = fresh.querySelector('.wf-row[data-span-id="' + spanId + '"] > details');
          if (details) {
            details.open = true;
          }
        });
        content.replaceWith(fresh);
      })
      .catch(function () {
        // A failed poll (a restart, a network blip) is simply retried on the next tick.
      })
      .finally(function () {
        window.setTimeout(refresh, PERIOD_MS);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    window.setTimeout(refresh, PERIOD_MS);
  });
}());

// Keyward console: the only script the pages load (CSP: script-src 'self').
// It adds conveniences; every page works without it.
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var b = e.target.closest("[data-copy]");
    if (!b) return;
    var el = document.querySelector(b.getAttribute("data-copy"));
    if (!el || !navigator.clipboard) return;
    navigator.clipboard.writeText(el.textContent).then(function () {
      var t = b.textContent;
      b.textContent = "Copied";
      setTimeout(function () { b.textContent = t; }, 1500);
    });
  });
  document.addEventListener("submit", function (e) {
    var f = e.target;
    var msg = f.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });
  document.addEventListener("DOMContentLoaded", function () {
    var f = document.querySelector("form[data-autopoll]");
    if (f) {
      var s = parseInt(f.getAttribute("data-autopoll"), 10) || 5;
      setTimeout(function () { f.submit(); }, s * 1000);
    }
  });
})();

// Dates on the client's pages are sent as UTC moments and shown in the reader's own zone, as
// their browser knows it (the server cannot: a client has no account to say where they live).
// `data-local` says how much of the moment to show; the time comes from `datetime` (a <time>)
// or `data-datetime` (an SVG label). Without scripts the UTC text stays.
(function () {
  "use strict";
  var forms = {
    moment: { weekday: "long", day: "numeric", month: "long", year: "numeric", hour: "2-digit",
              minute: "2-digit", timeZoneName: "short" },
    day: { day: "numeric", month: "short", year: "numeric" },
    "day-month": { day: "numeric", month: "short" }
  };
  Array.prototype.forEach.call(document.querySelectorAll("[data-local]"), function (el) {
    var form = forms[el.getAttribute("data-local")];
    var when = new Date(el.getAttribute("datetime") || el.getAttribute("data-datetime"));
    if (!form || isNaN(when.getTime())) { return; }
    el.textContent = when.toLocaleString(undefined, form);
  });
})();

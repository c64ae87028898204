// Transcript timestamps seek the player; the search box filters and highlights segments.
(function () {
  "use strict";
  var player = document.getElementById("player");
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest ? ev.target.closest("button.ts") : null;
    if (!button || !player) { return; }
    player.currentTime = parseFloat(button.getAttribute("data-t")) || 0;
    var playing = player.play();
    if (playing && playing.catch) { playing.catch(function () {}); }
  });

  var search = document.getElementById("search");
  if (!search) { return; }
  var count = document.getElementById("search-count");
  var segments = Array.prototype.slice.call(document.querySelectorAll("#segments .seg"));
  segments.forEach(function (li) {
    var span = li.querySelector(".text");
    span.setAttribute("data-plain", span.textContent);
  });
  search.addEventListener("input", function () {
    var needle = search.value.trim();
    // Case-insensitive match on the original text itself, so the highlighted range is exactly
    // what matched even where lowercasing would change a string's length.
    var pattern = needle ? new RegExp(needle.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i") : null;
    var shown = 0;
    segments.forEach(function (li) {
      var span = li.querySelector(".text");
      var plain = span.getAttribute("data-plain");
      span.textContent = plain;  // text only: nothing from the transcript is ever parsed as HTML
      if (!pattern) { li.classList.remove("hidden"); return; }
      var found = pattern.exec(plain);
      if (!found) { li.classList.add("hidden"); return; }
      li.classList.remove("hidden");
      shown += 1;
      var mark = document.createElement("mark");
      mark.textContent = found[0];
      span.textContent = "";
      span.appendChild(document.createTextNode(plain.slice(0, found.index)));
      span.appendChild(mark);
      span.appendChild(document.createTextNode(plain.slice(found.index + found[0].length)));
    });
    count.textContent = pattern ? shown + " matching passage" + (shown === 1 ? "" : "s") : "";
  });
})();

// Transcript timestamps seek the player, which has ±15 s and speed buttons and marks (and
// follows) the passage playing; the search box filters and highlights segments.
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

  // The player's own buttons: 15 seconds back or ahead, and the speed.
  function skip(id, by) {
    var button = document.getElementById(id);
    if (!button || !player) { return; }
    button.addEventListener("click", function () {
      var end = isFinite(player.duration) ? player.duration : Infinity;
      player.currentTime = Math.max(0, Math.min(end, player.currentTime + by));
    });
  }
  skip("back-15", -15);
  skip("ahead-15", 15);
  var speed = document.getElementById("speed");
  if (speed && player) {
    speed.addEventListener("change", function () { player.playbackRate = parseFloat(speed.value) || 1; });
  }

  // The passage being played is marked and kept in view, unless the reader scrolled away
  // in the last few seconds: following must not fight someone reading elsewhere.
  var passages = Array.prototype.slice.call(document.querySelectorAll("#segments .seg"));
  var starts = passages.map(function (li) {
    var ts = li.querySelector("button.ts");
    return ts ? parseFloat(ts.getAttribute("data-t")) || 0 : 0;
  });
  var current = null;
  var scrolledByHand = 0;
  var ourScrollY = null;  // where our own last scroll left the page
  window.addEventListener("scroll", function () {
    // A scroll event comes a frame after the scroll; it is ours only if the page is still
    // where we put it. Any other position is the reader's doing.
    if (ourScrollY === null || Math.abs(window.scrollY - ourScrollY) > 2) {
      ourScrollY = null;
      scrolledByHand = Date.now();
    }
  }, { passive: true });
  var dock = document.getElementById("player-dock");
  function inView(el) {
    // The part of the screen the player leaves free: above it when docked at the bottom,
    // below it when it is stuck at the top.
    var box = el.getBoundingClientRect();
    var top = 0, bottom = window.innerHeight;
    if (dock) {
      var d = dock.getBoundingClientRect();
      if (getComputedStyle(dock).position === "fixed") { bottom = d.top; } else if (d.top <= 1) { top = d.bottom; }
    }
    return box.top >= top && box.bottom <= bottom;
  }
  function follow() {
    if (!player || !passages.length) { return; }
    var t = player.currentTime, at = -1;
    for (var i = 0; i < starts.length; i++) { if (starts[i] <= t + 0.05) { at = i; } else { break; } }
    var next = at >= 0 ? passages[at] : null;
    if (next === current) { return; }
    if (current) { current.classList.remove("playing"); current.removeAttribute("aria-current"); }
    current = next;
    if (!current) { return; }
    current.classList.add("playing");
    current.setAttribute("aria-current", "true");
    if (Date.now() - scrolledByHand > 4000 && !inView(current)) {
      current.scrollIntoView({ block: "center" });
      ourScrollY = window.scrollY;
    }
  }
  if (player) {
    player.addEventListener("timeupdate", follow);
    player.addEventListener("seeked", follow);
  }

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

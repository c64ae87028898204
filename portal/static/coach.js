// The coach's session page: a timestamp anywhere on it plays the recording from that moment.
(function () {
  "use strict";
  var player = document.getElementById("player");
  if (!player) { return; }
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest ? ev.target.closest("button.ts") : null;
    if (!button) { return; }
    player.currentTime = parseFloat(button.getAttribute("data-t")) || 0;
    var playing = player.play();
    if (playing && playing.catch) { playing.catch(function () {}); }
  });
})();

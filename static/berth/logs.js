/* An app's Logs tab: the live tail (the API's Server-Sent Events stream), pause and resume, and a cap
 * on the lines the page keeps.
 *
 * Every line goes in with textContent, never as markup, so nothing an app prints can run or restyle
 * the page. The page keeps at most `keep` lines (oldest dropped first); while paused, lines are held
 * (no more than `keep` of them) and shown on resume. EventSource reconnects by itself with the last id
 * it got, and the stream says with a notice what it could not give back. Leaving the page (a boosted
 * navigation swaps the body) closes the stream. */
(function () {
  "use strict";
  var view = document.getElementById("log-view");
  if (!view || typeof EventSource === "undefined") return;
  var list = document.getElementById("log-lines");
  var status = document.getElementById("log-status");
  var pauseButton = document.getElementById("log-pause");
  var keepInput = document.getElementById("log-keep");
  var stored = parseInt(window.localStorage.getItem("berth.logs.keep") || "", 10);
  var keep = stored >= 100 ? Math.min(stored, parseInt(keepInput.max, 10)) : parseInt(keepInput.value, 10);
  keepInput.value = keep;
  var paused = false;
  var held = [];
  var dropped = 0;

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function row(line) {
    var item = element("li", line.source + " " + line.stream);
    var time = element("time", "", line.time.replace("T", " ").replace("Z", ""));
    time.setAttribute("datetime", line.time);
    item.append(time, " ", element("span", "log-process", line.source + "[" + line.process + "]:"), " ",
      element("span", "log-text", line.line));
    return item;
  }

  function trim() {
    while (list.children.length > keep) {
      list.firstElementChild.remove();
      dropped += 1;
    }
  }

  function show(items) {
    var atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    var batch = document.createDocumentFragment();
    items.forEach(function (item) { batch.append(item); });
    list.append(batch);
    trim();
    if (atBottom) list.scrollTop = list.scrollHeight;
    say();
  }

  function say(text) {
    if (text) { status.textContent = text; return; }
    var parts = [list.children.length + " lines shown"];
    if (dropped) parts.push(dropped + " older ones dropped from the page (keeping " + keep + ")");
    if (paused) parts.push("paused, " + held.length + " waiting");
    status.textContent = parts.join("; ") + ".";
  }

  var source = new EventSource(view.dataset.stream, { withCredentials: true });
  function gone() { return !document.body.contains(view); }
  source.onmessage = function (event) {
    if (gone()) { source.close(); return; }
    var item = row(JSON.parse(event.data));
    if (paused) {
      held.push(item);
      if (held.length > keep) { held.shift(); dropped += 1; }
      say();
    } else {
      show([item]);
    }
  };
  source.addEventListener("notice", function (event) {
    if (gone()) { source.close(); return; }
    var notice = element("li", "notice", JSON.parse(event.data).text);
    if (paused) { held.push(notice); } else { show([notice]); }
  });
  source.onopen = function () { view.classList.add("live"); say(); };
  source.onerror = function () {
    view.classList.remove("live");
    if (source.readyState === EventSource.CLOSED) say("The live view stopped: reload the page to follow the logs again.");
    else say("Reconnecting to the live view…");
  };
  document.body.addEventListener("htmx:beforeSwap", function close() {
    source.close();
    document.body.removeEventListener("htmx:beforeSwap", close);
  });

  pauseButton.hidden = false;
  pauseButton.addEventListener("click", function () {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", paused ? "true" : "false");
    if (!paused) { var waiting = held; held = []; show(waiting); } else { say(); }
  });
  keepInput.addEventListener("change", function () {
    var value = parseInt(keepInput.value, 10);
    if (!(value >= 100)) value = 100;
    keep = Math.min(value, parseInt(keepInput.max, 10));
    keepInput.value = keep;
    window.localStorage.setItem("berth.logs.keep", String(keep));
    trim();
    say();
  });
  trim();
  list.scrollTop = list.scrollHeight;
})();

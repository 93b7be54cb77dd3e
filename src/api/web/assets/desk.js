// The web desk's one script: keyboard use of the review station. The pages work without it
// (plain forms); it adds keys. No inline scripts (the Content-Security-Policy forbids them).
//
// Review item (/pruefkorb/<id>): 1, 2, 3 assign to the proposal or a runner-up; Enter assigns
// to the proposal; j / k open the next / previous item; / searches all mailboxes.
// Review list (/pruefkorb): j / k move through the items; Enter opens the chosen one.
"use strict";
(function () {
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }
  function follow(selector) {
    var a = document.querySelector(selector);
    if (a) window.location.assign(a.href);
    return !!a;
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) return;
    var target = ev.target;
    if (typing(target)) return;
    var item = document.querySelector("[data-review-item]");
    if (item) {
      if (/^[1-9]$/.test(ev.key)) {
        var b = document.querySelector('button[data-key="' + ev.key + '"]');
        if (b) { ev.preventDefault(); b.click(); }
        return;
      }
      if (ev.key === "Enter") {
        // Enter on a link, button or field keeps its usual meaning.
        if (target && target.closest && target.closest("a, button, summary")) return;
        var first = document.querySelector('button[data-key="1"]');
        if (first) { ev.preventDefault(); first.click(); }
        return;
      }
      if (ev.key === "j") { if (follow('a[rel="next"]')) ev.preventDefault(); return; }
      if (ev.key === "k") { if (follow('a[rel="prev"]')) ev.preventDefault(); return; }
      if (ev.key === "/") {
        var search = document.getElementById("alle");
        if (search) { ev.preventDefault(); search.focus(); }
      }
      return;
    }
    var list = document.querySelector("[data-review-list]");
    if (list && (ev.key === "j" || ev.key === "k")) {
      var links = Array.prototype.slice.call(list.querySelectorAll("a[data-item]"));
      if (!links.length) return;
      var i = links.indexOf(document.activeElement);
      if (ev.key === "j") i = i < 0 ? 0 : Math.min(i + 1, links.length - 1);
      else i = i < 0 ? 0 : Math.max(i - 1, 0);
      ev.preventDefault();
      links[i].focus();
    }
  });
  // Hochladen: files dropped onto the form go into its file field.
  var zone = document.querySelector("[data-dropzone]");
  if (zone) {
    var input = zone.querySelector('input[type="file"]');
    zone.addEventListener("dragover", function (ev) { ev.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
    zone.addEventListener("drop", function (ev) {
      ev.preventDefault();
      zone.classList.remove("over");
      if (input && ev.dataTransfer && ev.dataTransfer.files.length) {
        input.files = ev.dataTransfer.files;
        zone.submit();
      }
    });
  }
  // Verwaltung: while a training runs, the page shows its progress anew every 3 seconds.
  if (document.querySelector("[data-training-running]")) {
    window.setTimeout(function () { window.location.reload(); }, 3000);
  }
})();

/* A little help for the pages, which work without it: ask before cancelling, show the
   print button, count a large search result's refinements in the background, put the
   cursor back into the barcode field at the counter. */
(function () {
  "use strict";
  document.querySelectorAll("form.confirm").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      var text = form.getAttribute("data-confirm");
      if (text && !window.confirm(text)) { ev.preventDefault(); }
    });
  });
  document.querySelectorAll(".print-button").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () { window.print(); });
  });
  // a large result's refinements: counted in the background and put in place
  document.querySelectorAll("a.facets-load").forEach(function (a) {
    var nav = a.closest("nav.facets");
    if (!nav || !window.fetch || !window.DOMParser) { return; }
    fetch(a.href, {credentials: "same-origin"}).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (!html) { return; }
      var got = new DOMParser().parseFromString(html, "text/html").querySelector("nav.facets");
      if (got && !got.querySelector("a.facets-load")) { nav.replaceWith(document.importNode(got, true)); }
    }).catch(function () { /* the link stays */ });
  });
  var focus = document.querySelector("[autofocus]");
  if (focus && typeof focus.focus === "function") { focus.focus(); }
})();

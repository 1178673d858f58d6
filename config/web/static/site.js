/* A little help for the pages, which work without it: ask before cancelling, show the
   print button, put the cursor back into the barcode field at the counter. */
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
  var focus = document.querySelector("[autofocus]");
  if (focus && typeof focus.focus === "function") { focus.focus(); }
})();

"use strict";
// Loaded as a file, not inline, so that the page's CSP needs no 'unsafe-inline' script.
(function () {
  var element = document.getElementById("redoc");
  Redoc.init(element.dataset.openapiUrl, { hideDownloadButton: false }, element);
})();

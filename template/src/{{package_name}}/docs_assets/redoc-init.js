"use strict";
// Loaded as a file, not inline, so that the page's CSP needs no 'unsafe-inline' script.
(function () {
  // ReDoc 2 always shows a logo from https://cdn.redoc.ly in its sidebar footer. This page
  // loads images from its own origin only, and the CSP would block that one and report a
  // violation: an image whose address is on another origin is hidden and never requested.
  // (React sets an image's address twice: as an attribute, then as the `src` property.)
  function elsewhere(value) {
    var url;
    try {
      url = new URL(String(value), document.baseURI);
    } catch (error) {
      return false;
    }
    return /^https?:$/.test(url.protocol) && url.origin !== window.location.origin;
  }
  var image = HTMLImageElement.prototype;
  var src = Object.getOwnPropertyDescriptor(image, "src");
  var setAttribute = Element.prototype.setAttribute;
  Object.defineProperty(image, "src", {
    configurable: true,
    enumerable: src.enumerable,
    get: src.get,
    set: function (value) {
      if (elsewhere(value)) this.hidden = true;
      else src.set.call(this, value);
    },
  });
  image.setAttribute = function (name, value) {
    if (String(name).toLowerCase() === "src" && elsewhere(value)) this.hidden = true;
    else setAttribute.call(this, name, value);
  };

  var element = document.getElementById("redoc");
  Redoc.init(element.dataset.openapiUrl, { hideDownloadButton: false }, element);
})();

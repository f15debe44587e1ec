/* Fits the page to the portal's frame when BX24 is present (a real portal); does nothing in the
   demo frame. BX24.fitWindow: DOCS sdk/bx24-js-sdk/additional-functions/bx24-fit-window.md */
(function () {
  "use strict";
  var inPortal = !!(window.BX24 && typeof window.BX24.init === "function");
  function fit() {
    if (inPortal && typeof window.BX24.fitWindow === "function") { window.BX24.fitWindow(); }
  }
  window.b24fit = fit;
  window.b24openPath = function (url) {
    /* Inside the portal open ticket links in its slider; elsewhere a new tab does. */
    if (inPortal && typeof window.BX24.openPath === "function") {
      try { var u = new URL(url, window.location.href); window.BX24.openPath(u.pathname + u.search); return true; }
      catch (e) { return false; }
    }
    return false;
  };
  if (inPortal) {
    window.BX24.init(function () { fit(); });
    window.addEventListener("resize", fit);
  }
})();

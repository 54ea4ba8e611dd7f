// The QR code of `chime web token` opens /login#token=…: fill the field, forget the fragment.
(function () {
  var match = /^#token=([A-Za-z0-9_-]+)$/.exec(window.location.hash);
  var field = document.querySelector("input[name=token]");
  if (match && field) {
    field.value = match[1];
    history.replaceState(null, "", window.location.pathname);
  }
})();

// What the server said went wrong with an upload, for files.js (multipart) and
// tus-upload.js (tus): the message of its JSON error body ({"error": {"message"}}),
// or the HTTP status when the body has none.
window.uploadErrorMessage = function (body, status) {
  "use strict";
  try {
    var data = JSON.parse(body);
    if (data && data.error && data.error.message) return data.error.message;
  } catch (e) { /* not JSON */ }
  return "The upload failed (HTTP " + status + ").";
};

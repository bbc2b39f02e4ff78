// Large files (over 8 MiB) go through tus (resumable uploads, tus-js-client):
// they can be paused and resumed, and an upload cut by a reload or a lost
// connection continues from where it stopped when the same file is chosen again.
// Smaller files keep the multipart form of files.js. Runs before files.js: it
// takes the submit only when it handles it.
(function () {
  "use strict";
  var TUS_FROM = 8 * 1024 * 1024;
  var form = document.getElementById("upload-form");
  if (!form || !window.tus || !window.tus.isSupported) return;
  var endpoint = form.getAttribute("data-tus-endpoint");
  if (!endpoint) return;
  var token = document.querySelector('meta[name="xsrf-token"]');
  token = token ? token.getAttribute("content") : "";
  var input = document.getElementById("upload-files");
  var wrap = document.getElementById("upload-progress-wrap");
  var bar = document.getElementById("upload-progress");
  var percent = document.getElementById("upload-percent");
  var error = document.getElementById("upload-error");
  var button = document.getElementById("upload-button");
  var pause = document.getElementById("upload-pause");
  var resume = document.getElementById("upload-resume");
  var note = document.getElementById("upload-resume-note");
  var current = null;

  function anyStored() {
    try {
      for (var i = 0; i < window.localStorage.length; i++) {
        if (window.localStorage.key(i).indexOf("tus::") === 0) return true;
      }
    } catch (e) { /* storage blocked */ }
    return false;
  }
  if (note && anyStored()) note.hidden = false;

  function show(p) {
    bar.value = p;
    bar.textContent = p + "%";
    percent.textContent = p + "%";
  }

  function fail(text) {
    wrap.hidden = true;
    pause.hidden = true;
    resume.hidden = true;
    button.disabled = false;
    form.setAttribute("data-state", "error");
    error.textContent = text;
    error.hidden = false;
  }

  function messageOf(err) {
    var res = err && err.originalResponse;
    if (res) return window.uploadErrorMessage(res.getBody(), res.getStatus());
    return "The connection was lost; press Resume to continue the upload.";
  }

  function uploadOne(files, index, total, doneBytes) {
    if (index >= files.length) {
      show(100);
      form.setAttribute("data-state", "done");
      window.location.reload();
      return;
    }
    var file = files[index];
    var upload = new window.tus.Upload(file, {
      endpoint: endpoint,
      chunkSize: 4 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000],
      removeFingerprintOnSuccess: true,
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
      headers: { "X-XSRFToken": token, "Accept": "application/json" },
      onProgress: function (sent) {
        show(Math.floor(((doneBytes + sent) / total) * 100));
      },
      onError: function (err) {
        var status = err && err.originalResponse ? err.originalResponse.getStatus() : 0;
        if (status === 0) {
          // Network trouble after the retries: the upload can still be resumed.
          form.setAttribute("data-state", "paused");
          pause.hidden = true;
          resume.hidden = false;
          error.textContent = messageOf(err);
          error.hidden = false;
          return;
        }
        current = null;
        fail(messageOf(err));
      },
      onSuccess: function () {
        uploadOne(files, index + 1, total, doneBytes + file.size);
      }
    });
    current = upload;
    upload.findPreviousUploads().then(function (previous) {
      if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    });
  }

  pause.addEventListener("click", function () {
    if (!current) return;
    current.abort();
    form.setAttribute("data-state", "paused");
    pause.hidden = true;
    resume.hidden = false;
    resume.focus();
  });
  resume.addEventListener("click", function () {
    if (!current) return;
    error.hidden = true;
    form.setAttribute("data-state", "uploading");
    resume.hidden = true;
    pause.hidden = false;
    current.start();
  });

  // Capture phase on the document: seen before files.js's listener on the form.
  document.addEventListener("submit", function (event) {
    if (event.target !== form) return;
    var files = Array.prototype.slice.call(input.files || []);
    var big = files.some(function (f) { return f.size > TUS_FROM; });
    if (!big) return;  // the multipart form of files.js
    event.preventDefault();
    event.stopPropagation();
    error.hidden = true;
    if (note) note.hidden = true;
    var total = files.reduce(function (n, f) { return n + f.size; }, 0) || 1;
    wrap.hidden = false;
    show(0);
    button.disabled = true;
    pause.hidden = false;
    resume.hidden = true;
    form.setAttribute("data-state", "uploading");
    form.setAttribute("data-method", "tus");
    uploadOne(files, 0, total, 0);
  }, true);
})();

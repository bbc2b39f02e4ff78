// File locker: uploads with a progress bar (XHR upload events) and deletes with the
// DELETE method. Without JavaScript the same forms still work (plain POST, and
// POST with _method=DELETE).
(function () {
  "use strict";
  var token = document.querySelector('meta[name="xsrf-token"]');
  token = token ? token.getAttribute("content") : "";

  var form = document.getElementById("upload-form");
  if (form) {
    var input = document.getElementById("upload-files");
    var wrap = document.getElementById("upload-progress-wrap");
    var bar = document.getElementById("upload-progress");
    var percent = document.getElementById("upload-percent");
    var error = document.getElementById("upload-error");
    var button = document.getElementById("upload-button");

    function showError(text) {
      // The bar would claim 100% for a body the server refused: hide it.
      wrap.hidden = true;
      error.textContent = text;
      error.hidden = false;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      if (!input.files.length) { showError("Choose at least one file to upload."); return; }
      // Say at once what the server would refuse (a large body might only end in a
      // dropped connection). Sizes are left to the server's own wording: the limit
      // text comes from the page, formatted as everywhere else.
      var max = parseInt(input.getAttribute("data-max-size"), 10);
      var limit = input.getAttribute("data-limit-text");
      if (max && limit) {
        var total = 0;
        for (var f = 0; f < input.files.length; f++) {
          total += input.files[f].size;
          if (input.files[f].size > max) {
            showError(input.files[f].name + " is larger than the limit of " + limit +
                      " per file; nothing was sent.");
            return;
          }
        }
        if (total > max) {
          showError("These files are larger than " + limit +
                    " in all; upload them in smaller groups.");
          return;
        }
      }
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      // Asks the server to flash "Uploaded ..." for the page this script reloads.
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.setRequestHeader("X-XSRFToken", token);
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        var p = Math.round((e.loaded / e.total) * 100);
        bar.value = p;
        bar.textContent = p + "%";
        percent.textContent = p + "%";
      });
      xhr.addEventListener("load", function () {
        button.disabled = false;
        if (xhr.status >= 200 && xhr.status < 300) {
          bar.value = 100;
          percent.textContent = "100%";
          form.setAttribute("data-state", "done");
          window.location.reload();
        } else {
          form.setAttribute("data-state", "error");
          showError(window.uploadErrorMessage(xhr.responseText, xhr.status));
        }
      });
      xhr.addEventListener("error", function () {
        button.disabled = false;
        form.setAttribute("data-state", "error");
        showError("The connection was lost during the upload; the file may be too large.");
      });
      var data = new FormData();
      for (var i = 0; i < input.files.length; i++) data.append("files", input.files[i]);
      wrap.hidden = false;
      bar.value = 0;
      percent.textContent = "0%";
      button.disabled = true;
      form.setAttribute("data-state", "uploading");
      xhr.send(data);
    });
  }

  // The same feedback as the no-JS path, whose redirect shows a flash message.
  function flash(text, category) {
    var list = document.querySelector("main .flashes");
    if (!list) {
      list = document.createElement("ul");
      list.className = "flashes";
      list.setAttribute("aria-live", "polite");
      var main = document.querySelector("main");
      main.insertBefore(list, main.firstChild);
    }
    list.textContent = "";
    var item = document.createElement("li");
    item.className = "flash flash-" + category;
    if (category === "error") item.setAttribute("role", "alert");
    item.textContent = text;
    list.appendChild(item);
  }

  // Without JavaScript, Delete opens a page that asks first; here a dialog asks.
  document.querySelectorAll("a.delete-link").forEach(function (del) {
    del.addEventListener("click", function (event) {
      event.preventDefault();
      var row = del.closest("tr");
      var name = row ? row.getAttribute("data-file-name") : "this file";
      if (!window.confirm("Delete " + name + "? This cannot be undone.")) return;
      fetch(del.getAttribute("data-url"), {
        method: "DELETE",
        headers: { "X-XSRFToken": token, "Accept": "application/json" },
        credentials: "same-origin"
      }).then(function (r) {
        if (r.status === 204) {
          var table = row ? row.closest("table") : null;
          if (row) row.remove();
          if (table && !table.querySelector("tbody tr")) {
            table.remove();
            document.getElementById("no-files").hidden = false;
          }
          flash("Deleted " + name + ".", "info");
        } else {
          r.json().then(function (d) {
            flash(d.error ? d.error.message : "The file could not be deleted.", "error");
          }, function () {
            flash("The file could not be deleted (HTTP " + r.status + ").", "error");
          });
        }
      }, function () {
        flash("The connection was lost; the file may not have been deleted.", "error");
      });
    });
  });
})();

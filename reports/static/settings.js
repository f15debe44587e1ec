/* The settings page's small helpers; every form works without them (plain checkboxes and lists).
   - People pickers: filter the list as the admin types; names not on the page are asked from our
     server (GET /reports/settings/people, fed by user.get / department.get); inside the portal a
     button opens Bitrix24's own pickers (BX24.selectUsers, BX24.selectAccess: DOCS
     sdk/bx24-js-sdk/system-dialogues/bx24-select-users.md, bx24-select-access.md).
   - Priority values: only the block of the chosen priority field is shown.
   - Stage colours: painted from data-color (the CSP forbids inline style attributes). */
(function () {
  "use strict";
  var inPortal = !!(window.BX24 && typeof window.BX24.selectUsers === "function");

  function addItem(list, name, id, label, detail) {
    var existing = list.querySelector('input[value="' + String(id).replace(/"/g, "") + '"]');
    if (existing) { existing.checked = true; existing.closest("label").hidden = false; return; }
    var lab = document.createElement("label");
    lab.className = "picker-item";
    lab.setAttribute("data-text", (label + " " + (detail || "")).toLowerCase());
    var box = document.createElement("input");
    box.type = "checkbox"; box.name = name; box.value = String(id); box.checked = true;
    var span = document.createElement("span"); span.textContent = " " + label;
    lab.appendChild(box); lab.appendChild(span);
    if (detail) { var sm = document.createElement("small"); sm.textContent = " " + detail; lab.appendChild(sm); }
    list.insertBefore(lab, list.firstChild);
  }

  function picker(root) {
    var q = root.querySelector(".picker-q"), list = root.querySelector(".picker-list");
    var kind = root.getAttribute("data-kind"), name = root.getAttribute("data-name");
    var timer = null;
    q.addEventListener("input", function () {
      var text = q.value.trim().toLowerCase(), shown = 0;
      list.querySelectorAll(".picker-item").forEach(function (it) {
        var on = !text || it.getAttribute("data-text").indexOf(text) >= 0 || it.querySelector("input").checked;
        it.hidden = !on; if (on) { shown += 1; }
      });
      clearTimeout(timer);
      if (text.length >= 2) {
        timer = setTimeout(function () {
          var url = root.getAttribute("data-url") + "?kind=" + encodeURIComponent(kind) + "&q=" +
            encodeURIComponent(text) + "&t=" + encodeURIComponent(root.getAttribute("data-token"));
          fetch(url, {credentials: "same-origin"}).then(function (r) { return r.ok ? r.json() : {items: []}; })
            .then(function (data) {
              (data.items || []).forEach(function (row) {
                if (!list.querySelector('input[value="' + row.id + '"]')) {
                  addItem(list, name, row.id, row.name, row.detail);
                  list.querySelector('input[value="' + row.id + '"]').checked = false;
                }
              });
            }).catch(function () {});
        }, 250);
      }
    });
    var bx = root.querySelector(".picker-bx24");
    if (inPortal && bx) {
      bx.hidden = false;
      bx.addEventListener("click", function () {
        if (kind === "user") {
          window.BX24.selectUsers(function (users) {
            (users || []).forEach(function (u) { addItem(list, name, u.id, u.name || String(u.id), u.position || ""); });
          });
        } else {
          window.BX24.selectAccess(function (items) {
            Object.keys(items || {}).forEach(function (k) {
              var it = items[k], m = /^DR?(\d+)$/.exec(it.id || k);
              if (m) { addItem(list, name, m[1], it.name || m[1], ""); }
            });
          });
        }
      });
    }
  }

  function priorityValues(select) {
    var blocks = document.querySelectorAll('.pv-block[data-select="' + select.name + '"]');
    function show() {
      blocks.forEach(function (b) { b.hidden = b.getAttribute("data-field") !== select.value; });
    }
    select.addEventListener("change", show);
    show();
  }

  function targetScope() {
    var scope = document.getElementById("tg-add-scope");
    if (!scope) { return; }
    function show() {
      document.querySelectorAll(".add-target .for-departments").forEach(function (e) { e.hidden = scope.value !== "departments"; });
      document.querySelectorAll(".add-target .for-agents").forEach(function (e) { e.hidden = scope.value !== "agents"; });
    }
    scope.addEventListener("change", show);
    show();
  }

  document.querySelectorAll(".picker").forEach(picker);
  document.querySelectorAll("select.prio-field").forEach(priorityValues);
  document.querySelectorAll(".swatch[data-color]").forEach(function (s) {
    var c = s.getAttribute("data-color");
    if (/^#[0-9a-fA-F]{3,8}$/.test(c)) { s.style.background = c; }
  });
  targetScope();
  var firstError = document.querySelector(".err");
  if (firstError && firstError.scrollIntoView) { firstError.scrollIntoView({block: "center"}); }
  if (window.b24fit) { window.b24fit(); }
  document.body.setAttribute("data-ready", "1");
})();

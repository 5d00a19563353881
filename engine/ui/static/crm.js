// Small enhancements; every page works without this file.
"use strict";

// Reference fields: suggest matching records while typing and remember the chosen id.
function setupLookup(input) {
  const list = document.getElementById(input.getAttribute("list"));
  const field = input.closest(".field");
  const hidden = field ? field.querySelector(".ref-id") : null;
  const shown = field ? field.querySelector(".ref-shown") : null;
  let timer = null;
  let found = [];
  input.addEventListener("input", () => {
    const match = found.find((r) => r.title === input.value);
    if (hidden) {
      hidden.value = match ? match.id : "";
      if (shown) shown.value = match ? input.value : "";
    }
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const url = input.dataset.lookup + "?q=" + encodeURIComponent(input.value);
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      found = await response.json();
      list.replaceChildren(...found.map((r) => {
        const option = document.createElement("option");
        option.value = r.title;
        return option;
      }));
    }, 200);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("input[data-lookup]").forEach(setupLookup);
  document.querySelectorAll("input.select-all").forEach((box) => {
    box.addEventListener("change", () => {
      document.querySelectorAll("input[name=ids]").forEach((b) => { b.checked = box.checked; });
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
});
